#pragma once

#include "util/result.hpp"

#include <chrono>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ktc::process {

struct Output {
  // The exit code, or 128 + the signal that killed it.
  int exit_status = 0;
  std::string standard_output;
  std::string standard_error;
};

// Runs argv[0] (searched in PATH) without a shell, in `cwd` when it is not
// empty, with stdin from /dev/null, in a session of its own (no
// controlling terminal, so nothing can prompt), and collects what it prints: at
// most `max_output` bytes of each stream (the rest is read and dropped, so the
// child never blocks). Fails with not_found when argv[0] cannot be run.
Result<Output> run(const std::vector<std::string>& argv,
                   const std::string& cwd,
                   size_t max_output);

// Starts argv in the background, detached for good (through setsid(1)
// --fork: a session of its own, reparented away from this process, so it
// never becomes this process's zombie), with stdin, stdout and stderr on
// /dev/null. Returns once it is started. Fails with not_found when setsid
// or argv[0] cannot be run.
Result<void> spawn_detached(const std::vector<std::string>& argv);

// A long-running command whose output is logged as it comes.
struct LoggedCommand {
  std::vector<std::string> argv;
  std::string cwd;
  // Set in the child's environment (replacing inherited values).
  std::vector<std::pair<std::string, std::string>> environment;
  // stdout and stderr, merged, are appended here when >= 0.
  int log_fd = -1;
  // Called with each complete output line (without its newline).
  std::function<void(std::string_view line)> on_line;
  // Polled about every 100 ms; true stops the command.
  std::function<bool()> cancelled;
  // Zero: none.
  std::chrono::milliseconds timeout{0};
  // How many of the last lines to keep.
  size_t tail_lines = 40;
};

struct LoggedOutcome {
  // The exit code, or 128 + the signal that killed it.
  int exit_status = 0;
  bool cancelled = false;
  bool timed_out = false;
  std::deque<std::string> tail;
};

// Runs the command in a process group of its own (so that a terminal's
// SIGINT reaches only the caller, which decides), stdin from /dev/null.
// Cancellation and the timeout send SIGTERM to the whole group, then
// SIGKILL after five seconds, and reap the command: make and every child
// it started stop. Fails with not_found when argv[0] cannot be run.
Result<LoggedOutcome> run_logged(const LoggedCommand& command);

} // namespace ktc::process
