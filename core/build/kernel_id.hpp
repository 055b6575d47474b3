#pragma once

// Kernel identifiers: every way a user or a harness names a kernel, parsed
// in one place with ktstr's grammar and order (its KernelId::parse), after
// ktcache's own "<scheme>:<rest>" plugin specs.

#include "util/result.hpp"

#include <compare>
#include <optional>
#include <string>
#include <string_view>

namespace ktc::build {

// The values are ktcache.h's KTC_KERNEL_ID_*.
enum class KernelIdKind {
  spec = 1,
  git = 2,
  range = 3,
  path = 4,
  version = 5,
  series = 6,
  rc = 7,
  key = 8,
};

// "spec", "git", "range", "path", "version", "series", "rc", "key".
std::string_view to_string(KernelIdKind kind);

// MAJOR.MINOR[.PATCH][-rcN] as numbers, ordered as ktstr orders range
// ends: a missing patch is 0 and an RC comes before its release.
struct KernelVersion {
  unsigned long major = 0;
  unsigned long minor = 0;
  unsigned long patch = 0;
  bool has_patch = false;
  std::optional<unsigned long> rc;

  std::strong_ordering operator<=>(const KernelVersion& other) const;
  bool operator==(const KernelVersion& other) const {
    return (*this <=> other) == std::strong_ordering::equal;
  }
};

// Digits only, no "v"; nullopt for anything else.
std::optional<KernelVersion> parse_kernel_version(std::string_view text);

struct KernelId {
  KernelIdKind kind = KernelIdKind::key;
  std::string text;
  // What the build pipeline is given ("tarball:6.14.2", "git:URL@REF",
  // the spec itself); empty for a range, a path and a key.
  std::string spec;
  std::string version;
  std::string range_start;
  std::string range_end;
  std::string git_url;
  std::string git_ref;
  std::string path;
  std::string scheme;
  std::string key;
};

// Parses `text` (blanks around it are dropped). Status::invalid, with the
// text and the rule in the message, for a malformed identifier.
Result<KernelId> parse_kernel_id(std::string_view text);

} // namespace ktc::build
