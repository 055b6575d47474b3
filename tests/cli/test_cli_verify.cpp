#include "test_cli_fixture.hpp"

#include <doctest/doctest.h>

using namespace ktc::test;
using namespace ktc::test::cli;

TEST_SUITE_BEGIN("Cli");

TEST_CASE("verify passes intact entries and exits 3 naming a tampered file") {
  CliFixture cache;
  std::string entry = cache.store("k", {"--image-name", "bzImage"});
  cache.store("other");

  ProcessResult intact = cache.run({"verify"});
  CHECK(intact.exit_code == 0);
  CHECK(contains(intact.out, "ok k\n"));
  CHECK(contains(intact.out, "ok other\n"));

  std::string image = read_file(entry + "/bzImage");
  image[100] = static_cast<char>(image[100] ^ 0x01);
  write_file(entry + "/bzImage", image);

  ProcessResult tampered = cache.run({"verify", "k"});
  CHECK(tampered.exit_code == 3);
  REQUIRE(split_lines(tampered.out).size() == 1);
  CHECK(tampered.out.rfind("MISMATCH k: ", 0) == 0);
  CHECK(contains(tampered.out, "bzImage"));

  ProcessResult all = cache.run({"verify"});
  CHECK(all.exit_code == 3);
  CHECK(contains(all.out, "ok other\n"));
}

TEST_CASE("verify of an entry written by ktstr is unverifiable, exit 4") {
  CliFixture cache;
  cache.write_ktstr_entry("from-ktstr", "2026-04-12T10:00:00Z");
  ProcessResult result = cache.run({"verify", "from-ktstr"});
  CHECK(result.exit_code == 4);
  CHECK(result.out.rfind("unverifiable from-ktstr: ", 0) == 0);

  SUBCASE("an ok entry alongside still gives 4") {
    cache.store("mine");
    ProcessResult all = cache.run({"verify"});
    CHECK(all.exit_code == 4);
    CHECK(contains(all.out, "ok mine\n"));
  }
  SUBCASE("a mismatch outranks unverifiable") {
    std::string entry = cache.store("mine", {"--image-name", "bzImage"});
    write_file(entry + "/bzImage", "changed");
    CHECK(cache.run({"verify"}).exit_code == 3);
  }
}

TEST_CASE("verify reports missing and corrupt named entries") {
  CliFixture cache;
  cache.store("present");
  cache.write_corrupt_entry("broken", "{");

  SUBCASE("a missing key exits 1") {
    ProcessResult result = cache.run({"verify", "present", "absent"});
    CHECK(result.exit_code == 1);
    CHECK(contains(result.out, "ok present\n"));
    CHECK(contains(result.out, "missing absent\n"));
  }
  SUBCASE("a corrupt key exits 3") {
    ProcessResult result = cache.run({"verify", "broken"});
    CHECK(result.exit_code == 3);
    CHECK(result.out.rfind("corrupt broken: ", 0) == 0);
  }
  SUBCASE("verify without keys checks valid entries only") {
    ProcessResult result = cache.run({"verify"});
    CHECK(result.exit_code == 0);
    CHECK(result.out == "ok present\n");
  }
}

TEST_CASE("verify --json gives one result per key") {
  CliFixture cache;
  cache.store("good");
  cache.write_ktstr_entry("old", "2020-01-01T00:00:00Z");
  ProcessResult result = cache.run({"verify", "--json", "good", "old", "gone"});
  CHECK(result.exit_code == 1);
  boost::json::array rows = parse_json(result.out).as_array();
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].at("key") == "good");
  CHECK(rows[0].at("result") == "ok");
  CHECK(rows[0].at("message").is_null());
  CHECK(rows[1].at("result") == "unverifiable");
  CHECK(rows[1].at("message").is_string());
  CHECK(rows[2].at("result") == "missing");
}

TEST_CASE("verify of an empty cache succeeds") {
  CliFixture cache;
  ProcessResult result = cache.run({"verify"});
  CHECK(result.exit_code == 0);
  CHECK(result.out.empty());
  CHECK(cache.run({"verify", "--json"}).out == "[]\n");
}

TEST_SUITE_END();
