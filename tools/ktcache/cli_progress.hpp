#pragma once

// Progress of long commands (source fetch, build) on stderr, and the
// SIGINT/SIGTERM handling that cancels them.

#include <ktcache/ktcache.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace ktc::cli {

// Draws ktc_progress_fn reports: a bar redrawn in place when stderr is a
// terminal, otherwise a plain line when the stage changes and at most
// every few seconds within one. Silent when `quiet`.
class ProgressView {
public:
  explicit ProgressView(bool quiet);
  ProgressView(const ProgressView&) = delete;
  ProgressView& operator=(const ProgressView&) = delete;
  ~ProgressView();

  // Hooks whose progress draws here and whose cancel callback reports a
  // caught SIGINT or SIGTERM (see CancelOnSignals).
  ktc_hooks hooks();

  // Ends an in-place bar so that the next line starts clean.
  void finish();

private:
  static void
  on_progress(void* self, const char* stage, uint64_t done, uint64_t total);
  void draw(const char* stage, uint64_t done, uint64_t total);

  bool m_quiet;
  bool m_terminal;
  bool m_bar_open = false;
  std::string m_stage;
  std::chrono::steady_clock::time_point m_last_draw{};
};

// While alive, SIGINT and SIGTERM set a flag instead of killing the
// process; the library polls it through the hooks and stops the work
// (killing a build's make), and the command then exits 130.
class CancelOnSignals {
public:
  CancelOnSignals();
  CancelOnSignals(const CancelOnSignals&) = delete;
  CancelOnSignals& operator=(const CancelOnSignals&) = delete;
  ~CancelOnSignals();

  static int cancelled(void* unused);
};

} // namespace ktc::cli
