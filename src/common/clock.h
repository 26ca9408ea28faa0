// The clock seam: every module asks a Clock for the time, so tests use FakeClock and never
// sleep to make time pass (token expiry, key rotation, conditions on request.time).
//
// Thread-safety: Now() may be called from any thread; FakeClock's setters too.
#pragma once

#include <atomic>
#include <chrono>

namespace moat {

using TimePoint = std::chrono::system_clock::time_point;
using Seconds = std::chrono::seconds;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
  // Seconds since the Unix epoch, as JWT claims carry them.
  int64_t NowUnix() const {
    return std::chrono::duration_cast<Seconds>(Now().time_since_epoch()).count();
  }
};

// The real wall clock. Lives for the whole program.
Clock& SystemClock();

// A clock that moves only when told to.
class FakeClock : public Clock {
 public:
  explicit FakeClock(TimePoint start = TimePoint(Seconds(1'700'000'000))) : now_(Ticks(start)) {}
  TimePoint Now() const override { return TimePoint(std::chrono::nanoseconds(now_.load())); }
  void Set(TimePoint t) { now_.store(Ticks(t)); }
  void Advance(std::chrono::nanoseconds d) { now_.fetch_add(d.count()); }

 private:
  static int64_t Ticks(TimePoint t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }
  std::atomic<int64_t> now_;
};

}  // namespace moat
