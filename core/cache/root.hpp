#pragma once

#include "util/result.hpp"

#include <string>
#include <string_view>

namespace ktc::cache {

// The cache root with `suffix` as the last component ("kernels" for the
// kernel cache): KTCACHE_DIR verbatim (whatever the suffix), else
// $XDG_CACHE_HOME/ktcache/<suffix>, else $HOME/.cache/ktcache/<suffix>
// after HOME validation. Reads the environment on every call and touches
// no file. Errors have Status::environment (or invalid for a bad suffix).
Result<std::string> resolve_root(std::string_view suffix = "kernels");

// Whether `path` lies inside `root`, as ktstr's path_inside_cache_root
// decides: the root and the parent directory of `path` (not `path`
// itself, which need not exist) are made canonical with realpath(3), and
// the parent must be the root or below it by whole components. False when
// either cannot be resolved, or `path` is a bare file name or "/".
bool path_inside_root(const std::string& root, std::string_view path);

} // namespace ktc::cache
