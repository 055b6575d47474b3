#include "test_cli_fixture.hpp"

#include <doctest/doctest.h>

using namespace ktc::test;
using namespace ktc::test::cli;

TEST_SUITE_BEGIN("Cli");

TEST_CASE("locks of a cache without lock files prints (none)") {
  CliFixture cache;
  ProcessResult result = cache.run({"locks"});
  CHECK(result.exit_code == 0);
  CHECK(result.out == "(none)\n");
  CHECK(cache.run({"locks", "--json"}).out == "[]\n");
  CHECK_FALSE(exists(cache.root()));
}

TEST_CASE("locks names the process holding an entry lock") {
  CliFixture cache;
  cache.store("free");
  cache.store("held");
  SharedLockHolder holder(cache, "held");

  ProcessResult json = cache.run({"locks", "--json"});
  REQUIRE(json.exit_code == 0);
  boost::json::array locks = parse_json(json.out).as_array();
  bool saw_free = false;
  bool saw_held = false;
  for (const auto& lock : locks) {
    const auto& holders = lock.at("holders").as_array();
    if (lock.at("name") == "free") {
      saw_free = true;
      CHECK(lock.at("path") == boost::json::value(cache.lock_path("free")));
      CHECK(holders.empty());
    }
    if (lock.at("name") == "held") {
      saw_held = true;
      CHECK(lock.at("path") == boost::json::value(cache.lock_path("held")));
      REQUIRE(holders.size() >= 1);
      CHECK(holders[0].at("pid").to_number<int64_t>() == holder.pid());
      CHECK(holders[0].at("exclusive") == false);
      CHECK(contains(std::string(holders[0].at("cmdline").as_string()),
                     "flock -s"));
    }
  }
  CHECK(saw_free);
  CHECK(saw_held);

  ProcessResult table = cache.run({"locks"});
  REQUIRE(table.exit_code == 0);
  std::vector<std::string> lines = split_lines(table.out);
  REQUIRE(lines.size() >= 3);
  CHECK(lines[0].rfind("NAME", 0) == 0);
  CHECK(contains(lines[0], "PATH"));
  bool saw_row = false;
  for (const auto& line : lines) {
    if (line.rfind("held ", 0) == 0) {
      saw_row = true;
      CHECK(contains(line, cache.lock_path("held")));
      CHECK(contains(
          line, fmt::format("pid={} (shared) cmd=flock -s", holder.pid())));
    }
    if (line.rfind("free ", 0) == 0) {
      CHECK(contains(line, "(none)"));
    }
  }
  CHECK(saw_row);
}

TEST_SUITE_END();
