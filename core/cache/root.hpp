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

} // namespace ktc::cache
