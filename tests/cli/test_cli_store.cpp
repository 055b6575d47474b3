#include "test_cli_fixture.hpp"

#include <doctest/doctest.h>

using namespace ktc::test;
using namespace ktc::test::cli;

TEST_SUITE_BEGIN("Cli");

TEST_CASE("store prints the entry directory and lookup finds it") {
  CliFixture cache;
  std::string image = cache.input("bzImage");
  write_file(image, random_bytes(10000, 1));
  std::string config = cache.input("dot-config");
  write_file(config, "CONFIG_HZ=1000\n");

  ProcessResult stored = cache.run(
      {"store", "6.14.2-tarball-x86_64-kc1", "--image", image, "--config",
       config, "--arch", "x86_64", "--version", "6.14.2", "--source-json",
       R"({"type":"tarball"})", "--kconfig-hash", "abc123"});
  REQUIRE_MESSAGE(stored.exit_code == 0, stored.err);
  std::string entry = cache.entry_dir("6.14.2-tarball-x86_64-kc1");
  CHECK(stored.out == entry + "\n");
  CHECK(read_file(entry + "/bzImage") == read_file(image));
  CHECK(exists(entry + "/metadata.json"));

  ProcessResult found = cache.run({"lookup", "6.14.2-tarball-x86_64-kc1"});
  CHECK(found.exit_code == 0);
  CHECK(found.out == entry + "\n");

  ProcessResult described =
      cache.run({"lookup", "6.14.2-tarball-x86_64-kc1", "--json"});
  REQUIRE(described.exit_code == 0);
  boost::json::object object = parse_json(described.out).as_object();
  CHECK(object.at("key") == "6.14.2-tarball-x86_64-kc1");
  CHECK(object.at("path") == boost::json::value(entry));
  CHECK(object.at("status") == "valid");
  CHECK(object.at("image_path") == boost::json::value(entry + "/bzImage"));
  CHECK(object.at("vmlinux_path").is_null());
  CHECK(object.at("config_path").is_string());
  CHECK(object.at("kconfig_status") == "unchecked");
  const auto& metadata = object.at("metadata").as_object();
  CHECK(metadata.at("version") == "6.14.2");
  CHECK(metadata.at("arch") == "x86_64");
  CHECK(metadata.at("image_name") == "bzImage");
  CHECK(metadata.at("source").at("type") == "tarball");
  CHECK(metadata.at("kconfig_hash") == "abc123");
}

TEST_CASE("store --json describes the new entry") {
  CliFixture cache;
  std::string image = cache.input("Image");
  write_file(image, random_bytes(3000, 2));
  ProcessResult stored =
      cache.run({"store", "k", "--image", image, "--arch", "aarch64",
                 "--metadata-json", R"({"note":"kept"})", "--json"});
  REQUIRE_MESSAGE(stored.exit_code == 0, stored.err);
  boost::json::object object = parse_json(stored.out).as_object();
  CHECK(object.at("key") == "k");
  CHECK(object.at("status") == "valid");
  CHECK(object.at("metadata").at("arch") == "aarch64");
  CHECK(object.at("metadata").at("note") == "kept");
  CHECK(object.at("metadata").at("version").is_null());
  CHECK(object.at("kconfig_status") == "untracked");
}

TEST_CASE("store replaces an existing entry") {
  CliFixture cache;
  cache.store("k", {"--version", "6.1"});
  cache.store("k", {"--version", "6.2"});
  ProcessResult described = cache.run({"lookup", "k", "--json"});
  REQUIRE(described.exit_code == 0);
  CHECK(parse_json(described.out).at("metadata").at("version") == "6.2");
  for (const auto& name : list_dir(cache.root())) {
    CHECK_MESSAGE((name == "k" || name == ".locks"), "unexpected ", name);
  }
}

TEST_CASE("lookup of a missing key exits 1 with one line on stderr") {
  CliFixture cache;
  ProcessResult result = cache.run({"lookup", "no-such-key"});
  CHECK(result.exit_code == 1);
  CHECK(result.out.empty());
  CHECK(result.err == "ktcache: no entry for key no-such-key\n");
}

TEST_CASE("lookup --lease returns the entry and leaves it usable") {
  CliFixture cache;
  std::string entry = cache.store("k");
  ProcessResult result = cache.run({"lookup", "k", "--lease"});
  CHECK(result.exit_code == 0);
  CHECK(result.out == entry + "\n");
  // The lease ended with the process, so clean may remove the entry.
  ProcessResult cleaned = cache.run({"clean", "k"});
  CHECK(cleaned.exit_code == 0);
  CHECK_FALSE(exists(entry));
}

TEST_CASE("lookup of a corrupt entry exits 3 with the reason") {
  CliFixture cache;
  cache.write_corrupt_entry("broken", "{\"version\":");
  ProcessResult result = cache.run({"lookup", "broken"});
  CHECK(result.exit_code == 3);
  CHECK(split_lines(result.err).size() == 1);
  CHECK(contains(result.err, "ktcache: "));
  CHECK(contains(result.err, "metadata.json"));
}

TEST_CASE("an invalid key exits 2 with one line and creates nothing") {
  CliFixture cache;
  std::string image = cache.input("bzImage");
  write_file(image, "image");
  std::vector<std::string> args;
  SUBCASE("lookup") {
    args = {"lookup", "../escape"};
  }
  SUBCASE("store") {
    args = {"store", "../escape", "--image", image};
  }
  SUBCASE("store with a colon") {
    args = {"store", "a:b", "--image", image};
  }
  SUBCASE("verify") {
    args = {"verify", "a/b"};
  }
  SUBCASE("clean") {
    args = {"clean", ".hidden"};
  }
  ProcessResult result = cache.run(args);
  CHECK(result.exit_code == 2);
  CHECK(result.out.empty());
  CHECK(split_lines(result.err).size() == 1);
  CHECK(result.err.rfind("ktcache: ", 0) == 0);
  CHECK_FALSE(exists(cache.root()));
}

TEST_CASE("store with a missing image fails and leaves nothing behind") {
  CliFixture cache;
  cache.store("other");
  ProcessResult result =
      cache.run({"store", "k", "--image", cache.input("no-such-image")});
  CHECK(result.exit_code == 2);
  CHECK(split_lines(result.err).size() == 1);
  CHECK(contains(result.err, "no-such-image"));
  CHECK_FALSE(exists(cache.entry_dir("k")));
  for (const auto& name : list_dir(cache.root())) {
    CHECK_MESSAGE(name.rfind(".tmp-", 0) != 0, "leftover ", name);
  }
  CHECK(cache.run({"lookup", "k"}).exit_code == 1);
}

TEST_CASE("store rejects malformed JSON options with exit 2") {
  CliFixture cache;
  std::string image = cache.input("bzImage");
  write_file(image, "image");
  std::vector<std::string> args = {"store", "k", "--image", image};
  SUBCASE("--source-json that is not JSON") {
    args.insert(args.end(), {"--source-json", "{not json"});
  }
  SUBCASE("--metadata-json that is not an object") {
    args.insert(args.end(), {"--metadata-json", "[1,2]"});
  }
  ProcessResult result = cache.run(args);
  CHECK(result.exit_code == 2);
  CHECK(split_lines(result.err).size() == 1);
  CHECK_FALSE(exists(cache.entry_dir("k")));
}

TEST_CASE("KTCACHE_DIR chooses the cache when --cache-dir is absent") {
  CliFixture cache;
  std::string image = cache.input("bzImage");
  write_file(image, "image");
  ProcessResult stored = cache.run_env({"store", "k", "--image", image});
  REQUIRE_MESSAGE(stored.exit_code == 0, stored.err);
  CHECK(stored.out == cache.entry_dir("k") + "\n");
  CHECK(cache.run({"lookup", "k"}).exit_code == 0);
}

TEST_SUITE_END();
