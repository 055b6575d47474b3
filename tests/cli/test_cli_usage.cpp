#include "test_cli_fixture.hpp"

#include <doctest/doctest.h>

#include <cstdio>

using namespace ktc::test;
using namespace ktc::test::cli;

TEST_SUITE_BEGIN("Cli");

TEST_CASE("--help documents the commands, exit codes and JSON output") {
  CliFixture cache;
  ProcessResult result = cache.run({"--help"});
  CHECK(result.exit_code == 0);
  for (const char* text :
       {"Exit codes:", "1  not found", "2  usage", "3  integrity",
        "4  unverifiable", "5  busy", "6  environment", "--json", "list",
        "lookup", "store", "clean", "verify", "locks", "KTCACHE_DIR"}) {
    CHECK_MESSAGE(contains(result.out, text), "missing: ", text);
  }
}

TEST_CASE("each command's --help describes its JSON shape") {
  CliFixture cache;
  std::string command;
  std::string field;
  SUBCASE("list") {
    command = "list";
    field = "kconfig_status";
  }
  SUBCASE("lookup") {
    command = "lookup";
    field = "error_kind";
  }
  SUBCASE("clean") {
    command = "clean";
    field = "would_remove";
  }
  SUBCASE("verify") {
    command = "verify";
    field = "unverifiable";
  }
  SUBCASE("locks") {
    command = "locks";
    field = "exclusive";
  }
  ProcessResult result = cache.run({command, "--help"});
  CHECK(result.exit_code == 0);
  CHECK(contains(result.out, "--json"));
  CHECK(contains(result.out, field));
}

TEST_CASE("--version prints the library version") {
  CliFixture cache;
  ProcessResult result = cache.run({"--version"});
  CHECK(result.exit_code == 0);
  std::vector<std::string> lines = split_lines(result.out);
  REQUIRE(lines.size() == 1);
  int major = -1, minor = -1, patch = -1;
  CHECK(std::sscanf(lines[0].c_str(), "%d.%d.%d", &major, &minor, &patch) == 3);
  CHECK(lines[0] == fmt::format("{}.{}.{}", major, minor, patch));
}

TEST_CASE("usage errors exit 2 with one line on stderr") {
  CliFixture cache;
  std::vector<std::string> args;
  SUBCASE("no command") {
    args = {};
  }
  SUBCASE("unknown command") {
    args = {"frobnicate"};
  }
  SUBCASE("unknown option") {
    args = {"list", "--frobnicate"};
  }
  SUBCASE("lookup without a key") {
    args = {"lookup"};
  }
  SUBCASE("store without --image") {
    args = {"store", "k"};
  }
  SUBCASE("-q with -v") {
    args = {"-q", "-v", "list"};
  }
  SUBCASE("--cache-dir without a value") {
    args = {"list", "--cache-dir"};
  }
  ProcessResult result = cache.run(args);
  CHECK(result.exit_code == 2);
  CHECK(result.out.empty());
  REQUIRE(split_lines(result.err).size() == 1);
  CHECK(result.err.rfind("ktcache: ", 0) == 0);
  CHECK_FALSE(exists(cache.root()));
}

TEST_CASE("global options are accepted after the command") {
  CliFixture cache;
  cache.store("k");
  ProcessResult result =
      cache.run_env({"lookup", "k", "-q", "--cache-dir", cache.root()});
  CHECK(result.exit_code == 0);
  CHECK(result.out == cache.entry_dir("k") + "\n");
}

TEST_CASE("log lines carry the ktcache prefix and the level") {
  CliFixture cache;
  std::string image = cache.input("bzImage");
  write_file(image, random_bytes(1000, 3));
  ProcessResult result = cache.run({"-vvv", "store", "k", "--image", image});
  REQUIRE(result.exit_code == 0);
  for (const auto& line : split_lines(result.err)) {
    bool levelled = false;
    for (const char* level : {"error", "warn", "info", "debug", "trace"}) {
      levelled |= line.rfind(fmt::format("ktcache: {}: ", level), 0) == 0;
    }
    CHECK_MESSAGE(levelled, "unexpected stderr line: ", line);
  }
  ProcessResult quiet = cache.run({"-q", "lookup", "k"});
  CHECK(quiet.exit_code == 0);
  CHECK(quiet.err.empty());
}

TEST_CASE("-v raises the log level from warnings to info") {
  CliFixture cache;
  std::string image = cache.input("bzImage");
  write_file(image, random_bytes(1000, 4));
  ProcessResult plain = cache.run({"store", "a", "--image", image});
  REQUIRE(plain.exit_code == 0);
  CHECK_FALSE(contains(plain.err, "ktcache: info: "));
  ProcessResult verbose = cache.run({"-v", "store", "b", "--image", image});
  REQUIRE(verbose.exit_code == 0);
  CHECK(contains(verbose.err, "ktcache: info: "));
  CHECK_FALSE(contains(verbose.err, "ktcache: debug: "));
}

TEST_CASE("an unknown command is named in the usage error") {
  CliFixture cache;
  ProcessResult result = cache.run({"frobnicate"});
  CHECK(result.exit_code == 2);
  CHECK(contains(result.err, "unknown command \"frobnicate\""));
  CHECK(contains(result.err, "list, lookup, store, clean, verify, locks, "
                             "plugins, source, strip, kconfig and btf"));
}

TEST_CASE("a relative --cache-dir is made absolute") {
  CliFixture cache;
  std::string image = cache.input("bzImage");
  write_file(image, "image");
  std::string parent = cache.root().substr(0, cache.root().rfind('/'));
  ProcessResult result = run_process(
      {"sh", "-c",
       fmt::format("cd '{}' && exec '{}' --cache-dir cache/ store k --image "
                   "'{}'",
                   parent, env_path("KTCACHE_CLI"), image)});
  REQUIRE_MESSAGE(result.exit_code == 0, result.err);
  CHECK(result.out == cache.entry_dir("k") + "\n");
}

TEST_CASE("exit codes follow the documented table") {
  CliFixture cache;
  SUBCASE("0: success") {
    CHECK(cache.run({"list"}).exit_code == 0);
  }
  SUBCASE("1: not found") {
    CHECK(cache.run({"lookup", "absent"}).exit_code == 1);
  }
  SUBCASE("2: invalid input") {
    CHECK(cache.run({"lookup", "a/b"}).exit_code == 2);
  }
  SUBCASE("3: integrity failure") {
    std::string entry = cache.store("k", {"--image-name", "bzImage"});
    write_file(entry + "/bzImage", "tampered");
    CHECK(cache.run({"verify", "k"}).exit_code == 3);
  }
  SUBCASE("4: unverifiable") {
    cache.write_ktstr_entry("k", "2026-01-01T00:00:00Z");
    CHECK(cache.run({"verify", "k"}).exit_code == 4);
  }
  SUBCASE("5: busy") {
    cache.store("k");
    SharedLockHolder holder(cache, "k");
    CHECK(cache.run({"clean", "k"}).exit_code == 5);
  }
  SUBCASE("6: environment") {
    ProcessOptions options;
    options.env["KTCACHE_DIR"] = std::nullopt;
    options.env["XDG_CACHE_HOME"] = std::nullopt;
    options.env["HOME"] = "relative/home";
    ProcessResult result =
        run_process({env_path("KTCACHE_CLI"), "list"}, options);
    CHECK(result.exit_code == 6);
    CHECK(split_lines(result.err).size() == 1);
    CHECK(contains(result.err, "HOME"));
  }
}

TEST_SUITE_END();
