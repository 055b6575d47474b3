#pragma once

#include "cache/lock.hpp"
#include "cache/metadata.hpp"
#include "util/fd.hpp"
#include "util/result.hpp"

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace ktc::cache {

struct CacheOptions {
  std::string root; // empty: resolve_root()
  bool allow_network_fs = false;
  std::chrono::milliseconds store_lock_timeout{60'000};
  std::chrono::milliseconds shared_lock_timeout{10'000};
  // Replace entries without renameat2(RENAME_EXCHANGE), as on filesystems
  // that lack it; set by KTCACHE_TEST_NO_RENAME_EXCHANGE=1 for tests.
  bool force_rename_fallback = false;
};

// An entry, valid (metadata present) or corrupt (corruption present).
struct Entry {
  std::string key;
  std::string path; // <root>/<key>
  // Shared and immutable: a handle reuses the parse of a metadata.json
  // that has not changed since (see Cache::read_entry).
  std::shared_ptr<const Metadata> metadata;
  std::optional<Corruption> corruption;
  int64_t last_used = -1; // seconds since the epoch, -1 unknown
  // Held for a leased lookup; released with the entry.
  FileLock lease;

  bool valid() const { return metadata != nullptr; }
  std::string image_path() const;
  // Empty when the entry has no such file.
  std::string vmlinux_path() const;
  std::string config_path() const;
};

// How the vmlinux handed to store came to be, for its metadata. The cache
// does no stripping itself: the caller strips, then stores the result.
struct VmlinuxOrigin {
  // The policy whose output is stored ("none": the file as built).
  std::string policy = "none";
  std::optional<std::string> policy_version;
  // The policy asked for, when it differs from `policy`, and why.
  std::optional<std::string> requested;
  std::optional<std::string> fallback;
  bool stripped = false;
  // The size of the vmlinux before stripping.
  std::optional<uint64_t> original_size;
  std::optional<std::string> build_id;
};

struct StoreRequest {
  std::string image;
  std::string vmlinux;    // empty: none
  std::string config;     // empty: none
  std::string image_name; // empty: basename of image
  std::string arch;       // empty: host arch
  std::optional<std::string> version;
  std::string source_json;   // empty: {"type":"local",...nulls}
  std::string metadata_json; // empty: none
  std::optional<std::string> kconfig_hash;
  VmlinuxOrigin vmlinux_origin;
};

enum class CleanMode { all, keep, corrupt_only, keys };
enum class CleanAction {
  removed,
  would_remove,
  skipped_in_use,
  failed,
  not_found
};

struct CleanRequest {
  CleanMode mode = CleanMode::all;
  uint32_t keep = 0;
  std::vector<std::string> keys;
  bool dry_run = false;
};

struct CleanItem {
  CleanAction action = CleanAction::removed;
  std::string key;
  bool corrupt = false;
  std::string message;
  uint64_t bytes = 0;
};

struct LockFileInfo {
  std::string name;
  std::string path;
  std::vector<LockHolder> holders;
};

enum class KconfigStatus { matches, stale, untracked };

// The host architecture's name as ktstr spells it ("x86_64", "aarch64").
std::string host_arch();

// A cache directory. Cheap to create: touches nothing on disk.
class Cache {
public:
  static Result<Cache> open(CacheOptions options);

  const std::string& root() const { return m_options.root; }
  const CacheOptions& options() const { return m_options; }

  // A valid entry, or not_found / corrupt (message = the reason).
  Result<Entry> lookup(const std::string& key, bool lease);
  std::vector<Entry> list_entries(Result<void>* error = nullptr);
  Result<Entry> store(const std::string& key, const StoreRequest& request);
  Result<void> verify(const std::string& key);
  Result<std::vector<CleanItem>> clean(const CleanRequest& request);
  Result<std::vector<LockFileInfo>> locks();

  // Removes orphaned .tmp-* and .trash-* directories of dead processes
  // whose key lock is free; restores an entry whose replacement crashed
  // between the two renames of the fallback. Returns how many it removed.
  // `held_key`: a key whose exclusive lock the caller already holds.
  size_t sweep_orphans(std::string_view held_key = {});

  std::string lock_path(std::string_view key) const;

private:
  explicit Cache(CacheOptions options) : m_options(std::move(options)) {}

  Result<FileLock> lock_entry(const std::string& key,
                              LockMode mode,
                              std::chrono::milliseconds timeout);
  Result<void> check_filesystem();
  Result<void>
  publish(int root_fd, const std::string& temp_name, const std::string& key);
  // Reads and classifies the entry at <root>/<key> (no lock).
  // With `use_parse_cache`, a metadata.json unchanged since this handle
  // last parsed it is not parsed again (lookups); list and verify read
  // afresh.
  Entry
  read_entry(const std::string& key, int root_fd, bool use_parse_cache = false);

  // The root directory, opened by the first lookup and kept: lookups are
  // the hot path. -1 (not kept) while the root does not exist.
  Result<int> root_dir();
  // Records a use of `key` (see touch_last_use in cache.cpp); returns the
  // recorded time of last use, -1 when unknown.
  int64_t note_use(const std::string& key);

  CacheOptions m_options;
  Fd m_root;
  // The last parse of each key's metadata.json, with the identity of the
  // file it came from. Entries are never changed in place (a store writes
  // new files and renames), so the same inode with the same ctime and size
  // is the same text.
  struct ParsedMetadata {
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = 0;
    int64_t ctime_ns = 0;
    std::shared_ptr<const Metadata> metadata;
  };
  std::unordered_map<std::string, ParsedMetadata> m_parsed;
  // Keys this handle refreshed recently, with the time recorded.
  std::unordered_map<std::string, int64_t> m_recent_uses;
  bool m_filesystem_checked = false;
};

KconfigStatus kconfig_status(const Metadata& metadata,
                             std::string_view current_hash);
std::string_view to_string(KconfigStatus status);

// The reference's source-tree helpers; see ktc_prefer_source_tree().
std::optional<std::string> prefer_source_tree(const std::string& entry_dir);
std::optional<std::string> recover_source_tree(const std::string& entry_dir);

} // namespace ktc::cache
