#include "cache/cache.hpp"
#include "cache/lock.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

using ktc::Status;
using ktc::cache::Cache;
using ktc::cache::CacheOptions;
using ktc::cache::CleanAction;
using ktc::cache::CleanItem;
using ktc::cache::CleanMode;
using ktc::cache::CleanRequest;
using ktc::cache::StoreRequest;
using ktc::test::exists;
using ktc::test::list_dir;
using ktc::test::TempDir;

namespace {

Cache open_cache(const std::string& root) {
  CacheOptions options;
  options.root = root;
  auto cache = Cache::open(std::move(options));
  REQUIRE_MESSAGE(cache.ok(), cache.error().message);
  return std::move(cache).value();
}

// A cache with three valid entries (newest first: new, mid, old) and two
// corrupt ones (bad-json, no-meta).
struct Populated {
  TempDir dir;
  std::string root = dir / "cache";
  Cache cache = open_cache(root);

  Populated() {
    store("mid", "2025-06-01T00:00:00Z", 3000);
    store("new", "2026-01-01T00:00:00Z", 2000);
    store("old", "2024-01-01T00:00:00Z", 1000);
    corrupt("bad-json", "{\"version\":");
    corrupt("no-meta", std::nullopt);
  }

  void store(const std::string& key, std::string_view built_at, size_t size) {
    std::string image = dir / ("image-" + key);
    ktc::test::write_file(image, std::string(size, 'i'));
    StoreRequest request;
    request.image = image;
    request.image_name = "bzImage";
    request.metadata_json = fmt::format(R"({{"built_at":"{}"}})", built_at);
    auto entry = cache.store(key, request);
    REQUIRE_MESSAGE(entry.ok(), entry.error().message);
  }

  void corrupt(const std::string& key, std::optional<std::string> metadata) {
    std::string path = root + "/" + key;
    REQUIRE(::mkdir(path.c_str(), 0777) == 0);
    ktc::test::write_file(path + "/bzImage", std::string(500, 'c'));
    if (metadata) {
      ktc::test::write_file(path + "/metadata.json", *metadata);
    }
  }

  std::vector<CleanItem> clean(const CleanRequest& request) {
    auto items = cache.clean(request);
    REQUIRE_MESSAGE(items.ok(), items.error().message);
    return std::move(items).value();
  }

  // The entry directories left at the root, sorted.
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& name : list_dir(root)) {
      if (name.front() != '.') {
        names.push_back(name);
      }
    }
    return names;
  }

  // Bytes of the regular files in an entry directory.
  uint64_t entry_bytes(const std::string& key) const {
    uint64_t total = 0;
    for (const auto& name : list_dir(root + "/" + key)) {
      struct stat st;
      REQUIRE(::lstat((root + "/" + key + "/" + name).c_str(), &st) == 0);
      total += static_cast<uint64_t>(st.st_size);
    }
    return total;
  }
};

std::vector<std::string> keys_with(const std::vector<CleanItem>& items,
                                   CleanAction action) {
  std::vector<std::string> keys;
  for (const auto& item : items) {
    if (item.action == action) {
      keys.push_back(item.key);
    }
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

std::vector<std::string> names_starting(const std::string& dir,
                                        std::string_view prefix) {
  std::vector<std::string> names;
  for (const auto& name : list_dir(dir)) {
    if (name.starts_with(prefix)) {
      names.push_back(name);
    }
  }
  return names;
}

CleanRequest request_for(CleanMode mode) {
  CleanRequest request;
  request.mode = mode;
  return request;
}

} // namespace

TEST_SUITE_BEGIN("CacheClean");

TEST_CASE("clean all removes every entry, valid and corrupt") {
  Populated cache;
  auto items = cache.clean(request_for(CleanMode::all));
  CHECK(keys_with(items, CleanAction::removed) ==
        std::vector<std::string>{"bad-json", "mid", "new", "no-meta", "old"});
  CHECK(items.size() == 5);
  CHECK(cache.entries().empty());
  for (const auto& item : items) {
    CAPTURE(item.key);
    bool corrupt = item.key == "bad-json" || item.key == "no-meta";
    CHECK(item.corrupt == corrupt);
    CHECK(item.bytes > 0);
  }
}

TEST_CASE("clean reports the bytes each removal freed") {
  Populated cache;
  uint64_t old_bytes = cache.entry_bytes("old");
  uint64_t corrupt_bytes = cache.entry_bytes("no-meta");
  CleanRequest request = request_for(CleanMode::keys);
  request.keys = {"old", "no-meta"};
  auto items = cache.clean(request);
  REQUIRE(items.size() == 2);
  for (const auto& item : items) {
    CHECK(item.action == CleanAction::removed);
    CHECK(item.bytes == (item.key == "old" ? old_bytes : corrupt_bytes));
  }
  CHECK(corrupt_bytes == 500);
}

TEST_CASE("clean keep N keeps the N newest valid entries") {
  Populated cache;

  SUBCASE("keep 1") {
    CleanRequest request = request_for(CleanMode::keep);
    request.keep = 1;
    auto items = cache.clean(request);
    CHECK(keys_with(items, CleanAction::removed) ==
          std::vector<std::string>{"bad-json", "mid", "no-meta", "old"});
    CHECK(cache.entries() == std::vector<std::string>{"new"});
  }
  SUBCASE("keep 2") {
    CleanRequest request = request_for(CleanMode::keep);
    request.keep = 2;
    cache.clean(request);
    CHECK(cache.entries() == std::vector<std::string>{"mid", "new"});
  }
  SUBCASE("keep 0 is all") {
    CleanRequest request = request_for(CleanMode::keep);
    request.keep = 0;
    cache.clean(request);
    CHECK(cache.entries().empty());
  }
  SUBCASE("corrupt entries never take a free keep slot") {
    CleanRequest request = request_for(CleanMode::keep);
    request.keep = 4;
    auto items = cache.clean(request);
    CHECK(keys_with(items, CleanAction::removed) ==
          std::vector<std::string>{"bad-json", "no-meta"});
    CHECK(cache.entries() == std::vector<std::string>{"mid", "new", "old"});
  }
  SUBCASE("keep more than there are") {
    CleanRequest request = request_for(CleanMode::keep);
    request.keep = 100;
    auto items = cache.clean(request);
    CHECK(keys_with(items, CleanAction::removed).size() == 2);
    CHECK(cache.entries() == std::vector<std::string>{"mid", "new", "old"});
  }
}

TEST_CASE("clean keep with only valid entries and keep above the count") {
  TempDir dir;
  Cache cache = open_cache(dir / "cache");
  std::string image = dir / "image";
  ktc::test::write_file(image, "bytes");
  StoreRequest request;
  request.image = image;
  REQUIRE(cache.store("one", request).ok());
  CleanRequest clean = request_for(CleanMode::keep);
  clean.keep = 5;
  auto items = cache.clean(clean);
  REQUIRE(items.ok());
  CHECK(items->empty());
  CHECK(cache.lookup("one", false).ok());
}

TEST_CASE("clean corrupt_only removes corrupt entries only") {
  Populated cache;
  auto items = cache.clean(request_for(CleanMode::corrupt_only));
  CHECK(keys_with(items, CleanAction::removed) ==
        std::vector<std::string>{"bad-json", "no-meta"});
  for (const auto& item : items) {
    CHECK(item.corrupt);
  }
  CHECK(cache.entries() == std::vector<std::string>{"mid", "new", "old"});
  for (std::string key : {"mid", "new", "old"}) {
    CHECK(cache.cache.verify(key).ok());
  }
}

TEST_CASE("clean keys removes the named entries") {
  Populated cache;

  SUBCASE("existing keys") {
    CleanRequest request = request_for(CleanMode::keys);
    request.keys = {"mid", "bad-json"};
    auto items = cache.clean(request);
    CHECK(keys_with(items, CleanAction::removed) ==
          std::vector<std::string>{"bad-json", "mid"});
    CHECK(cache.entries() == std::vector<std::string>{"new", "no-meta", "old"});
  }
  SUBCASE("a key named twice is removed once") {
    CleanRequest request = request_for(CleanMode::keys);
    request.keys = {"mid", "mid"};
    auto items = cache.clean(request);
    CHECK(items.size() == 1);
    CHECK(keys_with(items, CleanAction::removed) ==
          std::vector<std::string>{"mid"});
  }
  SUBCASE("a missing key is reported as not_found") {
    CleanRequest request = request_for(CleanMode::keys);
    request.keys = {"absent", "old"};
    auto items = cache.clean(request);
    CHECK(keys_with(items, CleanAction::not_found) ==
          std::vector<std::string>{"absent"});
    CHECK(keys_with(items, CleanAction::removed) ==
          std::vector<std::string>{"old"});
    CHECK(cache.entries() ==
          std::vector<std::string>{"bad-json", "mid", "new", "no-meta"});
  }
  SUBCASE("only missing keys") {
    CleanRequest request = request_for(CleanMode::keys);
    request.keys = {"absent"};
    auto items = cache.clean(request);
    REQUIRE(items.size() == 1);
    CHECK(items[0].action == CleanAction::not_found);
    CHECK(cache.entries().size() == 5);
  }
}

TEST_CASE("clean keys with an invalid key fails and removes nothing") {
  Populated cache;
  auto before = list_dir(cache.root);
  for (std::string bad : {"../../etc/passwd", "..", ".locks", ""}) {
    CAPTURE(bad);
    CleanRequest request = request_for(CleanMode::keys);
    request.keys = {"mid", bad, "old"};
    auto items = cache.cache.clean(request);
    REQUIRE_FALSE(items.ok());
    CHECK(items.error().status == Status::invalid);
  }
  CHECK(list_dir(cache.root) == before);
  CHECK(cache.entries().size() == 5);
}

TEST_CASE("a dry run removes nothing and reports what it would free") {
  Populated cache;
  auto before = list_dir(cache.root);
  auto locks_before = list_dir(cache.root + "/.locks");
  CleanRequest request;

  SUBCASE("all") {
    request.mode = CleanMode::all;
  }
  SUBCASE("keep 1") {
    request.mode = CleanMode::keep;
    request.keep = 1;
  }
  SUBCASE("corrupt only") {
    request.mode = CleanMode::corrupt_only;
  }
  SUBCASE("keys") {
    request.mode = CleanMode::keys;
    request.keys = {"old", "absent"};
  }
  request.dry_run = true;
  auto items = cache.clean(request);
  REQUIRE_FALSE(items.empty());
  for (const auto& item : items) {
    CAPTURE(item.key);
    if (item.key == "absent") {
      CHECK(item.action == CleanAction::not_found);
      continue;
    }
    CHECK(item.action == CleanAction::would_remove);
    CHECK(item.bytes == cache.entry_bytes(item.key));
    CHECK(item.bytes > 0);
  }
  CHECK(keys_with(items, CleanAction::removed).empty());
  CHECK(list_dir(cache.root) == before);
  CHECK(list_dir(cache.root + "/.locks") == locks_before);
}

TEST_CASE("clean skips an entry in use and names who holds it") {
  Populated cache;
  ktc::cache::LockRequest lock_request;
  lock_request.path = cache.cache.lock_path("mid");
  lock_request.what = "test reader";
  lock_request.mode = ktc::cache::LockMode::shared;
  auto reader = ktc::cache::acquire_lock(lock_request);
  REQUIRE(reader.ok());

  auto items = cache.clean(request_for(CleanMode::all));
  CHECK(keys_with(items, CleanAction::skipped_in_use) ==
        std::vector<std::string>{"mid"});
  CHECK(keys_with(items, CleanAction::removed).size() == 4);
  auto skipped =
      std::find_if(items.begin(), items.end(),
                   [](const CleanItem& i) { return i.key == "mid"; });
  REQUIRE(skipped != items.end());
  CHECK(skipped->message.find(fmt::format("pid={}", ::getpid())) !=
        std::string::npos);
  CHECK(skipped->message.find("mid") != std::string::npos);
  CHECK(cache.entries() == std::vector<std::string>{"mid"});
  CHECK(cache.cache.lookup("mid", false).ok());

  reader->release();
  auto again = cache.clean(request_for(CleanMode::all));
  CHECK(keys_with(again, CleanAction::removed) ==
        std::vector<std::string>{"mid"});
  CHECK(cache.entries().empty());
}

TEST_CASE("clean keeps the lock directory and every lock file") {
  Populated cache;
  auto locks_before = list_dir(cache.root + "/.locks");
  REQUIRE(locks_before.size() == 3);
  cache.clean(request_for(CleanMode::all));
  CHECK(list_dir(cache.root) == std::vector<std::string>{".locks"});
  auto locks_after = list_dir(cache.root + "/.locks");
  for (const auto& name : locks_before) {
    CHECK(std::find(locks_after.begin(), locks_after.end(), name) !=
          locks_after.end());
  }
  CHECK(names_starting(cache.root, ".trash-").empty());
}

TEST_CASE("clean leaves no trash directory behind") {
  Populated cache;
  CleanRequest request = request_for(CleanMode::keep);
  request.keep = 1;
  cache.clean(request);
  CHECK(names_starting(cache.root, ".trash-").empty());
  CHECK(names_starting(cache.root, ".tmp-").empty());
}

TEST_CASE("clean of an empty or missing cache does nothing") {
  TempDir dir;

  SUBCASE("missing root") {
    Cache cache = open_cache(dir / "cache");
    auto items = cache.clean(request_for(CleanMode::all));
    REQUIRE(items.ok());
    CHECK(items->empty());
    CHECK_FALSE(exists(dir / "cache"));
  }
  SUBCASE("empty root") {
    REQUIRE(::mkdir((dir / "cache").c_str(), 0777) == 0);
    Cache cache = open_cache(dir / "cache");
    auto items = cache.clean(request_for(CleanMode::corrupt_only));
    REQUIRE(items.ok());
    CHECK(items->empty());
    CHECK(list_dir(dir / "cache").empty());
  }
}

TEST_CASE("clean leaves bookkeeping and stores in progress alone") {
  Populated cache;
  std::string live_tmp =
      fmt::format("{}/.tmp-new-0123456789abcdef-{}", cache.root, ::getpid());
  REQUIRE(::mkdir(live_tmp.c_str(), 0777) == 0);
  REQUIRE(::mkdir((cache.root + "/.hidden").c_str(), 0777) == 0);
  cache.clean(request_for(CleanMode::all));
  CHECK(exists(live_tmp));
  CHECK(exists(cache.root + "/.hidden"));
}

TEST_SUITE_END();
