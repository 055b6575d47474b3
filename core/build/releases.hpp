#pragma once

// kernel.org's list of releases (releases.json) as ktcache keeps it: a copy
// in <root>/.releases.json with a time to live, fetched through the tarball
// source plugin's `releases` operation. What ktc_releases(),
// ktc_range_expand(), `ktcache list --eol` and the build of a series read.

#include "build/kernel_id.hpp"
#include "cache/cache.hpp"
#include "plugin/host.hpp"
#include "util/result.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ktc::build {

struct Release {
  std::string moniker;
  std::string version;
};

// The copy's file name inside the cache root.
inline constexpr std::string_view k_releases_file = ".releases.json";

// The default of KTCACHE_RELEASES_TTL, in seconds.
inline constexpr int64_t k_releases_ttl_default = 86400;

struct ReleaseList {
  std::string url;
  // Seconds since the epoch.
  int64_t fetched_at = 0;
  int64_t age_seconds = 0;
  int64_t ttl_seconds = 0;
  // Younger than its time to live and fetched from today's URL.
  bool fresh = false;
  // "disk" or "network".
  std::string from;
  // Newest first, as kernel.org lists them.
  std::vector<Release> releases;

  // ktc_releases()'s object: {"url", "fetched_at", "age_seconds",
  // "ttl_seconds", "fresh", "from", "releases", "active_series"}.
  boost::json::object to_json() const;
};

struct ReleasesOptions {
  // Fetch whatever the age of the copy (KTC_RELEASES_REFRESH).
  bool refresh = false;
  // Never fetch (KTC_RELEASES_NO_FETCH).
  bool no_fetch = false;
};

// The URL the tarball plugin fetches: KTCACHE_RELEASES_URL when set and
// not empty, else kernel.org's.
std::string releases_url();

// KTCACHE_RELEASES_TTL: a decimal number of seconds (0: always fetch).
// Unset or empty is the default; any other value is the default too, with
// a warning naming it.
int64_t releases_ttl();

// The list as ktc_releases() answers it: the copy on disk while fresh,
// else fetched (and the copy written, unless the cache is read-only); a
// failed fetch falls back to an older copy with a warning. Offline
// (registry.offline()) or with no_fetch, only the copy is read.
// Status::not_found: no copy and no_fetch; Status::network: no copy and
// offline, or the fetch failed with no copy; Status::plugin: no tarball
// plugin, or one that cannot list releases.
Result<ReleaseList> load_releases(const cache::Cache& cache,
                                  plugin::Registry& registry,
                                  const ReleasesOptions& options);

// "MAJOR.MINOR" of every row but linux-next ones, the minor cut to its
// leading digits ("6.15-rc3" -> "6.15"), each once, in the list's order.
std::vector<std::string> active_series(const std::vector<Release>& releases);

// The stable and longterm versions from `start` to `end` inclusive, oldest
// first, each once. Status::not_found when none is.
Result<std::vector<std::string>>
releases_in_range(const std::vector<Release>& releases, const KernelId& range);

// The newest release (not an RC, with a patch level) of the series
// "MAJOR.MINOR" in the list (linux-next rows ignored); nullopt when the
// series is not listed.
std::optional<std::string>
newest_of_series(const std::vector<Release>& releases, std::string_view series);

} // namespace ktc::build
