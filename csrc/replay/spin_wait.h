#pragma once

#include <thread>

namespace pydqn {

// Backoff for the short waits of the ring: a writer waiting for the previous occupant of its slot
// to commit, or a reader retrying a slot that is mid-write. Spins briefly, then yields the core.
class SpinWait {
 public:
  void pause() {
    if (++spins_ < 64) return;
    std::this_thread::yield();
  }

 private:
  int spins_ = 0;
};

}  // namespace pydqn
