#include "cache/metadata.hpp"

#include "cache/key.hpp"
#include "util/utf8.hpp"

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/stream_parser.hpp>
#include <boost/json/value.hpp>

#include <time.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <memory>
#include <span>

namespace ktc::cache {
namespace {

namespace json = boost::json;

// The order ktstr serializes its fields in (its struct's declaration order).
constexpr std::array<std::string_view, 11> k_ktstr_field_order = {
    "version",
    "source",
    "arch",
    "image_name",
    "config_hash",
    "built_at",
    "ktstr_kconfig_hash",
    "has_vmlinux",
    "vmlinux_stripped",
    "source_vmlinux_size",
    "source_vmlinux_mtime_secs",
};

constexpr std::array<std::string_view, 1> k_source_field_order = {"type"};

struct Utf8Problem {
  size_t offset = 0;
  // The text ends inside a sequence that was valid so far: a cut file.
  bool cut_at_end = false;
};

std::optional<Utf8Problem> find_invalid_utf8(std::string_view text) {
  size_t at = 0;
  while (at < text.size()) {
    utf8::Sequence sequence = utf8::sequence_at(text.substr(at));
    switch (sequence.kind) {
    case utf8::Sequence::Kind::valid:
      at += sequence.length;
      break;
    case utf8::Sequence::Kind::cut:
      return Utf8Problem{at, true};
    case utf8::Sequence::Kind::invalid:
      return Utf8Problem{at, false};
    }
  }
  return std::nullopt;
}

// "line 3, column 7" for a byte offset (columns count bytes, from 1).
std::string describe_position(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  std::string_view before = text.substr(0, offset);
  size_t line =
      1 + static_cast<size_t>(std::count(before.begin(), before.end(), '\n'));
  size_t line_start = before.rfind('\n');
  size_t column =
      line_start == std::string_view::npos ? offset + 1 : offset - line_start;
  return fmt::format("line {}, column {}", line, column);
}

enum class SyntaxVerdict { complete, malformed, truncated };

struct SyntaxResult {
  SyntaxVerdict verdict = SyntaxVerdict::complete;
  json::value value;
  std::string detail;
};

// The input is fed as if more could follow, so every error reported while
// writing is a real syntax error inside the text; an error from finish()
// means the text was a valid prefix that stopped early. Classifying by
// error code instead would be wrong: Boost reports a cut after "1." or
// "1e+" as error::syntax, not error::incomplete.
SyntaxResult parse_syntax(std::string_view text,
                          json::storage_ptr storage = {}) {
  SyntaxResult result;
  // Scratch space for the parser's own stack; values go to `storage`.
  unsigned char scratch[4096];
  json::stream_parser parser({}, {}, scratch, sizeof scratch);
  parser.reset(std::move(storage));
  boost::system::error_code error;
  size_t used = parser.write_some(text.data(), text.size(), error);
  if (error) {
    result.verdict = SyntaxVerdict::malformed;
    result.detail =
        fmt::format("{} at {}", error.message(), describe_position(text, used));
    return result;
  }
  if (used < text.size()) {
    result.verdict = SyntaxVerdict::malformed;
    result.detail = fmt::format("unexpected data after the JSON value at {}",
                                describe_position(text, used));
    return result;
  }
  parser.finish(error);
  if (error) {
    result.verdict = SyntaxVerdict::truncated;
    result.detail = text.empty()
                        ? std::string("the file is empty")
                        : fmt::format("unexpected end of file at {}",
                                      describe_position(text, text.size()));
    return result;
  }
  // Constructed, not assigned: assigning a value into one that lives in
  // another memory resource copies it element by element.
  std::destroy_at(&result.value);
  std::construct_at(&result.value, parser.release());
  return result;
}

enum class Expect {
  string,
  string_or_null,
  boolean,
  object,
  object_or_null,
  integer,
  integer_or_null,
  unsigned_integer,
  unsigned_or_null,
};

std::string_view describe(Expect expect) {
  switch (expect) {
  case Expect::string:
    return "a string";
  case Expect::string_or_null:
    return "a string or null";
  case Expect::boolean:
    return "a boolean";
  case Expect::object:
    return "an object";
  case Expect::object_or_null:
    return "an object or null";
  case Expect::integer:
    return "an integer";
  case Expect::integer_or_null:
    return "an integer or null";
  case Expect::unsigned_integer:
    return "an unsigned integer";
  case Expect::unsigned_or_null:
    return "an unsigned integer or null";
  }
  return "a value";
}

std::string_view describe_kind(const json::value& value) {
  switch (value.kind()) {
  case json::kind::null:
    return "null";
  case json::kind::bool_:
    return "a boolean";
  case json::kind::int64:
  case json::kind::uint64:
  case json::kind::double_:
    return "a number";
  case json::kind::string:
    return "a string";
  case json::kind::array:
    return "an array";
  case json::kind::object:
    return "an object";
  }
  return "a value";
}

// Boost stores a non-negative integer as int64 unless it needs uint64.
bool is_unsigned(const json::value& value) {
  return value.is_uint64() || (value.is_int64() && value.get_int64() >= 0);
}

// Boost only picks uint64 above INT64_MAX, so int64 is every signed one.
bool is_signed(const json::value& value) {
  return value.is_int64();
}

bool matches(const json::value& value, Expect expect) {
  switch (expect) {
  case Expect::string:
    return value.is_string();
  case Expect::string_or_null:
    return value.is_string() || value.is_null();
  case Expect::boolean:
    return value.is_bool();
  case Expect::object:
    return value.is_object();
  case Expect::object_or_null:
    return value.is_object() || value.is_null();
  case Expect::integer:
    return value.is_int64() || value.is_uint64();
  case Expect::integer_or_null:
    return is_signed(value) || value.is_null();
  case Expect::unsigned_integer:
    return is_unsigned(value);
  case Expect::unsigned_or_null:
    return is_unsigned(value) || value.is_null();
  }
  return false;
}

bool is_lower_hex_sha256(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// An artifact's file is opened as <entry>/<file>, so it must not leave it.
bool is_plain_file_name(std::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

// The first problem found, as the text after "schema drift: ".
using Problem = std::optional<std::string>;

std::string join_path(std::string_view prefix, std::string_view key) {
  if (prefix.empty()) {
    return std::string(key);
  }
  return fmt::format("{}.{}", prefix, key);
}

Problem check_field(const json::object& object,
                    std::string_view prefix,
                    std::string_view key,
                    Expect expect,
                    bool required) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr) {
    if (required) {
      return fmt::format("missing field `{}`", join_path(prefix, key));
    }
    return std::nullopt;
  }
  if (!matches(*value, expect)) {
    return fmt::format("invalid type for `{}`: expected {}",
                       join_path(prefix, key), describe(expect));
  }
  return std::nullopt;
}

// ktstr's own source types have a fixed payload; any other type belongs to
// a plugin (or a newer tool) and its payload is kept as it is.
Problem check_source(const json::object& source) {
  if (Problem problem =
          check_field(source, "source", "type", Expect::string, true)) {
    return problem;
  }
  std::string_view type = source.at("type").get_string();
  std::span<const std::string_view> payload;
  static constexpr std::array<std::string_view, 3> k_git_payload = {
      "git_hash", "ref", "git_commit"};
  static constexpr std::array<std::string_view, 2> k_local_payload = {
      "source_tree_path", "git_hash"};
  if (type == "git") {
    payload = k_git_payload;
  } else if (type == "local") {
    payload = k_local_payload;
  }
  for (std::string_view key : payload) {
    if (Problem problem =
            check_field(source, "source", key, Expect::string_or_null, false)) {
      return problem;
    }
  }
  return std::nullopt;
}

Problem check_artifact(const json::object& record, std::string_view role) {
  std::string prefix = join_path("artifacts", role);
  if (Problem problem =
          check_field(record, prefix, "file", Expect::string, true)) {
    return problem;
  }
  if (!is_plain_file_name(record.at("file").get_string())) {
    return fmt::format("invalid value for `{}.file`: expected a file name "
                       "inside the entry",
                       prefix);
  }
  if (Problem problem =
          check_field(record, prefix, "size", Expect::unsigned_integer, true)) {
    return problem;
  }
  if (Problem problem =
          check_field(record, prefix, "sha256", Expect::string, true)) {
    return problem;
  }
  if (!is_lower_hex_sha256(record.at("sha256").get_string())) {
    return fmt::format("invalid value for `{}.sha256`: expected 64 "
                       "lower-case hex digits",
                       prefix);
  }
  if (role != "vmlinux") {
    return std::nullopt;
  }
  for (std::string_view key : {"build_id", "strip_policy"}) {
    if (Problem problem =
            check_field(record, prefix, key, Expect::string_or_null, false)) {
      return problem;
    }
  }
  return check_field(record, prefix, "original_size", Expect::unsigned_or_null,
                     false);
}

Problem check_artifacts(const json::value& artifacts) {
  if (artifacts.is_null()) {
    return std::nullopt;
  }
  for (const json::key_value_pair& member : artifacts.get_object()) {
    std::string_view role = member.key();
    if (!member.value().is_object()) {
      return fmt::format("invalid type for `{}`: expected an object",
                         join_path("artifacts", role));
    }
    if (Problem problem = check_artifact(member.value().get_object(), role)) {
      return problem;
    }
  }
  return std::nullopt;
}

struct FieldRule {
  std::string_view key;
  Expect expect;
};

// Required fields in ktstr's declaration order: the first problem wins.
Problem check_object(const json::object& object) {
  if (Problem problem =
          check_field(object, "", "source", Expect::object, true)) {
    return problem;
  }
  if (Problem problem = check_source(object.at("source").get_object())) {
    return problem;
  }
  for (std::string_view key : {"arch", "image_name"}) {
    if (Problem problem = check_field(object, "", key, Expect::string, true)) {
      return problem;
    }
  }
  // Checked on read as well as on store: readers join image_name to the
  // entry's path.
  if (Result<void> valid =
          validate_image_name(object.at("image_name").get_string());
      !valid) {
    return fmt::format("invalid value for `image_name`: {}",
                       valid.error().message);
  }
  static constexpr std::array<FieldRule, 3> k_rest_required = {{
      {"built_at", Expect::string},
      {"has_vmlinux", Expect::boolean},
      {"vmlinux_stripped", Expect::boolean},
  }};
  for (const FieldRule& rule : k_rest_required) {
    if (Problem problem =
            check_field(object, "", rule.key, rule.expect, true)) {
      return problem;
    }
  }
  static constexpr std::array<FieldRule, 9> k_optional = {{
      {"version", Expect::string_or_null},
      {"config_hash", Expect::string_or_null},
      {"ktstr_kconfig_hash", Expect::string_or_null},
      {"kconfig_hash", Expect::string_or_null},
      {"source_vmlinux_size", Expect::unsigned_or_null},
      {"source_vmlinux_mtime_secs", Expect::integer_or_null},
      {"schema_version", Expect::integer},
      {"artifacts", Expect::object_or_null},
      {"inputs", Expect::object_or_null},
  }};
  for (const FieldRule& rule : k_optional) {
    if (Problem problem =
            check_field(object, "", rule.key, rule.expect, false)) {
      return problem;
    }
  }
  if (const json::value* artifacts = object.if_contains("artifacts")) {
    return check_artifacts(*artifacts);
  }
  return std::nullopt;
}

// Reasons are one line even when a field name or value holds control
// characters.
std::string one_line(std::string_view text) {
  std::string line;
  line.reserve(text.size());
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      line += fmt::format("\\x{:02x}", byte);
    } else {
      line += c;
    }
  }
  return line;
}

void set_corruption(Corruption* corruption,
                    CorruptKind kind,
                    std::string_view reason) {
  if (corruption != nullptr) {
    corruption->kind = kind;
    corruption->reason = one_line(reason);
  }
}

const json::value* find(const json::object& object, std::string_view key) {
  return object.if_contains(key);
}

std::string_view string_or_empty(const json::object& object,
                                 std::string_view key) {
  const json::value* value = find(object, key);
  if (value == nullptr || !value->is_string()) {
    return {};
  }
  return value->get_string();
}

std::optional<std::string_view> optional_string(const json::object& object,
                                                std::string_view key) {
  const json::value* value = find(object, key);
  if (value == nullptr || !value->is_string()) {
    return std::nullopt;
  }
  return std::string_view(value->get_string());
}

bool bool_or_false(const json::object& object, std::string_view key) {
  const json::value* value = find(object, key);
  return value != nullptr && value->is_bool() && value->get_bool();
}

std::optional<uint64_t> optional_unsigned(const json::object& object,
                                          std::string_view key) {
  const json::value* value = find(object, key);
  if (value == nullptr || !is_unsigned(*value)) {
    return std::nullopt;
  }
  if (value->is_uint64()) {
    return value->get_uint64();
  }
  return static_cast<uint64_t>(value->get_int64());
}

// Which keys an object's pretty form puts first.
enum class ObjectRole { top_level, source, other };

std::span<const std::string_view> leading_keys(ObjectRole role) {
  switch (role) {
  case ObjectRole::top_level:
    return k_ktstr_field_order;
  case ObjectRole::source:
    return k_source_field_order;
  case ObjectRole::other:
    break;
  }
  return {};
}

void append_value(std::string& out,
                  const json::value& value,
                  size_t depth,
                  ObjectRole role);

void append_indent(std::string& out, size_t depth) {
  out.append(depth * 2, ' ');
}

void append_member(std::string& out,
                   const json::key_value_pair& member,
                   size_t depth,
                   ObjectRole parent_role,
                   bool& first) {
  out += first ? "\n" : ",\n";
  first = false;
  append_indent(out, depth);
  out += json::serialize(member.key());
  out += ": ";
  bool is_source =
      parent_role == ObjectRole::top_level && member.key() == "source";
  append_value(out, member.value(), depth,
               is_source ? ObjectRole::source : ObjectRole::other);
}

void append_object(std::string& out,
                   const json::object& object,
                   size_t depth,
                   ObjectRole role) {
  if (object.empty()) {
    out += "{}";
    return;
  }
  std::span<const std::string_view> leading = leading_keys(role);
  out += '{';
  bool first = true;
  for (std::string_view key : leading) {
    if (auto member = object.find(key); member != object.end()) {
      append_member(out, *member, depth + 1, role, first);
    }
  }
  for (const json::key_value_pair& member : object) {
    if (std::find(leading.begin(), leading.end(),
                  std::string_view(member.key())) == leading.end()) {
      append_member(out, member, depth + 1, role, first);
    }
  }
  out += '\n';
  append_indent(out, depth);
  out += '}';
}

void append_array(std::string& out, const json::array& array, size_t depth) {
  if (array.empty()) {
    out += "[]";
    return;
  }
  out += '[';
  bool first = true;
  for (const json::value& element : array) {
    out += first ? "\n" : ",\n";
    first = false;
    append_indent(out, depth + 1);
    append_value(out, element, depth + 1, ObjectRole::other);
  }
  out += '\n';
  append_indent(out, depth);
  out += ']';
}

void append_value(std::string& out,
                  const json::value& value,
                  size_t depth,
                  ObjectRole role) {
  if (value.is_object()) {
    append_object(out, value.get_object(), depth, role);
  } else if (value.is_array()) {
    append_array(out, value.get_array(), depth);
  } else {
    // Scalars, strings included, so escaping is Boost's.
    out += json::serialize(value);
  }
}

} // namespace

std::string_view to_string(CorruptKind kind) {
  switch (kind) {
  case CorruptKind::missing:
    return "missing";
  case CorruptKind::unreadable:
    return "unreadable";
  case CorruptKind::schema_drift:
    return "schema_drift";
  case CorruptKind::malformed:
    return "malformed";
  case CorruptKind::truncated:
    return "truncated";
  case CorruptKind::parse_error:
    return "parse_error";
  case CorruptKind::image_missing:
    return "image_missing";
  case CorruptKind::unknown:
    return "unknown";
  }
  return "unknown";
}

std::optional<Metadata> Metadata::parse(std::string_view text,
                                        Corruption* corruption) {
  // The hot path (every lookup): one parse into an arena that the parsed
  // object owns, so building and freeing it cost a few bump allocations.
  // A document Boost.JSON accepts is valid UTF-8 (it checks strings, and
  // only ASCII is allowed outside them), so the UTF-8 scan below only runs
  // to explain a failure.
  {
    SyntaxResult fast = parse_syntax(
        text, json::make_shared_resource<json::monotonic_resource>());
    if (fast.verdict == SyntaxVerdict::complete) {
      if (!fast.value.is_object()) {
        set_corruption(
            corruption, CorruptKind::schema_drift,
            fmt::format("metadata.json schema drift: expected an object at "
                        "the top level, found {}",
                        describe_kind(fast.value)));
        return std::nullopt;
      }
      auto metadata =
          from_object(std::move(fast.value.get_object()), corruption);
      if (metadata) {
        metadata->m_text = std::string(text);
      }
      return metadata;
    }
  }

  std::string_view json_text = text;
  std::optional<Utf8Problem> bad_utf8 = find_invalid_utf8(text);
  if (bad_utf8 && bad_utf8->cut_at_end) {
    // A file cut inside a character is a truncation when what comes before
    // is itself a cut JSON document; see the check below.
    json_text = text.substr(0, bad_utf8->offset);
  }
  std::string utf8_reason;
  if (bad_utf8) {
    utf8_reason = fmt::format("metadata.json unreadable: invalid UTF-8 at {}",
                              describe_position(text, bad_utf8->offset));
  }
  if (bad_utf8 && !bad_utf8->cut_at_end) {
    set_corruption(corruption, CorruptKind::unreadable, utf8_reason);
    return std::nullopt;
  }

  SyntaxResult syntax = parse_syntax(json_text);
  if (bad_utf8 && syntax.verdict != SyntaxVerdict::truncated) {
    set_corruption(corruption, CorruptKind::unreadable, utf8_reason);
    return std::nullopt;
  }
  switch (syntax.verdict) {
  case SyntaxVerdict::malformed:
    set_corruption(corruption, CorruptKind::malformed,
                   "metadata.json malformed: " + syntax.detail);
    return std::nullopt;
  case SyntaxVerdict::truncated:
    set_corruption(corruption, CorruptKind::truncated,
                   "metadata.json truncated: " + syntax.detail);
    return std::nullopt;
  case SyntaxVerdict::complete:
    break;
  }

  if (!syntax.value.is_object()) {
    set_corruption(
        corruption, CorruptKind::schema_drift,
        fmt::format("metadata.json schema drift: expected an object at the "
                    "top level, found {}",
                    describe_kind(syntax.value)));
    return std::nullopt;
  }
  return from_object(std::move(syntax.value.get_object()), corruption);
}

std::optional<Metadata> Metadata::from_object(boost::json::object object,
                                              Corruption* corruption) {
  if (Problem problem = check_object(object)) {
    set_corruption(corruption, CorruptKind::schema_drift,
                   "metadata.json schema drift: " + *problem);
    return std::nullopt;
  }
  return Metadata(std::move(object));
}

Metadata& Metadata::operator=(Metadata&& other) noexcept {
  if (this != &other) {
    std::destroy_at(&m_object);
    std::construct_at(&m_object, std::move(other.m_object));
    m_text = std::move(other.m_text);
  }
  return *this;
}

std::string_view Metadata::image_name() const {
  return string_or_empty(m_object, "image_name");
}

std::string_view Metadata::arch() const {
  return string_or_empty(m_object, "arch");
}

std::string_view Metadata::built_at() const {
  return string_or_empty(m_object, "built_at");
}

const boost::json::object* Metadata::source() const {
  const json::value* value = find(m_object, "source");
  return value != nullptr ? value->if_object() : nullptr;
}

std::string_view Metadata::source_type() const {
  const json::object* source_object = source();
  if (source_object == nullptr) {
    return {};
  }
  return string_or_empty(*source_object, "type");
}

bool Metadata::has_vmlinux() const {
  return bool_or_false(m_object, "has_vmlinux");
}

bool Metadata::vmlinux_stripped() const {
  return bool_or_false(m_object, "vmlinux_stripped");
}

std::optional<std::string_view> Metadata::version() const {
  return optional_string(m_object, "version");
}

std::optional<std::string_view> Metadata::config_hash() const {
  return optional_string(m_object, "config_hash");
}

std::optional<std::string_view> Metadata::kconfig_hash() const {
  if (auto own = optional_string(m_object, "kconfig_hash")) {
    return own;
  }
  return optional_string(m_object, "ktstr_kconfig_hash");
}

std::optional<uint64_t> Metadata::source_vmlinux_size() const {
  return optional_unsigned(m_object, "source_vmlinux_size");
}

std::optional<int64_t> Metadata::source_vmlinux_mtime_secs() const {
  const json::value* value = find(m_object, "source_vmlinux_mtime_secs");
  if (value == nullptr || !value->is_int64()) {
    return std::nullopt;
  }
  return value->get_int64();
}

std::optional<int64_t> Metadata::schema_version() const {
  const json::value* value = find(m_object, "schema_version");
  if (value == nullptr) {
    return std::nullopt;
  }
  if (value->is_int64()) {
    return value->get_int64();
  }
  if (value->is_uint64()) {
    return INT64_MAX;
  }
  return std::nullopt;
}

std::optional<ArtifactRecord> Metadata::artifact(std::string_view role) const {
  const json::value* artifacts = find(m_object, "artifacts");
  if (artifacts == nullptr || !artifacts->is_object()) {
    return std::nullopt;
  }
  const json::value* entry = find(artifacts->get_object(), role);
  if (entry == nullptr || !entry->is_object()) {
    return std::nullopt;
  }
  const json::object& record_object = entry->get_object();
  auto file = optional_string(record_object, "file");
  auto size = optional_unsigned(record_object, "size");
  auto sha256 = optional_string(record_object, "sha256");
  if (!file || !size || !sha256) {
    return std::nullopt;
  }
  ArtifactRecord record;
  record.file = std::string(*file);
  record.size = *size;
  record.sha256 = std::string(*sha256);
  if (auto build_id = optional_string(record_object, "build_id")) {
    record.build_id = std::string(*build_id);
  }
  if (auto policy = optional_string(record_object, "strip_policy")) {
    record.strip_policy = std::string(*policy);
  }
  record.original_size = optional_unsigned(record_object, "original_size");
  return record;
}

bool Metadata::has_artifacts() const {
  const json::value* artifacts = find(m_object, "artifacts");
  return artifacts != nullptr && artifacts->is_object() &&
         !artifacts->get_object().empty();
}

bool Metadata::has_config() const {
  return artifact("config").has_value();
}

std::string Metadata::to_pretty_json() const {
  std::string out;
  append_object(out, m_object, 0, ObjectRole::top_level);
  out += '\n';
  return out;
}

std::string Metadata::to_compact_json() const {
  return json::serialize(m_object);
}

std::string utc_timestamp(int64_t seconds_since_epoch) {
  auto seconds = static_cast<std::time_t>(seconds_since_epoch);
  struct tm broken_down {};
  if (gmtime_r(&seconds, &broken_down) == nullptr) {
    return {};
  }
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                     broken_down.tm_year + 1900, broken_down.tm_mon + 1,
                     broken_down.tm_mday, broken_down.tm_hour,
                     broken_down.tm_min, broken_down.tm_sec);
}

std::string utc_timestamp_now() {
  return utc_timestamp(std::time(nullptr));
}

} // namespace ktc::cache
