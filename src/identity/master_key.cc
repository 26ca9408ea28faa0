#include "identity/master_key.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/base64.h"
#include "common/random.h"
#include "crypto/aead.h"

namespace moat::identity {
namespace {

std::string ModeString(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

Result<std::string> DecodeKey(std::string_view text, std::string_view what) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.remove_suffix(1);
  }
  auto raw = Base64Decode(text);
  if (!raw || raw->size() != crypto::kAeadKeyBytes) {
    return InvalidArgument(std::string(what) + " must be the base64 encoding of exactly 32 bytes");
  }
  return *raw;
}

Result<std::string> ReadKeyFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    return Unavailable("cannot open master key file `" + path + "`: " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return FailedPrecondition("master key file `" + path + "` is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return FailedPrecondition("master key file `" + path + "` has mode " + ModeString(st.st_mode) +
                              "; run chmod 600 " + path);
  }
  std::string text;
  char buf[256];
  while (text.size() < 4096) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return Unavailable("cannot read master key file `" + path + "`");
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return DecodeKey(text, "master key file `" + path + "`");
}

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

Result<std::string> LoadOrCreateMasterKey(const std::string& home_dir, const char* env_value) {
  if (env_value != nullptr && *env_value != '\0') {
    return DecodeKey(env_value, "$MOAT_MASTER_KEY");
  }
  if (home_dir.empty()) return InvalidArgument("the home directory must not be empty");
  if (::mkdir(home_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Unavailable("cannot create home directory `" + home_dir + "`: " + std::strerror(errno));
  }
  const std::string path = home_dir + "/" + std::string(kMasterKeyFileName);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return ReadKeyFile(path);
    return Unavailable("cannot create master key file `" + path + "`: " + std::strerror(errno));
  }
  // The umask may only remove bits; make sure it is exactly 0600 anyway.
  ::fchmod(fd, 0600);
  std::string key = RandomBytes(crypto::kAeadKeyBytes);
  bool ok = WriteAll(fd, Base64Encode(key) + "\n") && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    return Unavailable("cannot write master key file `" + path + "`");
  }
  // Make the new directory entry durable too.
  int dfd = ::open(home_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return key;
}

}  // namespace moat::identity
