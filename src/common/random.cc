#include "common/random.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace moat {

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(out.data() + got, n - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      std::fputs("moat: getrandom failed; refusing to continue without randomness\n", stderr);
      std::abort();
    }
    got += static_cast<size_t>(r);
  }
  return out;
}

std::string RandomHex(size_t n_bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string raw = RandomBytes(n_bytes);
  std::string out;
  out.reserve(n_bytes * 2);
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::string RandomUuid() {
  std::string b = RandomBytes(16);
  b[6] = static_cast<char>((b[6] & 0x0F) | 0x40);
  b[8] = static_cast<char>((b[8] & 0x3F) | 0x80);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    unsigned char c = static_cast<unsigned char>(b[i]);
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

uint64_t RandomU64() {
  std::string b = RandomBytes(8);
  uint64_t v = 0;
  for (unsigned char c : b) v = (v << 8) | c;
  return v;
}

std::string RandomNumericId() {
  std::string out;
  std::string raw = RandomBytes(21);
  for (size_t i = 0; i < raw.size(); ++i) {
    unsigned v = static_cast<unsigned char>(raw[i]) % 10;
    if (i == 0) v = 1 + static_cast<unsigned char>(raw[i]) % 9;
    out += static_cast<char>('0' + v);
  }
  return out;
}

}  // namespace moat
