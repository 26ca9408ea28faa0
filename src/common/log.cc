#include "common/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "common/time.h"

namespace moat::log {
namespace {
std::atomic<int> g_min{static_cast<int>(Severity::kInfo)};
std::atomic<int> g_fd{2};

const char* Name(Severity s) {
  switch (s) {
    case Severity::kDebug: return "DEBUG";
    case Severity::kInfo: return "INFO";
    case Severity::kWarning: return "WARNING";
    case Severity::kError: return "ERROR";
  }
  return "INFO";
}
}  // namespace

void SetMinSeverity(Severity s) { g_min.store(static_cast<int>(s)); }
void SetFd(int fd) { g_fd.store(fd); }

std::string JsonEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

void Write(Severity s, std::string_view message, std::initializer_list<Field> fields) {
  if (static_cast<int>(s) < g_min.load(std::memory_order_relaxed)) return;
  std::string line = "{\"time\":\"" + FormatRfc3339(SystemClock().Now()) + "\",\"severity\":\"" +
                     Name(s) + "\",\"message\":\"" + JsonEscape(message) + "\"";
  for (const auto& [k, v] : fields) {
    line += ",\"";
    line += JsonEscape(k);
    line += "\":\"";
    line += JsonEscape(v);
    line += '"';
  }
  line += "}\n";
  const char* p = line.data();
  size_t left = line.size();
  int fd = g_fd.load();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n <= 0) return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace moat::log
