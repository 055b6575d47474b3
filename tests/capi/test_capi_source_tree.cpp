#include "test_capi_helpers.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <ktcache/ktcache.h>

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>

using namespace ktc::capi_test;
using ktc::test::write_file;

namespace {

std::optional<std::string> prefer(const std::string& entry_dir) {
  char* raw = nullptr;
  int status = ktc_prefer_source_tree(&raw, entry_dir.c_str());
  if (status == KTC_E_NOTFOUND) {
    CHECK(raw == nullptr);
    CHECK(error_message().find(entry_dir) != std::string::npos);
    return std::nullopt;
  }
  REQUIRE_MESSAGE(status == KTC_OK, error_message());
  StringPtr tree(raw);
  return std::string(tree.get());
}

std::optional<std::string> recover(const std::string& entry_dir) {
  char* raw = nullptr;
  int status = ktc_recover_source_tree(&raw, entry_dir.c_str());
  if (status == KTC_E_NOTFOUND) {
    CHECK(raw == nullptr);
    return std::nullopt;
  }
  REQUIRE_MESSAGE(status == KTC_OK, error_message());
  StringPtr tree(raw);
  return std::string(tree.get());
}

// A local tree with a vmlinux, and an entry that records it.
struct LocalBuild {
  ktc::test::TempDir dir;
  std::string tree = dir / "linux";
  std::string entry = dir / "local-abc1234-x86_64-kc1";
  uint64_t size = 0;
  int64_t mtime = 0;

  LocalBuild() {
    REQUIRE(mkdir(tree.c_str(), 0777) == 0);
    REQUIRE(mkdir(entry.c_str(), 0777) == 0);
    write_file(tree + "/vmlinux", ktc::test::random_bytes(2048, 5));
    struct stat st {};
    REQUIRE(stat((tree + "/vmlinux").c_str(), &st) == 0);
    size = static_cast<uint64_t>(st.st_size);
    mtime = st.st_mtim.tv_sec;
    write_file(entry + "/bzImage", "image");
  }

  void write_metadata(const std::string& source,
                      std::optional<uint64_t> recorded_size,
                      std::optional<int64_t> recorded_mtime) const {
    auto number = [](const auto& value) {
      return value ? fmt::format("{}", *value) : std::string("null");
    };
    write_file(entry + "/metadata.json",
               fmt::format(R"({{"version":null,"source":{},)"
                           R"("arch":"x86_64","image_name":"bzImage",)"
                           R"("built_at":"2026-04-12T10:00:00Z",)"
                           R"("has_vmlinux":false,"vmlinux_stripped":false,)"
                           R"("source_vmlinux_size":{},)"
                           R"("source_vmlinux_mtime_secs":{}}})",
                           source, number(recorded_size),
                           number(recorded_mtime)));
  }

  std::string local_source() const {
    return fmt::format(
        R"({{"type":"local","source_tree_path":"{}","git_hash":"abc1234"}})",
        tree);
  }
};

} // namespace

TEST_SUITE_BEGIN("CApi");

TEST_CASE("the source tree is preferred only when its vmlinux matches") {
  LocalBuild build;

  SUBCASE("same size and mtime") {
    build.write_metadata(build.local_source(), build.size, build.mtime);
    CHECK(prefer(build.entry) == build.tree);
    CHECK(recover(build.entry) == build.tree);
  }
  SUBCASE("a different size") {
    build.write_metadata(build.local_source(), build.size + 1, build.mtime);
    CHECK(prefer(build.entry) == std::nullopt);
    CHECK(recover(build.entry) == build.tree);
  }
  SUBCASE("a different mtime") {
    build.write_metadata(build.local_source(), build.size, build.mtime - 5);
    CHECK(prefer(build.entry) == std::nullopt);
    CHECK(recover(build.entry) == build.tree);
  }
  SUBCASE("no recorded size and mtime") {
    build.write_metadata(build.local_source(), std::nullopt, std::nullopt);
    CHECK(prefer(build.entry) == std::nullopt);
    CHECK(recover(build.entry) == build.tree);
  }
  SUBCASE("a tarball entry") {
    build.write_metadata(R"({"type":"tarball"})", build.size, build.mtime);
    CHECK(prefer(build.entry) == std::nullopt);
    CHECK(recover(build.entry) == std::nullopt);
  }
  SUBCASE("a null tree path") {
    build.write_metadata(
        R"({"type":"local","source_tree_path":null,"git_hash":null})",
        build.size, build.mtime);
    CHECK(prefer(build.entry) == std::nullopt);
    CHECK(recover(build.entry) == std::nullopt);
  }
  SUBCASE("no metadata") {
    CHECK(prefer(build.entry) == std::nullopt);
    CHECK(recover(build.entry) == std::nullopt);
  }
}

TEST_SUITE_END();
