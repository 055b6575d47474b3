#include "cache/cache.hpp"
#include "cache/key.hpp"
#include "cache/lock.hpp"
#include "test_util.hpp"
#include "util/fs.hpp"
#include "util/sha256.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace json = boost::json;
using ktc::Status;
using ktc::cache::Cache;
using ktc::cache::CacheOptions;
using ktc::cache::Entry;
using ktc::cache::StoreRequest;
using ktc::test::exists;
using ktc::test::list_dir;
using ktc::test::TempDir;

namespace {

constexpr const char* k_key = "6.14.2-tarball-x86_64-kc1a2b3c4d";

Cache open_cache(const std::string& root, bool rename_fallback = false) {
  CacheOptions options;
  options.root = root;
  options.force_rename_fallback = rename_fallback;
  options.store_lock_timeout = std::chrono::milliseconds(200);
  options.shared_lock_timeout = std::chrono::milliseconds(200);
  auto cache = Cache::open(std::move(options));
  REQUIRE_MESSAGE(cache.ok(), cache.error().message);
  return std::move(cache).value();
}

// Input files for a store, written under `dir`/in-<seed>.
struct Inputs {
  std::string image;
  std::string vmlinux;
  std::string config;
  std::string image_data;
  std::string vmlinux_data;
  std::string config_data;
};

Inputs make_inputs(const TempDir& dir, unsigned seed) {
  Inputs inputs;
  std::string in = dir / ("in-" + std::to_string(seed));
  REQUIRE(::mkdir(in.c_str(), 0777) == 0);
  inputs.image = in + "/bzImage";
  inputs.vmlinux = in + "/vmlinux-raw";
  inputs.config = in + "/dot-config";
  inputs.image_data = ktc::test::random_bytes(70'000 + seed, seed);
  inputs.vmlinux_data = ktc::test::random_bytes(150'000 + seed, seed + 100);
  inputs.config_data = "CONFIG_HZ=1000\nCONFIG_SCHED_CLASS_EXT=y\n# seed " +
                       std::to_string(seed) + "\n";
  ktc::test::write_file(inputs.image, inputs.image_data);
  ktc::test::write_file(inputs.vmlinux, inputs.vmlinux_data);
  ktc::test::write_file(inputs.config, inputs.config_data);
  return inputs;
}

StoreRequest full_request(const Inputs& inputs) {
  StoreRequest request;
  request.image = inputs.image;
  request.vmlinux = inputs.vmlinux;
  request.config = inputs.config;
  request.arch = "x86_64";
  request.version = "6.14.2";
  request.source_json = R"({"type":"tarball"})";
  request.kconfig_hash = "1a2b3c4d";
  return request;
}

Entry stored(Cache& cache, const std::string& key, const StoreRequest& req) {
  auto entry = cache.store(key, req);
  REQUIRE_MESSAGE(entry.ok(), entry.error().message);
  return std::move(entry).value();
}

json::object metadata_on_disk(const std::string& entry_dir) {
  json::value value =
      json::parse(ktc::test::read_file(entry_dir + "/metadata.json"));
  REQUIRE(value.is_object());
  return value.as_object();
}

// The names at the root that are neither the lock directory nor an entry.
std::vector<std::string> leftovers(const std::string& root) {
  std::vector<std::string> names;
  for (const auto& name : list_dir(root)) {
    if (name.front() == '.' && name != ".locks") {
      names.push_back(name);
    }
  }
  return names;
}

void flip_byte(const std::string& path, off_t offset) {
  ktc::Fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  REQUIRE(fd.valid());
  char byte = 0;
  REQUIRE(::pread(fd.get(), &byte, 1, offset) == 1);
  byte = static_cast<char>(byte ^ 0x01);
  REQUIRE(::pwrite(fd.get(), &byte, 1, offset) == 1);
}

int64_t mtime_of(const std::string& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<int64_t>(st.st_mtim.tv_sec);
}

void set_mtime(const std::string& path, time_t seconds) {
  struct timespec times[2] = {{seconds, 0}, {seconds, 0}};
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
}

ktc::Result<ktc::cache::FileLock> try_lock(const std::string& path,
                                           ktc::cache::LockMode mode) {
  ktc::cache::LockRequest request;
  request.path = path;
  request.what = "test lock";
  request.mode = mode;
  request.create = true;
  return ktc::cache::acquire_lock(request);
}

} // namespace

TEST_SUITE_BEGIN("CacheStore");

TEST_CASE("opening a cache touches nothing on disk") {
  TempDir dir;
  Cache cache = open_cache(dir / "cache");
  CHECK(cache.root() == dir / "cache");
  CHECK_FALSE(exists(dir / "cache"));
  CHECK(cache.lock_path("k") == dir / "cache/.locks/k.lock");
}

TEST_CASE("opening a cache drops trailing slashes from the root") {
  TempDir dir;
  Cache cache = open_cache(dir / "cache///");
  CHECK(cache.root() == dir / "cache");
}

TEST_CASE("opening a cache applies the environment's switches") {
  using ktc::test::ScopedEnv;
  TempDir dir;
  {
    ScopedEnv fallback("KTCACHE_TEST_NO_RENAME_EXCHANGE", "1");
    ScopedEnv network("KTCACHE_ALLOW_NETWORK_FS", "1");
    Cache cache = open_cache(dir / "cache");
    CHECK(cache.options().force_rename_fallback);
    CHECK(cache.options().allow_network_fs);
  }
  {
    ScopedEnv fallback("KTCACHE_TEST_NO_RENAME_EXCHANGE", "yes");
    ScopedEnv network("KTCACHE_ALLOW_NETWORK_FS", std::nullopt);
    Cache cache = open_cache(dir / "cache");
    CHECK_FALSE(cache.options().force_rename_fallback);
    CHECK_FALSE(cache.options().allow_network_fs);
  }
}

TEST_CASE("opening a cache without a root resolves the default one") {
  using ktc::test::ScopedEnv;
  TempDir dir;
  ScopedEnv env("KTCACHE_DIR", dir / "from-env");
  auto cache = Cache::open(CacheOptions{});
  REQUIRE(cache.ok());
  CHECK(cache->root() == dir / "from-env");
  CHECK_FALSE(exists(dir / "from-env"));
}

TEST_CASE("a stale temp dir with this process's PID does not stop a store") {
  TempDir dir;
  std::string root = dir / "cache";
  Inputs inputs = make_inputs(dir, 61);
  std::string stale = fmt::format("{}/.tmp-{}-{}", root, k_key, ::getpid());
  REQUIRE(ktc::fs::make_dirs(stale).ok());
  ktc::test::write_file(stale + "/bzImage", "half written");
  Cache cache = open_cache(root);
  stored(cache, k_key, full_request(inputs));
  auto found = cache.lookup(k_key, false);
  REQUIRE(found.ok());
  CHECK(ktc::test::read_file(found->image_path()) == inputs.image_data);
}

TEST_CASE("store creates the root lazily: the lock directory and the entry") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 1);
  std::string root = dir / "deep/cache";
  Cache cache = open_cache(root);
  stored(cache, k_key, full_request(inputs));

  CHECK(list_dir(root) == std::vector<std::string>{".locks", k_key});
  CHECK(list_dir(root + "/.locks") ==
        std::vector<std::string>{std::string(k_key) + ".lock"});
  CHECK(list_dir(root + "/" + k_key) ==
        std::vector<std::string>{"bzImage", "config", "metadata.json",
                                 "vmlinux"});
}

TEST_CASE("store then lookup returns the entry with its files") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 2);
  std::string root = dir / "cache";
  Cache cache = open_cache(root);
  Entry entry = stored(cache, k_key, full_request(inputs));

  std::string entry_dir = root + "/" + k_key;
  CHECK(entry.key == k_key);
  CHECK(entry.path == entry_dir);
  CHECK(entry.valid());
  CHECK(entry.image_path() == entry_dir + "/bzImage");
  CHECK(entry.vmlinux_path() == entry_dir + "/vmlinux");
  CHECK(entry.config_path() == entry_dir + "/config");

  auto found = cache.lookup(k_key, false);
  REQUIRE_MESSAGE(found.ok(), found.error().message);
  CHECK(found->key == k_key);
  CHECK(found->path == entry_dir);
  CHECK_FALSE(found->lease.held());
  CHECK(found->image_path() == entry_dir + "/bzImage");
  CHECK(found->vmlinux_path() == entry_dir + "/vmlinux");
  CHECK(found->config_path() == entry_dir + "/config");
  CHECK(ktc::test::read_file(found->image_path()) == inputs.image_data);
  CHECK(ktc::test::read_file(found->vmlinux_path()) == inputs.vmlinux_data);
  CHECK(ktc::test::read_file(found->config_path()) == inputs.config_data);

  const auto& metadata = *found->metadata;
  CHECK(metadata.image_name() == "bzImage");
  CHECK(metadata.arch() == "x86_64");
  CHECK(metadata.source_type() == "tarball");
  CHECK(metadata.version() == "6.14.2");
  CHECK(metadata.has_vmlinux());
  CHECK_FALSE(metadata.vmlinux_stripped());
  CHECK(metadata.kconfig_hash() == "1a2b3c4d");
  CHECK(metadata.schema_version() == ktc::cache::k_schema_version);
  CHECK(metadata.built_at() == entry.metadata->built_at());
}

TEST_CASE("metadata.json holds every field ktstr requires with its type") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 3);
  Cache cache = open_cache(dir / "cache");
  Entry entry = stored(cache, k_key, full_request(inputs));
  std::string text = ktc::test::read_file(entry.path + "/metadata.json");
  json::object object = metadata_on_disk(entry.path);

  // Pretty-printed like ktstr's, ktstr's fields first.
  CHECK(text.starts_with("{\n  \"version\": "));
  CHECK(object.at("version").is_string());
  CHECK(object.at("source").is_object());
  CHECK(object.at("source").at("type") == "tarball");
  CHECK(object.at("arch") == "x86_64");
  CHECK(object.at("image_name") == "bzImage");
  CHECK(object.at("config_hash").is_string());
  REQUIRE(object.at("built_at").is_string());
  std::string built_at(object.at("built_at").as_string());
  CHECK(std::regex_match(
      built_at, std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)")));
  CHECK(object.at("ktstr_kconfig_hash").is_null());
  CHECK(object.at("has_vmlinux").is_bool());
  CHECK(object.at("vmlinux_stripped").is_bool());
  CHECK(object.at("source_vmlinux_size").is_null());
  CHECK(object.at("source_vmlinux_mtime_secs").is_null());
  CHECK(object.at("schema_version") == ktc::cache::k_schema_version);
  CHECK(object.at("kconfig_hash") == "1a2b3c4d");
  CHECK(object.at("artifacts").is_object());
  CHECK(object.at("inputs").is_object());
}

TEST_CASE("the artifacts record the size and SHA-256 of each input") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 4);
  Cache cache = open_cache(dir / "cache");
  Entry entry = stored(cache, k_key, full_request(inputs));
  json::object artifacts =
      metadata_on_disk(entry.path).at("artifacts").as_object();

  struct Expected {
    const char* role;
    const char* file;
    const std::string& data;
  };
  for (const Expected& expected :
       {Expected{"image", "bzImage", inputs.image_data},
        Expected{"vmlinux", "vmlinux", inputs.vmlinux_data},
        Expected{"config", "config", inputs.config_data}}) {
    CAPTURE(expected.role);
    REQUIRE(artifacts.contains(expected.role));
    const json::object& record = artifacts.at(expected.role).as_object();
    CHECK(record.at("file") == expected.file);
    CHECK(record.at("size").to_number<uint64_t>() == expected.data.size());
    CHECK(record.at("sha256") == ktc::sha256_hex(expected.data).c_str());

    auto parsed = entry.metadata->artifact(expected.role);
    REQUIRE(parsed.has_value());
    CHECK(parsed->size == expected.data.size());
    CHECK(parsed->sha256 == ktc::sha256_hex(expected.data));
  }
  const json::object& vmlinux = artifacts.at("vmlinux").as_object();
  CHECK(vmlinux.at("original_size").to_number<uint64_t>() ==
        inputs.vmlinux_data.size());
  CHECK(vmlinux.contains("strip_policy"));
  CHECK(vmlinux.contains("build_id"));
}

TEST_CASE("the config is stored as \"config\" and hashed into config_hash") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 5);
  Cache cache = open_cache(dir / "cache");

  SUBCASE("with a config") {
    Entry entry = stored(cache, k_key, full_request(inputs));
    CHECK(ktc::test::read_file(entry.path + "/config") == inputs.config_data);
    std::string digest = ktc::sha256_hex(inputs.config_data);
    REQUIRE(entry.metadata->config_hash().has_value());
    std::string config_hash(*entry.metadata->config_hash());
    CHECK_FALSE(config_hash.empty());
    CHECK(digest.starts_with(config_hash));
    CHECK(entry.metadata->has_config());
  }
  SUBCASE("without one") {
    StoreRequest request = full_request(inputs);
    request.config.clear();
    Entry entry = stored(cache, k_key, request);
    CHECK_FALSE(exists(entry.path + "/config"));
    CHECK_FALSE(entry.metadata->config_hash().has_value());
    CHECK_FALSE(entry.metadata->has_config());
    CHECK(entry.config_path().empty());
  }
}

TEST_CASE("store without a vmlinux records has_vmlinux false") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 6);
  Cache cache = open_cache(dir / "cache");
  StoreRequest request = full_request(inputs);
  request.vmlinux.clear();
  Entry entry = stored(cache, k_key, request);
  CHECK_FALSE(entry.metadata->has_vmlinux());
  CHECK_FALSE(entry.metadata->vmlinux_stripped());
  CHECK(entry.vmlinux_path().empty());
  CHECK_FALSE(exists(entry.path + "/vmlinux"));
  CHECK_FALSE(entry.metadata->artifact("vmlinux").has_value());
}

TEST_CASE("store fills defaults for what the request leaves out") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 7);
  Cache cache = open_cache(dir / "cache");
  StoreRequest request;
  request.image = inputs.image;
  Entry entry = stored(cache, "minimal", request);
  json::object object = metadata_on_disk(entry.path);

  CHECK(object.at("image_name") == "bzImage");
  CHECK(object.at("arch") == ktc::cache::host_arch().c_str());
  CHECK(object.at("version").is_null());
  CHECK(object.at("source").at("type") == "local");
  CHECK(object.at("source").at("source_tree_path").is_null());
  CHECK(object.at("source").at("git_hash").is_null());
  CHECK(object.at("config_hash").is_null());
  CHECK(object.at("kconfig_hash").is_null());
  CHECK(entry.last_used > 0);
}

TEST_CASE("store names the image as the request says") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 8);
  Cache cache = open_cache(dir / "cache");
  StoreRequest request = full_request(inputs);
  request.image_name = "Image";
  Entry entry = stored(cache, k_key, request);
  CHECK(entry.image_path() == entry.path + "/Image");
  CHECK(ktc::test::read_file(entry.path + "/Image") == inputs.image_data);
  CHECK_FALSE(exists(entry.path + "/bzImage"));
}

TEST_CASE("store copies its inputs and leaves the originals in place") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 9);
  Cache cache = open_cache(dir / "cache");
  stored(cache, k_key, full_request(inputs));
  CHECK(ktc::test::read_file(inputs.image) == inputs.image_data);
  CHECK(ktc::test::read_file(inputs.vmlinux) == inputs.vmlinux_data);
  CHECK(ktc::test::read_file(inputs.config) == inputs.config_data);
}

TEST_CASE("lookup of a missing key is not_found and creates nothing") {
  TempDir dir;
  std::string root = dir / "cache";

  SUBCASE("the root does not exist") {
    Cache cache = open_cache(root);
    auto found = cache.lookup("absent", false);
    REQUIRE_FALSE(found.ok());
    CHECK(found.error().status == Status::not_found);
    CHECK(found.error().message.find("absent") != std::string::npos);
    CHECK_FALSE(exists(root));
  }
  SUBCASE("the root exists with another entry") {
    Inputs inputs = make_inputs(dir, 10);
    Cache cache = open_cache(root);
    stored(cache, k_key, full_request(inputs));
    auto found = cache.lookup("absent", false);
    REQUIRE_FALSE(found.ok());
    CHECK(found.error().status == Status::not_found);
    CHECK(list_dir(root) == std::vector<std::string>{".locks", k_key});
    CHECK_FALSE(exists(cache.lock_path("absent")));
  }
}

TEST_CASE("a leased lookup or a verify of a missing cache creates nothing") {
  TempDir dir;
  std::string root = dir / "cache";
  Cache cache = open_cache(root);

  SUBCASE("leased lookup") {
    auto found = cache.lookup(k_key, true);
    REQUIRE_FALSE(found.ok());
    CHECK(found.error().status == Status::not_found);
  }
  SUBCASE("verify") {
    auto verified = cache.verify(k_key);
    REQUIRE_FALSE(verified.ok());
    CHECK(verified.error().status == Status::not_found);
    CHECK(verified.error().message.find(k_key) != std::string::npos);
  }
  CHECK_FALSE(exists(root));
}

TEST_CASE("invalid keys are rejected before any filesystem change") {
  TempDir dir;
  std::string root = dir / "cache";
  Inputs inputs = make_inputs(dir, 11);
  Cache cache = open_cache(root);

  for (std::string key : {"../../etc/passwd", "..", ".", ".tmp-x", "", "a/b",
                          "foo..bar", ".locks"}) {
    CAPTURE(key);
    auto store = cache.store(key, full_request(inputs));
    REQUIRE_FALSE(store.ok());
    CHECK(store.error().status == Status::invalid);
    for (bool lease : {false, true}) {
      auto found = cache.lookup(key, lease);
      REQUIRE_FALSE(found.ok());
      CHECK(found.error().status == Status::invalid);
    }
    auto verified = cache.verify(key);
    REQUIRE_FALSE(verified.ok());
    CHECK(verified.error().status == Status::invalid);
  }
  CHECK_FALSE(exists(root));
  CHECK_FALSE(exists(dir / "etc"));
  CHECK(list_dir(dir.path()) == std::vector<std::string>{"in-11"});
}

TEST_CASE("store replaces an existing entry completely") {
  bool fallback = false;
  SUBCASE("with RENAME_EXCHANGE") {
    fallback = false;
  }
  SUBCASE("with the two-rename fallback") {
    fallback = true;
  }
  CAPTURE(fallback);

  TempDir dir;
  std::string root = dir / "cache";
  Cache cache = open_cache(root, fallback);
  Inputs first = make_inputs(dir, 12);
  Inputs second = make_inputs(dir, 13);
  stored(cache, k_key, full_request(first));

  StoreRequest replacement;
  replacement.image = second.image;
  replacement.image_name = "Image";
  replacement.version = "6.14.3";
  replacement.arch = "aarch64";
  replacement.metadata_json = R"({"built_at":"2030-01-01T00:00:00Z"})";
  stored(cache, k_key, replacement);

  auto found = cache.lookup(k_key, false);
  REQUIRE_MESSAGE(found.ok(), found.error().message);
  CHECK(found->metadata->version() == "6.14.3");
  CHECK(found->metadata->arch() == "aarch64");
  CHECK(found->metadata->built_at() == "2030-01-01T00:00:00Z");
  CHECK(ktc::test::read_file(found->image_path()) == second.image_data);
  CHECK(list_dir(found->path) ==
        std::vector<std::string>{"Image", "metadata.json"});
  CHECK(leftovers(root).empty());
  CHECK(list_dir(root) == std::vector<std::string>{".locks", k_key});
  CHECK(cache.verify(k_key).ok());
}

TEST_CASE("a key of the maximum length fits every name the cache derives") {
  // .tmp-, .swap- and .trash- names add about 30 bytes to the key; NAME_MAX
  // is 255.
  bool fallback = false;
  SUBCASE("with RENAME_EXCHANGE") {
    fallback = false;
  }
  SUBCASE("with the two-rename fallback") {
    fallback = true;
  }
  TempDir dir;
  std::string root = dir / "cache";
  Cache cache = open_cache(root, fallback);
  Inputs inputs = make_inputs(dir, 40);
  std::string key(ktc::cache::k_key_max, 'k');

  stored(cache, key, full_request(inputs));
  stored(cache, key, full_request(inputs));
  CHECK(cache.lookup(key, true).ok());
  CHECK(cache.verify(key).ok());
  ktc::cache::CleanRequest request;
  request.mode = ktc::cache::CleanMode::keys;
  request.keys = {key};
  auto items = cache.clean(request);
  REQUIRE(items.ok());
  REQUIRE(items->size() == 1);
  CHECK((*items)[0].action == ktc::cache::CleanAction::removed);
  CHECK(list_dir(root) == std::vector<std::string>{".locks"});
}

TEST_CASE("store follows a symbolic link given as an input") {
  // A kernel tree's arch/x86_64/boot/bzImage is a link to arch/x86/boot;
  // the entry must hold the bytes, never a link.
  TempDir dir;
  std::string root = dir / "cache";
  Inputs inputs = make_inputs(dir, 41);
  REQUIRE(::symlink(inputs.image.c_str(), (dir / "link").c_str()) == 0);
  Cache cache = open_cache(root);
  StoreRequest request = full_request(inputs);
  request.image = dir / "link";
  request.image_name = "bzImage";
  auto entry = cache.store(k_key, request);
  REQUIRE(entry.ok());
  struct stat st;
  REQUIRE(::lstat(entry->image_path().c_str(), &st) == 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK(ktc::test::read_file(entry->image_path()) ==
        ktc::test::read_file(inputs.image));
  CHECK(leftovers(root).empty());
}

TEST_CASE("store with a missing or unusable input creates nothing") {
  TempDir dir;
  std::string root = dir / "cache";
  Inputs inputs = make_inputs(dir, 14);
  Cache cache = open_cache(root);
  StoreRequest request = full_request(inputs);
  Status expected = Status::not_found;
  std::string named;

  SUBCASE("no image given") {
    request.image.clear();
    expected = Status::invalid;
    named = "image";
  }
  SUBCASE("a missing image") {
    request.image = dir / "absent-image";
    named = request.image;
  }
  SUBCASE("a missing vmlinux") {
    request.vmlinux = dir / "absent-vmlinux";
    named = request.vmlinux;
  }
  SUBCASE("a missing config") {
    request.config = dir / "absent-config";
    named = request.config;
  }
  SUBCASE("a directory as the image") {
    request.image = dir / "in-14";
    request.image_name = "bzImage";
    expected = Status::invalid;
    named = request.image;
  }
  auto entry = cache.store(k_key, request);
  REQUIRE_FALSE(entry.ok());
  CHECK(entry.error().status == expected);
  CHECK(entry.error().message.find(named) != std::string::npos);
  CHECK_FALSE(exists(root));
}

TEST_CASE("a failed store leaves the existing entry as it was") {
  TempDir dir;
  std::string root = dir / "cache";
  Inputs inputs = make_inputs(dir, 15);
  Cache cache = open_cache(root);
  stored(cache, k_key, full_request(inputs));
  std::string before =
      ktc::test::read_file(root + "/" + k_key + "/metadata.json");

  StoreRequest request = full_request(inputs);
  request.vmlinux = dir / "absent";
  REQUIRE_FALSE(cache.store(k_key, request).ok());
  CHECK(ktc::test::read_file(root + "/" + k_key + "/metadata.json") == before);
  CHECK(cache.verify(k_key).ok());
  CHECK(leftovers(root).empty());
}

TEST_CASE("store refuses image names that collide or escape") {
  TempDir dir;
  std::string root = dir / "cache";
  Inputs inputs = make_inputs(dir, 16);
  Cache cache = open_cache(root);
  for (std::string name :
       {"metadata.json", "vmlinux", "config", "../escape", ".hidden"}) {
    CAPTURE(name);
    StoreRequest request = full_request(inputs);
    request.image_name = name;
    auto entry = cache.store(k_key, request);
    REQUIRE_FALSE(entry.ok());
    CHECK(entry.error().status == Status::invalid);
    CHECK(entry.error().message.find("image name") != std::string::npos);
  }
  CHECK_FALSE(exists(root));
  CHECK_FALSE(exists(dir / "escape"));
}

TEST_CASE("store refuses a source or extra metadata it cannot use") {
  TempDir dir;
  std::string root = dir / "cache";
  Inputs inputs = make_inputs(dir, 17);
  Cache cache = open_cache(root);
  StoreRequest request = full_request(inputs);
  std::string named;

  SUBCASE("a source without a type") {
    request.source_json = R"({"source_tree_path":"/src/linux"})";
    named = "type";
  }
  SUBCASE("a source with an empty type") {
    request.source_json = R"({"type":""})";
    named = "type";
  }
  SUBCASE("a source whose type is not a string") {
    request.source_json = R"({"type":7})";
    named = "type";
  }
  SUBCASE("a source that is not an object") {
    request.source_json = R"(["tarball"])";
    named = "source";
  }
  SUBCASE("a source that is not JSON") {
    request.source_json = "{type: tarball";
    named = "source";
  }
  SUBCASE("extra metadata that is not JSON") {
    request.metadata_json = "{\"note\":";
    named = "extra metadata";
  }
  SUBCASE("extra metadata that is not an object") {
    request.metadata_json = "42";
    named = "extra metadata";
  }
  auto entry = cache.store(k_key, request);
  REQUIRE_FALSE(entry.ok());
  CHECK(entry.error().status == Status::invalid);
  CHECK(entry.error().message.find(named) != std::string::npos);
  CHECK_FALSE(exists(root));
}

TEST_CASE("store keeps unknown fields of the extra metadata") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 18);
  Cache cache = open_cache(dir / "cache");
  StoreRequest request = full_request(inputs);
  request.metadata_json =
      R"({"my_tool":{"build":42,"flags":["a","b"]},"note":"kept"})";
  request.source_json =
      R"({"type":"distro","package":"linux-image-6.1","epoch":2})";
  Entry entry = stored(cache, k_key, request);

  json::object object = metadata_on_disk(entry.path);
  CHECK(object.at("note") == "kept");
  CHECK(object.at("my_tool").at("build") == 42);
  CHECK(object.at("my_tool").at("flags").as_array().size() == 2);
  CHECK(object.at("source").at("type") == "distro");
  CHECK(object.at("source").at("package") == "linux-image-6.1");

  auto found = cache.lookup(k_key, false);
  REQUIRE_MESSAGE(found.ok(), found.error().message);
  CHECK(found->metadata->object().at("note") == "kept");
  CHECK(found->metadata->source_type() == "distro");
}

TEST_CASE("store owns the fields that describe what it stored") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 19);
  Cache cache = open_cache(dir / "cache");
  StoreRequest request = full_request(inputs);
  request.vmlinux.clear();
  request.config.clear();
  request.metadata_json = R"({
    "has_vmlinux": true, "vmlinux_stripped": true, "schema_version": 99,
    "image_name": "elsewhere", "arch": "sparc",
    "artifacts": {"image": {"file": "x", "size": 1, "sha256": "00"}}
  })";
  Entry entry = stored(cache, k_key, request);

  json::object object = metadata_on_disk(entry.path);
  CHECK(object.at("has_vmlinux") == false);
  CHECK(object.at("vmlinux_stripped") == false);
  CHECK(object.at("schema_version") == ktc::cache::k_schema_version);
  CHECK(object.at("image_name") == "bzImage");
  CHECK(object.at("arch") == "x86_64");
  CHECK(object.at("artifacts").at("image").at("file") == "bzImage");
  CHECK(cache.verify(k_key).ok());
}

TEST_CASE("store takes built_at from the extra metadata when it is a string") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 20);
  Cache cache = open_cache(dir / "cache");
  StoreRequest request = full_request(inputs);

  SUBCASE("a string is kept") {
    request.metadata_json = R"({"built_at":"2001-02-03T04:05:06Z"})";
    Entry entry = stored(cache, k_key, request);
    CHECK(entry.metadata->built_at() == "2001-02-03T04:05:06Z");
  }
  SUBCASE("anything else is replaced by the current time") {
    request.metadata_json = R"({"built_at":12})";
    Entry entry = stored(cache, k_key, request);
    CHECK(entry.metadata->built_at().size() == 20);
    CHECK(entry.metadata->built_at().ends_with("Z"));
  }
}

TEST_CASE("store refuses a key whose name is taken by a regular file") {
  TempDir dir;
  std::string root = dir / "cache";
  Inputs inputs = make_inputs(dir, 21);
  REQUIRE(::mkdir(root.c_str(), 0777) == 0);
  ktc::test::write_file(root + "/" + k_key, "not an entry");
  Cache cache = open_cache(root);

  auto entry = cache.store(k_key, full_request(inputs));
  REQUIRE_FALSE(entry.ok());
  CHECK(entry.error().message.find(k_key) != std::string::npos);
  CHECK(ktc::test::read_file(root + "/" + k_key) == "not an entry");
  CHECK(leftovers(root).empty());
}

TEST_CASE("store waits for the entry lock and gives up at its timeout") {
  TempDir dir;
  std::string root = dir / "cache";
  Inputs inputs = make_inputs(dir, 22);
  Cache cache = open_cache(root);
  auto reader = try_lock(cache.lock_path(k_key), ktc::cache::LockMode::shared);
  REQUIRE(reader.ok());

  auto entry = cache.store(k_key, full_request(inputs));
  REQUIRE_FALSE(entry.ok());
  CHECK(entry.error().status == Status::locked);
  CHECK(entry.error().message.find(k_key) != std::string::npos);
  CHECK_FALSE(exists(root + "/" + k_key));

  reader->release();
  CHECK(cache.store(k_key, full_request(inputs)).ok());
}

TEST_CASE("readers never see a replaced entry missing, corrupt or torn") {
  bool fallback = false;
  SUBCASE("with RENAME_EXCHANGE") {
    fallback = false;
  }
  SUBCASE("with the two-rename fallback") {
    fallback = true;
  }
  CAPTURE(fallback);

  TempDir dir;
  CacheOptions options;
  options.root = dir / "cache";
  options.force_rename_fallback = fallback;
  auto opened = Cache::open(options);
  REQUIRE(opened.ok());
  Cache& writer = *opened;
  Inputs first = make_inputs(dir, 50);
  Inputs second = make_inputs(dir, 51);
  stored(writer, k_key, full_request(first));

  std::atomic<bool> done{false};
  std::atomic<int> lookups{0};
  std::vector<std::string> failures[4];
  std::vector<std::thread> readers;
  for (int index = 0; index < 4; ++index) {
    readers.emplace_back([&, index] {
      auto reader = Cache::open(options);
      // Plain lookups, as ktstr's readers do: leases in a tight loop
      // would starve the writer (flock prefers no one).
      while (!done.load() && failures[index].size() < 5) {
        auto found = reader->lookup(k_key, false);
        if (!found.ok()) {
          failures[index].push_back(found.error().message);
          continue;
        }
        ++lookups;
        int error = 0;
        auto image = ktc::fs::read_file(AT_FDCWD, found->image_path(), &error);
        if (!image.ok()) {
          // Only a lease protects a path opened after the lookup; the
          // fallback's window between its two renames is visible here.
          if (!fallback || error != ENOENT) {
            failures[index].push_back(image.error().message);
          }
          continue;
        }
        if (*image != first.image_data && *image != second.image_data) {
          failures[index].push_back("torn image");
        }
      }
    });
  }
  for (int round = 0; round < 40; ++round) {
    const Inputs& inputs = round % 2 == 0 ? second : first;
    auto entry = writer.store(k_key, full_request(inputs));
    CHECK_MESSAGE(entry.ok(), entry.error().message);
  }
  done = true;
  for (auto& thread : readers) {
    thread.join();
  }
  for (const auto& list : failures) {
    for (const auto& failure : list) {
      CHECK_MESSAGE(false, failure);
    }
  }
  CHECK(lookups.load() > 0);
  CHECK(leftovers(dir / "cache").empty());
}

TEST_CASE("a leased lookup holds a shared lock until the entry is gone") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 23);
  Cache cache = open_cache(dir / "cache");
  stored(cache, k_key, full_request(inputs));
  std::string lock = cache.lock_path(k_key);
  {
    auto entry = cache.lookup(k_key, true);
    REQUIRE_MESSAGE(entry.ok(), entry.error().message);
    CHECK(entry->lease.held());
    CHECK(entry->lease.mode() == ktc::cache::LockMode::shared);
    CHECK(entry->lease.path() == lock);

    auto writer = try_lock(lock, ktc::cache::LockMode::exclusive);
    REQUIRE_FALSE(writer.ok());
    CHECK(writer.error().status == Status::locked);
    // Other readers are welcome.
    CHECK(try_lock(lock, ktc::cache::LockMode::shared).ok());
    // A store cannot replace the entry meanwhile.
    auto replaced = cache.store(k_key, full_request(inputs));
    REQUIRE_FALSE(replaced.ok());
    CHECK(replaced.error().status == Status::locked);
  }
  CHECK(try_lock(lock, ktc::cache::LockMode::exclusive).ok());
}

TEST_CASE("a plain lookup takes no lock") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 24);
  Cache cache = open_cache(dir / "cache");
  stored(cache, k_key, full_request(inputs));
  auto entry = cache.lookup(k_key, false);
  REQUIRE(entry.ok());
  CHECK(try_lock(cache.lock_path(k_key), ktc::cache::LockMode::exclusive).ok());
}

TEST_CASE("a leased lookup of a missing key is not_found") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 25);
  Cache cache = open_cache(dir / "cache");
  stored(cache, k_key, full_request(inputs));
  auto entry = cache.lookup("absent", true);
  REQUIRE_FALSE(entry.ok());
  CHECK(entry.error().status == Status::not_found);
}

TEST_CASE("lookup records the time of last use on the lock file") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 26);
  Cache cache = open_cache(dir / "cache");
  stored(cache, k_key, full_request(inputs));
  std::string lock = cache.lock_path(k_key);
  constexpr time_t k_long_ago = 1'000'000'000; // 2001
  set_mtime(lock, k_long_ago);
  REQUIRE(mtime_of(lock) == k_long_ago);

  auto entry = cache.lookup(k_key, false);
  REQUIRE(entry.ok());
  int64_t now = static_cast<int64_t>(::time(nullptr));
  CHECK(mtime_of(lock) >= now - 5);
  CHECK(entry->last_used == mtime_of(lock));
}

TEST_CASE("lookup of a corrupt entry reports corrupt with the reason") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 27);
  Cache cache = open_cache(dir / "cache");
  Entry entry = stored(cache, k_key, full_request(inputs));

  SUBCASE("the image is gone") {
    REQUIRE(::unlink(entry.image_path().c_str()) == 0);
    auto found = cache.lookup(k_key, false);
    REQUIRE_FALSE(found.ok());
    CHECK(found.error().status == Status::corrupt);
    CHECK(found.error().message.find("image file bzImage missing") !=
          std::string::npos);
  }
  SUBCASE("metadata.json is gone") {
    REQUIRE(::unlink((entry.path + "/metadata.json").c_str()) == 0);
    auto found = cache.lookup(k_key, false);
    REQUIRE_FALSE(found.ok());
    CHECK(found.error().status == Status::corrupt);
    CHECK(found.error().message.find("metadata.json missing") !=
          std::string::npos);
  }
  SUBCASE("metadata.json is not JSON") {
    REQUIRE(::unlink((entry.path + "/metadata.json").c_str()) == 0);
    ktc::test::write_file(entry.path + "/metadata.json", "{oops");
    auto found = cache.lookup(k_key, true);
    REQUIRE_FALSE(found.ok());
    CHECK(found.error().status == Status::corrupt);
    CHECK(found.error().message.find("malformed") != std::string::npos);
  }
}

TEST_CASE("lookup of an entry that is a symbolic link is not a hit") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 28);
  std::string root = dir / "cache";
  Cache cache = open_cache(root);
  stored(cache, k_key, full_request(inputs));
  REQUIRE(::symlink(k_key, (root + "/alias").c_str()) == 0);
  CHECK_FALSE(cache.lookup("alias", false).ok());
  CHECK_FALSE(cache.lookup("alias", true).ok());
}

TEST_CASE("verify passes on an untouched entry") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 29);
  Cache cache = open_cache(dir / "cache");
  Entry entry = stored(cache, k_key, full_request(inputs));
  auto verified = cache.verify(k_key);
  CHECK_MESSAGE(verified.ok(), verified.error().message);

  // The BTF sidecar may be added after publish and is not checked.
  ktc::test::write_file(entry.path + "/vmlinux.btf", "sidecar");
  CHECK(cache.verify(k_key).ok());
}

TEST_CASE("verify reports a changed artifact as a mismatch naming it") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 30);
  Cache cache = open_cache(dir / "cache");
  Entry entry = stored(cache, k_key, full_request(inputs));
  std::string file;

  SUBCASE("one byte of the image") {
    file = "bzImage";
  }
  SUBCASE("one byte of the vmlinux") {
    file = "vmlinux";
  }
  SUBCASE("one byte of the config") {
    file = "config";
  }
  CAPTURE(file);
  flip_byte(entry.path + "/" + file, 17);

  auto verified = cache.verify(k_key);
  REQUIRE_FALSE(verified.ok());
  CHECK(verified.error().status == Status::mismatch);
  CHECK(verified.error().message.find(file) != std::string::npos);
  CHECK(verified.error().message.find("SHA-256") != std::string::npos);
}

TEST_CASE("verify reports a truncated, replaced or missing artifact") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 31);
  Cache cache = open_cache(dir / "cache");
  Entry entry = stored(cache, k_key, full_request(inputs));
  std::string image = entry.image_path();
  std::string expected;

  SUBCASE("truncated") {
    REQUIRE(::truncate(image.c_str(), 100) == 0);
    expected = "100 bytes";
  }
  SUBCASE("grown") {
    ktc::Fd fd(::open(image.c_str(), O_WRONLY | O_APPEND));
    REQUIRE(::write(fd.get(), "x", 1) == 1);
    expected = "bytes";
  }
  SUBCASE("the vmlinux replaced by a symbolic link to identical bytes") {
    ktc::test::write_file(dir / "same-bytes", inputs.vmlinux_data);
    REQUIRE(::unlink(entry.vmlinux_path().c_str()) == 0);
    REQUIRE(::symlink((dir / "same-bytes").c_str(),
                      entry.vmlinux_path().c_str()) == 0);
    expected = "vmlinux (vmlinux) is missing or not a regular file";
  }
  SUBCASE("the config replaced by a symbolic link to identical bytes") {
    ktc::test::write_file(dir / "same-bytes", inputs.config_data);
    REQUIRE(::unlink(entry.config_path().c_str()) == 0);
    REQUIRE(::symlink((dir / "same-bytes").c_str(),
                      entry.config_path().c_str()) == 0);
    expected = "config (config) is missing or not a regular file";
  }
  SUBCASE("the vmlinux deleted") {
    REQUIRE(::unlink(entry.vmlinux_path().c_str()) == 0);
    expected = "vmlinux";
  }
  auto verified = cache.verify(k_key);
  REQUIRE_FALSE(verified.ok());
  CHECK(verified.error().status == Status::mismatch);
  CHECK(verified.error().message.find(expected) != std::string::npos);
  CHECK(verified.error().message.find(k_key) != std::string::npos);
}

TEST_CASE("verify reports an artifact the metadata forgot to record") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 62);
  Cache cache = open_cache(dir / "cache");
  Entry entry = stored(cache, k_key, full_request(inputs));
  std::string role;
  SUBCASE("the image") {
    role = "image";
  }
  SUBCASE("a vmlinux the entry says it has") {
    role = "vmlinux";
  }
  CAPTURE(role);

  json::object object = metadata_on_disk(entry.path);
  object["artifacts"].as_object().erase(role);
  std::string path = entry.path + "/metadata.json";
  REQUIRE(::unlink(path.c_str()) == 0);
  ktc::test::write_file(path, json::serialize(object));

  auto verified = cache.verify(k_key);
  REQUIRE_FALSE(verified.ok());
  CHECK(verified.error().status == Status::mismatch);
  CHECK(verified.error().message.find("no " + role + " record") !=
        std::string::npos);
}

TEST_CASE("verify of a missing key is not_found") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 32);
  Cache cache = open_cache(dir / "cache");
  stored(cache, k_key, full_request(inputs));
  auto verified = cache.verify("absent");
  REQUIRE_FALSE(verified.ok());
  CHECK(verified.error().status == Status::not_found);
  CHECK(verified.error().message.find("absent") != std::string::npos);
}

TEST_CASE("verify of an entry without its image is corrupt") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 33);
  Cache cache = open_cache(dir / "cache");
  Entry entry = stored(cache, k_key, full_request(inputs));
  std::string image = entry.image_path();

  SUBCASE("deleted") {
    REQUIRE(::unlink(image.c_str()) == 0);
  }
  SUBCASE("replaced by a symbolic link to identical bytes") {
    // Readers never follow a link out of the entry, so the image counts
    // as missing before any hash is compared.
    ktc::test::write_file(dir / "same-bytes", inputs.image_data);
    REQUIRE(::unlink(image.c_str()) == 0);
    REQUIRE(::symlink((dir / "same-bytes").c_str(), image.c_str()) == 0);
  }
  auto verified = cache.verify(k_key);
  REQUIRE_FALSE(verified.ok());
  CHECK(verified.error().status == Status::corrupt);
  CHECK(verified.error().message.find("image file bzImage missing") !=
        std::string::npos);
}

TEST_CASE("verify fails as locked while a writer holds the entry") {
  TempDir dir;
  Inputs inputs = make_inputs(dir, 34);
  Cache cache = open_cache(dir / "cache");
  stored(cache, k_key, full_request(inputs));
  auto writer =
      try_lock(cache.lock_path(k_key), ktc::cache::LockMode::exclusive);
  REQUIRE(writer.ok());
  auto verified = cache.verify(k_key);
  REQUIRE_FALSE(verified.ok());
  CHECK(verified.error().status == Status::locked);
}

namespace {

constexpr const char* k_failed_store_test =
    "a store that fails midway leaves the old entry and no debris";

// The child half: one store of fresh inputs that the injected fault spoils.
void failing_store_here(const std::string& dir) {
  Cache cache = open_cache(dir + "/cache");
  StoreRequest request;
  request.image = dir + "/new-image";
  request.config = dir + "/new-config";
  auto entry = cache.store(k_key, request);
  REQUIRE_FALSE(entry.ok());
  CHECK(entry.error().status == Status::no_space);
  ktc::test::write_file(dir + "/ran", entry.error().message);
}

} // namespace

TEST_CASE(k_failed_store_test) {
  if (const char* dir = std::getenv("KTCACHE_UNIT_STORE_DIR")) {
    failing_store_here(dir);
    return;
  }
  TempDir dir;
  std::string root = dir / "cache";
  Inputs inputs = make_inputs(dir, 60);
  Cache cache = open_cache(root);
  stored(cache, k_key, full_request(inputs));
  ktc::test::write_file(dir / "new-image", std::string(50'000, 'n'));
  ktc::test::write_file(dir / "new-config", "CONFIG_NEW=y\n");

  // Fault switches are read once per process: the store runs in a fresh
  // copy of this binary that runs only this test case.
  ktc::test::ProcessOptions options;
  options.env = {{"KTCACHE_UNIT_STORE_DIR", dir.path()},
                 {"TMPDIR", dir.path()},
                 {"KTCACHE_TEST_COPY", "read_write"}};
  std::string expected;
  SUBCASE("a write of the copy") {
    options.env["KTCACHE_TEST_FAULT"] = "write:1";
    expected = "cannot write";
  }
  SUBCASE("an fsync") {
    options.env["KTCACHE_TEST_FAULT"] = "fsync:1";
    expected = "cannot sync";
  }
  SUBCASE("the rename that publishes") {
    options.env["KTCACHE_TEST_FAULT"] = "rename:1";
    expected = "cannot publish";
  }
  auto result = ktc::test::run_process(
      {"/proc/self/exe", std::string("--test-case=") + k_failed_store_test},
      options);
  CHECK_MESSAGE(result.exit_code == 0, result.out, result.err);
  REQUIRE(exists(dir / "ran"));
  CHECK(ktc::test::read_file(dir / "ran").find(expected) != std::string::npos);

  auto found = cache.lookup(k_key, false);
  REQUIRE_MESSAGE(found.ok(), found.error().message);
  CHECK(ktc::test::read_file(found->image_path()) == inputs.image_data);
  CHECK(cache.verify(k_key).ok());
  CHECK(leftovers(root).empty());
}

TEST_SUITE_END();
