#pragma once

// The tools a kernel build uses, identified by what they say they are, so
// that a new compiler makes a new cache key.

#include "util/result.hpp"

#include <optional>
#include <string>

namespace ktc::build {

struct ToolchainRequest {
  std::optional<std::string> cross_compile;
  std::optional<std::string> cc;
  std::optional<std::string> llvm;
};

struct Toolchain {
  std::string compiler_program;
  // The first line of each tool's --version; "none" for a missing pahole.
  std::string compiler;
  std::string linker;
  std::string pahole;
  std::string make;
};

// Runs each tool's --version once per process and request, and once per
// tool binary when `memo_file` is given: what each binary (by path, inode,
// size and mtime) answered is kept there, so a cache hit runs none of
// them. A missing compiler or make is an error naming it
// (Status::not_found); a missing linker or pahole is recorded as "none"
// (the build itself will say).
Result<Toolchain> probe_toolchain(const ToolchainRequest& request,
                                  const std::string& memo_file = {});

} // namespace ktc::build
