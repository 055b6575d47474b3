#include "test_capi_helpers.hpp"

#include <doctest/doctest.h>
#include <ktcache/ktcache.h>

#include <cstring>
#include <set>
#include <string>
#include <thread>

using namespace ktc::capi_test;

namespace {

// Asserts a NULL-argument failure whose message names the argument.
void check_null_argument(int status, std::string_view argument) {
  CHECK(status == KTC_E_INVALID);
  std::string message = error_message();
  CHECK_MESSAGE(message.find("NULL") != std::string::npos, message);
  CHECK_MESSAGE(message.find(argument) != std::string::npos, message);
}

std::string message_in_fresh_thread() {
  std::string message;
  std::thread thread([&] { message = ktc_error_message(); });
  thread.join();
  return message;
}

} // namespace

TEST_SUITE_BEGIN("CApi");

TEST_CASE("ktc_strerror names every status and falls back for unknown ones") {
  const std::pair<int, const char*> expected[] = {
      {KTC_OK, "success"},
      {KTC_E_GENERIC, "generic failure"},
      {KTC_E_INVALID, "invalid argument"},
      {KTC_E_NOTFOUND, "not found"},
      {KTC_E_LOCKED, "locked"},
      {KTC_E_CORRUPT, "corrupt entry"},
      {KTC_E_IO, "input/output error"},
      {KTC_E_NOSPC, "no space left"},
      {KTC_E_VERSION, "version mismatch"},
      {KTC_E_NOMEM, "out of memory"},
      {KTC_E_INTERNAL, "internal error"},
      {KTC_E_UNSUPPORTED, "unsupported filesystem"},
      {KTC_E_MISMATCH, "checksum mismatch"},
      {KTC_E_UNVERIFIABLE, "unverifiable entry"},
      {KTC_E_ENV, "environment error"},
      {KTC_E_PLUGIN, "plugin error"},
      {KTC_E_CANCELLED, "cancelled"},
      {KTC_E_BUILD, "build failed"},
      {KTC_E_NETWORK, "network error"},
  };
  std::set<std::string> distinct;
  for (const auto& [status, text] : expected) {
    CAPTURE(status);
    REQUIRE(ktc_strerror(status) != nullptr);
    CHECK(std::string(ktc_strerror(status)) == text);
    distinct.insert(ktc_strerror(status));
  }
  CHECK(distinct.size() == std::size(expected));
  CHECK(std::string(ktc_strerror(KTC_E_NETWORK - 1)) == "unknown status");
  CHECK(std::string(ktc_strerror(1)) == "unknown status");
  CHECK(std::string(ktc_strerror(-1000)) == "unknown status");
}

TEST_CASE("ktc_version is MAJOR.MINOR.PATCH and never NULL") {
  const char* version = ktc_version();
  REQUIRE(version != nullptr);
  unsigned major = 0;
  unsigned minor = 0;
  unsigned patch = 0;
  char rest = 0;
  CHECK(std::sscanf(version, "%u.%u.%u%c", &major, &minor, &patch, &rest) == 3);
}

TEST_CASE("ktc_error_message says no error on a thread that never failed") {
  std::string message = message_in_fresh_thread();
  CHECK(message == "no error");
}

TEST_CASE("ktc_error_message is per thread") {
  REQUIRE(ktc_default_root(nullptr) == KTC_E_INVALID);
  std::string main_message = error_message();
  REQUIRE(main_message.find("out") != std::string::npos);

  std::string first_before;
  std::string first_after;
  std::thread first([&] {
    first_before = ktc_error_message();
    ktc_key_validate("a/b");
    first_after = ktc_error_message();
  });
  first.join();

  std::string second_before;
  std::string second_after;
  std::thread second([&] {
    second_before = ktc_error_message();
    ktc_key_validate("..");
    second_after = ktc_error_message();
  });
  second.join();

  CHECK(first_before == "no error");
  CHECK(second_before == "no error");
  CHECK(first_after.find("a/b") != std::string::npos);
  CHECK(second_after.find("\"..\"") != std::string::npos);
  CHECK(first_after != second_after);
  CHECK(error_message() == main_message);
}

TEST_CASE("a successful call keeps the last failure's message") {
  REQUIRE(ktc_key_validate("") == KTC_E_INVALID);
  std::string failure = error_message();
  REQUIRE(failure != "no error");
  REQUIRE(ktc_key_validate("6.14.2-tarball-x86_64-kc1") == KTC_OK);
  CHECK(error_message() == failure);
}

TEST_CASE("every function refuses a NULL required argument without crashing") {
  TestCache cache;
  cache.require_store("k1");
  EntryPtr entry;
  {
    ktc_entry* raw = nullptr;
    REQUIRE(ktc_lookup(&raw, cache.get(), "k1", 0) == KTC_OK);
    entry.reset(raw);
  }
  ListPtr list;
  {
    ktc_list* raw = nullptr;
    REQUIRE(ktc_list_entries(&raw, cache.get()) == KTC_OK);
    list.reset(raw);
  }
  ReportPtr report;
  {
    ktc_clean_options options = KTC_CLEAN_OPTIONS_INIT;
    options.flags = KTC_CLEAN_DRY_RUN;
    ktc_clean_report* raw = nullptr;
    REQUIRE(ktc_clean(&raw, cache.get(), &options) == KTC_OK);
    report.reset(raw);
  }
  LockListPtr locks;
  {
    ktc_lock_list* raw = nullptr;
    REQUIRE(ktc_locks(&raw, cache.get()) == KTC_OK);
    locks.reset(raw);
  }
  char* text = nullptr;
  int status_out = -1;
  ktc_entry* entry_out = nullptr;
  ktc_entry_info info = KTC_ENTRY_INFO_INIT;
  ktc_clean_item item = KTC_CLEAN_ITEM_INIT;
  ktc_lock_info lock_info = KTC_LOCK_INFO_INIT;
  ktc_lock_holder holder = KTC_LOCK_HOLDER_INIT;
  const char* parts[] = {"a", "b"};
  const char* null_parts[] = {"a", nullptr};
  prime_error_message();

  SUBCASE("ktc_default_root") {
    check_null_argument(ktc_default_root(nullptr), "out");
  }
  SUBCASE("ktc_resolve_root suffix") {
    check_null_argument(ktc_resolve_root(nullptr, &text), "suffix");
  }
  SUBCASE("ktc_resolve_root out") {
    check_null_argument(ktc_resolve_root("btf", nullptr), "out");
  }
  SUBCASE("ktc_key_validate") {
    check_null_argument(ktc_key_validate(nullptr), "key");
  }
  SUBCASE("ktc_key_compose out") {
    check_null_argument(ktc_key_compose(nullptr, parts, 2), "out");
  }
  SUBCASE("ktc_key_compose parts") {
    check_null_argument(ktc_key_compose(&text, nullptr, 2), "parts");
  }
  SUBCASE("ktc_key_compose part") {
    check_null_argument(ktc_key_compose(&text, null_parts, 2), "part 1");
  }
  SUBCASE("ktc_cache_open") {
    check_null_argument(ktc_cache_open(nullptr, nullptr), "out");
  }
  SUBCASE("ktc_cache_root") {
    CHECK(ktc_cache_root(nullptr) == nullptr);
    check_null_argument(KTC_E_INVALID, "cache");
  }
  SUBCASE("ktc_entry_get_info entry") {
    check_null_argument(ktc_entry_get_info(nullptr, &info), "entry");
  }
  SUBCASE("ktc_entry_get_info info") {
    check_null_argument(ktc_entry_get_info(entry.get(), nullptr), "info");
  }
  SUBCASE("ktc_lookup out") {
    check_null_argument(ktc_lookup(nullptr, cache.get(), "k1", 0), "out");
  }
  SUBCASE("ktc_lookup cache") {
    check_null_argument(ktc_lookup(&entry_out, nullptr, "k1", 0), "cache");
  }
  SUBCASE("ktc_lookup key") {
    check_null_argument(ktc_lookup(&entry_out, cache.get(), nullptr, 0), "key");
  }
  SUBCASE("ktc_list_entries out") {
    check_null_argument(ktc_list_entries(nullptr, cache.get()), "out");
  }
  SUBCASE("ktc_list_entries cache") {
    ktc_list* raw = nullptr;
    check_null_argument(ktc_list_entries(&raw, nullptr), "cache");
    CHECK(raw == nullptr);
  }
  SUBCASE("ktc_list_count") {
    CHECK(ktc_list_count(nullptr) == 0);
    check_null_argument(KTC_E_INVALID, "list");
  }
  SUBCASE("ktc_list_at") {
    CHECK(ktc_list_at(nullptr, 0) == nullptr);
    check_null_argument(KTC_E_INVALID, "list");
  }
  SUBCASE("ktc_store cache") {
    ktc_store_options options = KTC_STORE_OPTIONS_INIT;
    options.image = "/nonexistent";
    check_null_argument(ktc_store(nullptr, nullptr, "k", &options), "cache");
  }
  SUBCASE("ktc_store key") {
    ktc_store_options options = KTC_STORE_OPTIONS_INIT;
    options.image = "/nonexistent";
    check_null_argument(ktc_store(nullptr, cache.get(), nullptr, &options),
                        "key");
  }
  SUBCASE("ktc_store options") {
    check_null_argument(ktc_store(nullptr, cache.get(), "k", nullptr),
                        "options");
  }
  SUBCASE("ktc_store options.image") {
    ktc_store_options options = KTC_STORE_OPTIONS_INIT;
    check_null_argument(ktc_store(nullptr, cache.get(), "k", &options),
                        "image");
  }
  SUBCASE("ktc_verify cache") {
    check_null_argument(ktc_verify(nullptr, "k1"), "cache");
  }
  SUBCASE("ktc_verify key") {
    check_null_argument(ktc_verify(cache.get(), nullptr), "key");
  }
  SUBCASE("ktc_clean out") {
    check_null_argument(ktc_clean(nullptr, cache.get(), nullptr), "out");
  }
  SUBCASE("ktc_clean cache") {
    ktc_clean_report* raw = nullptr;
    check_null_argument(ktc_clean(&raw, nullptr, nullptr), "cache");
  }
  SUBCASE("ktc_clean options.keys") {
    ktc_clean_options options = KTC_CLEAN_OPTIONS_INIT;
    options.mode = KTC_CLEAN_KEYS;
    options.key_count = 1;
    ktc_clean_report* raw = nullptr;
    check_null_argument(ktc_clean(&raw, cache.get(), &options), "keys");
  }
  SUBCASE("ktc_clean options.keys element") {
    const char* keys[] = {"k1", nullptr};
    ktc_clean_options options = KTC_CLEAN_OPTIONS_INIT;
    options.mode = KTC_CLEAN_KEYS;
    options.keys = keys;
    options.key_count = 2;
    ktc_clean_report* raw = nullptr;
    check_null_argument(ktc_clean(&raw, cache.get(), &options), "keys[1]");
  }
  SUBCASE("ktc_clean_report_count") {
    CHECK(ktc_clean_report_count(nullptr) == 0);
    check_null_argument(KTC_E_INVALID, "report");
  }
  SUBCASE("ktc_clean_report_get report") {
    check_null_argument(ktc_clean_report_get(nullptr, 0, &item), "report");
  }
  SUBCASE("ktc_clean_report_get item") {
    check_null_argument(ktc_clean_report_get(report.get(), 0, nullptr), "item");
  }
  SUBCASE("ktc_locks out") {
    check_null_argument(ktc_locks(nullptr, cache.get()), "out");
  }
  SUBCASE("ktc_locks cache") {
    ktc_lock_list* raw = nullptr;
    check_null_argument(ktc_locks(&raw, nullptr), "cache");
  }
  SUBCASE("ktc_lock_list_count") {
    CHECK(ktc_lock_list_count(nullptr) == 0);
    check_null_argument(KTC_E_INVALID, "list");
  }
  SUBCASE("ktc_lock_list_get list") {
    check_null_argument(ktc_lock_list_get(nullptr, 0, &lock_info), "list");
  }
  SUBCASE("ktc_lock_list_get info") {
    check_null_argument(ktc_lock_list_get(locks.get(), 0, nullptr), "info");
  }
  SUBCASE("ktc_lock_list_holder list") {
    check_null_argument(ktc_lock_list_holder(nullptr, 0, 0, &holder), "list");
  }
  SUBCASE("ktc_lock_list_holder holder") {
    check_null_argument(ktc_lock_list_holder(locks.get(), 0, 0, nullptr),
                        "holder");
  }
  SUBCASE("ktc_entry_kconfig_status out") {
    check_null_argument(ktc_entry_kconfig_status(nullptr, entry.get(), "h"),
                        "out");
  }
  SUBCASE("ktc_entry_kconfig_status entry") {
    check_null_argument(ktc_entry_kconfig_status(&status_out, nullptr, "h"),
                        "entry");
  }
  SUBCASE("ktc_entry_kconfig_status current_hash") {
    check_null_argument(
        ktc_entry_kconfig_status(&status_out, entry.get(), nullptr),
        "current_hash");
  }
  SUBCASE("ktc_prefer_source_tree out") {
    check_null_argument(ktc_prefer_source_tree(nullptr, "/x"), "out");
  }
  SUBCASE("ktc_prefer_source_tree entry_dir") {
    check_null_argument(ktc_prefer_source_tree(&text, nullptr), "entry_dir");
  }
  SUBCASE("ktc_recover_source_tree out") {
    check_null_argument(ktc_recover_source_tree(nullptr, "/x"), "out");
  }
  SUBCASE("ktc_recover_source_tree entry_dir") {
    check_null_argument(ktc_recover_source_tree(&text, nullptr), "entry_dir");
  }

  // Output parameters are set only on success.
  CHECK(text == nullptr);
  CHECK(entry_out == nullptr);
  CHECK(status_out == -1);
}

TEST_CASE("the free functions and the log setter accept NULL") {
  ktc_free(nullptr);
  ktc_cache_free(nullptr);
  ktc_entry_free(nullptr);
  ktc_list_free(nullptr);
  ktc_clean_report_free(nullptr);
  ktc_lock_list_free(nullptr);
  ktc_log_set_callback(KTC_LOG_TRACE, nullptr, nullptr);
  CHECK(message_in_fresh_thread() == "no error");
}

TEST_CASE("indexes past the end are refused with a message") {
  TestCache cache;
  cache.require_store("k1");
  ListPtr list;
  {
    ktc_list* raw = nullptr;
    REQUIRE(ktc_list_entries(&raw, cache.get()) == KTC_OK);
    list.reset(raw);
  }
  REQUIRE(ktc_list_count(list.get()) == 1);
  prime_error_message();

  SUBCASE("entry list") {
    CHECK(ktc_list_at(list.get(), 0) != nullptr);
    CHECK(ktc_list_at(list.get(), 1) == nullptr);
    CHECK(error_message().find("index 1 is out of range") != std::string::npos);
  }
  SUBCASE("clean report") {
    ktc_clean_options options = KTC_CLEAN_OPTIONS_INIT;
    options.flags = KTC_CLEAN_DRY_RUN;
    ktc_clean_report* raw = nullptr;
    REQUIRE(ktc_clean(&raw, cache.get(), &options) == KTC_OK);
    ReportPtr report(raw);
    size_t count = ktc_clean_report_count(report.get());
    ktc_clean_item item = KTC_CLEAN_ITEM_INIT;
    CHECK(ktc_clean_report_get(report.get(), count, &item) == KTC_E_INVALID);
    CHECK(error_message().find("out of range") != std::string::npos);
  }
  SUBCASE("lock list and holders") {
    ktc_lock_list* raw = nullptr;
    REQUIRE(ktc_locks(&raw, cache.get()) == KTC_OK);
    LockListPtr locks(raw);
    size_t count = ktc_lock_list_count(locks.get());
    REQUIRE(count >= 1);
    ktc_lock_info info = KTC_LOCK_INFO_INIT;
    CHECK(ktc_lock_list_get(locks.get(), count, &info) == KTC_E_INVALID);
    CHECK(error_message().find("out of range") != std::string::npos);
    REQUIRE(ktc_lock_list_get(locks.get(), 0, &info) == KTC_OK);
    ktc_lock_holder holder = KTC_LOCK_HOLDER_INIT;
    CHECK(ktc_lock_list_holder(locks.get(), 0, info.holder_count, &holder) ==
          KTC_E_INVALID);
    CHECK(ktc_lock_list_holder(locks.get(), count, 0, &holder) ==
          KTC_E_INVALID);
  }
}

TEST_CASE("unknown flag bits are refused") {
  TestCache cache;
  prime_error_message();

  SUBCASE("lookup") {
    ktc_entry* raw = nullptr;
    CHECK(ktc_lookup(&raw, cache.get(), "k", 1u << 7) == KTC_E_INVALID);
    CHECK(error_message().find("unknown bits 0x80") != std::string::npos);
  }
  SUBCASE("open") {
    ktc_open_options options = KTC_OPEN_OPTIONS_INIT;
    options.root = cache.root().c_str();
    options.flags = 1u << 9;
    ktc_cache* raw = nullptr;
    CHECK(ktc_cache_open(&raw, &options) == KTC_E_INVALID);
    CHECK(raw == nullptr);
    CHECK(error_message().find("ktc_open_options.flags") != std::string::npos);
  }
  SUBCASE("store") {
    std::string image = cache.input("img", "x");
    ktc_store_options options = KTC_STORE_OPTIONS_INIT;
    options.image = image.c_str();
    options.flags = 1u << 3;
    CHECK(ktc_store(nullptr, cache.get(), "k", &options) == KTC_E_INVALID);
    CHECK(error_message().find("ktc_store_options.flags") != std::string::npos);
  }
  SUBCASE("clean flags") {
    ktc_clean_options options = KTC_CLEAN_OPTIONS_INIT;
    options.flags = 1u << 4;
    ktc_clean_report* raw = nullptr;
    CHECK(ktc_clean(&raw, cache.get(), &options) == KTC_E_INVALID);
    CHECK(error_message().find("ktc_clean_options.flags") != std::string::npos);
  }
  SUBCASE("clean mode") {
    ktc_clean_options options = KTC_CLEAN_OPTIONS_INIT;
    options.mode = 42;
    ktc_clean_report* raw = nullptr;
    CHECK(ktc_clean(&raw, cache.get(), &options) == KTC_E_INVALID);
    CHECK(error_message().find("mode 42") != std::string::npos);
  }
}

TEST_CASE("empty strings in options are refused rather than read as NULL") {
  TestCache cache;
  std::string image = cache.input("img", "x");
  prime_error_message();

  SUBCASE("open root") {
    ktc_open_options options = KTC_OPEN_OPTIONS_INIT;
    options.root = "";
    ktc_cache* raw = nullptr;
    CHECK(ktc_cache_open(&raw, &options) == KTC_E_INVALID);
    CHECK(error_message().find("ktc_open_options.root is empty") !=
          std::string::npos);
  }
  SUBCASE("store vmlinux") {
    ktc_store_options options = KTC_STORE_OPTIONS_INIT;
    options.image = image.c_str();
    options.vmlinux = "";
    CHECK(ktc_store(nullptr, cache.get(), "k", &options) == KTC_E_INVALID);
    CHECK(error_message().find("ktc_store_options.vmlinux is empty") !=
          std::string::npos);
  }
}

TEST_SUITE_END();
