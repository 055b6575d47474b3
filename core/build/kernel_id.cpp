#include "build/kernel_id.hpp"

#include "cache/key.hpp"
#include "plugin/host.hpp"

#include <algorithm>
#include <tuple>

namespace ktc::build {
namespace {

constexpr std::string_view k_version_shape = "MAJOR.MINOR[.PATCH][-rcN]";
constexpr std::string_view k_range_shape = "START..END, such as 6.12..6.14";
constexpr size_t k_number_digits_max = 9;

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

std::optional<unsigned long> number(std::string_view text) {
  if (text.empty() || text.size() > k_number_digits_max ||
      !std::all_of(text.begin(), text.end(), is_digit)) {
    return std::nullopt;
  }
  unsigned long value = 0;
  for (char c : text) {
    value = value * 10 + static_cast<unsigned long>(c - '0');
  }
  return value;
}

std::string_view trimmed(std::string_view text) {
  constexpr std::string_view k_blanks = " \t\r\n\v\f";
  size_t first = text.find_first_not_of(k_blanks);
  if (first == std::string_view::npos) {
    return {};
  }
  size_t last = text.find_last_not_of(k_blanks);
  return text.substr(first, last - first + 1);
}

// Text made only of what versions are made of: digits and dots, perhaps
// with an "-rc..." tail. Such text is never taken for a cache key, so a
// typo ("6.12.3.1") is reported as a bad version, not as a missing key.
bool version_like(std::string_view text) {
  if (text.empty() || !is_digit(text.front())) {
    return false;
  }
  size_t rc = text.find("-rc");
  std::string_view head = text.substr(0, rc);
  if (!std::all_of(head.begin(), head.end(),
                   [](char c) { return is_digit(c) || c == '.'; })) {
    return false;
  }
  if (rc == std::string_view::npos) {
    return true;
  }
  std::string_view tail = text.substr(rc + 3);
  return std::all_of(tail.begin(), tail.end(), is_digit);
}

// "<scheme>:" where the scheme is a plugin name; nullopt otherwise.
std::optional<std::string_view> scheme_of(std::string_view text) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view scheme = text.substr(0, colon);
  if (!plugin::valid_name(scheme)) {
    return std::nullopt;
  }
  return scheme;
}

Result<KernelId> git_id(KernelId id,
                        std::string_view url,
                        std::string_view ref,
                        std::string_view shape) {
  if (url.empty()) {
    return make_error(Status::invalid,
                      "git source '{}': the repository URL is empty "
                      "(expected {})",
                      id.text, shape);
  }
  if (ref.empty()) {
    return make_error(Status::invalid,
                      "git source '{}': the ref is empty (expected {})",
                      id.text, shape);
  }
  id.kind = KernelIdKind::git;
  id.scheme = "git";
  id.git_url = url;
  id.git_ref = ref;
  id.spec = "git:" + id.git_url + "@" + id.git_ref;
  return id;
}

// "git+URL#REF", split at the last '#'.
Result<KernelId> parse_git_plus(KernelId id) {
  std::string_view rest = std::string_view(id.text).substr(4);
  size_t hash = rest.rfind('#');
  if (hash == std::string_view::npos) {
    return make_error(Status::invalid,
                      "git source '{}': no '#REF' after the URL (expected "
                      "git+URL#REF)",
                      id.text);
  }
  return git_id(std::move(id), rest.substr(0, hash), rest.substr(hash + 1),
                "git+URL#REF");
}

// "git:URL@REF", split at the last '@', as the git plugin does.
Result<KernelId> parse_git_scheme(KernelId id) {
  std::string_view rest = std::string_view(id.text).substr(4);
  size_t at = rest.rfind('@');
  if (at == std::string_view::npos) {
    return make_error(Status::invalid,
                      "git source '{}': no '@REF' after the URL (expected "
                      "git:URL@REF)",
                      id.text);
  }
  return git_id(std::move(id), rest.substr(0, at), rest.substr(at + 1),
                "git:URL@REF");
}

Result<KernelVersion> range_end(std::string_view text,
                                std::string_view part,
                                std::string_view which) {
  if (part.empty()) {
    return make_error(Status::invalid,
                      "range '{}': the {} is empty (expected {})", text, which,
                      k_range_shape);
  }
  auto version = parse_kernel_version(part);
  if (!version) {
    return make_error(Status::invalid,
                      "range '{}': the {} '{}' is not a kernel version "
                      "(expected {})",
                      text, which, part, k_version_shape);
  }
  return *version;
}

Result<KernelId> parse_range(KernelId id, size_t dots) {
  std::string_view text = id.text;
  std::string_view start = text.substr(0, dots);
  std::string_view end = text.substr(dots + 2);
  KTC_TRY_ASSIGN(KernelVersion first, range_end(text, start, "start"));
  KTC_TRY_ASSIGN(KernelVersion last, range_end(text, end, "end"));
  if (first > last) {
    return make_error(Status::invalid,
                      "range '{}': the start {} is after the end {} (write "
                      "{}..{})",
                      text, start, end, end, start);
  }
  id.kind = KernelIdKind::range;
  id.range_start = start;
  id.range_end = end;
  return id;
}

} // namespace

std::string_view to_string(KernelIdKind kind) {
  switch (kind) {
  case KernelIdKind::spec:
    return "spec";
  case KernelIdKind::git:
    return "git";
  case KernelIdKind::range:
    return "range";
  case KernelIdKind::path:
    return "path";
  case KernelIdKind::version:
    return "version";
  case KernelIdKind::series:
    return "series";
  case KernelIdKind::rc:
    return "rc";
  case KernelIdKind::key:
    return "key";
  }
  return "key";
}

std::strong_ordering
KernelVersion::operator<=>(const KernelVersion& other) const {
  // A release sorts after all of its RCs: no rc counts as infinity.
  auto rank = [](const KernelVersion& version) {
    return std::make_tuple(version.major, version.minor, version.patch,
                           version.rc.has_value() ? 0 : 1,
                           version.rc.value_or(0));
  };
  return rank(*this) <=> rank(other);
}

std::optional<KernelVersion> parse_kernel_version(std::string_view text) {
  KernelVersion version;
  size_t rc = text.find("-rc");
  if (rc != std::string_view::npos) {
    version.rc = number(text.substr(rc + 3));
    if (!version.rc) {
      return std::nullopt;
    }
    text = text.substr(0, rc);
  }
  size_t first_dot = text.find('.');
  if (first_dot == std::string_view::npos) {
    return std::nullopt;
  }
  auto major = number(text.substr(0, first_dot));
  std::string_view rest = text.substr(first_dot + 1);
  size_t second_dot = rest.find('.');
  auto minor = number(rest.substr(0, second_dot));
  if (!major || !minor) {
    return std::nullopt;
  }
  version.major = *major;
  version.minor = *minor;
  if (second_dot != std::string_view::npos) {
    auto patch = number(rest.substr(second_dot + 1));
    if (!patch) {
      return std::nullopt;
    }
    version.patch = *patch;
    version.has_patch = true;
  }
  return version;
}

Result<KernelId> parse_kernel_id(std::string_view input) {
  KernelId id;
  std::string_view text = trimmed(input);
  id.text = text;
  if (text.empty()) {
    return make_error(Status::invalid,
                      "an empty kernel identifier (expected a version, a "
                      "range, git+URL#REF, a path, a cache key or "
                      "<scheme>:...)");
  }
  if (auto scheme = scheme_of(text)) {
    if (*scheme == "git") {
      return parse_git_scheme(std::move(id));
    }
    id.kind = KernelIdKind::spec;
    id.scheme = *scheme;
    id.spec = id.text;
    return id;
  }
  if (text.starts_with("git+")) {
    return parse_git_plus(std::move(id));
  }
  size_t dots = text.find("..");
  if (dots != std::string_view::npos &&
      text.find('/') == std::string_view::npos &&
      (parse_kernel_version(text.substr(0, dots)) ||
       parse_kernel_version(text.substr(dots + 2)))) {
    // At least one end is a version: a range, however malformed the other.
    return parse_range(std::move(id), dots);
  }
  if (text.find('/') != std::string_view::npos || text.front() == '.' ||
      text.front() == '~') {
    id.kind = KernelIdKind::path;
    id.path = id.text;
    return id;
  }
  if (auto version = parse_kernel_version(text)) {
    id.kind = version->rc          ? KernelIdKind::rc
              : version->has_patch ? KernelIdKind::version
                                   : KernelIdKind::series;
    id.version = id.text;
    id.spec = "tarball:" + id.version;
    return id;
  }
  if (version_like(text)) {
    return make_error(Status::invalid,
                      "'{}' is not a kernel version (expected "
                      "{}; digits only)",
                      text, k_version_shape);
  }
  if (auto valid = cache::validate_key(text); !valid) {
    return make_error(Status::invalid,
                      "'{}' is not a kernel version, range, git source, path, "
                      "plugin spec or valid cache key ({})",
                      text, valid.error().message);
  }
  id.kind = KernelIdKind::key;
  id.key = id.text;
  return id;
}

} // namespace ktc::build
