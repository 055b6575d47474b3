#include "test_capi_helpers.hpp"

#include <doctest/doctest.h>
#include <ktcache/ktcache.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <map>
#include <optional>
#include <string>
#include <vector>

using namespace ktc::capi_test;
using ktc::test::random_bytes;
using ktc::test::read_file;
using ktc::test::write_file;

namespace {

ListPtr list_of(ktc_cache* cache) {
  ktc_list* raw = nullptr;
  int status = ktc_list_entries(&raw, cache);
  REQUIRE_MESSAGE(status == KTC_OK, error_message());
  return ListPtr(raw);
}

std::vector<std::string> listed_keys(ktc_cache* cache) {
  ListPtr list = list_of(cache);
  std::vector<std::string> keys;
  for (size_t i = 0; i < ktc_list_count(list.get()); ++i) {
    keys.push_back(text_or_empty(info_of(ktc_list_at(list.get(), i)).key));
  }
  return keys;
}

// One row of a clean report, copied out of the report.
struct CleanRow {
  int32_t action = -1;
  bool corrupt = false;
  std::optional<std::string> message;
  uint64_t bytes = 0;
};

// The report's rows by key.
std::map<std::string, CleanRow> clean(ktc_cache* cache,
                                      ktc_clean_options options) {
  ktc_clean_report* raw = nullptr;
  int status = ktc_clean(&raw, cache, &options);
  REQUIRE_MESSAGE(status == KTC_OK, error_message());
  ReportPtr report(raw);
  std::map<std::string, CleanRow> rows;
  for (size_t i = 0; i < ktc_clean_report_count(report.get()); ++i) {
    ktc_clean_item item = KTC_CLEAN_ITEM_INIT;
    REQUIRE(ktc_clean_report_get(report.get(), i, &item) == KTC_OK);
    CleanRow row;
    row.action = item.action;
    row.corrupt = item.corrupt != 0;
    if (item.message != nullptr) {
      row.message = item.message;
    }
    row.bytes = item.bytes;
    rows.emplace(text_or_empty(item.key), row);
  }
  return rows;
}

void make_root(const std::string& root) {
  bool made = mkdir(root.c_str(), 0777) == 0 || errno == EEXIST;
  REQUIRE(made);
}

// An entry directory as ktstr writes it: no hashes, no schema_version.
void write_ktstr_entry(const std::string& root, const std::string& key) {
  std::string dir = root + "/" + key;
  make_root(root);
  REQUIRE(mkdir(dir.c_str(), 0777) == 0);
  write_file(dir + "/bzImage", random_bytes(1024, 3));
  write_file(dir + "/metadata.json",
             R"({"version":"6.14.2","source":{"type":"tarball"},)"
             R"("arch":"x86_64","image_name":"bzImage","config_hash":null,)"
             R"("built_at":"2026-04-12T10:00:00Z",)"
             R"("ktstr_kconfig_hash":"1a2b3c4d","has_vmlinux":false,)"
             R"("vmlinux_stripped":false,"source_vmlinux_size":null,)"
             R"("source_vmlinux_mtime_secs":null})");
}

void write_corrupt_entry(const std::string& root, const std::string& key) {
  std::string dir = root + "/" + key;
  make_root(root);
  REQUIRE(mkdir(dir.c_str(), 0777) == 0);
  write_file(dir + "/metadata.json", "{\"version\": ");
}

} // namespace

TEST_SUITE_BEGIN("CApi");

TEST_CASE("a stored entry round-trips through store, lookup, list and "
          "verify") {
  TestCache cache;
  std::string image_bytes = random_bytes(64 * 1024, 1);
  std::string image = cache.input("bzImage", image_bytes);
  std::string vmlinux = cache.input("vmlinux", random_bytes(100 * 1024, 2));
  std::string config = cache.input("config", "CONFIG_BPF=y\n");
  const char* key = "6.14.2-tarball-x86_64-kcabc";

  ktc_store_options options = KTC_STORE_OPTIONS_INIT;
  options.image = image.c_str();
  options.image_name = "bzImage";
  options.vmlinux = vmlinux.c_str();
  options.config = config.c_str();
  options.arch = "x86_64";
  options.version = "6.14.2";
  options.source_json = R"({"type":"tarball"})";
  options.metadata_json = R"({"custom_field":42})";
  options.kconfig_hash = "abc";
  ktc_entry* stored_raw = nullptr;
  REQUIRE_MESSAGE(ktc_store(&stored_raw, cache.get(), key, &options) == KTC_OK,
                  error_message());
  EntryPtr stored(stored_raw);

  ktc_entry_info stored_info = info_of(stored.get());
  CHECK(stored_info.state == KTC_ENTRY_VALID);
  CHECK(text_or_empty(stored_info.key) == key);
  CHECK(text_or_empty(stored_info.path) == cache.root() + "/" + key);

  ktc_entry* raw = nullptr;
  REQUIRE_MESSAGE(ktc_lookup(&raw, cache.get(), key, 0) == KTC_OK,
                  error_message());
  EntryPtr entry(raw);
  ktc_entry_info info = info_of(entry.get());
  std::string path = cache.root() + "/" + key;
  CHECK(info.state == KTC_ENTRY_VALID);
  CHECK(text_or_empty(info.key) == key);
  CHECK(text_or_empty(info.path) == path);
  CHECK(text_or_empty(info.image_path) == path + "/bzImage");
  CHECK(read_file(info.image_path) == image_bytes);
  CHECK(text_or_empty(info.vmlinux_path) == path + "/vmlinux");
  CHECK(text_or_empty(info.config_path) == path + "/config");
  CHECK(read_file(info.config_path) == "CONFIG_BPF=y\n");
  CHECK(info.error_kind == nullptr);
  CHECK(info.reason == nullptr);
  CHECK(info.leased == 0);
  CHECK(info.last_used >= static_cast<int64_t>(std::time(nullptr)) - 60);

  // The document may be pretty-printed (it is the file's text); none of
  // the values below holds white space, so compare without any.
  std::string metadata = text_or_empty(info.metadata_json);
  std::erase_if(metadata, [](char c) { return c == ' ' || c == '\n'; });
  CAPTURE(metadata);
  CHECK(metadata.find("\"custom_field\":42") != std::string::npos);
  CHECK(metadata.find("\"version\":\"6.14.2\"") != std::string::npos);
  CHECK(metadata.find("\"arch\":\"x86_64\"") != std::string::npos);
  CHECK(metadata.find("\"image_name\":\"bzImage\"") != std::string::npos);
  CHECK(metadata.find("\"has_vmlinux\":true") != std::string::npos);

  CHECK(listed_keys(cache.get()) == std::vector<std::string>{key});
  CHECK_MESSAGE(ktc_verify(cache.get(), key) == KTC_OK, error_message());

  int status = -1;
  REQUIRE(ktc_entry_kconfig_status(&status, entry.get(), "abc") == KTC_OK);
  CHECK(status == KTC_KCONFIG_MATCHES);
  REQUIRE(ktc_entry_kconfig_status(&status, entry.get(), "def") == KTC_OK);
  CHECK(status == KTC_KCONFIG_STALE);
}

TEST_CASE("an entry without a kconfig hash is untracked") {
  TestCache cache;
  cache.require_store("plain");
  ktc_entry* raw = nullptr;
  REQUIRE(ktc_lookup(&raw, cache.get(), "plain", 0) == KTC_OK);
  EntryPtr entry(raw);
  int status = -1;
  REQUIRE(ktc_entry_kconfig_status(&status, entry.get(), "abc") == KTC_OK);
  CHECK(status == KTC_KCONFIG_UNTRACKED);
}

TEST_CASE("lookup reports each failure with its own status") {
  TestCache cache;
  ktc_entry* raw = nullptr;
  prime_error_message();

  SUBCASE("a missing key is not found") {
    CHECK(ktc_lookup(&raw, cache.get(), "absent-key", 0) == KTC_E_NOTFOUND);
    CHECK(error_message().find("absent-key") != std::string::npos);
  }
  SUBCASE("an invalid key is invalid") {
    CHECK(ktc_lookup(&raw, cache.get(), "../etc", 0) == KTC_E_INVALID);
    CHECK(error_message().find("invalid cache key") != std::string::npos);
  }
  SUBCASE("a damaged entry is corrupt") {
    write_corrupt_entry(cache.root(), "broken");
    CHECK(ktc_lookup(&raw, cache.get(), "broken", 0) == KTC_E_CORRUPT);
    CHECK(error_message().find("metadata.json") != std::string::npos);
  }
  CHECK(raw == nullptr);
}

TEST_CASE("list shows corrupt and ktstr-written entries with their details") {
  TestCache cache;
  cache.require_store("ours");
  write_ktstr_entry(cache.root(), "theirs");
  write_corrupt_entry(cache.root(), "broken");

  ListPtr list = list_of(cache.get());
  REQUIRE(ktc_list_count(list.get()) == 3);
  std::map<std::string, ktc_entry_info> by_key;
  for (size_t i = 0; i < 3; ++i) {
    ktc_entry_info info = info_of(ktc_list_at(list.get(), i));
    by_key[text_or_empty(info.key)] = info;
  }
  // Valid entries come first, corrupt ones last.
  CHECK(text_or_empty(info_of(ktc_list_at(list.get(), 2)).key) == "broken");

  const ktc_entry_info& broken = by_key.at("broken");
  CHECK(broken.state == KTC_ENTRY_CORRUPT);
  CHECK(broken.metadata_json == nullptr);
  CHECK(broken.image_path == nullptr);
  CHECK(text_or_empty(broken.error_kind) == "truncated");
  CHECK(text_or_empty(broken.reason).find("metadata.json") !=
        std::string::npos);

  const ktc_entry_info& theirs = by_key.at("theirs");
  CHECK(theirs.state == KTC_ENTRY_VALID);
  CHECK(theirs.vmlinux_path == nullptr);
  CHECK(theirs.config_path == nullptr);
  CHECK(text_or_empty(theirs.metadata_json).find("\"ktstr_kconfig_hash\"") !=
        std::string::npos);

  SUBCASE("kconfig status reads ktstr's hash") {
    const ktc_entry* entry = nullptr;
    for (size_t i = 0; i < 3; ++i) {
      if (text_or_empty(info_of(ktc_list_at(list.get(), i)).key) == "theirs") {
        entry = ktc_list_at(list.get(), i);
      }
    }
    int status = -1;
    REQUIRE(ktc_entry_kconfig_status(&status, entry, "1a2b3c4d") == KTC_OK);
    CHECK(status == KTC_KCONFIG_MATCHES);
  }
  SUBCASE("kconfig status of a corrupt entry is invalid") {
    const ktc_entry* entry = ktc_list_at(list.get(), 2);
    int status = -1;
    prime_error_message();
    CHECK(ktc_entry_kconfig_status(&status, entry, "x") == KTC_E_INVALID);
    CHECK(error_message().find("broken") != std::string::npos);
    CHECK(status == -1);
  }
  SUBCASE("verify tells unverifiable and corrupt entries apart") {
    CHECK(ktc_verify(cache.get(), "theirs") == KTC_E_UNVERIFIABLE);
    CHECK(ktc_verify(cache.get(), "broken") == KTC_E_CORRUPT);
    CHECK(ktc_verify(cache.get(), "absent") == KTC_E_NOTFOUND);
  }
}

TEST_CASE("list of a cache whose root does not exist is empty") {
  ktc::test::TempDir dir;
  CachePtr cache = open_cache(dir / "never-created");
  ListPtr list = list_of(cache.get());
  CHECK(ktc_list_count(list.get()) == 0);
  CHECK(ktc_list_at(list.get(), 0) == nullptr);
}

TEST_CASE("verify names the artifact whose bytes changed") {
  TestCache cache;
  cache.require_store("k");
  ktc_entry* raw = nullptr;
  REQUIRE(ktc_lookup(&raw, cache.get(), "k", 0) == KTC_OK);
  EntryPtr entry(raw);
  std::string image_path = info_of(entry.get()).image_path;
  std::string bytes = read_file(image_path);
  bytes[100] = static_cast<char>(bytes[100] ^ 0x40);
  write_file(image_path, bytes);
  prime_error_message();

  CHECK(ktc_verify(cache.get(), "k") == KTC_E_MISMATCH);
  CHECK(error_message().find("bzImage") != std::string::npos);
}

TEST_CASE("store reports bad input and changes nothing") {
  TestCache cache;
  std::string image = cache.input("bzImage", "x");
  ktc_store_options options = KTC_STORE_OPTIONS_INIT;
  options.image = image.c_str();
  const char* key = "k";
  int expected = KTC_OK;
  prime_error_message();

  SUBCASE("missing image") {
    options.image = "/nonexistent/bzImage";
    expected = KTC_E_NOTFOUND;
  }
  SUBCASE("invalid key") {
    key = "a:b";
    expected = KTC_E_INVALID;
  }
  SUBCASE("malformed metadata JSON") {
    options.metadata_json = "{not json";
    expected = KTC_E_INVALID;
  }
  SUBCASE("reserved image name") {
    options.image_name = "metadata.json";
    expected = KTC_E_INVALID;
  }
  ktc_entry* out = nullptr;
  CHECK(ktc_store(&out, cache.get(), key, &options) == expected);
  CHECK(out == nullptr);
  CHECK(error_message() != "no error");
  CHECK(listed_keys(cache.get()).empty());
}

TEST_CASE("clean removes entries by mode and reports each") {
  TestCache cache;
  cache.require_store("a");
  cache.require_store("b");
  write_corrupt_entry(cache.root(), "broken");
  ktc_clean_options options = KTC_CLEAN_OPTIONS_INIT;

  SUBCASE("dry run changes nothing") {
    options.flags = KTC_CLEAN_DRY_RUN;
    auto items = clean(cache.get(), options);
    CHECK(items.size() == 3);
    for (const auto& [key, item] : items) {
      CAPTURE(key);
      CHECK(item.action == KTC_CLEAN_WOULD_REMOVE);
      CHECK(item.corrupt == (key == "broken"));
    }
    CHECK(listed_keys(cache.get()).size() == 3);
  }
  SUBCASE("all") {
    auto items = clean(cache.get(), options);
    CHECK(items.size() == 3);
    for (const auto& [key, item] : items) {
      CAPTURE(key);
      CHECK(item.action == KTC_CLEAN_REMOVED);
    }
    CHECK(listed_keys(cache.get()).empty());
  }
  SUBCASE("corrupt only") {
    options.mode = KTC_CLEAN_CORRUPT_ONLY;
    auto items = clean(cache.get(), options);
    REQUIRE(items.size() == 1);
    CHECK(items.begin()->first == "broken");
    CHECK(items.begin()->second.action == KTC_CLEAN_REMOVED);
    CHECK(items.begin()->second.corrupt);
    CHECK(listed_keys(cache.get()).size() == 2);
  }
  SUBCASE("keep one valid entry; corrupt ones use no slot") {
    options.mode = KTC_CLEAN_KEEP;
    options.keep = 1;
    auto items = clean(cache.get(), options);
    CHECK(items.size() == 2);
    CHECK(items.count("broken") == 1);
    CHECK(listed_keys(cache.get()).size() == 1);
  }
  SUBCASE("keys, with a key that does not exist") {
    const char* keys[] = {"a", "nope"};
    options.mode = KTC_CLEAN_KEYS;
    options.keys = keys;
    options.key_count = 2;
    auto items = clean(cache.get(), options);
    REQUIRE(items.size() == 2);
    CHECK(items.at("a").action == KTC_CLEAN_REMOVED);
    CHECK(items.at("nope").action == KTC_CLEAN_NOT_FOUND);
    CHECK(listed_keys(cache.get()) == std::vector<std::string>{"b", "broken"});
  }
}

TEST_CASE("a leased entry is skipped by clean and blocks a replacing store") {
  TestCache cache;
  cache.require_store("held");
  ktc_entry* raw = nullptr;
  REQUIRE_MESSAGE(ktc_lookup(&raw, cache.get(), "held", KTC_LOOKUP_LEASE) ==
                      KTC_OK,
                  error_message());
  EntryPtr lease(raw);
  CHECK(info_of(lease.get()).leased == 1);

  ktc_open_options options = KTC_OPEN_OPTIONS_INIT;
  options.store_lock_timeout_ms = 200;
  CachePtr impatient = open_cache(cache.root(), options);
  std::string image = cache.input("replacement", "new image");
  ktc_store_options store = KTC_STORE_OPTIONS_INIT;
  store.image = image.c_str();
  store.image_name = "bzImage";

  SUBCASE("the lock list names this process as a shared holder") {
    ktc_lock_list* locks_raw = nullptr;
    REQUIRE(ktc_locks(&locks_raw, cache.get()) == KTC_OK);
    LockListPtr locks(locks_raw);
    size_t index = lock_index(locks.get(), "held");
    ktc_lock_holder holder = KTC_LOCK_HOLDER_INIT;
    REQUIRE(ktc_lock_list_holder(locks.get(), index, 0, &holder) == KTC_OK);
    CHECK(holder.pid == getpid());
    CHECK(holder.exclusive == 0);
  }
  SUBCASE("clean skips it while leased") {
    auto items = clean(cache.get(), KTC_CLEAN_OPTIONS_INIT);
    REQUIRE(items.count("held") == 1);
    CHECK(items.at("held").action == KTC_CLEAN_SKIPPED_IN_USE);
    CHECK(items.at("held").message.has_value());
    ktc_entry* again = nullptr;
    REQUIRE(ktc_lookup(&again, cache.get(), "held", 0) == KTC_OK);
    ktc_entry_free(again);
  }
  SUBCASE("a store with a short timeout is locked until the lease goes") {
    prime_error_message();
    CHECK(ktc_store(nullptr, impatient.get(), "held", &store) == KTC_E_LOCKED);
    CHECK(error_message().find("held") != std::string::npos);
    CHECK(ktc_store(nullptr, impatient.get(), "held", &store) == KTC_E_LOCKED);

    lease.reset();
    CHECK_MESSAGE(ktc_store(nullptr, impatient.get(), "held", &store) == KTC_OK,
                  error_message());
    ktc_entry* fresh = nullptr;
    REQUIRE(ktc_lookup(&fresh, cache.get(), "held", 0) == KTC_OK);
    EntryPtr replaced(fresh);
    CHECK(read_file(info_of(replaced.get()).image_path) == "new image");
  }
  SUBCASE("clean removes it once the lease is freed") {
    lease.reset();
    auto items = clean(cache.get(), KTC_CLEAN_OPTIONS_INIT);
    CHECK(items.at("held").action == KTC_CLEAN_REMOVED);
  }
  SUBCASE("verify shares the lock with the lease") {
    CHECK_MESSAGE(ktc_verify(cache.get(), "held") == KTC_OK, error_message());
  }
}

TEST_CASE("locks lists the lock files without creating any") {
  TestCache cache;
  ktc_lock_list* raw = nullptr;
  REQUIRE_MESSAGE(ktc_locks(&raw, cache.get()) == KTC_OK, error_message());
  LockListPtr empty(raw);
  CHECK(ktc_lock_list_count(empty.get()) == 0);
  CHECK(!ktc::test::exists(cache.root()));

  cache.require_store("k");
  raw = nullptr;
  REQUIRE(ktc_locks(&raw, cache.get()) == KTC_OK);
  LockListPtr locks(raw);
  size_t index = lock_index(locks.get(), "k");
  ktc_lock_info info = KTC_LOCK_INFO_INIT;
  REQUIRE(ktc_lock_list_get(locks.get(), index, &info) == KTC_OK);
  CHECK(info.holder_count == 0);
  CHECK(text_or_empty(info.path) == cache.root() + "/.locks/k.lock");
}

TEST_SUITE_END();
