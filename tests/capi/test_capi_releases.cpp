// ktc_releases() and ktc_range_expand() through the public header: their
// arguments and flags, and the copy on disk read without any network (the
// fetch itself is tested through the CLI in tests/build/test_releases.py).

#include "test_capi_helpers.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <doctest/doctest.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>

using namespace ktc::capi_test;

namespace {

constexpr const char* k_url = "http://127.0.0.1:9/releases.json";

// Sets (or, with nullopt, unsets) an environment variable for a scope.
class ScopedEnv {
public:
  ScopedEnv(const char* name, std::optional<std::string> value) : m_name(name) {
    if (const char* old = std::getenv(name)) {
      m_old = old;
    }
    if (value) {
      ::setenv(name, value->c_str(), 1);
    } else {
      ::unsetenv(name);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    if (m_old) {
      ::setenv(m_name, m_old->c_str(), 1);
    } else {
      ::unsetenv(m_name);
    }
  }

private:
  const char* m_name;
  std::optional<std::string> m_old;
};

// What every case here runs under: a URL of its own, no plugin directory
// from the caller, online unless a case says otherwise.
struct Environment {
  ScopedEnv url{"KTCACHE_RELEASES_URL", std::string(k_url)};
  ScopedEnv path{"KTCACHE_PLUGIN_PATH", std::nullopt};
  ScopedEnv offline{"KTCACHE_OFFLINE", std::nullopt};
  ScopedEnv ttl{"KTCACHE_RELEASES_TTL", std::nullopt};
};

void write_copy(const TestCache& cache, long long fetched_at) {
  std::string text = std::string("{\"url\":\"") + k_url +
                     "\",\"fetched_at\":" + std::to_string(fetched_at) +
                     ",\"releases\":["
                     "{\"moniker\":\"mainline\",\"version\":\"6.14-rc3\"},"
                     "{\"moniker\":\"stable\",\"version\":\"6.13.4\"},"
                     "{\"moniker\":\"longterm\",\"version\":\"6.6.70\"},"
                     "{\"moniker\":\"linux-next\",\"version\":\"6.9.1\"},"
                     "{\"moniker\":\"longterm\",\"version\":\"6.1.120\"}]}";
  std::filesystem::create_directories(cache.root());
  ktc::test::write_file(cache.root() + "/.releases.json", text);
}

boost::json::object parsed(const StringPtr& text) {
  REQUIRE(text != nullptr);
  return boost::json::parse(text.get()).as_object();
}

} // namespace

TEST_CASE("ktc_releases and ktc_range_expand refuse NULL arguments and "
          "unknown flags") {
  Environment environment;
  TestCache cache;
  char* out = nullptr;
  CHECK(ktc_releases(nullptr, cache.get(), 0) == KTC_E_INVALID);
  CHECK(ktc_releases(&out, nullptr, 0) == KTC_E_INVALID);
  CHECK(out == nullptr);
  CHECK(error_message().find("cache") != std::string::npos);
  CHECK(ktc_range_expand(nullptr, cache.get(), "6.1..6.2", 0) == KTC_E_INVALID);
  CHECK(ktc_range_expand(&out, nullptr, "6.1..6.2", 0) == KTC_E_INVALID);
  CHECK(ktc_range_expand(&out, cache.get(), nullptr, 0) == KTC_E_INVALID);
  CHECK(error_message().find("range") != std::string::npos);
  CHECK(out == nullptr);

  CHECK(ktc_releases(&out, cache.get(), 1u << 5) == KTC_E_INVALID);
  CHECK(error_message().find("unknown bits 0x20") != std::string::npos);
  CHECK(ktc_range_expand(&out, cache.get(), "6.1..6.2", 1u << 5) ==
        KTC_E_INVALID);
  CHECK(ktc_releases(&out, cache.get(),
                     KTC_RELEASES_REFRESH | KTC_RELEASES_NO_FETCH) ==
        KTC_E_INVALID);
  CHECK(error_message().find("exclude each other") != std::string::npos);
  CHECK(out == nullptr);
}

TEST_CASE("ktc_releases without a copy: not found with NO_FETCH, network "
          "offline, plugin without a tarball plugin") {
  Environment environment;
  TestCache cache;
  char* out = nullptr;
  CHECK(ktc_releases(&out, cache.get(), KTC_RELEASES_NO_FETCH) ==
        KTC_E_NOTFOUND);
  CHECK(error_message().find(".releases.json") != std::string::npos);
  CHECK(out == nullptr);
  CHECK(ktc_range_expand(&out, cache.get(), "6.1..6.2",
                         KTC_RELEASES_NO_FETCH) == KTC_E_NOTFOUND);
  CHECK(out == nullptr);
  // No plugin directory is searched here: no tarball plugin to fetch with.
  CHECK(ktc_releases(&out, cache.get(), 0) == KTC_E_PLUGIN);
  CHECK(out == nullptr);

  ktc_open_options options = KTC_OPEN_OPTIONS_INIT;
  options.flags = KTC_OPEN_OFFLINE;
  CachePtr offline = open_cache(cache.root(), options);
  CHECK(ktc_releases(&out, offline.get(), 0) == KTC_E_NETWORK);
  CHECK(error_message().find("ktcache is offline") != std::string::npos);
  CHECK(out == nullptr);
  {
    ScopedEnv env("KTCACHE_OFFLINE", std::string("1"));
    CachePtr from_env = open_cache(cache.root());
    CHECK(ktc_releases(&out, from_env.get(), 0) == KTC_E_NETWORK);
  }
  {
    // Only "1" is on.
    ScopedEnv env("KTCACHE_OFFLINE", std::string("true"));
    CachePtr not_offline = open_cache(cache.root());
    CHECK(ktc_releases(&out, not_offline.get(), 0) == KTC_E_PLUGIN);
  }
  CHECK(!ktc::test::exists(cache.root() + "/.releases.json"));
}

TEST_CASE("ktc_releases reads a fresh copy and names the active series") {
  Environment environment;
  TestCache cache;
  write_copy(cache, static_cast<long long>(std::time(nullptr)) - 10);
  for (uint32_t flags : {0u, uint32_t{KTC_RELEASES_NO_FETCH}}) {
    char* raw = nullptr;
    REQUIRE_MESSAGE(ktc_releases(&raw, cache.get(), flags) == KTC_OK,
                    error_message());
    StringPtr text(raw);
    auto list = parsed(text);
    CHECK(list.at("from").as_string() == "disk");
    CHECK(list.at("fresh").as_bool());
    CHECK(list.at("url").as_string() == k_url);
    CHECK(list.at("ttl_seconds").as_int64() == 86400);
    CHECK(list.at("age_seconds").as_int64() >= 10);
    CHECK(list.at("releases").as_array().size() == 5);
    CHECK(boost::json::serialize(list.at("active_series")) ==
          R"(["6.14","6.13","6.6","6.1"])");
  }
}

TEST_CASE("a stale copy is used only when nothing may be fetched") {
  Environment environment;
  TestCache cache;
  write_copy(cache, 1000);
  char* raw = nullptr;
  REQUIRE(ktc_releases(&raw, cache.get(), KTC_RELEASES_NO_FETCH) == KTC_OK);
  StringPtr text(raw);
  CHECK_FALSE(parsed(text).at("fresh").as_bool());
  // Stale, and no plugin to fetch with: the stale copy, with a warning.
  raw = nullptr;
  REQUIRE(ktc_releases(&raw, cache.get(), 0) == KTC_OK);
  StringPtr fallback(raw);
  CHECK(parsed(fallback).at("from").as_string() == "disk");
  // Another URL makes a fresh copy stale.
  write_copy(cache, static_cast<long long>(std::time(nullptr)));
  ScopedEnv other("KTCACHE_RELEASES_URL",
                  std::string("http://127.0.0.1:9/other.json"));
  raw = nullptr;
  REQUIRE(ktc_releases(&raw, cache.get(), KTC_RELEASES_NO_FETCH) == KTC_OK);
  StringPtr moved(raw);
  CHECK_FALSE(parsed(moved).at("fresh").as_bool());
}

TEST_CASE("ktc_range_expand from the copy") {
  Environment environment;
  TestCache cache;
  write_copy(cache, static_cast<long long>(std::time(nullptr)));
  auto expand = [&](const char* range, int expected) -> std::string {
    char* raw = nullptr;
    int status =
        ktc_range_expand(&raw, cache.get(), range, KTC_RELEASES_NO_FETCH);
    StringPtr text(raw);
    REQUIRE_MESSAGE(status == expected, range, ": ", error_message());
    if (status != KTC_OK) {
      CHECK(raw == nullptr);
      return error_message();
    }
    return boost::json::serialize(parsed(text));
  };
  CHECK(expand("6.1..6.14", KTC_OK) ==
        R"({"range":"6.1..6.14","start":"6.1","end":"6.14",)"
        R"("versions":["6.1.120","6.6.70","6.13.4"]})");
  CHECK(expand("6.6.70..6.13.4-rc1", KTC_OK).find(R"(["6.6.70"])") !=
        std::string::npos);
  CHECK(expand("6.7..6.12", KTC_E_NOTFOUND)
            .find("range 6.7..6.12: no stable or longterm release") !=
        std::string::npos);
  CHECK(expand("6.12", KTC_E_INVALID).find("is not a range") !=
        std::string::npos);
  CHECK(expand("6.14..6.12", KTC_E_INVALID).find("after the end") !=
        std::string::npos);
  CHECK(expand("6.12..", KTC_E_INVALID).find("6.12..") != std::string::npos);
}
