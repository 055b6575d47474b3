#include "cache/root.hpp"

#include <cstdlib>
#include <string>

namespace ktc::cache {
namespace {

// getenv() that treats an empty value as unset, as every variable of the
// cascade does.
const char* non_empty_env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

} // namespace

Result<std::string> resolve_root(std::string_view suffix) {
  if (suffix.empty() || suffix.find('/') != std::string_view::npos ||
      suffix == "." || suffix == "..") {
    return make_error(Status::invalid,
                      "cache root suffix \"{}\" is not a single path component",
                      suffix);
  }
  // Verbatim, like ktstr's KTSTR_CACHE_DIR: the user named the directory.
  if (const char* dir = non_empty_env("KTCACHE_DIR")) {
    return std::string(dir);
  }
  if (const char* xdg = non_empty_env("XDG_CACHE_HOME")) {
    return fmt::format("{}/ktcache/{}", xdg, suffix);
  }

  const char* home = std::getenv("HOME");
  constexpr std::string_view k_hint =
      "set HOME to an absolute path, or set KTCACHE_DIR or XDG_CACHE_HOME";
  if (home == nullptr) {
    return make_error(Status::environment,
                      "HOME is unset; cannot resolve the cache directory "
                      "({})",
                      k_hint);
  }
  std::string_view home_view = home;
  if (home_view.empty()) {
    return make_error(Status::environment,
                      "HOME is set but empty (often `ENV HOME=` in a "
                      "Dockerfile or `export HOME=`); cannot resolve the "
                      "cache directory ({})",
                      k_hint);
  }
  if (home_view == "/") {
    return make_error(Status::environment,
                      "HOME is \"/\", so the cache would land in /.cache at "
                      "the filesystem root (typical of a container or a user "
                      "without a home); {}",
                      k_hint);
  }
  if (home_view.front() != '/') {
    return make_error(Status::environment,
                      "HOME is the relative path \"{}\", so the cache would "
                      "move with the working directory; {}",
                      home_view, k_hint);
  }
  return fmt::format("{}/.cache/ktcache/{}", home_view, suffix);
}

} // namespace ktc::cache
