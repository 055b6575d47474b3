#include "test_capi_helpers.hpp"

#include <doctest/doctest.h>
#include <ktcache/ktcache.h>

#include <optional>
#include <set>
#include <string>

using namespace ktc::capi_test;
using ktc::test::ScopedEnv;

namespace {

std::string default_root() {
  char* raw = nullptr;
  int status = ktc_default_root(&raw);
  REQUIRE_MESSAGE(status == KTC_OK, error_message());
  REQUIRE(raw != nullptr);
  StringPtr root(raw);
  return root.get();
}

std::string resolve_root(const char* suffix) {
  char* raw = nullptr;
  int status = ktc_resolve_root(suffix, &raw);
  REQUIRE_MESSAGE(status == KTC_OK, error_message());
  StringPtr root(raw);
  return root.get();
}

} // namespace

TEST_SUITE_BEGIN("CApi");

TEST_CASE("the default root follows KTCACHE_DIR, XDG_CACHE_HOME, then HOME") {
  ScopedEnv home("HOME", "/home/tester");
  ScopedEnv xdg("XDG_CACHE_HOME", std::nullopt);
  ScopedEnv dir("KTCACHE_DIR", std::nullopt);

  SUBCASE("HOME") {
    CHECK(default_root() == "/home/tester/.cache/ktcache/kernels");
    CHECK(resolve_root("btf") == "/home/tester/.cache/ktcache/btf");
  }
  SUBCASE("XDG_CACHE_HOME over HOME") {
    ScopedEnv set("XDG_CACHE_HOME", "/xdg");
    CHECK(default_root() == "/xdg/ktcache/kernels");
    CHECK(resolve_root("btf") == "/xdg/ktcache/btf");
  }
  SUBCASE("an empty XDG_CACHE_HOME is unset") {
    ScopedEnv set("XDG_CACHE_HOME", "");
    CHECK(default_root() == "/home/tester/.cache/ktcache/kernels");
  }
  SUBCASE("KTCACHE_DIR verbatim over both, whatever the suffix") {
    ScopedEnv set_xdg("XDG_CACHE_HOME", "/xdg");
    ScopedEnv set("KTCACHE_DIR", "/srv/kernels");
    CHECK(default_root() == "/srv/kernels");
    CHECK(resolve_root("btf") == "/srv/kernels");
  }
  SUBCASE("the environment is read on every call") {
    CHECK(default_root() == "/home/tester/.cache/ktcache/kernels");
    ScopedEnv set("KTCACHE_DIR", "/elsewhere");
    CHECK(default_root() == "/elsewhere");
  }
}

TEST_CASE("each bad HOME is refused with its own message") {
  ScopedEnv xdg("XDG_CACHE_HOME", std::nullopt);
  ScopedEnv dir("KTCACHE_DIR", std::nullopt);
  std::set<std::string> messages;
  const std::optional<std::string> bad_homes[] = {std::nullopt, "", "/",
                                                  "relative/home"};
  for (const auto& value : bad_homes) {
    CAPTURE(value.value_or("<unset>"));
    ScopedEnv home("HOME", value);
    prime_error_message();
    char* root = nullptr;
    CHECK(ktc_default_root(&root) == KTC_E_ENV);
    CHECK(root == nullptr);
    std::string message = error_message();
    CHECK(message.find("HOME") != std::string::npos);
    messages.insert(message);

    CHECK(ktc_resolve_root("btf", &root) == KTC_E_ENV);
    ktc_cache* cache = nullptr;
    CHECK(ktc_cache_open(&cache, nullptr) == KTC_E_ENV);
    CHECK(cache == nullptr);
  }
  CHECK(messages.size() == std::size(bad_homes));
}

TEST_CASE("a root suffix must be one path component") {
  ScopedEnv home("HOME", "/home/tester");
  const char* bad_suffixes[] = {"", "a/b", "..", "."};
  for (const char* suffix : bad_suffixes) {
    CAPTURE(suffix);
    prime_error_message();
    char* root = nullptr;
    CHECK(ktc_resolve_root(suffix, &root) == KTC_E_INVALID);
    CHECK(error_message().find("suffix") != std::string::npos);
    CHECK(root == nullptr);
  }
}

TEST_CASE("ktc_cache_open touches nothing on disk") {
  ktc::test::TempDir dir;
  std::string root = dir / "not-yet";
  CachePtr cache = open_cache(root);
  CHECK(std::string(ktc_cache_root(cache.get())) == root);
  CHECK(!ktc::test::exists(root));
}

TEST_SUITE_END();
