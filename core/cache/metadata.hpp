#pragma once

#include "util/result.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ktc::cache {

// The schema this library writes. An entry without schema_version was
// written by ktstr and is valid; a newer one is listed but never rewritten.
inline constexpr int64_t k_schema_version = 1;

// The machine-readable kinds of a corrupt entry, as ktstr names them.
enum class CorruptKind {
  missing,
  unreadable,
  schema_drift,
  malformed,
  truncated,
  parse_error,
  image_missing,
  unknown,
};
// "missing", "unreadable", "schema_drift", ... (the enumerator's name).
std::string_view to_string(CorruptKind kind);

struct Corruption {
  CorruptKind kind = CorruptKind::unknown;
  // "metadata.json missing", "metadata.json schema drift: ...", ...
  std::string reason;
};

// One artifact's record under "artifacts".
struct ArtifactRecord {
  std::string file; // the file name in the entry
  uint64_t size = 0;
  std::string sha256;
  // Recorded for the vmlinux only; nullopt when absent or null.
  std::optional<std::string> build_id;
  std::optional<std::string> strip_policy;
  std::optional<uint64_t> original_size;
};

// An entry's metadata.json. The whole JSON object is kept, so fields this
// library does not know survive a rewrite; the accessors read the fields
// ktstr requires, which parse() has already type-checked.
//
// Note: a Metadata built from an unchecked object (the constructor) never
// throws from an accessor: a missing or mistyped field reads as empty,
// false or nullopt.
class Metadata {
public:
  Metadata() = default;
  explicit Metadata(boost::json::object object) : m_object(std::move(object)) {}
  Metadata(const Metadata&) = default;
  Metadata(Metadata&&) noexcept = default;
  Metadata& operator=(const Metadata&) = default;
  // Moves keep the object in its own memory resource (a parse arena);
  // boost::json's move assignment would copy it into the target's.
  Metadata& operator=(Metadata&& other) noexcept;

  // Parses and checks the text of a metadata.json. A failure is classified
  // as malformed, truncated, schema_drift, or unreadable (invalid UTF-8),
  // with a reason that starts with "metadata.json ...". `corruption` may be
  // null.
  static std::optional<Metadata> parse(std::string_view text,
                                       Corruption* corruption);
  // Runs parse()'s field checks on an object already in memory (for
  // example metadata a caller merged); failures are schema_drift.
  static std::optional<Metadata> from_object(boost::json::object object,
                                             Corruption* corruption);

  // The text this was parsed from (empty when built in memory).
  const std::string& text() const { return m_text; }

  const boost::json::object& object() const { return m_object; }
  boost::json::object& object() { return m_object; }

  std::string_view image_name() const;
  std::string_view arch() const;
  std::string_view built_at() const;
  std::string_view source_type() const;
  // The "source" object (type plus payload); nullptr when there is none.
  const boost::json::object* source() const;
  bool has_vmlinux() const;
  bool vmlinux_stripped() const;
  std::optional<std::string_view> version() const;
  std::optional<std::string_view> config_hash() const;
  // kconfig_hash, or ktstr's ktstr_kconfig_hash.
  std::optional<std::string_view> kconfig_hash() const;
  std::optional<uint64_t> source_vmlinux_size() const;
  std::optional<int64_t> source_vmlinux_mtime_secs() const;
  // A value beyond int64_t reads as INT64_MAX (newer than any we know).
  std::optional<int64_t> schema_version() const;
  // The recorded artifacts ("image", "vmlinux", "config" -> record); empty
  // when the entry records none (a ktstr entry).
  std::optional<ArtifactRecord> artifact(std::string_view role) const;
  bool has_artifacts() const;
  // True when a stored "config" artifact is recorded.
  bool has_config() const;

  // Pretty JSON, 2-space indent, ktstr's fields first in ktstr's order,
  // then the rest in the object's order, newline-terminated. Inside
  // "source", "type" comes first; other objects keep their own order.
  std::string to_pretty_json() const;
  // Compact JSON of the whole object.
  std::string to_compact_json() const;

private:
  boost::json::object m_object;
  std::string m_text;
};

// "YYYY-MM-DDTHH:MM:SSZ" for the current UTC time.
std::string utc_timestamp_now();
// "YYYY-MM-DDTHH:MM:SSZ" for seconds since the epoch, in UTC; empty when
// the time is outside what gmtime_r() can represent.
std::string utc_timestamp(int64_t seconds_since_epoch);

} // namespace ktc::cache
