#include "common/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <limits>

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

void AppendJsonEscaped(std::string* out, std::string_view s) {
  size_t plain = 0;  // the common case: nothing to escape, one append
  while (plain < s.size()) {
    auto c = static_cast<unsigned char>(s[plain]);
    if (c < 0x20 || c == '"' || c == '\\') break;
    ++plain;
  }
  out->append(s.substr(0, plain));
  for (unsigned char c : s.substr(plain)) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          *out += buf;
        } else {
          *out += static_cast<char>(c);
        }
    }
  }
}

std::string JsonEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  AppendJsonEscaped(&out, s);
  return out;
}

namespace {
// "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ". The calendar part is formatted once per second per thread
// (gmtime_r takes a process-wide lock in glibc, and every request logs a line).
void AppendTimestamp(std::string* out) {
  thread_local int64_t cached_second = std::numeric_limits<int64_t>::min();
  thread_local char calendar[32];
  thread_local size_t calendar_size = 0;
  int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                   SystemClock().Now().time_since_epoch())
                   .count();
  int64_t second = ns / 1'000'000'000;
  int64_t frac = ns % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    second -= 1;
  }
  if (second != cached_second) {
    std::time_t tt = static_cast<std::time_t>(second);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    calendar_size = std::strftime(calendar, sizeof calendar, "%Y-%m-%dT%H:%M:%S", &tm);
    cached_second = second;
  }
  out->append(calendar, calendar_size);
  char digits[11] = {'.', '0', '0', '0', '0', '0', '0', '0', '0', '0', 'Z'};
  for (int i = 9; i >= 1; --i) {
    digits[i] = static_cast<char>('0' + frac % 10);
    frac /= 10;
  }
  out->append(digits, sizeof digits);
}
}  // namespace

namespace {
// One line, newline included, appended to *out; false below the minimum severity.
bool AppendLine(std::string* out, Severity s, std::string_view message,
                std::initializer_list<Field> fields) {
  if (static_cast<int>(s) < g_min.load(std::memory_order_relaxed)) return false;
  std::string& line = *out;
  line += "{\"time\":\"";
  AppendTimestamp(&line);
  line += "\",\"severity\":\"";
  line += Name(s);
  line += "\",\"message\":\"";
  AppendJsonEscaped(&line, message);
  line += '"';
  for (const auto& [k, v] : fields) {
    line += ",\"";
    AppendJsonEscaped(&line, k);
    line += "\":\"";
    AppendJsonEscaped(&line, v);
    line += '"';
  }
  line += "}\n";
  return true;
}

// One write(2) (a partial write is continued).
void WriteLines(std::string_view lines) {
  const char* p = lines.data();
  size_t left = lines.size();
  int fd = g_fd.load();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n <= 0) return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}
}  // namespace

void Write(Severity s, std::string_view message, std::initializer_list<Field> fields) {
  thread_local std::string line;  // keeps its capacity: no allocation per line
  line.clear();
  if (AppendLine(&line, s, message, fields)) WriteLines(line);
}

bool LineBatch::Add(Severity s, std::string_view message, std::initializer_list<Field> fields) {
  const size_t before = lines_.size();
  if (!AppendLine(&lines_, s, message, fields)) return false;
  if (lines_.size() <= kAtomicWriteBytes) return true;
  if (before > 0) {  // the earlier lines go now; this one starts the next batch
    WriteLines(std::string_view(lines_).substr(0, before));
    lines_.erase(0, before);
  }
  if (lines_.size() > kAtomicWriteBytes) Flush();  // a line too long to batch at all
  return true;
}

void LineBatch::Flush() {
  if (!lines_.empty()) WriteLines(lines_);
  lines_.clear();
}

}  // namespace moat::log
