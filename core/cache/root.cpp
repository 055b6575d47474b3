#include "cache/root.hpp"

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

namespace ktc::cache {
namespace {

// getenv() that treats an empty value as unset, as every variable of the
// cascade does.
const char* non_empty_env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

// realpath(3) of `path`, or nullopt when it cannot be resolved.
std::optional<std::string> canonical(const std::string& path) {
  std::unique_ptr<char, decltype(&std::free)> resolved(
      ::realpath(path.c_str(), nullptr), &std::free);
  if (resolved == nullptr) {
    return std::nullopt;
  }
  return std::string(resolved.get());
}

// The parent directory of `path` as Rust's Path::parent() has it: trailing
// slashes and "." components do not count; nullopt for "/" and for a bare
// file name (whose parent is empty).
std::optional<std::string> parent_of(std::string_view path) {
  for (;;) {
    if (path.size() > 1 && path.ends_with('/')) {
      path.remove_suffix(1);
    } else if (path.size() > 2 && path.ends_with("/.")) {
      path.remove_suffix(2);
    } else {
      break;
    }
  }
  size_t slash = path.rfind('/');
  if (path == "/" || path == "." || slash == std::string_view::npos) {
    return std::nullopt;
  }
  if (slash == 0) {
    return std::string("/");
  }
  return std::string(path.substr(0, slash));
}

} // namespace

bool path_inside_root(const std::string& root, std::string_view path) {
  if (root.empty()) {
    return false;
  }
  std::optional<std::string> parent = parent_of(path);
  if (!parent) {
    return false;
  }
  std::optional<std::string> canonical_root = canonical(root);
  std::optional<std::string> canonical_parent = canonical(*parent);
  if (!canonical_root || !canonical_parent) {
    return false;
  }
  std::string_view inner = *canonical_parent;
  if (*canonical_root == "/") {
    return true;
  }
  return inner == *canonical_root || (inner.starts_with(*canonical_root) &&
                                      inner[canonical_root->size()] == '/');
}

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
