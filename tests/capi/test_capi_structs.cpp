#include "test_capi_helpers.hpp"

#include <doctest/doctest.h>
#include <ktcache/ktcache.h>

#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>

using namespace ktc::capi_test;

namespace {

// A caller built against a newer header: our struct plus fields we do not
// know yet.
template <typename T>
struct Newer {
  T base;
  uint64_t extra[4];
};

template <typename T>
Newer<T> newer_with_zero_tail(const T& base) {
  Newer<T> newer;
  std::memset(&newer, 0, sizeof(newer));
  newer.base = base;
  newer.base.struct_size = sizeof(Newer<T>);
  return newer;
}

// An output struct followed by guard bytes, all preset to a pattern.
template <typename T>
struct Guarded {
  T value;
  unsigned char guard[32];
};

constexpr unsigned char k_pattern = 0xA5;

template <typename T>
Guarded<T> guarded(uint32_t struct_size) {
  Guarded<T> out;
  std::memset(&out, k_pattern, sizeof(out));
  out.value.struct_size = struct_size;
  return out;
}

template <typename T>
bool untouched_from(const Guarded<T>& out, size_t offset) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(&out);
  for (size_t i = offset; i < sizeof(out); ++i) {
    if (bytes[i] != k_pattern) {
      return false;
    }
  }
  return true;
}

// Checks the output-struct protocol of one getter: `get(T*)` fills the
// struct; `check(const T&)` checks the fields of the first published size.
template <typename T, typename Get, typename Check>
void check_output_struct(size_t first_size, Get get, Check check) {
  SUBCASE("the full size is written and nothing after it") {
    auto out = guarded<T>(sizeof(T));
    REQUIRE_MESSAGE(get(&out.value) == KTC_OK, error_message());
    CHECK(out.value.struct_size == sizeof(T));
    check(out.value);
    CHECK(untouched_from(out, sizeof(T)));
  }
  SUBCASE("the first published size is written and nothing after it") {
    auto out = guarded<T>(static_cast<uint32_t>(first_size));
    REQUIRE_MESSAGE(get(&out.value) == KTC_OK, error_message());
    CHECK(out.value.struct_size == first_size);
    check(out.value);
    CHECK(untouched_from(out, first_size));
  }
  SUBCASE("a newer caller's larger struct keeps its size and its tail") {
    uint32_t size = sizeof(T) + 16;
    auto out = guarded<T>(size);
    REQUIRE_MESSAGE(get(&out.value) == KTC_OK, error_message());
    CHECK(out.value.struct_size == size);
    check(out.value);
    CHECK(untouched_from(out, sizeof(T)));
  }
  SUBCASE("a size below the first published size is refused untouched") {
    auto out = guarded<T>(static_cast<uint32_t>(first_size - 1));
    CHECK(get(&out.value) == KTC_E_INVALID);
    CHECK(error_message().find("struct_size") != std::string::npos);
    CHECK(out.value.struct_size == first_size - 1);
    CHECK(untouched_from(out, sizeof(uint32_t)));
  }
}

} // namespace

TEST_SUITE_BEGIN("CApi");

TEST_CASE("ktc_cache_open follows the struct_size protocol") {
  ktc::test::TempDir dir;
  std::string root = dir / "cache";
  ktc_open_options options = KTC_OPEN_OPTIONS_INIT;
  options.root = root.c_str();
  ktc_cache* raw = nullptr;
  prime_error_message();

  SUBCASE("too small is invalid") {
    options.struct_size = offsetof(ktc_open_options, shared_lock_timeout_ms);
    CHECK(ktc_cache_open(&raw, &options) == KTC_E_INVALID);
    CHECK(error_message().find("ktc_open_options struct_size") !=
          std::string::npos);
    CHECK(raw == nullptr);
  }
  SUBCASE("zero is invalid") {
    options.struct_size = 0;
    CHECK(ktc_cache_open(&raw, &options) == KTC_E_INVALID);
    CHECK(raw == nullptr);
  }
  SUBCASE("larger with a zero tail is accepted") {
    auto newer = newer_with_zero_tail(options);
    REQUIRE_MESSAGE(ktc_cache_open(&raw, &newer.base) == KTC_OK,
                    error_message());
    CachePtr cache(raw);
    CHECK(std::string(ktc_cache_root(cache.get())) == root);
  }
  SUBCASE("larger with a non-zero tail is a version mismatch") {
    auto newer = newer_with_zero_tail(options);
    newer.extra[2] = 1;
    CHECK(ktc_cache_open(&raw, &newer.base) == KTC_E_VERSION);
    CHECK(error_message().find("non-zero byte at offset") != std::string::npos);
    CHECK(raw == nullptr);
  }
  SUBCASE("NULL options are the defaults") {
    ktc::test::ScopedEnv env("KTCACHE_DIR", root);
    REQUIRE_MESSAGE(ktc_cache_open(&raw, nullptr) == KTC_OK, error_message());
    CachePtr cache(raw);
    CHECK(std::string(ktc_cache_root(cache.get())) == root);
  }
}

TEST_CASE("ktc_store follows the struct_size protocol") {
  TestCache cache;
  std::string image = cache.input("bzImage", "image bytes");
  ktc_store_options options = KTC_STORE_OPTIONS_INIT;
  options.image = image.c_str();
  prime_error_message();

  SUBCASE("too small is invalid") {
    options.struct_size = offsetof(ktc_store_options, kconfig_hash);
    CHECK(ktc_store(nullptr, cache.get(), "k", &options) == KTC_E_INVALID);
    CHECK(error_message().find("ktc_store_options struct_size") !=
          std::string::npos);
  }
  SUBCASE("larger with a zero tail is accepted") {
    auto newer = newer_with_zero_tail(options);
    CHECK_MESSAGE(ktc_store(nullptr, cache.get(), "k", &newer.base) == KTC_OK,
                  error_message());
  }
  SUBCASE("larger with a non-zero tail is a version mismatch") {
    auto newer = newer_with_zero_tail(options);
    newer.extra[3] = 0x100;
    CHECK(ktc_store(nullptr, cache.get(), "k", &newer.base) == KTC_E_VERSION);
    ktc_entry* raw = nullptr;
    CHECK(ktc_lookup(&raw, cache.get(), "k", 0) == KTC_E_NOTFOUND);
  }
}

TEST_CASE("ktc_ensure follows the struct_size protocol") {
  TestCache cache;
  ktc_build_options options = KTC_BUILD_OPTIONS_INIT;
  // Accepted options go on to look for this scheme's plugin.
  options.spec = "nosuchscheme:x";
  ktc_entry* entry = nullptr;
  prime_error_message();

  SUBCASE("too small is invalid") {
    options.struct_size = offsetof(ktc_build_options, hooks);
    CHECK(ktc_ensure(&entry, cache.get(), &options, nullptr) == KTC_E_INVALID);
    CHECK(error_message().find("ktc_build_options struct_size") !=
          std::string::npos);
  }
  SUBCASE("larger with a zero tail is accepted") {
    auto newer = newer_with_zero_tail(options);
    CHECK(ktc_ensure(&entry, cache.get(), &newer.base, nullptr) ==
          KTC_E_PLUGIN);
  }
  SUBCASE("larger with a non-zero tail is a version mismatch") {
    auto newer = newer_with_zero_tail(options);
    newer.extra[2] = 1;
    CHECK(ktc_ensure(&entry, cache.get(), &newer.base, nullptr) ==
          KTC_E_VERSION);
  }
  SUBCASE("hooks follow it too") {
    ktc_hooks hooks = KTC_HOOKS_INIT;
    options.hooks = &hooks;
    hooks.struct_size = offsetof(ktc_hooks, cancel_userdata);
    CHECK(ktc_ensure(&entry, cache.get(), &options, nullptr) == KTC_E_INVALID);
    CHECK(error_message().find("ktc_hooks struct_size") != std::string::npos);
    auto newer = newer_with_zero_tail(hooks);
    newer.base.struct_size = sizeof(newer);
    options.hooks = &newer.base;
    CHECK(ktc_ensure(&entry, cache.get(), &options, nullptr) == KTC_E_PLUGIN);
    newer.extra[0] = 7;
    CHECK(ktc_ensure(&entry, cache.get(), &options, nullptr) == KTC_E_VERSION);
  }
  CHECK(entry == nullptr);
}

TEST_CASE("ktc_clean follows the struct_size protocol") {
  TestCache cache;
  cache.require_store("k");
  ktc_clean_options options = KTC_CLEAN_OPTIONS_INIT;
  options.flags = KTC_CLEAN_DRY_RUN;
  ktc_clean_report* raw = nullptr;
  prime_error_message();

  SUBCASE("too small is invalid") {
    options.struct_size = offsetof(ktc_clean_options, key_count);
    CHECK(ktc_clean(&raw, cache.get(), &options) == KTC_E_INVALID);
    CHECK(error_message().find("ktc_clean_options struct_size") !=
          std::string::npos);
    CHECK(raw == nullptr);
  }
  SUBCASE("larger with a zero tail is accepted") {
    auto newer = newer_with_zero_tail(options);
    REQUIRE_MESSAGE(ktc_clean(&raw, cache.get(), &newer.base) == KTC_OK,
                    error_message());
    ReportPtr report(raw);
    CHECK(ktc_clean_report_count(report.get()) == 1);
  }
  SUBCASE("larger with a non-zero tail is a version mismatch") {
    auto newer = newer_with_zero_tail(options);
    newer.extra[0] = 7;
    CHECK(ktc_clean(&raw, cache.get(), &newer.base) == KTC_E_VERSION);
    CHECK(raw == nullptr);
  }
}

TEST_CASE("ktc_entry_get_info writes at most struct_size bytes") {
  TestCache cache;
  cache.require_store("k");
  ktc_entry* raw = nullptr;
  REQUIRE(ktc_lookup(&raw, cache.get(), "k", 0) == KTC_OK);
  EntryPtr entry(raw);
  prime_error_message();

  check_output_struct<ktc_entry_info>(
      offsetof(ktc_entry_info, leased) + sizeof(int32_t),
      [&](ktc_entry_info* info) {
        return ktc_entry_get_info(entry.get(), info);
      },
      [&](const ktc_entry_info& info) {
        CHECK(info.state == KTC_ENTRY_VALID);
        CHECK(text_or_empty(info.key) == "k");
        CHECK(info.metadata_json != nullptr);
        CHECK(info.error_kind == nullptr);
        CHECK(info.leased == 0);
      });
}

TEST_CASE("ktc_clean_report_get writes at most struct_size bytes") {
  TestCache cache;
  cache.require_store("k");
  ktc_clean_options options = KTC_CLEAN_OPTIONS_INIT;
  options.flags = KTC_CLEAN_DRY_RUN;
  ktc_clean_report* raw = nullptr;
  REQUIRE(ktc_clean(&raw, cache.get(), &options) == KTC_OK);
  ReportPtr report(raw);
  REQUIRE(ktc_clean_report_count(report.get()) == 1);
  prime_error_message();

  check_output_struct<ktc_clean_item>(
      offsetof(ktc_clean_item, bytes) + sizeof(uint64_t),
      [&](ktc_clean_item* item) {
        return ktc_clean_report_get(report.get(), 0, item);
      },
      [&](const ktc_clean_item& item) {
        CHECK(item.action == KTC_CLEAN_WOULD_REMOVE);
        CHECK(text_or_empty(item.key) == "k");
        CHECK(item.corrupt == 0);
        CHECK(item.bytes >= 4096);
      });
}

TEST_CASE("ktc_lock_list_get and ktc_lock_list_holder write at most "
          "struct_size bytes") {
  TestCache cache;
  cache.require_store("k");
  ktc_entry* leased = nullptr;
  REQUIRE(ktc_lookup(&leased, cache.get(), "k", KTC_LOOKUP_LEASE) == KTC_OK);
  EntryPtr lease(leased);
  ktc_lock_list* raw = nullptr;
  REQUIRE(ktc_locks(&raw, cache.get()) == KTC_OK);
  LockListPtr locks(raw);
  size_t index = lock_index(locks.get(), "k");
  prime_error_message();

  SUBCASE("lock info") {
    check_output_struct<ktc_lock_info>(
        offsetof(ktc_lock_info, holder_count) + sizeof(size_t),
        [&](ktc_lock_info* info) {
          return ktc_lock_list_get(locks.get(), index, info);
        },
        [&](const ktc_lock_info& info) {
          CHECK(text_or_empty(info.name) == "k");
          CHECK(text_or_empty(info.path) == cache.root() + "/.locks/k.lock");
          CHECK(info.holder_count == 1);
        });
  }
  SUBCASE("lock holder") {
    check_output_struct<ktc_lock_holder>(
        offsetof(ktc_lock_holder, cmdline) + sizeof(const char*),
        [&](ktc_lock_holder* holder) {
          return ktc_lock_list_holder(locks.get(), index, 0, holder);
        },
        [&](const ktc_lock_holder& holder) {
          CHECK(holder.pid == getpid());
          CHECK(holder.exclusive == 0);
          CHECK(holder.cmdline != nullptr);
        });
  }
}

TEST_SUITE_END();
