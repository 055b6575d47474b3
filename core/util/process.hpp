#pragma once

#include "util/result.hpp"

#include <string>
#include <vector>

namespace ktc::process {

struct Output {
  // The exit code, or 128 + the signal that killed it.
  int exit_status = 0;
  std::string standard_output;
  std::string standard_error;
};

// Runs argv[0] (searched in PATH) without a shell, in `cwd` when it is not
// empty, with stdin from /dev/null, and collects what it prints: at most
// `max_output` bytes of each stream (the rest is read and dropped, so the
// child never blocks). Fails with not_found when argv[0] cannot be run.
Result<Output> run(const std::vector<std::string>& argv,
                   const std::string& cwd,
                   size_t max_output);

} // namespace ktc::process
