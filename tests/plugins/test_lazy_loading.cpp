// Plugins are loaded only when a command needs one: the cache commands load
// none, a strip loads its policy alone, a describe its scheme alone, and the
// last handle to go unloads them. Judged by what this process has mapped,
// so it runs as its own executable, on private copies of the shipped
// plugins that no other test maps.

#include "test_util.hpp"

#include <doctest/doctest.h>
#include <ktcache/ktcache.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>

namespace fs = std::filesystem;
using ktc::test::TempDir;
using ktc::test::write_file;

namespace {

struct CacheFree {
  void operator()(ktc_cache* cache) const { ktc_cache_free(cache); }
};
using CachePtr = std::unique_ptr<ktc_cache, CacheFree>;

// The file names under `dir` that this process has mapped.
std::set<std::string> mapped_from(const std::string& dir) {
  std::ifstream maps("/proc/self/maps");
  REQUIRE(maps.good());
  std::set<std::string> names;
  std::string line;
  const std::string prefix = dir + "/";
  while (std::getline(maps, line)) {
    auto at = line.find(prefix);
    if (at != std::string::npos) {
      names.insert(line.substr(at + prefix.size()));
    }
  }
  return names;
}

void call_ok(int status, const char* what) {
  REQUIRE_MESSAGE(status == KTC_OK, what, ": ", ktc_error_message());
}

} // namespace

TEST_CASE("plugins load only when a command needs them") {
  ktc::test::ScopedEnv no_path{"KTCACHE_PLUGIN_PATH", std::nullopt};
  TempDir dir;
  const std::string plugins = fs::canonical(dir.path()).string() + "/plugins";
  fs::create_directory(plugins);
  fs::permissions(plugins, fs::perms::owner_all | fs::perms::group_read |
                               fs::perms::group_exec);
  const std::string shipped =
      ktc::test::env_path("KTCACHE_SHIPPED_PLUGINS_DIR");
  for (const char* name : {"source_local.so", "strip_none.so"}) {
    fs::copy_file(shipped + "/" + name, plugins + "/" + name);
  }

  std::string root = dir / "cache";
  ktc_open_options open_options = KTC_OPEN_OPTIONS_INIT;
  open_options.root = root.c_str();
  ktc_cache* raw = nullptr;
  call_ok(ktc_cache_open(&raw, &open_options), "open");
  CachePtr cache(raw);
  call_ok(ktc_plugin_dir_add(cache.get(), plugins.c_str()), "plugin dir");

  std::string image = dir / "bzImage";
  std::string vmlinux = dir / "vmlinux";
  write_file(image, "boot image bytes");
  // An ELF file, stored whole (--no-strip) and stripped with policy none.
  fs::copy_file(shipped + "/source_local.so", vmlinux);
  ktc_store_options store = KTC_STORE_OPTIONS_INIT;
  store.image = image.c_str();
  store.vmlinux = vmlinux.c_str();
  store.flags = KTC_STORE_NO_STRIP;
  for (const char* key : {"lazy-a", "lazy-b"}) {
    call_ok(ktc_store(nullptr, cache.get(), key, &store), "store");
  }

  ktc_list* list = nullptr;
  call_ok(ktc_list_entries(&list, cache.get()), "list");
  CHECK(ktc_list_count(list) == 2);
  ktc_list_free(list);

  ktc_entry* entry = nullptr;
  call_ok(ktc_lookup(&entry, cache.get(), "lazy-a", 0), "lookup");
  ktc_entry_free(entry);
  call_ok(ktc_lookup(&entry, cache.get(), "lazy-a", KTC_LOOKUP_LEASE),
          "leased lookup");
  ktc_entry_free(entry);
  CHECK(ktc_lookup(&entry, cache.get(), "absent", 0) == KTC_E_NOTFOUND);

  call_ok(ktc_verify(cache.get(), "lazy-a"), "verify");

  ktc_clean_options clean = KTC_CLEAN_OPTIONS_INIT;
  const char* keys[] = {"lazy-b"};
  clean.mode = KTC_CLEAN_KEYS;
  clean.keys = keys;
  clean.key_count = 1;
  ktc_clean_report* report = nullptr;
  call_ok(ktc_clean(&report, cache.get(), &clean), "clean");
  ktc_clean_report_free(report);

  ktc_lock_list* locks = nullptr;
  call_ok(ktc_locks(&locks, cache.get()), "locks");
  ktc_lock_list_free(locks);

  INFO("after store, list, lookup, verify, clean and locks");
  CHECK(mapped_from(plugins).empty());

  std::string stripped = dir / "vmlinux.none";
  ktc_strip_options strip = KTC_STRIP_OPTIONS_INIT;
  strip.policy = "none";
  call_ok(ktc_strip(cache.get(), vmlinux.c_str(), stripped.c_str(), &strip,
                    nullptr),
          "strip --policy none");
  CHECK(ktc::test::read_file(stripped) == ktc::test::read_file(vmlinux));
  CHECK(mapped_from(plugins) == std::set<std::string>{"strip_none.so"});

  // A tree the local plugin accepts: what its describe needs, no more.
  std::string tree = dir / "linux";
  fs::create_directories(tree + "/init");
  write_file(tree + "/Makefile",
             "VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\nEXTRAVERSION =\n");
  write_file(tree + "/Kconfig", "");
  write_file(tree + "/init/main.c", "");
  char* described = nullptr;
  std::string spec = "local:" + tree;
  call_ok(ktc_source_describe(&described, cache.get(), spec.c_str()),
          "describe");
  ktc_free(described);
  CHECK(mapped_from(plugins) ==
        std::set<std::string>{"source_local.so", "strip_none.so"});

  cache.reset();
  INFO("after the last handle is freed");
  CHECK(mapped_from(plugins).empty());
}
