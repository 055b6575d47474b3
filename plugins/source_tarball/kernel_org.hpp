// kernel.org: where release tarballs live, releases.json, and finding the
// latest release of a series, as the reference does (its section 7.2).
#ifndef KTC_SOURCE_TARBALL_KERNEL_ORG_HPP
#define KTC_SOURCE_TARBALL_KERNEL_ORG_HPP

#include "common.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace tarball::kernel_org {

// "6.12.3" (or "6.12", a .0 release), "6.15-rc3", or a series prefix "6.12"
// / "6": digits, dots, one "-rcN". `kind` says which form it has.
enum class VersionKind { none, release, series, rc };
VersionKind classify(std::string_view text);
bool is_rc(std::string_view version);

// KTCACHE_KERNEL_MIRROR, KTCACHE_RELEASES_URL and KTCACHE_RC_URL, or
// kernel.org's own.
std::string mirror();
std::string releases_url();
std::string rc_base();

// linux-<version>.tar.xz (linux-<version>.tar.gz for an RC).
std::string tarball_name(std::string_view version);
// <mirror>/v<major>.x/linux-<version>.tar.xz, or <rc base>/linux-<rc>.tar.gz.
std::string tarball_url(std::string_view version);
// <mirror>/v<major>.x/sha256sums.asc.
std::string sums_url(std::string_view version);

// The latest release of the series `prefix` ("6.12", "6"): from
// releases.json, else (an EOL series) by probing the mirror. Logs the
// reference's progress lines at info level. Throws Failure.
std::string latest_of_series(const Call& call, const std::string& prefix);

// The newest release in releases.json of `version`'s major.minor series
// when it is not `version` itself; nullopt when there is none or
// releases.json cannot be had (this is only a hint).
std::optional<std::string> newer_in_series(const Call& call,
                                           const std::string& version);

// Fetches releases.json now (never from the memo, which it refreshes) and
// reports each row to the host with add_release(), in the file's order
// (newest first). Throws Failure.
void report_releases(const Call& call);

// Forgets the memoized releases.json (at unload).
void forget();

} // namespace tarball::kernel_org

#endif
