// Structured logging: one JSON object per line on stderr (or a file), e.g.
//   {"time":"…","severity":"INFO","message":"listening","addr":"127.0.0.1:8080"}
// Severity names follow Cloud Logging's. Never pass key material or whole tokens here.
// Thread-safe: each line is written with a single write(2) (batches of lines: one write of at
// most kAtomicWriteBytes).
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace moat::log {

enum class Severity { kDebug, kInfo, kWarning, kError };

// A key and its value. Views: pass temporaries freely (they live until the call returns), but
// never keep a Field beyond the call.
using Field = std::pair<std::string_view, std::string_view>;

void SetMinSeverity(Severity s);
// Redirects output to an open file descriptor (default 2).
void SetFd(int fd);
void Write(Severity s, std::string_view message, std::initializer_list<Field> fields = {});

inline void Debug(std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Severity::kDebug, m, f);
}
inline void Info(std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Severity::kInfo, m, f);
}
inline void Warn(std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Severity::kWarning, m, f);
}
inline void Error(std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Severity::kError, m, f);
}

// The largest write(2) that stays atomic on a pipe (PIPE_BUF): a batch of lines kept within it
// never interleaves with another thread's lines.
inline constexpr size_t kAtomicWriteBytes = 4096;

// Lines written in batches rather than one write(2) each (the gateway's access log). The owner
// decides when to Flush; Add writes out the lines before it first when the batch would grow
// past kAtomicWriteBytes, and writes a line longer than that at once, alone.
// Thread-safety: one thread at a time.
class LineBatch {
 public:
  // False (nothing added) below the minimum severity.
  bool Add(Severity s, std::string_view message, std::initializer_list<Field> fields = {});
  void Flush();
  bool empty() const { return lines_.empty(); }

 private:
  std::string lines_;
};

// Escapes a string for inclusion inside a JSON string literal.
std::string JsonEscape(std::string_view s);
// Appends `s` escaped for a JSON string (without quotes).
void AppendJsonEscaped(std::string* out, std::string_view s);

}  // namespace moat::log
