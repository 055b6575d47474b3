#include "test_cli_fixture.hpp"

#include <doctest/doctest.h>

#include <map>

using namespace ktc::test;
using namespace ktc::test::cli;

TEST_SUITE_BEGIN("Cli");

TEST_CASE("list of an empty cache says so and names the root on stderr") {
  CliFixture cache;
  ProcessResult result = cache.run({"list"});
  CHECK(result.exit_code == 0);
  CHECK(result.out == "no cached kernels\n");
  CHECK(contains(result.err, "cache: " + cache.root() + "\n"));
  CHECK_FALSE(exists(cache.root()));

  ProcessResult json = cache.run({"list", "--json"});
  CHECK(json.exit_code == 0);
  CHECK(parse_json(json.out) == boost::json::array());
}

TEST_CASE("list shows stored entries as a table and as JSON") {
  CliFixture cache;
  cache.store("first-key", {"--version", "6.14.2", "--arch", "x86_64",
                            "--source-json", R"({"type":"tarball"})"});
  cache.store("second-key", {"--arch", "aarch64"});

  ProcessResult table = cache.run({"list"});
  REQUIRE(table.exit_code == 0);
  std::vector<std::string> lines = split_lines(table.out);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].rfind("KEY", 0) == 0);
  for (const char* column : {"VERSION", "SOURCE", "ARCH", "BUILT", "SIZE"}) {
    CHECK(contains(lines[0], column));
  }
  std::string first_row = contains(lines[1], "first-key") ? lines[1] : lines[2];
  std::string second_row =
      contains(lines[1], "second-key") ? lines[1] : lines[2];
  CHECK(contains(first_row, "6.14.2"));
  CHECK(contains(first_row, "tarball"));
  CHECK(contains(first_row, "x86_64"));
  CHECK(contains(first_row, " kB"));
  // No version recorded: shown as '-'; the default source is local.
  CHECK(contains(second_row, " - "));
  CHECK(contains(second_row, "local"));
  CHECK(contains(second_row, "aarch64"));
  CHECK_FALSE(contains(table.out, "kconfig"));
  CHECK(contains(table.err, "cache: " + cache.root()));

  ProcessResult json = cache.run({"list", "--json"});
  REQUIRE(json.exit_code == 0);
  boost::json::array entries = parse_json(json.out).as_array();
  REQUIRE(entries.size() == 2);
  for (const auto& entry : entries) {
    CHECK(entry.at("status") == "valid");
    CHECK(entry.at("path") ==
          boost::json::value(cache.root() + "/" +
                             std::string(entry.at("key").as_string())));
    CHECK(entry.at("image_path").is_string());
    CHECK(entry.at("metadata").is_object());
    CHECK(
        (entry.at("last_used").is_null() || entry.at("last_used").is_number()));
    CHECK(entry.at("kconfig_status") == "untracked");
  }
}

TEST_CASE("an entry written by ktstr lists as valid") {
  CliFixture cache;
  cache.write_ktstr_entry("6.14.2-tarball-x86_64-kc1a2b3c4d",
                          "2026-04-12T10:00:00Z", "\"1a2b3c4d\"");

  ProcessResult table = cache.run({"list"});
  REQUIRE(table.exit_code == 0);
  CHECK(contains(table.out, "6.14.2-tarball-x86_64-kc1a2b3c4d"));
  CHECK(contains(table.out, "2026-04-12T10:00:00Z"));
  CHECK(contains(table.out, "tarball"));
  CHECK_FALSE(contains(table.out, "corrupt"));

  ProcessResult json = cache.run({"list", "--json"});
  REQUIRE(json.exit_code == 0);
  boost::json::array entries = parse_json(json.out).as_array();
  REQUIRE(entries.size() == 1);
  const auto& entry = entries[0];
  CHECK(entry.at("status") == "valid");
  CHECK(entry.at("metadata").at("ktstr_kconfig_hash") == "1a2b3c4d");
  CHECK(entry.at("metadata").at("config_hash") == "0c1d2e3f");
  CHECK(entry.at("vmlinux_path").is_null());
  CHECK(entry.at("kconfig_status") == "unchecked");
}

TEST_CASE("--kconfig-hash tags stale and untracked entries") {
  CliFixture cache;
  cache.write_ktstr_entry("matching", "2026-04-12T10:00:03Z", "\"aaaa\"");
  cache.write_ktstr_entry("stale", "2026-04-12T10:00:02Z", "\"bbbb\"");
  cache.write_ktstr_entry("untracked", "2026-04-12T10:00:01Z", "null");

  ProcessResult table = cache.run({"list", "--kconfig-hash", "aaaa"});
  REQUIRE(table.exit_code == 0);
  std::vector<std::string> lines = split_lines(table.out);
  REQUIRE(lines.size() == 4);
  CHECK(contains(lines[1], "matching"));
  CHECK_FALSE(contains(lines[1], "kconfig"));
  CHECK(contains(lines[2], "stale"));
  CHECK(contains(lines[2], "(stale kconfig)"));
  CHECK(contains(lines[3], "(untracked kconfig)"));
  CHECK(contains(table.err, "stale kconfig:"));
  CHECK(contains(table.err, "untracked kconfig:"));

  ProcessResult json = cache.run({"list", "--kconfig-hash", "aaaa", "--json"});
  REQUIRE(json.exit_code == 0);
  boost::json::array entries = parse_json(json.out).as_array();
  REQUIRE(entries.size() == 3);
  CHECK(entries[0].at("kconfig_status") == "matches");
  CHECK(entries[1].at("kconfig_status") == "stale");
  CHECK(entries[2].at("kconfig_status") == "untracked");
}

TEST_CASE("valid entries list newest first and corrupt entries last") {
  CliFixture cache;
  cache.write_corrupt_entry("no-metadata");
  cache.write_corrupt_entry("malformed", "this is not json");
  cache.write_ktstr_entry("older", "2025-01-01T00:00:00Z");
  cache.write_ktstr_entry("newer", "2026-01-01T00:00:00Z");

  ProcessResult table = cache.run({"list"});
  REQUIRE(table.exit_code == 0);
  std::vector<std::string> lines = split_lines(table.out);
  REQUIRE(lines.size() == 5);
  CHECK(lines[1].rfind("newer ", 0) == 0);
  CHECK(lines[2].rfind("older ", 0) == 0);
  for (size_t i = 3; i < 5; ++i) {
    CHECK(contains(lines[i], "(corrupt: metadata.json"));
  }
  CHECK(contains(table.out, "(corrupt: metadata.json missing)"));
  CHECK(contains(table.err, "2 entries corrupt"));
  CHECK(contains(table.err, "ktcache --cache-dir " + cache.root() +
                                " clean --corrupt-only"));

  ProcessResult json = cache.run({"list", "--json"});
  REQUIRE(json.exit_code == 0);
  boost::json::array entries = parse_json(json.out).as_array();
  REQUIRE(entries.size() == 4);
  CHECK(entries[0].at("key") == "newer");
  CHECK(entries[1].at("key") == "older");
  std::map<std::string, std::string> kinds;
  for (size_t i = 2; i < 4; ++i) {
    CHECK(entries[i].at("status") == "corrupt");
    CHECK(entries[i].at("reason").is_string());
    CHECK_FALSE(entries[i].as_object().contains("metadata"));
    kinds[std::string(entries[i].at("key").as_string())] =
        entries[i].at("error_kind").as_string();
  }
  CHECK(kinds["no-metadata"] == "missing");
  CHECK(kinds["malformed"] == "malformed");
}

TEST_CASE("list skips dot directories and stray files in the root") {
  CliFixture cache;
  cache.write_ktstr_entry("real", "2026-01-01T00:00:00Z");
  CliFixture::make_dirs(cache.root() + "/.tmp-real-abc-1");
  write_file(cache.root() + "/stray-file", "x");
  ProcessResult json = cache.run({"list", "--json"});
  REQUIRE(json.exit_code == 0);
  boost::json::array entries = parse_json(json.out).as_array();
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].at("key") == "real");
}

TEST_SUITE_END();
