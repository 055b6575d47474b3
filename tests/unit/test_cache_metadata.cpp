#include "cache/metadata.hpp"
#include "test_util.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <doctest/doctest.h>

#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace json = boost::json;
using ktc::cache::ArtifactRecord;
using ktc::cache::Corruption;
using ktc::cache::CorruptKind;
using ktc::cache::Metadata;

// Byte for byte what ktstr writes (serde_json's pretty printer, no final
// newline), one per source type.
constexpr std::string_view k_ktstr_tarball = R"({
  "version": "6.14.2",
  "source": {
    "type": "tarball"
  },
  "arch": "x86_64",
  "image_name": "bzImage",
  "config_hash": "0c1d2e3f",
  "built_at": "2026-04-12T10:00:00Z",
  "ktstr_kconfig_hash": "1a2b3c4d",
  "has_vmlinux": true,
  "vmlinux_stripped": true,
  "source_vmlinux_size": null,
  "source_vmlinux_mtime_secs": null
})";

constexpr std::string_view k_ktstr_git = R"({
  "version": null,
  "source": {
    "type": "git",
    "git_hash": "a1b2c3d",
    "ref": "v6.15-rc3"
  },
  "arch": "aarch64",
  "image_name": "Image",
  "config_hash": "deadbeef",
  "built_at": "2026-04-13T08:30:00Z",
  "ktstr_kconfig_hash": "0badf00d",
  "has_vmlinux": true,
  "vmlinux_stripped": false,
  "source_vmlinux_size": null,
  "source_vmlinux_mtime_secs": null
})";

constexpr std::string_view k_ktstr_local = R"({
  "version": null,
  "source": {
    "type": "local",
    "source_tree_path": "/home/jürgen/src/linux",
    "git_hash": null
  },
  "arch": "x86_64",
  "image_name": "bzImage",
  "config_hash": null,
  "built_at": "2026-04-14T23:59:59Z",
  "ktstr_kconfig_hash": null,
  "has_vmlinux": false,
  "vmlinux_stripped": false,
  "source_vmlinux_size": 612345678,
  "source_vmlinux_mtime_secs": -86400
})";

// Older ktstr entries, and ones from tools that leave optional keys out.
constexpr std::string_view k_minimal_git =
    R"({"source":{"type":"git"},"arch":"x86_64","image_name":"bzImage",)"
    R"("built_at":"2026-04-12T10:00:00Z","has_vmlinux":false,)"
    R"("vmlinux_stripped":false})";

constexpr std::string_view k_minimal_local =
    R"({"source":{"type":"local","source_tree_path":"/src/linux"},)"
    R"("arch":"x86_64","image_name":"bzImage","built_at":"b",)"
    R"("has_vmlinux":true,"vmlinux_stripped":true})";

constexpr std::string_view k_minimal_tarball =
    R"({"image_name":"bzImage","vmlinux_stripped":false,"arch":"riscv64",)"
    R"("has_vmlinux":false,"built_at":"","source":{"type":"tarball"}})";

// What ktcache writes: every field, plus fields neither tool knows, laid
// out the way to_pretty_json() lays it out.
constexpr std::string_view k_ktcache_full_template = R"({
  "version": "6.15.0",
  "source": {
    "type": "git",
    "git_hash": "0123456",
    "ref": "main",
    "git_commit": "0123456789abcdef0123456789abcdef01234567",
    "mirror": "https://example.org/linux.git"
  },
  "arch": "x86_64",
  "image_name": "bzImage",
  "config_hash": "c0ffee00",
  "built_at": "2026-05-01T12:00:00Z",
  "ktstr_kconfig_hash": null,
  "has_vmlinux": true,
  "vmlinux_stripped": true,
  "source_vmlinux_size": 18446744073709551615,
  "source_vmlinux_mtime_secs": -9223372036854775808,
  "schema_version": 1,
  "kconfig_hash": "5d41402abc4b2a76",
  "artifacts": {
    "image": {
      "file": "bzImage",
      "size": 13000000,
      "sha256": "@image_sha256@"
    },
    "vmlinux": {
      "file": "vmlinux",
      "size": 13631488,
      "sha256": "@vmlinux_sha256@",
      "build_id": "8f3a6b1c",
      "strip_policy": "keep-btf",
      "original_size": 590000000
    },
    "config": {
      "file": "config",
      "size": 250000,
      "sha256": "@config_sha256@",
      "origin": "defconfig"
    }
  },
  "inputs": {
    "fragments": [
      "ktstr.kconfig",
      "extra.kconfig"
    ],
    "compiler": "gcc 12.2.0",
    "make_args": []
  },
  "toolchain": {
    "cc": "gcc",
    "ld": "ld.bfd 2.40"
  },
  "notes": "tab\there \"quoted\" \\ \u0001 😀"
})";

constexpr std::string_view k_image_sha256 =
    "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

// The template with its digests filled in (they do not fit in a line).
const std::string& ktcache_full() {
  static const std::string text = [] {
    std::string filled(k_ktcache_full_template);
    auto fill = [&](std::string_view token, std::string_view digest) {
      size_t at = filled.find(token);
      REQUIRE(at != std::string::npos);
      filled.replace(at, token.size(), digest);
    };
    fill("@image_sha256@", k_image_sha256);
    fill("@vmlinux_sha256@", std::string(64, 'f'));
    fill("@config_sha256@", "0123456789abcdef0123456789abcdef"
                            "0123456789abcdef0123456789abcdef");
    return filled;
  }();
  return text;
}

struct Outcome {
  std::optional<Metadata> metadata;
  Corruption corruption;
};

Outcome parse(std::string_view text) {
  Outcome outcome;
  outcome.metadata = Metadata::parse(text, &outcome.corruption);
  return outcome;
}

json::object object_of(std::string_view text) {
  json::value value = json::parse(text);
  REQUIRE(value.is_object());
  return value.get_object();
}

std::string compact(const json::object& object) {
  return json::serialize(object);
}

// The reason a mutated ktstr entry is rejected with ("" when it is valid).
std::string drift_reason(std::string_view base,
                         const std::function<void(json::object&)>& mutate) {
  json::object object = object_of(base);
  mutate(object);
  Outcome outcome = parse(compact(object));
  if (outcome.metadata) {
    return "";
  }
  CHECK(outcome.corruption.kind == CorruptKind::schema_drift);
  return outcome.corruption.reason;
}

json::object& member_object(json::object& object, std::string_view key) {
  return object.at(key).as_object();
}

} // namespace

TEST_SUITE_BEGIN("Metadata");

TEST_CASE("entries written by ktstr parse as valid") {
  SUBCASE("tarball") {
    Outcome outcome = parse(k_ktstr_tarball);
    REQUIRE(outcome.metadata);
    const Metadata& metadata = *outcome.metadata;
    CHECK(metadata.source_type() == "tarball");
    CHECK(metadata.version() == std::optional<std::string_view>("6.14.2"));
    CHECK(metadata.arch() == "x86_64");
    CHECK(metadata.image_name() == "bzImage");
    CHECK(metadata.config_hash() ==
          std::optional<std::string_view>("0c1d2e3f"));
    CHECK(metadata.built_at() == "2026-04-12T10:00:00Z");
    CHECK(metadata.kconfig_hash() ==
          std::optional<std::string_view>("1a2b3c4d"));
    CHECK(metadata.has_vmlinux());
    CHECK(metadata.vmlinux_stripped());
    CHECK_FALSE(metadata.source_vmlinux_size());
    CHECK_FALSE(metadata.source_vmlinux_mtime_secs());
    CHECK_FALSE(metadata.schema_version());
    CHECK_FALSE(metadata.has_artifacts());
    CHECK_FALSE(metadata.has_config());
  }
  SUBCASE("git") {
    Outcome outcome = parse(k_ktstr_git);
    REQUIRE(outcome.metadata);
    const Metadata& metadata = *outcome.metadata;
    CHECK(metadata.source_type() == "git");
    REQUIRE(metadata.source() != nullptr);
    CHECK(metadata.source()->at("git_hash") == "a1b2c3d");
    CHECK(metadata.source()->at("ref") == "v6.15-rc3");
    CHECK_FALSE(metadata.version());
    CHECK(metadata.arch() == "aarch64");
    CHECK(metadata.image_name() == "Image");
    CHECK(metadata.has_vmlinux());
    CHECK_FALSE(metadata.vmlinux_stripped());
  }
  SUBCASE("local") {
    Outcome outcome = parse(k_ktstr_local);
    REQUIRE(outcome.metadata);
    const Metadata& metadata = *outcome.metadata;
    CHECK(metadata.source_type() == "local");
    REQUIRE(metadata.source() != nullptr);
    CHECK(metadata.source()->at("source_tree_path") ==
          "/home/jürgen/src/linux");
    CHECK(metadata.source()->at("git_hash").is_null());
    CHECK_FALSE(metadata.config_hash());
    CHECK_FALSE(metadata.kconfig_hash());
    CHECK_FALSE(metadata.has_vmlinux());
    CHECK(metadata.source_vmlinux_size() == std::optional<uint64_t>(612345678));
    CHECK(metadata.source_vmlinux_mtime_secs() ==
          std::optional<int64_t>(-86400));
  }
}

TEST_CASE("entries without optional keys parse as valid") {
  for (std::string_view text :
       {k_minimal_git, k_minimal_local, k_minimal_tarball}) {
    INFO(text);
    Outcome outcome = parse(text);
    REQUIRE(outcome.metadata);
    CHECK_FALSE(outcome.metadata->version());
    CHECK_FALSE(outcome.metadata->config_hash());
    CHECK_FALSE(outcome.metadata->kconfig_hash());
    CHECK_FALSE(outcome.metadata->source_vmlinux_size());
    CHECK_FALSE(outcome.metadata->source_vmlinux_mtime_secs());
    CHECK_FALSE(outcome.metadata->schema_version());
  }
  CHECK(parse(k_minimal_tarball).metadata->arch() == "riscv64");
  CHECK(parse(k_minimal_local).metadata->has_vmlinux());
}

TEST_CASE("pretty output of a ktstr entry is byte for byte what ktstr wrote") {
  for (std::string_view text : {k_ktstr_tarball, k_ktstr_git, k_ktstr_local}) {
    Outcome outcome = parse(text);
    REQUIRE(outcome.metadata);
    CHECK(outcome.metadata->to_pretty_json() == std::string(text) + "\n");
  }
}

TEST_CASE("every field reads back and survives a pretty round trip") {
  Outcome outcome = parse(ktcache_full());
  REQUIRE(outcome.metadata);
  const Metadata& metadata = *outcome.metadata;

  CHECK(metadata.version() == std::optional<std::string_view>("6.15.0"));
  CHECK(metadata.source_type() == "git");
  CHECK(metadata.source()->at("git_commit") ==
        "0123456789abcdef0123456789abcdef01234567");
  CHECK(metadata.arch() == "x86_64");
  CHECK(metadata.image_name() == "bzImage");
  CHECK(metadata.config_hash() == std::optional<std::string_view>("c0ffee00"));
  CHECK(metadata.built_at() == "2026-05-01T12:00:00Z");
  CHECK(metadata.kconfig_hash() ==
        std::optional<std::string_view>("5d41402abc4b2a76"));
  CHECK(metadata.has_vmlinux());
  CHECK(metadata.vmlinux_stripped());
  CHECK(metadata.source_vmlinux_size() == std::optional<uint64_t>(UINT64_MAX));
  CHECK(metadata.source_vmlinux_mtime_secs() ==
        std::optional<int64_t>(INT64_MIN));
  CHECK(metadata.schema_version() == std::optional<int64_t>(1));
  CHECK(metadata.has_artifacts());
  CHECK(metadata.has_config());

  std::string pretty = metadata.to_pretty_json();
  CHECK(pretty == ktcache_full() + "\n");
  Outcome again = parse(pretty);
  REQUIRE(again.metadata);
  CHECK(again.metadata->object() == metadata.object());
  CHECK(again.metadata->to_pretty_json() == pretty);
}

TEST_CASE("artifact records read back with their vmlinux extras") {
  Outcome outcome = parse(ktcache_full());
  REQUIRE(outcome.metadata);

  std::optional<ArtifactRecord> image = outcome.metadata->artifact("image");
  REQUIRE(image);
  CHECK(image->file == "bzImage");
  CHECK(image->size == 13000000);
  CHECK(image->sha256 == k_image_sha256);
  CHECK_FALSE(image->build_id);
  CHECK_FALSE(image->original_size);

  std::optional<ArtifactRecord> vmlinux = outcome.metadata->artifact("vmlinux");
  REQUIRE(vmlinux);
  CHECK(vmlinux->file == "vmlinux");
  CHECK(vmlinux->size == 13631488);
  CHECK(vmlinux->build_id == std::optional<std::string>("8f3a6b1c"));
  CHECK(vmlinux->strip_policy == std::optional<std::string>("keep-btf"));
  CHECK(vmlinux->original_size == std::optional<uint64_t>(590000000));

  std::optional<ArtifactRecord> config = outcome.metadata->artifact("config");
  REQUIRE(config);
  CHECK(config->file == "config");
  CHECK(config->size == 250000);

  CHECK_FALSE(outcome.metadata->artifact("btf"));
}

TEST_CASE("an entry without artifacts records none") {
  SUBCASE("absent") {
    Outcome outcome = parse(k_ktstr_git);
    REQUIRE(outcome.metadata);
    CHECK_FALSE(outcome.metadata->has_artifacts());
    CHECK_FALSE(outcome.metadata->artifact("image"));
  }
  SUBCASE("null") {
    json::object object = object_of(k_ktstr_git);
    object["artifacts"] = nullptr;
    Outcome outcome = parse(compact(object));
    REQUIRE(outcome.metadata);
    CHECK_FALSE(outcome.metadata->has_artifacts());
    CHECK_FALSE(outcome.metadata->has_config());
  }
  SUBCASE("empty") {
    json::object object = object_of(k_ktstr_git);
    object["artifacts"] = json::object();
    Outcome outcome = parse(compact(object));
    REQUIRE(outcome.metadata);
    CHECK_FALSE(outcome.metadata->has_artifacts());
  }
  SUBCASE("image only") {
    json::object object = object_of(ktcache_full());
    member_object(object, "artifacts").erase("config");
    Outcome outcome = parse(compact(object));
    REQUIRE(outcome.metadata);
    CHECK(outcome.metadata->has_artifacts());
    CHECK_FALSE(outcome.metadata->has_config());
  }
}

TEST_CASE("unknown fields survive parse, pretty output and parse again") {
  json::object object = object_of(k_ktstr_local);
  object["toolchain"] = object_of(R"({"cc":"clang","flags":[1,2.5,null]})");
  object["z_last"] = "kept";
  member_object(object, "source")["checkout"] = "sparse";
  member_object(object, "source")["depth"] = 1;

  Outcome first = parse(compact(object));
  REQUIRE(first.metadata);
  Outcome second = parse(first.metadata->to_pretty_json());
  REQUIRE(second.metadata);
  CHECK(second.metadata->object() == object);
  CHECK(second.metadata->object().at("toolchain").at("flags").at(1) == 2.5);
  CHECK(second.metadata->source()->at("checkout") == "sparse");
  CHECK(second.metadata->source()->at("depth") == 1);
}

TEST_CASE("pretty output puts ktstr's fields first, in ktstr's order") {
  // Built in reverse, with unknown keys in between and "type" last.
  json::object object;
  object["zeta"] = 1;
  object["source_vmlinux_mtime_secs"] = nullptr;
  object["source_vmlinux_size"] = nullptr;
  object["vmlinux_stripped"] = false;
  object["has_vmlinux"] = false;
  object["ktstr_kconfig_hash"] = nullptr;
  object["built_at"] = "2026-01-01T00:00:00Z";
  object["alpha"] = json::array{};
  object["config_hash"] = nullptr;
  object["image_name"] = "bzImage";
  object["arch"] = "x86_64";
  object["source"] = json::object{{"ref", "main"}, {"type", "git"}};
  object["version"] = "6.1";
  object["kconfig_hash"] = "ab";

  std::string expected = R"({
  "version": "6.1",
  "source": {
    "type": "git",
    "ref": "main"
  },
  "arch": "x86_64",
  "image_name": "bzImage",
  "config_hash": null,
  "built_at": "2026-01-01T00:00:00Z",
  "ktstr_kconfig_hash": null,
  "has_vmlinux": false,
  "vmlinux_stripped": false,
  "source_vmlinux_size": null,
  "source_vmlinux_mtime_secs": null,
  "zeta": 1,
  "alpha": [],
  "kconfig_hash": "ab"
}
)";
  CHECK(Metadata(object).to_pretty_json() == expected);
  Outcome outcome = parse(expected);
  REQUIRE(outcome.metadata);
  CHECK(outcome.metadata->object() == object);
}

TEST_CASE("pretty output indents nested values and escapes strings") {
  json::object object =
      object_of(R"({"list":[1,[],{},[true,null,{"k":-2}]],"empty":{},)"
                R"("text":"a\"b\\c\nd\u0001é/","we\"ird":0.5})");
  std::string expected = R"({
  "list": [
    1,
    [],
    {},
    [
      true,
      null,
      {
        "k": -2
      }
    ]
  ],
  "empty": {},
  "text": "a\"b\\c\nd\u0001é/",
  "we\"ird": 5E-1
}
)";
  std::string pretty = Metadata(object).to_pretty_json();
  CHECK(pretty == expected);
  CHECK(json::parse(pretty) == object);
  CHECK(Metadata().to_pretty_json() == "{}\n");
}

TEST_CASE("compact output is the whole object on one line") {
  Outcome outcome = parse(ktcache_full());
  REQUIRE(outcome.metadata);
  std::string text = outcome.metadata->to_compact_json();
  CHECK(text.find('\n') == std::string::npos);
  CHECK(text == json::serialize(outcome.metadata->object()));
  CHECK(json::parse(text) == outcome.metadata->object());
}

TEST_CASE("a missing required field is schema drift naming the field") {
  for (std::string_view field : {"source", "arch", "image_name", "built_at",
                                 "has_vmlinux", "vmlinux_stripped"}) {
    SUBCASE(std::string(field).c_str()) {
      std::string reason = drift_reason(
          k_ktstr_tarball, [&](json::object& object) { object.erase(field); });
      CHECK(
          reason ==
          fmt::format("metadata.json schema drift: missing field `{}`", field));
    }
  }
}

TEST_CASE("the first problem in declaration order is the one reported") {
  SUBCASE("source before arch") {
    std::string reason = drift_reason(k_ktstr_tarball, [](json::object& o) {
      o.erase("arch");
      o.erase("source");
    });
    CHECK(reason == "metadata.json schema drift: missing field `source`");
  }
  SUBCASE("arch before built_at") {
    std::string reason = drift_reason(k_ktstr_tarball, [](json::object& o) {
      o.erase("built_at");
      o["arch"] = 1;
    });
    CHECK(reason == "metadata.json schema drift: invalid type for `arch`: "
                    "expected a string");
  }
  SUBCASE("required before optional") {
    std::string reason = drift_reason(k_ktstr_tarball, [](json::object& o) {
      o["version"] = 6;
      o.erase("vmlinux_stripped");
    });
    CHECK(reason ==
          "metadata.json schema drift: missing field `vmlinux_stripped`");
  }
}

namespace {

struct WrongType {
  const char* name;
  std::string_view base;
  std::function<void(json::object&)> mutate;
  const char* reason; // after "metadata.json schema drift: "
};

json::object& artifacts_of(json::object& object, std::string_view role) {
  return member_object(member_object(object, "artifacts"), role);
}

const std::vector<WrongType>& wrong_types() {
  static const std::vector<WrongType> cases = {
      {"source is a string", k_ktstr_tarball,
       [](json::object& o) { o["source"] = "tarball"; },
       "invalid type for `source`: expected an object"},
      {"source type is a number", k_ktstr_tarball,
       [](json::object& o) { member_object(o, "source")["type"] = 5; },
       "invalid type for `source.type`: expected a string"},
      {"arch is a number", k_ktstr_tarball,
       [](json::object& o) { o["arch"] = 64; },
       "invalid type for `arch`: expected a string"},
      {"arch is null", k_ktstr_tarball,
       [](json::object& o) { o["arch"] = nullptr; },
       "invalid type for `arch`: expected a string"},
      {"image_name is a boolean", k_ktstr_tarball,
       [](json::object& o) { o["image_name"] = true; },
       "invalid type for `image_name`: expected a string"},
      {"built_at is a number", k_ktstr_tarball,
       [](json::object& o) { o["built_at"] = 1712345678; },
       "invalid type for `built_at`: expected a string"},
      {"has_vmlinux is a string", k_ktstr_tarball,
       [](json::object& o) { o["has_vmlinux"] = "true"; },
       "invalid type for `has_vmlinux`: expected a boolean"},
      {"vmlinux_stripped is a number", k_ktstr_tarball,
       [](json::object& o) { o["vmlinux_stripped"] = 1; },
       "invalid type for `vmlinux_stripped`: expected a boolean"},
      {"vmlinux_stripped is null", k_ktstr_tarball,
       [](json::object& o) { o["vmlinux_stripped"] = nullptr; },
       "invalid type for `vmlinux_stripped`: expected a boolean"},
      {"version is a number", k_ktstr_tarball,
       [](json::object& o) { o["version"] = 6; },
       "invalid type for `version`: expected a string or null"},
      {"config_hash is a number", k_ktstr_tarball,
       [](json::object& o) { o["config_hash"] = 123; },
       "invalid type for `config_hash`: expected a string or null"},
      {"ktstr_kconfig_hash is an array", k_ktstr_tarball,
       [](json::object& o) { o["ktstr_kconfig_hash"] = json::array{}; },
       "invalid type for `ktstr_kconfig_hash`: expected a string or null"},
      {"kconfig_hash is an object", k_ktstr_tarball,
       [](json::object& o) { o["kconfig_hash"] = json::object{}; },
       "invalid type for `kconfig_hash`: expected a string or null"},
      {"source_vmlinux_size is negative", k_ktstr_tarball,
       [](json::object& o) { o["source_vmlinux_size"] = -1; },
       "invalid type for `source_vmlinux_size`: expected an unsigned "
       "integer or null"},
      {"source_vmlinux_size is fractional", k_ktstr_tarball,
       [](json::object& o) { o["source_vmlinux_size"] = 1.5; },
       "invalid type for `source_vmlinux_size`: expected an unsigned "
       "integer or null"},
      {"source_vmlinux_size is a string", k_ktstr_tarball,
       [](json::object& o) { o["source_vmlinux_size"] = "12"; },
       "invalid type for `source_vmlinux_size`: expected an unsigned "
       "integer or null"},
      {"source_vmlinux_mtime_secs is a double", k_ktstr_tarball,
       [](json::object& o) { o["source_vmlinux_mtime_secs"] = 1.0; },
       "invalid type for `source_vmlinux_mtime_secs`: expected an integer "
       "or null"},
      {"source_vmlinux_mtime_secs is beyond int64", k_ktstr_tarball,
       [](json::object& o) { o["source_vmlinux_mtime_secs"] = UINT64_MAX; },
       "invalid type for `source_vmlinux_mtime_secs`: expected an integer "
       "or null"},
      {"schema_version is null", k_ktstr_tarball,
       [](json::object& o) { o["schema_version"] = nullptr; },
       "invalid type for `schema_version`: expected an integer"},
      {"schema_version is a string", k_ktstr_tarball,
       [](json::object& o) { o["schema_version"] = "1"; },
       "invalid type for `schema_version`: expected an integer"},
      {"artifacts is an array", k_ktstr_tarball,
       [](json::object& o) { o["artifacts"] = json::array{}; },
       "invalid type for `artifacts`: expected an object or null"},
      {"inputs is a string", k_ktstr_tarball,
       [](json::object& o) { o["inputs"] = "x"; },
       "invalid type for `inputs`: expected an object or null"},
      {"git git_hash is a number", k_ktstr_git,
       [](json::object& o) { member_object(o, "source")["git_hash"] = 7; },
       "invalid type for `source.git_hash`: expected a string or null"},
      {"git ref is a boolean", k_ktstr_git,
       [](json::object& o) { member_object(o, "source")["ref"] = false; },
       "invalid type for `source.ref`: expected a string or null"},
      {"git git_commit is an object", k_ktstr_git,
       [](json::object& o) {
         member_object(o, "source")["git_commit"] = json::object{};
       },
       "invalid type for `source.git_commit`: expected a string or null"},
      {"local source_tree_path is a number", k_ktstr_local,
       [](json::object& o) {
         member_object(o, "source")["source_tree_path"] = 1;
       },
       "invalid type for `source.source_tree_path`: expected a string or "
       "null"},
      {"local git_hash is an array", k_ktstr_local,
       [](json::object& o) {
         member_object(o, "source")["git_hash"] = json::array{};
       },
       "invalid type for `source.git_hash`: expected a string or null"},
      {"an artifact is a string", ktcache_full(),
       [](json::object& o) {
         member_object(o, "artifacts")["image"] = "bzImage";
       },
       "invalid type for `artifacts.image`: expected an object"},
      {"an artifact has no file", ktcache_full(),
       [](json::object& o) { artifacts_of(o, "image").erase("file"); },
       "missing field `artifacts.image.file`"},
      {"an artifact file leaves the entry", ktcache_full(),
       [](json::object& o) { artifacts_of(o, "image")["file"] = "../x"; },
       "invalid value for `artifacts.image.file`: expected a file name "
       "inside the entry"},
      {"an artifact size is negative", ktcache_full(),
       [](json::object& o) { artifacts_of(o, "config")["size"] = -5; },
       "invalid type for `artifacts.config.size`: expected an unsigned "
       "integer"},
      {"an artifact has no sha256", ktcache_full(),
       [](json::object& o) { artifacts_of(o, "config").erase("sha256"); },
       "missing field `artifacts.config.sha256`"},
      {"an artifact sha256 is upper-case", ktcache_full(),
       [](json::object& o) {
         artifacts_of(o, "image")["sha256"] = std::string(64, 'A');
       },
       "invalid value for `artifacts.image.sha256`: expected 64 lower-case "
       "hex digits"},
      {"an artifact sha256 is short", ktcache_full(),
       [](json::object& o) {
         artifacts_of(o, "image")["sha256"] = std::string(63, 'a');
       },
       "invalid value for `artifacts.image.sha256`: expected 64 lower-case "
       "hex digits"},
      {"vmlinux build_id is a number", ktcache_full(),
       [](json::object& o) { artifacts_of(o, "vmlinux")["build_id"] = 5; },
       "invalid type for `artifacts.vmlinux.build_id`: expected a string or "
       "null"},
      {"vmlinux strip_policy is a boolean", ktcache_full(),
       [](json::object& o) {
         artifacts_of(o, "vmlinux")["strip_policy"] = true;
       },
       "invalid type for `artifacts.vmlinux.strip_policy`: expected a string "
       "or null"},
      {"vmlinux original_size is negative", ktcache_full(),
       [](json::object& o) {
         artifacts_of(o, "vmlinux")["original_size"] = -1;
       },
       "invalid type for `artifacts.vmlinux.original_size`: expected an "
       "unsigned integer or null"},
  };
  return cases;
}

} // namespace

TEST_CASE("a field of the wrong type is schema drift naming the field") {
  for (const WrongType& wrong : wrong_types()) {
    SUBCASE(wrong.name) {
      CHECK(drift_reason(wrong.base, wrong.mutate) ==
            std::string("metadata.json schema drift: ") + wrong.reason);
    }
  }
}

TEST_CASE("null and unchecked values are accepted where allowed") {
  SUBCASE("every optional field null") {
    std::string reason = drift_reason(k_ktstr_git, [](json::object& o) {
      for (const char* key :
           {"version", "config_hash", "ktstr_kconfig_hash", "kconfig_hash",
            "source_vmlinux_size", "source_vmlinux_mtime_secs", "artifacts",
            "inputs"}) {
        o[key] = nullptr;
      }
      auto& source = member_object(o, "source");
      source["git_hash"] = nullptr;
      source["ref"] = nullptr;
      source["git_commit"] = nullptr;
    });
    CHECK(reason == "");
  }
  SUBCASE("vmlinux extras null") {
    std::string reason = drift_reason(ktcache_full(), [](json::object& o) {
      auto& vmlinux = artifacts_of(o, "vmlinux");
      vmlinux["build_id"] = nullptr;
      vmlinux["strip_policy"] = nullptr;
      vmlinux["original_size"] = nullptr;
    });
    CHECK(reason == "");
  }
  SUBCASE("vmlinux extras on another artifact are left alone") {
    std::string reason = drift_reason(ktcache_full(), [](json::object& o) {
      artifacts_of(o, "image")["build_id"] = 5;
    });
    CHECK(reason == "");
  }
  SUBCASE("a tarball source with payload keys of any type") {
    std::string reason = drift_reason(k_ktstr_tarball, [](json::object& o) {
      member_object(o, "source")["git_hash"] = 5;
    });
    CHECK(reason == "");
  }
  SUBCASE("a newer schema_version") {
    json::object object = object_of(k_ktstr_tarball);
    object["schema_version"] = 7;
    Outcome outcome = parse(compact(object));
    REQUIRE(outcome.metadata);
    CHECK(outcome.metadata->schema_version() == std::optional<int64_t>(7));
  }
  SUBCASE("a schema_version beyond int64") {
    json::object object = object_of(k_ktstr_tarball);
    object["schema_version"] = UINT64_MAX;
    Outcome outcome = parse(compact(object));
    REQUIRE(outcome.metadata);
    CHECK(outcome.metadata->schema_version() ==
          std::optional<int64_t>(INT64_MAX));
  }
}

TEST_CASE("a source type ktcache does not know is valid with its payload") {
  json::object object = object_of(k_ktstr_tarball);
  object["source"] =
      object_of(R"({"url":5,"type":"mirror-tarball","nested":{"a":[1,"b"]}})");
  Outcome outcome = parse(compact(object));
  REQUIRE(outcome.metadata);
  CHECK(outcome.metadata->source_type() == "mirror-tarball");
  CHECK(*outcome.metadata->source() == object.at("source").as_object());

  std::string pretty = outcome.metadata->to_pretty_json();
  CHECK(pretty.find("\"source\": {\n    \"type\": \"mirror-tarball\",\n"
                    "    \"url\": 5,\n") != std::string::npos);
  Outcome again = parse(pretty);
  REQUIRE(again.metadata);
  CHECK(again.metadata->object() == object);
}

TEST_CASE("a source without a type is schema drift") {
  SUBCASE("no type") {
    std::string reason = drift_reason(k_ktstr_git, [](json::object& o) {
      member_object(o, "source").erase("type");
    });
    CHECK(reason == "metadata.json schema drift: missing field `source.type`");
  }
  SUBCASE("empty source") {
    std::string reason = drift_reason(
        k_ktstr_git, [](json::object& o) { o["source"] = json::object{}; });
    CHECK(reason == "metadata.json schema drift: missing field `source.type`");
  }
}

TEST_CASE("an unsafe image_name is schema drift naming it") {
  for (const char* name : {"../bzImage", "boot/bzImage", "", "vmlinux",
                           "metadata.json", ".hidden", "a\nb"}) {
    SUBCASE(name) {
      std::string reason = drift_reason(
          k_ktstr_tarball, [&](json::object& o) { o["image_name"] = name; });
      CHECK(reason.starts_with(
          "metadata.json schema drift: invalid value for `image_name`: "));
      CHECK(reason.find('\n') == std::string::npos);
    }
  }
}

TEST_CASE("a document that is not an object is schema drift") {
  struct NotObject {
    const char* text;
    const char* found;
  };
  for (NotObject not_object :
       {NotObject{"[]", "an array"}, NotObject{"\"bzImage\"", "a string"},
        NotObject{"42", "a number"}, NotObject{"-1.5e3", "a number"},
        NotObject{"null", "null"}, NotObject{" true\n", "a boolean"}}) {
    SUBCASE(not_object.text) {
      Outcome outcome = parse(not_object.text);
      REQUIRE_FALSE(outcome.metadata);
      CHECK(outcome.corruption.kind == CorruptKind::schema_drift);
      CHECK(outcome.corruption.reason ==
            fmt::format("metadata.json schema drift: expected an object at "
                        "the top level, found {}",
                        not_object.found));
    }
  }
}

TEST_CASE("text that is not JSON is malformed") {
  for (std::string_view text : {
           std::string_view("{,}"),
           std::string_view("{\"arch\" \"x86_64\"}"),
           std::string_view("nul}"),
           std::string_view("{\"a\":1}x"),
           std::string_view("{\"a\":1} {}"),
           std::string_view("\xef\xbb\xbf{}"),
           std::string_view("{'arch':'x86_64'}"),
           std::string_view("{\"a\":1,}"),
           std::string_view("// ktstr\n{}"),
           std::string_view("{\"a\":\"\x01\"}"),
           std::string_view("{\"a\":01}"),
           std::string_view("]"),
       }) {
    SUBCASE(std::string(text).c_str()) {
      Outcome outcome = parse(text);
      REQUIRE_FALSE(outcome.metadata);
      CHECK(outcome.corruption.kind == CorruptKind::malformed);
      CHECK(outcome.corruption.reason.starts_with("metadata.json malformed: "));
      CHECK(outcome.corruption.reason.find(", column ") != std::string::npos);
    }
  }
}

TEST_CASE("a malformed reason points at the line and column") {
  SUBCASE("one line") {
    CHECK(parse(R"({"a":tx})").corruption.reason ==
          "metadata.json malformed: syntax error at line 1, column 7");
  }
  SUBCASE("third line") {
    CHECK(parse("{\n  \"a\": 1,\n  \"b\": x\n}").corruption.reason ==
          "metadata.json malformed: syntax error at line 3, column 8");
  }
  SUBCASE("data after the value") {
    CHECK(parse("{}\n{}").corruption.reason ==
          "metadata.json malformed: unexpected data after the JSON value at "
          "line 2, column 1");
  }
}

TEST_CASE("a document cut at any offset is truncated") {
  std::vector<std::string> documents;
  for (std::string_view text : std::initializer_list<std::string_view>{
           k_ktstr_tarball, k_ktstr_git, k_ktstr_local, ktcache_full()}) {
    documents.emplace_back(text);
    documents.push_back(std::string(text) + "\n");
  }
  documents.emplace_back(k_minimal_git);
  documents.emplace_back(R"({"n":[1.25,-0.5e+10,1E-7,true,false,null]})");

  for (const std::string& document : documents) {
    std::vector<size_t> misclassified;
    for (size_t cut = 0; cut < document.size(); ++cut) {
      std::string_view prefix = std::string_view(document).substr(0, cut);
      boost::system::error_code error;
      json::parse(prefix, error);
      Outcome outcome = parse(prefix);
      bool still_json = !error;
      bool truncated =
          outcome.corruption.kind == CorruptKind::truncated &&
          outcome.corruption.reason.starts_with("metadata.json truncated: ");
      if (still_json ? (outcome.corruption.kind == CorruptKind::truncated ||
                        outcome.corruption.kind == CorruptKind::malformed)
                     : (outcome.metadata || !truncated)) {
        misclassified.push_back(cut);
      }
    }
    INFO(document);
    CHECK(misclassified == std::vector<size_t>{});
  }
}

TEST_CASE("a cut inside a multi-byte character is truncated") {
  std::string_view text = k_ktstr_local;
  size_t at = text.find("ü");
  REQUIRE(at != std::string_view::npos);
  Outcome outcome = parse(text.substr(0, at + 1));
  REQUIRE_FALSE(outcome.metadata);
  CHECK(outcome.corruption.kind == CorruptKind::truncated);
}

TEST_CASE("a cut after a number's dot or exponent sign is truncated") {
  for (std::string_view text :
       {R"({"size":1.)", R"({"size":1e+)", R"({"size":-)", R"({"b":tr)"}) {
    SUBCASE(std::string(text).c_str()) {
      CHECK(parse(text).corruption.kind == CorruptKind::truncated);
    }
  }
}

TEST_CASE("an empty or blank file is truncated") {
  SUBCASE("empty") {
    Outcome outcome = parse("");
    REQUIRE_FALSE(outcome.metadata);
    CHECK(outcome.corruption.kind == CorruptKind::truncated);
    CHECK(outcome.corruption.reason ==
          "metadata.json truncated: the file is empty");
  }
  SUBCASE("blank") {
    Outcome outcome = parse(" \n\t");
    REQUIRE_FALSE(outcome.metadata);
    CHECK(outcome.corruption.kind == CorruptKind::truncated);
    CHECK(outcome.corruption.reason ==
          "metadata.json truncated: unexpected end of file at line 2, "
          "column 2");
  }
}

TEST_CASE("invalid UTF-8 is unreadable") {
  struct BadBytes {
    const char* name;
    std::string_view bytes;
  };
  for (BadBytes bad : {
           BadBytes{"byte ff", "\xff"},
           BadBytes{"lone continuation", "\x80"},
           BadBytes{"overlong slash", "\xc0\xaf"},
           BadBytes{"overlong three bytes", "\xe0\x80\xaf"},
           BadBytes{"surrogate", "\xed\xa0\x80"},
           BadBytes{"above U+10FFFF", "\xf4\x90\x80\x80"},
           BadBytes{"lead f5", "\xf5\x80\x80\x80"},
           BadBytes{"sequence cut by ascii", "\xc3("},
           BadBytes{"sequence cut by a quote", "\xe2\x82"},
       }) {
    SUBCASE(bad.name) {
      std::string text = R"({"arch":")" + std::string(bad.bytes) +
                         R"(","image_name":"bzImage"})";
      Outcome outcome = parse(text);
      REQUIRE_FALSE(outcome.metadata);
      CHECK(outcome.corruption.kind == CorruptKind::unreadable);
      CHECK(outcome.corruption.reason ==
            "metadata.json unreadable: invalid UTF-8 at line 1, column 10");
    }
  }
  SUBCASE("a cut character after a complete document") {
    Outcome outcome = parse(std::string(k_ktstr_tarball) + "\xe2\x82");
    REQUIRE_FALSE(outcome.metadata);
    CHECK(outcome.corruption.kind == CorruptKind::unreadable);
  }
  SUBCASE("invalid UTF-8 in a cut document") {
    Outcome outcome = parse("{\"arch\":\"\xff");
    REQUIRE_FALSE(outcome.metadata);
    CHECK(outcome.corruption.kind == CorruptKind::unreadable);
  }
}

TEST_CASE("valid multi-byte UTF-8 is accepted") {
  json::object object = object_of(k_ktstr_local);
  object["note"] = "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf";
  Outcome outcome = parse(compact(object));
  REQUIRE(outcome.metadata);
  CHECK(outcome.metadata->object().at("note") == object.at("note"));
}

TEST_CASE("kconfig_hash prefers ktcache's own non-null hash") {
  auto kconfig_of = [](const json::value& own, const json::value& ktstr) {
    json::object object = object_of(k_ktstr_tarball);
    object.erase("ktstr_kconfig_hash");
    if (!own.is_array()) {
      object["kconfig_hash"] = own;
    }
    if (!ktstr.is_array()) {
      object["ktstr_kconfig_hash"] = ktstr;
    }
    Outcome outcome = parse(compact(object));
    REQUIRE(outcome.metadata);
    auto hash = outcome.metadata->kconfig_hash();
    return hash ? std::optional<std::string>(*hash) : std::nullopt;
  };
  // An array stands for "key absent" here.
  json::value absent = json::array{};
  SUBCASE("both set") {
    CHECK(kconfig_of("own", "ktstr") == std::optional<std::string>("own"));
  }
  SUBCASE("own null") {
    CHECK(kconfig_of(nullptr, "ktstr") == std::optional<std::string>("ktstr"));
  }
  SUBCASE("own absent") {
    CHECK(kconfig_of(absent, "ktstr") == std::optional<std::string>("ktstr"));
  }
  SUBCASE("only own") {
    CHECK(kconfig_of("own", absent) == std::optional<std::string>("own"));
  }
  SUBCASE("both null") {
    CHECK(kconfig_of(nullptr, nullptr) == std::nullopt);
  }
  SUBCASE("both absent") {
    CHECK(kconfig_of(absent, absent) == std::nullopt);
  }
}

TEST_CASE("every corrupt kind has its machine-readable name") {
  CHECK(to_string(CorruptKind::missing) == "missing");
  CHECK(to_string(CorruptKind::unreadable) == "unreadable");
  CHECK(to_string(CorruptKind::schema_drift) == "schema_drift");
  CHECK(to_string(CorruptKind::malformed) == "malformed");
  CHECK(to_string(CorruptKind::truncated) == "truncated");
  CHECK(to_string(CorruptKind::parse_error) == "parse_error");
  CHECK(to_string(CorruptKind::image_missing) == "image_missing");
  CHECK(to_string(CorruptKind::unknown) == "unknown");
}

TEST_CASE("from_object applies the same checks as parse") {
  SUBCASE("valid") {
    std::optional<Metadata> metadata =
        Metadata::from_object(object_of(k_ktstr_git), nullptr);
    REQUIRE(metadata);
    CHECK(metadata->arch() == "aarch64");
  }
  SUBCASE("schema drift") {
    json::object object = object_of(k_ktstr_git);
    object.erase("built_at");
    Corruption corruption;
    CHECK_FALSE(Metadata::from_object(object, &corruption));
    CHECK(corruption.kind == CorruptKind::schema_drift);
    CHECK(corruption.reason ==
          "metadata.json schema drift: missing field `built_at`");
  }
}

TEST_CASE("parse accepts a null corruption pointer") {
  CHECK_FALSE(Metadata::parse("{", nullptr));
  CHECK_FALSE(Metadata::parse("[]", nullptr));
  CHECK(Metadata::parse(k_ktstr_git, nullptr));
}

TEST_CASE("accessors of an unchecked object read wrong types as empty") {
  Metadata metadata(object_of(
      R"({"arch":5,"source":"git","has_vmlinux":"yes","version":1,)"
      R"("kconfig_hash":2,"schema_version":"1","artifacts":[],)"
      R"("source_vmlinux_size":-1,"source_vmlinux_mtime_secs":0.5})"));
  CHECK(metadata.arch() == "");
  CHECK(metadata.image_name() == "");
  CHECK(metadata.source() == nullptr);
  CHECK(metadata.source_type() == "");
  CHECK_FALSE(metadata.has_vmlinux());
  CHECK_FALSE(metadata.version());
  CHECK_FALSE(metadata.kconfig_hash());
  CHECK_FALSE(metadata.schema_version());
  CHECK_FALSE(metadata.has_artifacts());
  CHECK_FALSE(metadata.artifact("image"));
  CHECK_FALSE(metadata.source_vmlinux_size());
  CHECK_FALSE(metadata.source_vmlinux_mtime_secs());
}

TEST_CASE("timestamps are UTC in ktstr's fixed-width format") {
  CHECK(ktc::cache::utc_timestamp(0) == "1970-01-01T00:00:00Z");
  CHECK(ktc::cache::utc_timestamp(1776000000) == "2026-04-12T13:20:00Z");
  CHECK(ktc::cache::utc_timestamp(-1) == "1969-12-31T23:59:59Z");

  std::string before = ktc::cache::utc_timestamp(std::time(nullptr));
  std::string now = ktc::cache::utc_timestamp_now();
  std::string after = ktc::cache::utc_timestamp(std::time(nullptr));
  REQUIRE(now.size() == 20);
  CHECK(before <= now);
  CHECK(now <= after);
  CHECK(now[4] == '-');
  CHECK(now[10] == 'T');
  CHECK(now[13] == ':');
  CHECK(now[19] == 'Z');
}

TEST_SUITE_END();
