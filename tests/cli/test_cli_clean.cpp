#include "test_cli_fixture.hpp"

#include <doctest/doctest.h>

#include <map>

using namespace ktc::test;
using namespace ktc::test::cli;

namespace {

// Three valid entries (newest first: new, mid, old) and one corrupt one.
void fill(const CliFixture& cache) {
  cache.write_ktstr_entry("old", "2024-01-01T00:00:00Z");
  cache.write_ktstr_entry("new", "2026-01-01T00:00:00Z");
  cache.write_ktstr_entry("mid", "2025-01-01T00:00:00Z");
  cache.write_corrupt_entry("broken", "{\"truncated\": ");
}

std::vector<std::string> entries(const CliFixture& cache) {
  std::vector<std::string> names;
  for (const auto& name : list_dir(cache.root())) {
    if (name[0] != '.') {
      names.push_back(name);
    }
  }
  return names;
}

} // namespace

TEST_SUITE_BEGIN("Cli");

TEST_CASE("clean --keep 1 keeps only the newest valid entry") {
  CliFixture cache;
  fill(cache);
  ProcessResult result = cache.run({"clean", "--keep", "1"});
  CHECK(result.exit_code == 0);
  CHECK(entries(cache) == std::vector<std::string>{"new"});
  CHECK(contains(result.out, "removed old ("));
  CHECK(contains(result.out, "removed mid ("));
  CHECK(contains(result.out, "removed broken ("));
  CHECK_FALSE(contains(result.out, "removed new"));
  CHECK(contains(result.out, "removed 3 entries, freed "));
}

TEST_CASE("clean --corrupt-only removes corrupt entries only") {
  CliFixture cache;
  fill(cache);
  ProcessResult result = cache.run({"clean", "--corrupt-only"});
  CHECK(result.exit_code == 0);
  CHECK(entries(cache) == std::vector<std::string>{"mid", "new", "old"});
  CHECK(contains(result.out, "removed broken ("));
  CHECK(contains(result.out, "removed 1 entry, freed "));

  ProcessResult again = cache.run({"clean", "--corrupt-only"});
  CHECK(again.exit_code == 0);
  CHECK(again.out == "nothing to clean\n");
}

TEST_CASE("clean --dry-run changes nothing") {
  CliFixture cache;
  fill(cache);
  std::vector<std::string> args;
  SUBCASE("--all") {
    args = {"clean", "--all", "--dry-run"};
  }
  SUBCASE("--keep") {
    args = {"clean", "--dry-run", "--keep", "0"};
  }
  SUBCASE("KEY") {
    args = {"clean", "--dry-run", "old", "new"};
  }
  ProcessResult result = cache.run(args);
  CHECK(result.exit_code == 0);
  CHECK(contains(result.out, "would remove old"));
  CHECK(contains(result.out, "would remove new"));
  CHECK(contains(result.out, "would remove "));
  CHECK_FALSE(contains(result.out, "removed"));
  CHECK(entries(cache) ==
        std::vector<std::string>{"broken", "mid", "new", "old"});
}

TEST_CASE("clean KEY removes only the named entries") {
  CliFixture cache;
  fill(cache);
  ProcessResult result = cache.run({"clean", "mid", "broken"});
  CHECK(result.exit_code == 0);
  CHECK(entries(cache) == std::vector<std::string>{"new", "old"});
  CHECK(contains(result.out, "removed mid ("));
  CHECK(contains(result.out, "removed broken ("));

  ProcessResult missing = cache.run({"clean", "absent"});
  CHECK(missing.exit_code == 1);
  CHECK(contains(missing.out, "not found absent\n"));
  CHECK(entries(cache) == std::vector<std::string>{"new", "old"});
}

TEST_CASE("clean --all removes every entry") {
  CliFixture cache;
  fill(cache);
  cache.store("stored");
  ProcessResult result = cache.run({"clean", "--all"});
  CHECK(result.exit_code == 0);
  CHECK(entries(cache).empty());
  CHECK(contains(result.out, "removed 5 entries, freed "));
  // Lock files are never deleted.
  CHECK(exists(cache.lock_path("stored")));
}

TEST_CASE("clean skips an entry whose lock another process holds") {
  CliFixture cache;
  cache.store("held");
  cache.store("free");
  SharedLockHolder holder(cache, "held");

  ProcessResult result = cache.run({"clean", "--all"});
  CHECK(result.exit_code == 5);
  CHECK(exists(cache.entry_dir("held")));
  CHECK_FALSE(exists(cache.entry_dir("free")));
  CHECK(contains(result.out, "skipped held: in use"));
  CHECK(contains(result.out, "removed free ("));
  CHECK(contains(result.out, "1 skipped (in use)"));

  ProcessResult json = cache.run({"clean", "--all", "--json"});
  CHECK(json.exit_code == 5);
  boost::json::array items = parse_json(json.out).as_array();
  REQUIRE(items.size() == 1);
  CHECK(items[0].at("key") == "held");
  CHECK(items[0].at("action") == "skipped_in_use");
}

TEST_CASE("clean --json reports each item") {
  CliFixture cache;
  fill(cache);
  ProcessResult result = cache.run({"clean", "--json", "--keep", "2"});
  CHECK(result.exit_code == 0);
  boost::json::array items = parse_json(result.out).as_array();
  REQUIRE(items.size() == 2);
  std::map<std::string, boost::json::object> by_key;
  for (const auto& item : items) {
    by_key[std::string(item.at("key").as_string())] = item.as_object();
  }
  REQUIRE(by_key.count("old") == 1);
  REQUIRE(by_key.count("broken") == 1);
  CHECK(by_key["old"].at("action") == "removed");
  CHECK(by_key["old"].at("corrupt") == false);
  CHECK(by_key["old"].at("bytes").to_number<uint64_t>() > 2048);
  CHECK(by_key["old"].at("message").is_null());
  CHECK(by_key["broken"].at("corrupt") == true);
}

TEST_CASE("clean needs exactly one selector") {
  CliFixture cache;
  fill(cache);
  std::vector<std::string> args;
  SUBCASE("no selector") {
    args = {"clean"};
  }
  SUBCASE("only --dry-run") {
    args = {"clean", "--dry-run"};
  }
  SUBCASE("--keep with --corrupt-only") {
    args = {"clean", "--keep", "1", "--corrupt-only"};
  }
  SUBCASE("--keep with --all") {
    args = {"clean", "--keep", "1", "--all"};
  }
  SUBCASE("--all with --corrupt-only") {
    args = {"clean", "--all", "--corrupt-only"};
  }
  SUBCASE("--all with a key") {
    args = {"clean", "--all", "old"};
  }
  SUBCASE("--keep that is not a number") {
    args = {"clean", "--keep", "many"};
  }
  ProcessResult result = cache.run(args);
  CHECK(result.exit_code == 2);
  CHECK(result.out.empty());
  CHECK(split_lines(result.err).size() == 1);
  CHECK(result.err.rfind("ktcache: ", 0) == 0);
  CHECK(entries(cache) ==
        std::vector<std::string>{"broken", "mid", "new", "old"});
}

TEST_CASE("clean without a selector explains the choices") {
  CliFixture cache;
  ProcessResult result = cache.run({"clean"});
  CHECK(result.exit_code == 2);
  for (const char* choice : {"--keep N", "--corrupt-only", "--all", "KEY"}) {
    CHECK(contains(result.err, choice));
  }
}

TEST_SUITE_END();
