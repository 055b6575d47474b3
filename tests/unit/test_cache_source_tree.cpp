#include "cache/cache.hpp"
#include "test_util.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>
#include <string>

using ktc::cache::prefer_source_tree;
using ktc::cache::recover_source_tree;
using ktc::test::TempDir;

namespace json = boost::json;

namespace {

constexpr time_t k_vmlinux_mtime = 1'700'000'000;
constexpr size_t k_vmlinux_size = 4321;

// A source tree with a vmlinux of known size and mtime.
std::string make_tree(const TempDir& dir) {
  std::string tree = dir / "linux";
  REQUIRE(::mkdir(tree.c_str(), 0777) == 0);
  ktc::test::write_file(tree + "/vmlinux", std::string(k_vmlinux_size, 'v'));
  struct timespec times[2] = {{k_vmlinux_mtime, 0}, {k_vmlinux_mtime, 0}};
  REQUIRE(::utimensat(AT_FDCWD, (tree + "/vmlinux").c_str(), times, 0) == 0);
  return tree;
}

// Valid metadata for a local build; the caller adjusts fields.
json::object local_metadata(const std::string& tree) {
  return json::object{
      {"version", nullptr},
      {"source", json::object{{"type", "local"},
                              {"source_tree_path", tree},
                              {"git_hash", nullptr}}},
      {"arch", "x86_64"},
      {"image_name", "bzImage"},
      {"config_hash", nullptr},
      {"built_at", "2025-01-01T00:00:00Z"},
      {"ktstr_kconfig_hash", nullptr},
      {"has_vmlinux", true},
      {"vmlinux_stripped", true},
      {"source_vmlinux_size", k_vmlinux_size},
      {"source_vmlinux_mtime_secs", k_vmlinux_mtime},
  };
}

std::string write_entry(const TempDir& dir, const std::string& text) {
  std::string entry = dir / "entry";
  ::mkdir(entry.c_str(), 0777);
  ktc::test::write_file(entry + "/metadata.json", text);
  ktc::test::write_file(entry + "/bzImage", "image");
  return entry;
}

std::string write_entry(const TempDir& dir, const json::object& metadata) {
  return write_entry(dir, json::serialize(metadata));
}

} // namespace

TEST_SUITE_BEGIN("CacheSourceTree");

TEST_CASE("prefer_source_tree returns the tree when its vmlinux is the one "
          "built") {
  TempDir dir;
  std::string tree = make_tree(dir);
  std::string entry = write_entry(dir, local_metadata(tree));
  CHECK(prefer_source_tree(entry) == tree);
}

TEST_CASE("prefer_source_tree ignores sub-second mtime differences") {
  TempDir dir;
  std::string tree = make_tree(dir);
  struct timespec times[2] = {{k_vmlinux_mtime, 999'999'999},
                              {k_vmlinux_mtime, 999'999'999}};
  REQUIRE(::utimensat(AT_FDCWD, (tree + "/vmlinux").c_str(), times, 0) == 0);
  std::string entry = write_entry(dir, local_metadata(tree));
  CHECK(prefer_source_tree(entry) == tree);
}

TEST_CASE("prefer_source_tree accepts a vmlinux from before 1970") {
  TempDir dir;
  std::string tree = make_tree(dir);
  struct timespec times[2] = {{-100, 0}, {-100, 0}};
  REQUIRE(::utimensat(AT_FDCWD, (tree + "/vmlinux").c_str(), times, 0) == 0);
  struct stat st;
  REQUIRE(::stat((tree + "/vmlinux").c_str(), &st) == 0);
  json::object metadata = local_metadata(tree);
  metadata["source_vmlinux_mtime_secs"] =
      static_cast<int64_t>(st.st_mtim.tv_sec);
  std::string entry = write_entry(dir, metadata);
  CHECK(prefer_source_tree(entry) == tree);
}

TEST_CASE("prefer_source_tree keeps the cache entry when the tree is not "
          "provably the build") {
  TempDir dir;
  std::string tree = make_tree(dir);
  json::object metadata = local_metadata(tree);
  std::optional<std::string> text;

  SUBCASE("the tree lacks a vmlinux") {
    REQUIRE(::unlink((tree + "/vmlinux").c_str()) == 0);
  }
  SUBCASE("the tree's vmlinux is a directory") {
    REQUIRE(::unlink((tree + "/vmlinux").c_str()) == 0);
    REQUIRE(::mkdir((tree + "/vmlinux").c_str(), 0777) == 0);
  }
  SUBCASE("the tree is gone") {
    metadata["source"].as_object()["source_tree_path"] = dir / "absent";
  }
  SUBCASE("a tarball source") {
    metadata["source"] = json::object{{"type", "tarball"}};
  }
  SUBCASE("a git source") {
    metadata["source"] =
        json::object{{"type", "git"}, {"git_hash", "abc1234"}, {"ref", "main"}};
  }
  SUBCASE("no metadata") {
    text = "";
  }
  SUBCASE("unparseable metadata") {
    text = "{\"source\": {";
  }
  SUBCASE("metadata that drifted from the schema") {
    metadata.erase("arch");
  }
  SUBCASE("a null tree path") {
    metadata["source"].as_object()["source_tree_path"] = nullptr;
  }
  SUBCASE("no tree path at all") {
    metadata["source"].as_object().erase("source_tree_path");
  }
  SUBCASE("a size mismatch") {
    metadata["source_vmlinux_size"] = k_vmlinux_size + 1;
  }
  SUBCASE("an mtime mismatch") {
    metadata["source_vmlinux_mtime_secs"] = k_vmlinux_mtime - 1;
  }
  SUBCASE("no recorded size") {
    metadata["source_vmlinux_size"] = nullptr;
  }
  SUBCASE("no recorded mtime") {
    metadata.erase("source_vmlinux_mtime_secs");
  }
  std::string entry;
  if (text && text->empty()) {
    entry = dir / "entry";
    REQUIRE(::mkdir(entry.c_str(), 0777) == 0);
  } else if (text) {
    entry = write_entry(dir, *text);
  } else {
    entry = write_entry(dir, metadata);
  }
  CHECK_FALSE(prefer_source_tree(entry).has_value());
}

TEST_CASE("prefer_source_tree works on an entry made by store") {
  TempDir dir;
  std::string tree = make_tree(dir);
  ktc::test::write_file(dir / "bzImage", "image");
  ktc::cache::CacheOptions options;
  options.root = dir / "cache";
  auto cache = ktc::cache::Cache::open(options);
  REQUIRE(cache.ok());
  ktc::cache::StoreRequest request;
  request.image = dir / "bzImage";
  request.source_json = json::serialize(json::object{
      {"type", "local"}, {"source_tree_path", tree}, {"git_hash", "abc1234"}});
  request.metadata_json = json::serialize(
      json::object{{"source_vmlinux_size", k_vmlinux_size},
                   {"source_vmlinux_mtime_secs", k_vmlinux_mtime}});
  auto entry = cache->store("local-abc1234-x86_64-kc00000000", request);
  REQUIRE_MESSAGE(entry.ok(), entry.error().message);
  CHECK(prefer_source_tree(entry->path) == tree);
  CHECK(recover_source_tree(entry->path) == tree);
}

TEST_CASE("recover_source_tree returns a local entry's tree path") {
  TempDir dir;

  SUBCASE("with a path") {
    std::string entry = write_entry(dir, local_metadata("/src/linux"));
    CHECK(recover_source_tree(entry) == "/src/linux");
  }
  SUBCASE("without size, mtime or a vmlinux to check") {
    json::object metadata = local_metadata("/src/linux");
    metadata["source_vmlinux_size"] = nullptr;
    metadata["source_vmlinux_mtime_secs"] = nullptr;
    std::string entry = write_entry(dir, metadata);
    CHECK(recover_source_tree(entry) == "/src/linux");
  }
}

TEST_CASE("recover_source_tree finds nothing without a local tree path") {
  TempDir dir;
  std::string entry;

  SUBCASE("no metadata") {
    entry = dir / "entry";
    REQUIRE(::mkdir(entry.c_str(), 0777) == 0);
  }
  SUBCASE("a missing directory") {
    entry = dir / "absent";
  }
  SUBCASE("a tarball source") {
    json::object metadata = local_metadata("/src/linux");
    metadata["source"] = json::object{{"type", "tarball"}};
    entry = write_entry(dir, metadata);
  }
  SUBCASE("a null path") {
    json::object metadata = local_metadata("/src/linux");
    metadata["source"].as_object()["source_tree_path"] = nullptr;
    entry = write_entry(dir, metadata);
  }
  SUBCASE("malformed metadata") {
    entry = write_entry(dir, "{not json");
  }
  SUBCASE("a path of the wrong type") {
    std::string text = json::serialize(local_metadata("/src/linux"));
    text.replace(text.find("\"/src/linux\""), 12, "42");
    entry = write_entry(dir, text);
  }
  CHECK_FALSE(recover_source_tree(entry).has_value());
}

TEST_SUITE_END();
