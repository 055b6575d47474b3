#include "cache/cache.hpp"

#include "cache/key.hpp"
#include "cache/root.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/parallel.hpp"
#include "util/sha256.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace ktc::cache {
namespace {

// Lists of at least this many entries are read by two threads.
constexpr size_t k_parallel_threshold = 256;

// How many parsed metadata files a handle keeps (see ParsedMetadata).
constexpr size_t k_parse_cache_limit = 256;

} // namespace

std::string host_arch() {
  struct utsname name;
  if (::uname(&name) != 0) {
    return "unknown";
  }
  std::string machine = name.machine;
  if (machine == "arm64") {
    return "aarch64";
  }
  return machine;
}

std::string Entry::image_path() const {
  if (!metadata) {
    return {};
  }
  return path + "/" + std::string(metadata->image_name());
}

std::string Entry::vmlinux_path() const {
  return metadata && metadata->has_vmlinux() ? path + "/vmlinux"
                                             : std::string();
}

std::string Entry::config_path() const {
  return metadata && metadata->has_config() ? path + "/config" : std::string();
}

Result<Cache> Cache::open(CacheOptions options) {
  if (options.root.empty()) {
    KTC_TRY_ASSIGN(options.root, resolve_root("kernels"));
  }
  while (options.root.size() > 1 && options.root.back() == '/') {
    options.root.pop_back();
  }
  if (const char* allow = std::getenv("KTCACHE_ALLOW_NETWORK_FS");
      allow != nullptr && std::string_view(allow) == "1") {
    options.allow_network_fs = true;
  }
  if (const char* fallback = std::getenv("KTCACHE_TEST_NO_RENAME_EXCHANGE");
      fallback != nullptr && std::string_view(fallback) == "1") {
    options.force_rename_fallback = true;
  }
  return Cache(std::move(options));
}

std::string Cache::lock_path(std::string_view name) const {
  return fmt::format("{}/.locks/{}.lock", m_options.root, name);
}

Result<void> Cache::check_filesystem() {
  if (m_filesystem_checked || m_options.allow_network_fs) {
    return {};
  }
  KTC_TRY(check_lock_filesystem(m_options.root));
  m_filesystem_checked = true;
  return {};
}

Result<FileLock> Cache::lock_entry(const std::string& key,
                                   LockMode mode,
                                   std::chrono::milliseconds timeout) {
  KTC_TRY(check_filesystem());
  LockRequest request;
  request.path = lock_path(key);
  request.what = fmt::format("cache entry \"{}\"", key);
  request.mode = mode;
  request.timeout = timeout;
  request.create = true;
  return acquire_lock(request);
}

Entry Cache::read_entry(const std::string& key,
                        int root_fd,
                        bool use_parse_cache) {
  Entry entry;
  entry.key = key;
  entry.path = m_options.root + "/" + key;

  // Relative to the root and without following any link: a store that
  // swaps the entry between the two reads below leaves both whole, and a
  // leased reader (the one that must see one entry) excludes stores.
  int error = 0;
  auto fail = [&] {
    if (error == ENOENT) {
      entry.corruption =
          Corruption{CorruptKind::missing, "metadata.json missing"};
    } else {
      entry.corruption = Corruption{
          CorruptKind::unreadable,
          fmt::format("metadata.json unreadable: {}", std::strerror(error))};
    }
    return std::move(entry);
  };
  std::string relative = key + "/metadata.json";
  auto file = fs::open_beneath(root_fd, relative, &error);
  if (!file) {
    return fail();
  }

  std::shared_ptr<const Metadata> metadata;
  struct stat st;
  bool identified = use_parse_cache && ::fstat(file->get(), &st) == 0;
  auto cached = identified ? m_parsed.find(key) : m_parsed.end();
  if (cached != m_parsed.end() && cached->second.device == st.st_dev &&
      cached->second.inode == st.st_ino && cached->second.size == st.st_size &&
      cached->second.ctime_ns ==
          st.st_ctim.tv_sec * 1'000'000'000LL + st.st_ctim.tv_nsec) {
    metadata = cached->second.metadata;
  } else {
    auto text = fs::read_small(file->get(), relative, &error);
    if (!text) {
      return fail();
    }
    Corruption corruption;
    auto parsed = Metadata::parse(*text, &corruption);
    if (!parsed) {
      entry.corruption = std::move(corruption);
      return entry;
    }
    metadata = std::make_shared<const Metadata>(std::move(*parsed));
    if (identified) {
      if (m_parsed.size() >= k_parse_cache_limit) {
        m_parsed.clear();
      }
      m_parsed[key] = ParsedMetadata{
          st.st_dev, st.st_ino, st.st_size,
          st.st_ctim.tv_sec * 1'000'000'000LL + st.st_ctim.tv_nsec, metadata};
    }
  }
  file->reset();

  std::string image_name(metadata->image_name());
  std::string image_path = key + "/" + image_name;
  if (::fstatat(root_fd, image_path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
      !S_ISREG(st.st_mode)) {
    entry.corruption = Corruption{
        CorruptKind::image_missing,
        fmt::format("image file {} missing from entry directory", image_name)};
    return entry;
  }
  entry.metadata = std::move(metadata);
  return entry;
}

namespace {

// How stale the recorded last use may get before a lookup refreshes it,
// like relatime: eviction needs minutes, not microseconds, and a write to
// the inode on every lookup costs more than the lookup itself.
constexpr int64_t k_last_use_granularity = 60;

// The time of last use is the lock file's mtime: it survives entry swaps
// (the lock lives outside the entry) and needs no write to the entry.
// Returns it (-1 when unknown). Failures (a read-only cache, no lock file
// yet) are ignored on purpose.
int64_t touch_last_use(const std::string& lock_file) {
  struct stat st;
  if (::stat(lock_file.c_str(), &st) != 0) {
    return -1;
  }
  timespec now;
  ::clock_gettime(CLOCK_REALTIME, &now);
  if (now.tv_sec - st.st_mtim.tv_sec < k_last_use_granularity &&
      now.tv_sec >= st.st_mtim.tv_sec) {
    return static_cast<int64_t>(st.st_mtim.tv_sec);
  }
  if (::utimensat(AT_FDCWD, lock_file.c_str(), nullptr, 0) != 0) {
    return static_cast<int64_t>(st.st_mtim.tv_sec);
  }
  return static_cast<int64_t>(now.tv_sec);
}

int64_t last_use(int locks_fd, const std::string& name) {
  struct stat st;
  if (locks_fd < 0 || ::fstatat(locks_fd, name.c_str(), &st, 0) != 0) {
    return -1;
  }
  return static_cast<int64_t>(st.st_mtim.tv_sec);
}

bool entry_dir_exists(int root_fd, const std::string& key) {
  struct stat st;
  return ::fstatat(root_fd, key.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

} // namespace

Result<Entry> Cache::lookup(const std::string& key, bool lease) {
  KTC_TRY(validate_key(key));

  // The root first: a lease must not create a cache that does not exist.
  KTC_TRY_ASSIGN(int root_fd, root_dir());
  if (root_fd < 0) {
    return make_error(Status::not_found, "no entry for key \"{}\"", key);
  }

  FileLock lock;
  if (lease) {
    KTC_TRY_ASSIGN(
        lock, lock_entry(key, LockMode::shared, m_options.shared_lock_timeout));
  }

  Entry entry = read_entry(key, root_fd, true);
  if (!entry.valid() && !lease) {
    // Without a lock a store replacing the entry can spoil this read: the
    // old directory is emptied after the swap while we read it, or the
    // fallback briefly has the key missing, or the store ends between our
    // read and now. Read again under the shared lock, which waits for such
    // a store. Without a lock file nobody ever stored this key: a miss.
    LockRequest request;
    request.path = lock_path(key);
    request.what = fmt::format("cache entry \"{}\"", key);
    request.mode = LockMode::shared;
    request.timeout = m_options.shared_lock_timeout;
    request.create = false;
    if (auto locked = acquire_lock(request)) {
      entry = read_entry(key, root_fd);
    }
  }

  auto missing = [&] {
    return !entry.valid() && entry.corruption->kind == CorruptKind::missing &&
           !entry_dir_exists(root_fd, key);
  };
  if (missing()) {
    // A root removed and made anew under us (rm -rf of the cache) would
    // hide every entry from the descriptor kept from before.
    struct stat st;
    if (::fstat(root_fd, &st) == 0 && st.st_nlink == 0) {
      m_root.reset();
      KTC_TRY_ASSIGN(root_fd, root_dir());
      if (root_fd < 0) {
        return make_error(Status::not_found, "no entry for key \"{}\"", key);
      }
      entry = read_entry(key, root_fd);
    }
  }
  if (missing()) {
    return make_error(Status::not_found, "no entry for key \"{}\"", key);
  }
  if (!entry.valid()) {
    return make_error(Status::corrupt, "cache entry \"{}\" is corrupt: {}", key,
                      entry.corruption->reason);
  }

  entry.last_used = note_use(key);
  entry.lease = std::move(lock);
  return entry;
}

int64_t Cache::note_use(const std::string& key) {
  // A handle that looked this key up moments ago already refreshed the lock
  // file's time: skip even the stat, which a hot lookup loop would pay
  // every time.
  timespec now;
  ::clock_gettime(CLOCK_REALTIME_COARSE, &now);
  auto found = m_recent_uses.find(key);
  if (found != m_recent_uses.end() && now.tv_sec >= found->second &&
      now.tv_sec - found->second < k_last_use_granularity) {
    return found->second;
  }
  int64_t when = touch_last_use(lock_path(key));
  if (when >= 0) {
    if (m_recent_uses.size() >= 4096) {
      m_recent_uses.clear();
    }
    m_recent_uses[key] = when;
  }
  return when;
}

Result<int> Cache::root_dir() {
  if (m_root) {
    return m_root.get();
  }
  Fd root(::open(m_options.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) {
    if (errno == ENOENT) {
      return -1;
    }
    return errno_error(errno, "cannot open cache root " + m_options.root);
  }
  m_root = std::move(root);
  return m_root.get();
}

std::vector<Entry> Cache::list_entries(Result<void>* error) {
  std::vector<Entry> entries;
  Fd root(::open(m_options.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) {
    if (errno != ENOENT && error != nullptr) {
      *error = errno_error(errno, "cannot open cache root " + m_options.root);
    }
    return entries;
  }
  Fd locks(::openat(root.get(), ".locks", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  int scan_fd = ::openat(root.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* stream = scan_fd >= 0 ? ::fdopendir(scan_fd) : nullptr;
  if (stream == nullptr) {
    if (scan_fd >= 0) {
      ::close(scan_fd);
    }
    if (error != nullptr) {
      *error = errno_error(errno, "cannot read cache root " + m_options.root);
    }
    return entries;
  }
  std::vector<std::string> names;
  while (dirent* ent = ::readdir(stream)) {
    std::string name = ent->d_name;
    if (name.empty() || name.front() == '.') {
      continue;
    }
    // Symbolic links are not followed: an entry is a real directory.
    bool is_dir = ent->d_type == DT_DIR;
    if (ent->d_type == DT_UNKNOWN) {
      struct stat st;
      is_dir =
          ::fstatat(root.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISDIR(st.st_mode);
    }
    if (!is_dir) {
      continue;
    }
    if (auto valid = validate_key(name); !valid) {
      KTC_LOG(debug, "Skipping {}: {}", name, valid.error().message);
      continue;
    }
    names.push_back(std::move(name));
  }
  ::closedir(stream);

  // Reading an entry is a few syscalls and a JSON parse, independent of
  // the others: a large cache is read by two threads.
  std::vector<Entry> read(names.size());
  auto read_range = [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      read[i] = read_entry(names[i], root.get());
      read[i].last_used = last_use(locks.get(), names[i] + ".lock");
    }
  };
  split_in_two(names.size(), k_parallel_threshold, read_range);

  // Sort indices by precomputed keys: moving whole entries around costs
  // more than the comparisons.
  struct SortKey {
    bool valid;
    std::string_view built_at;
    std::string_view key;
    size_t index;
  };
  std::vector<SortKey> order;
  order.reserve(read.size());
  for (size_t i = 0; i < read.size(); ++i) {
    order.push_back(
        {read[i].valid(),
         read[i].valid() ? read[i].metadata->built_at() : std::string_view(),
         read[i].key, i});
  }
  std::sort(order.begin(), order.end(), [](const SortKey& a, const SortKey& b) {
    if (a.valid != b.valid) {
      return a.valid;
    }
    if (a.built_at != b.built_at) {
      return a.built_at > b.built_at;
    }
    return a.key < b.key;
  });
  entries.reserve(read.size());
  for (const SortKey& item : order) {
    entries.push_back(std::move(read[item.index]));
  }
  return entries;
}

Result<void> Cache::verify(const std::string& key) {
  KTC_TRY(validate_key(key));
  // The root first: verifying must not create a cache that does not exist.
  Fd root(::open(m_options.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) {
    if (errno == ENOENT) {
      return make_error(Status::not_found, "no entry for key \"{}\"", key);
    }
    return errno_error(errno, "cannot open cache root " + m_options.root);
  }
  KTC_TRY_ASSIGN(FileLock lock, lock_entry(key, LockMode::shared,
                                           m_options.shared_lock_timeout));
  Entry entry = read_entry(key, root.get());
  if (!entry.valid()) {
    if (!entry_dir_exists(root.get(), key)) {
      return make_error(Status::not_found, "no entry for key \"{}\"", key);
    }
    return make_error(Status::corrupt, "cache entry \"{}\" is corrupt: {}", key,
                      entry.corruption->reason);
  }
  const Metadata& metadata = *entry.metadata;
  if (!metadata.has_artifacts()) {
    return make_error(Status::unverifiable,
                      "cache entry \"{}\" records no hashes (written by ktstr "
                      "or without them); store it again to make it verifiable",
                      key);
  }

  KTC_TRY_ASSIGN(Fd dir, fs::open_dir(root.get(), key, true));
  for (std::string_view role : {"image", "vmlinux", "config"}) {
    auto record = metadata.artifact(role);
    if (!record) {
      if (role == "image" || (role == "vmlinux" && metadata.has_vmlinux())) {
        return make_error(Status::mismatch,
                          "cache entry \"{}\": no {} record in metadata", key,
                          role);
      }
      continue;
    }
    Fd file(::openat(dir.get(), record->file.c_str(),
                     O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    struct stat st;
    if (!file || ::fstat(file.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return make_error(Status::mismatch,
                        "cache entry \"{}\": {} ({}) is missing or not a "
                        "regular file",
                        key, record->file, role);
    }
    if (static_cast<uint64_t>(st.st_size) != record->size) {
      return make_error(Status::mismatch,
                        "cache entry \"{}\": {} is {} bytes, metadata says {}",
                        key, record->file, st.st_size, record->size);
    }
    KTC_TRY_ASSIGN(std::string digest,
                   sha256_fd(file.get(), entry.path + "/" + record->file));
    if (digest != record->sha256) {
      return make_error(Status::mismatch,
                        "cache entry \"{}\": {} SHA-256 is {}, metadata says "
                        "{}",
                        key, record->file, digest, record->sha256);
    }
    KTC_LOG(debug, "Verified {}/{}", key, record->file);
  }
  return {};
}

Result<std::vector<LockFileInfo>> Cache::locks() {
  std::vector<LockFileInfo> result;
  std::string dir_path = m_options.root + "/.locks";
  DIR* stream = ::opendir(dir_path.c_str());
  if (stream == nullptr) {
    if (errno == ENOENT) {
      return result;
    }
    return errno_error(errno, "cannot read " + dir_path);
  }
  while (dirent* ent = ::readdir(stream)) {
    std::string_view name = ent->d_name;
    if (!name.ends_with(".lock") || name.size() == 5) {
      continue;
    }
    LockFileInfo info;
    info.name = std::string(name.substr(0, name.size() - 5));
    info.path = dir_path + "/" + std::string(name);
    info.holders = lock_holders(info.path);
    result.push_back(std::move(info));
  }
  ::closedir(stream);
  std::sort(result.begin(), result.end(),
            [](const LockFileInfo& a, const LockFileInfo& b) {
              return a.name < b.name;
            });
  return result;
}

KconfigStatus kconfig_status(const Metadata& metadata,
                             std::string_view current_hash) {
  auto recorded = metadata.kconfig_hash();
  if (!recorded) {
    return KconfigStatus::untracked;
  }
  return *recorded == current_hash ? KconfigStatus::matches
                                   : KconfigStatus::stale;
}

std::string_view to_string(KconfigStatus status) {
  switch (status) {
  case KconfigStatus::matches:
    return "matches";
  case KconfigStatus::stale:
    return "stale";
  case KconfigStatus::untracked:
    return "untracked";
  }
  return "untracked";
}

} // namespace ktc::cache
