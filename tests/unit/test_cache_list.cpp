#include "cache/cache.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <vector>

using ktc::Status;
using ktc::cache::Cache;
using ktc::cache::CacheOptions;
using ktc::cache::CorruptKind;
using ktc::cache::Entry;
using ktc::cache::StoreRequest;
using ktc::test::TempDir;

namespace {

// Byte for byte what ktstr writes for a tarball build: serde_json's pretty
// printer, its eleven fields in its order, no final newline, no
// schema_version and no artifacts.
constexpr std::string_view k_ktstr_metadata = R"({
  "version": "6.14.2",
  "source": {
    "type": "tarball"
  },
  "arch": "x86_64",
  "image_name": "bzImage",
  "config_hash": "0c1d2e3f",
  "built_at": "2026-04-12T10:00:00Z",
  "ktstr_kconfig_hash": "1a2b3c4d",
  "has_vmlinux": true,
  "vmlinux_stripped": true,
  "source_vmlinux_size": null,
  "source_vmlinux_mtime_secs": null
})";

// Valid metadata with the given built_at and image name.
std::string metadata_text(std::string_view built_at,
                          std::string_view image_name = "bzImage") {
  return fmt::format(R"({{
  "version": null,
  "source": {{"type": "local", "source_tree_path": null, "git_hash": null}},
  "arch": "x86_64",
  "image_name": "{}",
  "config_hash": null,
  "built_at": "{}",
  "ktstr_kconfig_hash": null,
  "has_vmlinux": false,
  "vmlinux_stripped": false,
  "source_vmlinux_size": null,
  "source_vmlinux_mtime_secs": null
}})",
                     image_name, built_at);
}

Cache open_cache(const std::string& root) {
  CacheOptions options;
  options.root = root;
  auto cache = Cache::open(std::move(options));
  REQUIRE_MESSAGE(cache.ok(), cache.error().message);
  return std::move(cache).value();
}

// An entry directory written by hand, as another tool (or damage) leaves it.
void write_entry(const std::string& root,
                 const std::string& key,
                 std::optional<std::string_view> metadata,
                 bool with_image = true) {
  ::mkdir(root.c_str(), 0777);
  std::string dir = root + "/" + key;
  REQUIRE(::mkdir(dir.c_str(), 0777) == 0);
  if (metadata) {
    ktc::test::write_file(dir + "/metadata.json", *metadata);
  }
  if (with_image) {
    ktc::test::write_file(dir + "/bzImage", "image bytes");
  }
}

void store_built_at(Cache& cache,
                    const TempDir& dir,
                    const std::string& key,
                    std::string_view built_at) {
  std::string image = dir / ("image-" + key);
  ktc::test::write_file(image, "image of " + key);
  StoreRequest request;
  request.image = image;
  request.image_name = "bzImage";
  request.metadata_json = fmt::format(R"({{"built_at":"{}"}})", built_at);
  auto entry = cache.store(key, request);
  REQUIRE_MESSAGE(entry.ok(), entry.error().message);
}

std::vector<std::string> keys_of(const std::vector<Entry>& entries) {
  std::vector<std::string> keys;
  for (const auto& entry : entries) {
    keys.push_back(entry.key);
  }
  return keys;
}

// The single listed entry, which must be corrupt.
Entry only_corrupt(Cache& cache) {
  ktc::Result<void> error;
  auto entries = cache.list_entries(&error);
  REQUIRE(error.ok());
  REQUIRE(entries.size() == 1);
  REQUIRE_FALSE(entries[0].valid());
  REQUIRE(entries[0].corruption.has_value());
  return std::move(entries[0]);
}

} // namespace

TEST_SUITE_BEGIN("CacheList");

TEST_CASE("list on a missing root is empty and creates nothing") {
  TempDir dir;
  Cache cache = open_cache(dir / "cache");
  ktc::Result<void> error;
  CHECK(cache.list_entries(&error).empty());
  CHECK(error.ok());
  CHECK_FALSE(ktc::test::exists(dir / "cache"));
}

TEST_CASE("list reports a root that cannot be read") {
  TempDir dir;
  ktc::test::write_file(dir / "file", "not a directory");
  Cache cache = open_cache(dir / "file");
  ktc::Result<void> error;
  CHECK(cache.list_entries(&error).empty());
  CHECK_FALSE(error.ok());
  CHECK(error.error().message.find(dir / "file") != std::string::npos);
}

TEST_CASE("list sorts valid entries newest first and corrupt ones last") {
  TempDir dir;
  std::string root = dir / "cache";
  Cache cache = open_cache(root);
  store_built_at(cache, dir, "middle", "2025-06-01T00:00:00Z");
  write_entry(root, "corrupt-b", "{broken");
  store_built_at(cache, dir, "oldest", "2024-01-01T00:00:00Z");
  write_entry(root, "corrupt-a", std::nullopt);
  store_built_at(cache, dir, "newest", "2026-12-31T23:59:59Z");

  auto entries = cache.list_entries();
  CHECK(keys_of(entries) == std::vector<std::string>{"newest", "middle",
                                                     "oldest", "corrupt-a",
                                                     "corrupt-b"});
  REQUIRE(entries.size() == 5);
  CHECK(entries[0].valid());
  CHECK(entries[2].valid());
  CHECK_FALSE(entries[3].valid());
  CHECK(entries[0].path == root + "/newest");
  CHECK(entries[0].metadata->built_at() == "2026-12-31T23:59:59Z");
}

TEST_CASE("list orders entries built at the same time by key") {
  TempDir dir;
  Cache cache = open_cache(dir / "cache");
  store_built_at(cache, dir, "b", "2025-01-01T00:00:00Z");
  store_built_at(cache, dir, "a", "2025-01-01T00:00:00Z");
  store_built_at(cache, dir, "c", "2025-01-01T00:00:00Z");
  CHECK(keys_of(cache.list_entries()) ==
        std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("list skips everything that is not an entry directory") {
  TempDir dir;
  std::string root = dir / "cache";
  Cache cache = open_cache(root);
  store_built_at(cache, dir, "real", "2025-01-01T00:00:00Z");
  std::string valid = metadata_text("2025-01-01T00:00:00Z");

  // Dot names: bookkeeping, stores in progress, hidden directories.
  write_entry(root, ".hidden", valid);
  write_entry(root, ".tmp-real-0123456789abcdef-1", valid);
  write_entry(root, ".trash-real-0123456789abcdef-1", valid);
  // A regular file and symbolic links at the root.
  ktc::test::write_file(root + "/plain-file", valid);
  REQUIRE(::symlink("real", (root + "/alias").c_str()) == 0);
  write_entry(dir.path(), "outside", valid);
  REQUIRE(::symlink((dir / "outside").c_str(), (root + "/outside").c_str()) ==
          0);
  REQUIRE(::symlink("/nonexistent", (root + "/dangling").c_str()) == 0);
  // A directory whose name is not a valid key.
  write_entry(root, "bad:key", valid);

  CHECK(keys_of(cache.list_entries()) == std::vector<std::string>{"real"});
}

TEST_CASE("list classifies every kind of corrupt entry from real files") {
  TempDir dir;
  std::string root = dir / "cache";
  Cache cache = open_cache(root);
  CorruptKind kind = CorruptKind::unknown;
  std::string reason;

  SUBCASE("metadata.json missing") {
    write_entry(root, "k", std::nullopt);
    kind = CorruptKind::missing;
    reason = "metadata.json missing";
  }
  SUBCASE("metadata.json is a directory") {
    write_entry(root, "k", std::nullopt);
    REQUIRE(::mkdir((root + "/k/metadata.json").c_str(), 0777) == 0);
    kind = CorruptKind::unreadable;
    reason = "metadata.json unreadable: ";
  }
  SUBCASE("metadata.json is a symbolic link") {
    write_entry(root, "k", std::nullopt);
    ktc::test::write_file(dir / "elsewhere.json", metadata_text("2025"));
    REQUIRE(::symlink((dir / "elsewhere.json").c_str(),
                      (root + "/k/metadata.json").c_str()) == 0);
    kind = CorruptKind::unreadable;
    reason = "metadata.json unreadable: ";
  }
  SUBCASE("malformed") {
    write_entry(root, "k", "{\"version\": nope}");
    kind = CorruptKind::malformed;
    reason = "metadata.json malformed: ";
  }
  SUBCASE("truncated mid-file") {
    std::string text = metadata_text("2025-01-01T00:00:00Z");
    write_entry(root, "k", std::string_view(text).substr(0, text.size() / 2));
    kind = CorruptKind::truncated;
    reason = "metadata.json truncated: ";
  }
  SUBCASE("empty") {
    write_entry(root, "k", "");
    kind = CorruptKind::truncated;
    reason = "metadata.json truncated: ";
  }
  SUBCASE("schema drift: a required field missing") {
    write_entry(root, "k", R"({"arch":"x86_64","image_name":"bzImage",
      "built_at":"2025","has_vmlinux":false,"vmlinux_stripped":false})");
    kind = CorruptKind::schema_drift;
    reason = "metadata.json schema drift: missing field `source`";
  }
  SUBCASE("schema drift: a field of the wrong type") {
    std::string text = metadata_text("2025-01-01T00:00:00Z");
    text.replace(text.find("\"has_vmlinux\": false"), 20,
                 "\"has_vmlinux\": \"no\"");
    write_entry(root, "k", text);
    kind = CorruptKind::schema_drift;
    reason = "metadata.json schema drift: invalid type for `has_vmlinux`";
  }
  SUBCASE("the image file missing") {
    write_entry(root, "k", metadata_text("2025", "Image"), false);
    kind = CorruptKind::image_missing;
    reason = "image file Image missing from entry directory";
  }
  SUBCASE("the image is a directory") {
    write_entry(root, "k", metadata_text("2025", "Image"), false);
    REQUIRE(::mkdir((root + "/k/Image").c_str(), 0777) == 0);
    kind = CorruptKind::image_missing;
    reason = "image file Image missing";
  }
  SUBCASE("invalid UTF-8") {
    std::string text = metadata_text("2025-01-01T00:00:00Z");
    text.replace(text.find("x86_64"), 6, "x86\xff\xfe");
    write_entry(root, "k", text);
    kind = CorruptKind::unreadable;
    reason = "metadata.json unreadable: invalid UTF-8";
  }
  Entry entry = only_corrupt(cache);
  CHECK(entry.key == "k");
  CHECK(entry.path == root + "/k");
  CHECK(entry.corruption->kind == kind);
  CHECK_MESSAGE(entry.corruption->reason.starts_with(reason),
                entry.corruption->reason);
  CHECK(entry.image_path().empty());
  CHECK(entry.vmlinux_path().empty());
}

TEST_CASE("list classifies a FIFO metadata.json without blocking on it") {
  TempDir dir;
  std::string root = dir / "cache";
  write_entry(root, "k", std::nullopt);
  REQUIRE(::mkfifo((root + "/k/metadata.json").c_str(), 0666) == 0);
  Cache cache = open_cache(root);

  // In a child that an alarm kills: a blocking open must fail the test,
  // not hang the run.
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::alarm(10);
    auto entries = cache.list_entries();
    bool classified =
        entries.size() == 1 && entries[0].corruption &&
        entries[0].corruption->kind == CorruptKind::unreadable &&
        entries[0].corruption->reason.starts_with("metadata.json unreadable: ");
    ::_exit(classified ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("corrupt kinds have ktstr's machine-readable names") {
  using ktc::cache::to_string;
  CHECK(to_string(CorruptKind::missing) == "missing");
  CHECK(to_string(CorruptKind::unreadable) == "unreadable");
  CHECK(to_string(CorruptKind::schema_drift) == "schema_drift");
  CHECK(to_string(CorruptKind::malformed) == "malformed");
  CHECK(to_string(CorruptKind::truncated) == "truncated");
  CHECK(to_string(CorruptKind::parse_error) == "parse_error");
  CHECK(to_string(CorruptKind::image_missing) == "image_missing");
  CHECK(to_string(CorruptKind::unknown) == "unknown");
}

TEST_CASE("an entry exactly as ktstr writes it lists as valid") {
  TempDir dir;
  std::string root = dir / "cache";
  write_entry(root, "6.14.2-tarball-x86_64-kc1a2b3c4d", k_ktstr_metadata);
  ktc::test::write_file(root + "/6.14.2-tarball-x86_64-kc1a2b3c4d/vmlinux",
                        "stripped vmlinux");
  Cache cache = open_cache(root);

  auto entries = cache.list_entries();
  REQUIRE(entries.size() == 1);
  REQUIRE_MESSAGE(
      entries[0].valid(),
      (entries[0].corruption ? entries[0].corruption->reason : std::string()));
  const auto& metadata = *entries[0].metadata;
  CHECK(metadata.version() == "6.14.2");
  CHECK(metadata.source_type() == "tarball");
  CHECK(metadata.arch() == "x86_64");
  CHECK(metadata.built_at() == "2026-04-12T10:00:00Z");
  CHECK(metadata.has_vmlinux());
  CHECK(metadata.vmlinux_stripped());
  CHECK_FALSE(metadata.schema_version().has_value());
  CHECK_FALSE(metadata.has_artifacts());
  // No lock file yet: never used through ktcache.
  CHECK(entries[0].last_used == -1);
  CHECK(entries[0].vmlinux_path() == entries[0].path + "/vmlinux");

  SUBCASE("a lookup finds it") {
    auto found = cache.lookup("6.14.2-tarball-x86_64-kc1a2b3c4d", false);
    REQUIRE_MESSAGE(found.ok(), found.error().message);
    CHECK(found->image_path() ==
          root + "/6.14.2-tarball-x86_64-kc1a2b3c4d/bzImage");
  }
  SUBCASE("verify says it cannot be verified") {
    auto verified = cache.verify("6.14.2-tarball-x86_64-kc1a2b3c4d");
    REQUIRE_FALSE(verified.ok());
    CHECK(verified.error().status == Status::unverifiable);
    CHECK(verified.error().message.find("6.14.2-tarball-x86_64-kc1a2b3c4d") !=
          std::string::npos);
  }
  SUBCASE("its kconfig status comes from ktstr's hash") {
    using ktc::cache::KconfigStatus;
    CHECK(ktc::cache::kconfig_status(metadata, "1a2b3c4d") ==
          KconfigStatus::matches);
    CHECK(ktc::cache::kconfig_status(metadata, "ffffffff") ==
          KconfigStatus::stale);
  }
}

TEST_CASE("an entry from a newer schema lists as valid") {
  TempDir dir;
  std::string root = dir / "cache";
  std::string text = metadata_text("2025-01-01T00:00:00Z");
  text.replace(text.rfind('}'), 1,
               ",\n  \"schema_version\": 99,\n  "
               "\"future_field\": [1, 2]\n}");
  write_entry(root, "future", text);
  Cache cache = open_cache(root);
  auto entries = cache.list_entries();
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].valid());
  CHECK(entries[0].metadata->schema_version() == 99);
}

TEST_CASE("an entry with a source type no plugin knows lists as valid") {
  TempDir dir;
  std::string root = dir / "cache";
  std::string text = metadata_text("2025-01-01T00:00:00Z");
  std::string local =
      R"({"type": "local", "source_tree_path": null, "git_hash": null})";
  text.replace(text.find(local), local.size(),
               R"({"type": "distro", "package": {"name": "linux"}})");
  write_entry(root, "distro", text);
  Cache cache = open_cache(root);
  auto entries = cache.list_entries();
  REQUIRE(entries.size() == 1);
  REQUIRE(entries[0].valid());
  CHECK(entries[0].metadata->source_type() == "distro");
}

TEST_CASE("kconfig status is untracked without a recorded hash") {
  TempDir dir;
  std::string root = dir / "cache";
  write_entry(root, "k", metadata_text("2025-01-01T00:00:00Z"));
  Cache cache = open_cache(root);
  auto entries = cache.list_entries();
  REQUIRE(entries.size() == 1);
  REQUIRE(entries[0].valid());
  auto status = ktc::cache::kconfig_status(*entries[0].metadata, "1a2b3c4d");
  CHECK(status == ktc::cache::KconfigStatus::untracked);
  CHECK(ktc::cache::to_string(status) == "untracked");
  CHECK(ktc::cache::to_string(ktc::cache::KconfigStatus::matches) == "matches");
  CHECK(ktc::cache::to_string(ktc::cache::KconfigStatus::stale) == "stale");
}

TEST_CASE("list reports the time of last use from the lock file") {
  TempDir dir;
  std::string root = dir / "cache";
  Cache cache = open_cache(root);
  store_built_at(cache, dir, "used", "2025-01-01T00:00:00Z");
  struct timespec times[2] = {{1'500'000'000, 0}, {1'500'000'000, 0}};
  REQUIRE(::utimensat(AT_FDCWD, cache.lock_path("used").c_str(), times, 0) ==
          0);
  auto entries = cache.list_entries();
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].last_used == 1'500'000'000);
}

TEST_CASE("list takes no lock and changes nothing") {
  TempDir dir;
  std::string root = dir / "cache";
  write_entry(root, "k", metadata_text("2025-01-01T00:00:00Z"));
  write_entry(root, "broken", "{");
  Cache cache = open_cache(root);
  auto before = ktc::test::list_dir(root);
  REQUIRE(cache.list_entries().size() == 2);
  CHECK(ktc::test::list_dir(root) == before);
}

TEST_CASE("locks lists every lock file with its holders") {
  TempDir dir;
  std::string root = dir / "cache";
  Cache cache = open_cache(root);

  SUBCASE("none before the first store") {
    auto locks = cache.locks();
    REQUIRE(locks.ok());
    CHECK(locks->empty());
  }
  SUBCASE("one per key, sorted, with the current holder") {
    store_built_at(cache, dir, "b", "2025-01-01T00:00:00Z");
    store_built_at(cache, dir, "a", "2025-01-01T00:00:00Z");
    ktc::test::write_file(root + "/.locks/stray.txt", "");
    auto lease = cache.lookup("b", true);
    REQUIRE(lease.ok());
    auto locks = cache.locks();
    REQUIRE(locks.ok());
    REQUIRE(locks->size() == 2);
    CHECK((*locks)[0].name == "a");
    CHECK((*locks)[0].path == root + "/.locks/a.lock");
    CHECK((*locks)[0].holders.empty());
    CHECK((*locks)[1].name == "b");
    REQUIRE((*locks)[1].holders.size() == 1);
    CHECK((*locks)[1].holders[0].pid == ::getpid());
    CHECK_FALSE((*locks)[1].holders[0].exclusive);
  }
}

TEST_SUITE_END();
