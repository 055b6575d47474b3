// ENOSPC injected at each write, fsync and rename a store makes.

#include "robust_cli.hpp"
#include "robust_support.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <string>

namespace {

const std::string k_key = "6.14.2-tarball-x86_64-kcenospc";
// Far more calls of one kind than a store of one image makes.
constexpr int k_max_calls = 30;

// Fails the n-th call of `op` for n = 1, 2, ... until a store gets through
// every call of that kind; returns how many there were.
int check_each_call_fails_cleanly(const std::string& op, bool fallback) {
  ktc::robust::TwoVersions versions;
  const std::string& root = versions.cache.root;
  REQUIRE(ktc::robust::store_with_core(root, k_key, versions.v1) == "");

  int call = 1;
  for (; call <= k_max_calls; ++call) {
    CAPTURE(call);
    ktc::robust::EnvOverrides env{
        {"KTCACHE_TEST_FAULT", op + ":" + std::to_string(call)}};
    if (fallback) {
      env["KTCACHE_TEST_NO_RENAME_EXCHANGE"] = std::string("1");
    }
    auto result =
        versions.cache.run({"store", k_key, "--image", versions.v2}, env);
    if (result.exit_code == 0) {
      break;
    }
    CHECK_MESSAGE(result.exit_code == 6, result.err);
    CHECK_MESSAGE(result.err.find("No space left on device") !=
                      std::string::npos,
                  result.err);
    ktc::robust::check_whole(root, k_key, versions.v1_sha);
    CHECK(ktc::robust::leftovers(root).empty());
  }
  REQUIRE(call <= k_max_calls);
  MESSAGE("a store makes ", call - 1, " ", op, " calls",
          std::string(fallback ? " with the fallback" : ""));
  ktc::robust::check_whole(root, k_key, versions.v2_sha);
  CHECK(ktc::robust::leftovers(root).empty());
  return call - 1;
}

} // namespace

TEST_SUITE_BEGIN("Store");

TEST_CASE("a store failing with ENOSPC at any write, fsync or rename reports "
          "no space and leaves the old entry alone") {
  // Lower bounds: the image and metadata.json are written and fsynced, the
  // temp directory is fsynced, and a replacement takes a rename attempt and
  // a swap (the fallback: the rename attempt and two renames).
  SUBCASE("write") {
    CHECK(check_each_call_fails_cleanly("write", false) >= 2);
  }
  SUBCASE("fsync") {
    CHECK(check_each_call_fails_cleanly("fsync", false) >= 3);
  }
  SUBCASE("rename") {
    CHECK(check_each_call_fails_cleanly("rename", false) >= 2);
  }
  SUBCASE("rename, with the two-rename fallback") {
    CHECK(check_each_call_fails_cleanly("rename", true) >= 3);
  }
}

TEST_SUITE_END();
