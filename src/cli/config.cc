#include "cli/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "common/json.h"
#include "common/random.h"

namespace moat::cli {
namespace {

namespace js = boost::json;
constexpr size_t kMaxFile = 4 << 20;

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

Status MakeDirs(const std::string& path) {
  if (path.empty()) return Ok();
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return FailedPrecondition("`" + path + "` is not a directory");
    return Ok();
  }
  size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) MOAT_CHECK_OK(MakeDirs(path.substr(0, slash)));
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return FailedPrecondition("cannot create directory `" + path + "`: " + std::strerror(errno));
  }
  return Ok();
}

const std::map<std::string, std::string>& Aliases() {
  static const auto* m = new std::map<std::string, std::string>{
      {"project", "project"},
      {"core/project", "project"},
      {"region", "region"},
      {"run/region", "region"},
      {"account", "account"},
      {"core/account", "account"},
      {"api_endpoint", "api_endpoint"},
      {"api_endpoint_overrides/moat", "api_endpoint"},
      {"impersonate_service_account", "impersonate_service_account"},
      {"auth/impersonate_service_account", "impersonate_service_account"},
  };
  return *m;
}

}  // namespace

const std::vector<std::string>& PropertyNames() {
  static const auto* v = new std::vector<std::string>{
      "account", "api_endpoint", "impersonate_service_account", "project", "region"};
  return *v;
}

std::optional<std::string> CanonicalProperty(std::string_view name) {
  auto it = Aliases().find(std::string(name));
  if (it == Aliases().end()) return std::nullopt;
  return it->second;
}

Result<std::string> ConfigDir(const std::map<std::string, std::string>& vars) {
  if (auto it = vars.find("MOAT_CONFIG"); it != vars.end() && !it->second.empty()) {
    return it->second;
  }
  if (auto it = vars.find("HOME"); it != vars.end() && !it->second.empty()) {
    return it->second + "/.config/moat";
  }
  return FailedPrecondition("cannot find a config directory; set $MOAT_CONFIG or $HOME");
}

Status WritePrivateFile(const std::string& path, std::string_view data) {
  size_t slash = path.find_last_of('/');
  if (slash != std::string::npos) MOAT_CHECK_OK(MakeDirs(path.substr(0, slash)));
  std::string tmp = path + ".tmp-" + RandomHex(8);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return FailedPrecondition("cannot write `" + path + "`: " + std::strerror(errno));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return FailedPrecondition("cannot write `" + path + "`: " + std::strerror(e));
    }
    done += static_cast<size_t>(n);
  }
  // The umask may have narrowed the mode further; never widen beyond 0600.
  ::fchmod(fd, 0600);
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return FailedPrecondition("cannot write `" + path + "`: " + std::strerror(e));
  }
  return Ok();
}

Result<std::string> ReadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return NotFound("file `" + path + "` does not exist");
    return FailedPrecondition("cannot read `" + path + "`: " + std::strerror(errno));
  }
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return FailedPrecondition("cannot read `" + path + "`: " + std::strerror(e));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxFile) {
      ::close(fd);
      return InvalidArgument("file `" + path + "` is too large");
    }
  }
  ::close(fd);
  return out;
}

Result<Config> Config::Load(const std::string& dir) {
  Config c;
  c.dir_ = dir;
  auto text = ReadFile(dir + "/config");
  if (text) {
    std::istringstream in(*text);
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
      ++number;
      std::string t = Trim(line);
      if (t.empty() || t[0] == '#' || t[0] == '[') continue;
      size_t eq = t.find('=');
      auto name = eq == std::string::npos ? std::nullopt : CanonicalProperty(Trim(t.substr(0, eq)));
      if (!name) {
        return FailedPrecondition("config file `" + dir + "/config` line " +
                                  std::to_string(number) + " is not `property = value`");
      }
      c.props_[*name] = Trim(t.substr(eq + 1));
    }
  } else if (text.error().code != Code::kNotFound) {
    return text.error();
  }
  std::string cred_path = dir + "/credentials.json";
  struct stat st;
  if (::stat(cred_path.c_str(), &st) == 0) {
    if ((st.st_mode & 077) != 0) {
      return FailedPrecondition("credentials file `" + cred_path +
                                "` is readable by other users; run `chmod 600 " + cred_path + "`");
    }
    MOAT_TRY(std::string creds, ReadFile(cred_path));
    MOAT_TRY(js::object o, json::ParseObject(creds, "credentials file"));
    MOAT_TRY(const js::object* accounts, json::OptObject(o, "accounts"));
    if (accounts) c.accounts_ = *accounts;
  }
  return c;
}

std::optional<std::string> Config::Get(const std::string& name) const {
  auto it = props_.find(name);
  if (it == props_.end() || it->second.empty()) return std::nullopt;
  return it->second;
}

Status Config::Set(const std::string& name, const std::string& value) {
  if (value.find_first_of("\r\n") != std::string::npos) {
    return InvalidArgument("property values cannot contain newlines");
  }
  if (name == "api_endpoint" && value.rfind("http://", 0) != 0 && value.rfind("https://", 0) != 0) {
    return InvalidArgument("api_endpoint `" + value + "` must start with http:// or https://");
  }
  props_[name] = value;
  return Ok();
}

const js::object* Config::Account(std::string_view email) const {
  auto it = accounts_.find(email);
  if (it == accounts_.end() || !it->value().is_object()) return nullptr;
  return &it->value().as_object();
}

void Config::PutAccount(const std::string& email, js::object credential) {
  accounts_[email] = std::move(credential);
}

bool Config::RemoveAccount(std::string_view email) { return accounts_.erase(email) > 0; }

Status Config::Save() const {
  std::string text = "# moat CLI properties (`moat config set|unset`)\n";
  for (const auto& [k, v] : props_) text += k + " = " + v + "\n";
  MOAT_CHECK_OK(MakeDirs(dir_));
  MOAT_CHECK_OK(WritePrivateFile(dir_ + "/config", text));
  js::object creds;
  creds["accounts"] = accounts_;
  return WritePrivateFile(dir_ + "/credentials.json", json::Serialize(creds));
}

Result<std::string> ValidateKeyFile(const js::object& key) {
  MOAT_TRY(auto type, json::OptString(key, "type"));
  if (type != "service_account") {
    return InvalidArgument("key file must have `\"type\": \"service_account\"`");
  }
  for (const char* field : {"client_email", "private_key", "private_key_id"}) {
    MOAT_TRY(auto v, json::OptString(key, field));
    if (!v || v->empty()) {
      return InvalidArgument(std::string("key file is missing `") + field + "`");
    }
  }
  return std::string(key.at("client_email").as_string());
}

}  // namespace moat::cli
