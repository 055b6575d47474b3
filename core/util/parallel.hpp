#pragma once

#include <cstddef>
#include <thread>

namespace ktc {

// Calls `work(begin, end)` over [0, count): on two threads (the caller's
// and one more) when there are at least `threshold` items, else on the
// caller's alone. For loops whose items are independent and costly enough
// (syscalls, parsing, freeing) that a second core pays for the thread.
template <typename Work>
void split_in_two(size_t count, size_t threshold, Work&& work) {
  if (count < threshold) {
    work(size_t{0}, count);
    return;
  }
  size_t half = count / 2;
  std::thread helper([&work, half, count] { work(half, count); });
  work(size_t{0}, half);
  helper.join();
}

} // namespace ktc
