#pragma once

// Helpers for the C API tests. They use ktcache.h and the real shared
// library only, like any host application.

#include "test_util.hpp"

#include <doctest/doctest.h>
#include <ktcache/ktcache.h>

#include <memory>
#include <string>
#include <string_view>

namespace ktc::capi_test {

struct CacheFree {
  void operator()(ktc_cache* cache) const { ktc_cache_free(cache); }
};
struct EntryFree {
  void operator()(ktc_entry* entry) const { ktc_entry_free(entry); }
};
struct ListFree {
  void operator()(ktc_list* list) const { ktc_list_free(list); }
};
struct ReportFree {
  void operator()(ktc_clean_report* report) const {
    ktc_clean_report_free(report);
  }
};
struct LockListFree {
  void operator()(ktc_lock_list* list) const { ktc_lock_list_free(list); }
};
struct StringFree {
  void operator()(char* text) const { ktc_free(text); }
};

using CachePtr = std::unique_ptr<ktc_cache, CacheFree>;
using EntryPtr = std::unique_ptr<ktc_entry, EntryFree>;
using ListPtr = std::unique_ptr<ktc_list, ListFree>;
using ReportPtr = std::unique_ptr<ktc_clean_report, ReportFree>;
using LockListPtr = std::unique_ptr<ktc_lock_list, LockListFree>;
using StringPtr = std::unique_ptr<char, StringFree>;

inline std::string error_message() {
  return ktc_error_message();
}

// Leaves a failure message that no NULL-argument check produces, so a test
// can tell its own call's message from a stale one.
inline void prime_error_message() {
  REQUIRE(ktc_key_validate("") == KTC_E_INVALID);
  REQUIRE(error_message().find("NULL") == std::string::npos);
}

inline CachePtr open_cache(const std::string& root,
                           ktc_open_options options = KTC_OPEN_OPTIONS_INIT) {
  options.root = root.c_str();
  ktc_cache* raw = nullptr;
  int status = ktc_cache_open(&raw, &options);
  REQUIRE_MESSAGE(status == KTC_OK, error_message());
  REQUIRE(raw != nullptr);
  return CachePtr(raw);
}

// A cache under a fresh scratch directory, plus a place for input files.
class TestCache {
public:
  explicit TestCache(ktc_open_options options = KTC_OPEN_OPTIONS_INIT)
      : m_root(m_dir / "cache"), m_cache(open_cache(m_root, options)) {}

  ktc_cache* get() const { return m_cache.get(); }
  const std::string& root() const { return m_root; }

  // Writes an input file outside the cache and returns its path.
  std::string input(const std::string& name, std::string_view data) const {
    std::string path = m_dir / ("input-" + name);
    ktc::test::write_file(path, data);
    return path;
  }

  // Stores a small image under `key` and returns the status.
  int store(const std::string& key,
            ktc_entry** out = nullptr,
            const char* kconfig_hash = nullptr) const {
    std::string image = input("bzImage", ktc::test::random_bytes(4096, 7));
    ktc_store_options options = KTC_STORE_OPTIONS_INIT;
    options.image = image.c_str();
    options.image_name = "bzImage";
    options.kconfig_hash = kconfig_hash;
    return ktc_store(out, m_cache.get(), key.c_str(), &options);
  }

  void require_store(const std::string& key) const {
    int status = store(key);
    REQUIRE_MESSAGE(status == KTC_OK, error_message());
  }

private:
  ktc::test::TempDir m_dir;
  std::string m_root;
  CachePtr m_cache;
};

inline ktc_entry_info info_of(const ktc_entry* entry) {
  ktc_entry_info info = KTC_ENTRY_INFO_INIT;
  int status = ktc_entry_get_info(entry, &info);
  REQUIRE_MESSAGE(status == KTC_OK, error_message());
  return info;
}

// The index of the lock file named `name`; fails the test when absent.
inline size_t lock_index(const ktc_lock_list* locks, std::string_view name) {
  size_t count = ktc_lock_list_count(locks);
  for (size_t i = 0; i < count; ++i) {
    ktc_lock_info info = KTC_LOCK_INFO_INIT;
    REQUIRE(ktc_lock_list_get(locks, i, &info) == KTC_OK);
    if (info.name != nullptr && name == info.name) {
      return i;
    }
  }
  FAIL("no lock file named ", name);
  return count;
}

inline std::string text_or_empty(const char* text) {
  return text != nullptr ? std::string(text) : std::string();
}

} // namespace ktc::capi_test
