// Stores and cleans killed at the core's named crash points.

#include "robust_cli.hpp"
#include "robust_support.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <signal.h>

#include <string>

namespace {

using ktc::robust::check_whole;
using ktc::robust::inspect;
using ktc::robust::leftovers;
using ktc::robust::store_with_core;
using Kind = ktc::robust::KeyState::Kind;

const std::string k_key = "6.14.2-tarball-x86_64-kccrash";
const std::string k_other_key = "6.15.0-tarball-x86_64-kccrash";

using Versions = ktc::robust::TwoVersions;

ktc::robust::EnvOverrides crash_at(const std::string& point, bool fallback) {
  ktc::robust::EnvOverrides env{{"KTCACHE_TEST_CRASH", point}};
  if (fallback) {
    env["KTCACHE_TEST_NO_RENAME_EXCHANGE"] = std::string("1");
  }
  return env;
}

// The next store of any key removes what the dead process left.
void check_swept_by_next_store(const Versions& versions) {
  REQUIRE(store_with_core(versions.cache.root, k_other_key, versions.v1) == "");
  CHECK(leftovers(versions.cache.root).empty());
  CHECK(ktc::robust::corrupt_entries(versions.cache.root).empty());
}

// `expected` is what the key holds right after the crash: "v1", "v2" or
// "" (absent). The sweep keeps a whole entry and puts back an old one that
// a crash left aside.
void check_replace_crash(const std::string& point,
                         bool fallback,
                         const std::string& expected) {
  Versions versions;
  const std::string& root = versions.cache.root;
  REQUIRE(store_with_core(root, k_key, versions.v1) == "");

  auto result = versions.cache.run({"store", k_key, "--image", versions.v2},
                                   crash_at(point, fallback));
  REQUIRE_MESSAGE(result.signal == SIGKILL, "exit ", result.exit_code, ": ",
                  result.err);
  CHECK_FALSE(leftovers(root).empty());
  CHECK(ktc::robust::corrupt_entries(root).empty());
  if (expected.empty()) {
    CHECK(inspect(root, k_key).kind == Kind::absent);
  } else {
    check_whole(root, k_key,
                expected == "v1" ? versions.v1_sha : versions.v2_sha);
  }

  check_swept_by_next_store(versions);
  check_whole(root, k_key,
              expected == "v2" ? versions.v2_sha : versions.v1_sha);
}

} // namespace

TEST_SUITE_BEGIN("Store");

TEST_CASE("a replacing store killed at a crash point leaves a whole entry "
          "and the next store sweeps its leftovers") {
  SUBCASE("mid-copy") {
    check_replace_crash("copy", false, "v1");
  }
  SUBCASE("before the rename") {
    check_replace_crash("before-rename", false, "v1");
  }
  SUBCASE("after the swap") {
    check_replace_crash("after-swap", false, "v2");
  }
  SUBCASE("after the swap, with the two-rename fallback") {
    check_replace_crash("after-swap", true, "v2");
  }
  // The old entry sits under .swap-* and the key is missing until the
  // sweep moves it back.
  SUBCASE("between the fallback's two renames") {
    check_replace_crash("mid-swap", true, "");
  }
}

TEST_CASE("a first store killed at a crash point leaves no visible entry") {
  for (std::string point : {"copy", "before-rename", "after-swap"}) {
    CAPTURE(point);
    Versions versions;
    const std::string& root = versions.cache.root;
    auto result = versions.cache.run({"store", k_key, "--image", versions.v2},
                                     crash_at(point, false));
    auto state = inspect(root, k_key);
    if (point == "after-swap") {
      // A first store publishes with a plain rename and never swaps.
      CHECK_MESSAGE(result.exit_code == 0, result.err);
      CHECK(state.kind == Kind::valid);
      CHECK(state.verified);
      continue;
    }
    REQUIRE_MESSAGE(result.signal == SIGKILL, "exit ", result.exit_code, ": ",
                    result.err);
    CHECK(state.kind == Kind::absent);
    CHECK(ktc::robust::corrupt_entries(root).empty());
    CHECK_FALSE(leftovers(root).empty());
    check_swept_by_next_store(versions);
    CHECK(inspect(root, k_key).kind == Kind::absent);
  }
}

TEST_CASE("a clean killed mid-removal leaves entries gone or whole and the "
          "next store sweeps the trash") {
  Versions versions;
  const std::string& root = versions.cache.root;
  REQUIRE(store_with_core(root, k_key, versions.v1) == "");
  REQUIRE(store_with_core(root, "local-abcdef1-x86_64-kccrash", versions.v2) ==
          "");

  auto result =
      versions.cache.run({"clean", "--all"}, crash_at("mid-clean", false));
  REQUIRE_MESSAGE(result.signal == SIGKILL, "exit ", result.exit_code, ": ",
                  result.err);
  int gone = 0;
  for (const auto& [key, sha] :
       {std::pair{k_key, versions.v1_sha},
        std::pair{std::string("local-abcdef1-x86_64-kccrash"),
                  versions.v2_sha}}) {
    CAPTURE(key);
    auto state = inspect(root, key);
    if (state.kind == Kind::absent) {
      ++gone;
    } else {
      check_whole(root, key, sha);
    }
  }
  // The crash point comes after the first entry was moved out of sight.
  CHECK(gone == 1);
  CHECK(ktc::robust::corrupt_entries(root).empty());
  auto trash = leftovers(root);
  REQUIRE(trash.size() == 1);
  CHECK(trash[0].starts_with(".trash-"));

  check_swept_by_next_store(versions);
}

TEST_SUITE_END();
