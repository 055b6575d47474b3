#include "cache/cache.hpp"
#include "cache/key.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/sys.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <random>

namespace ktc::cache {
namespace {

namespace json = boost::json;

// Room left over for metadata and directory blocks beyond the files.
constexpr uint64_t k_space_margin = 1u << 20;

std::string random_nonce() {
  static thread_local std::mt19937_64 engine{std::random_device{}()};
  return fmt::format("{:016x}", engine());
}

Result<json::object> parse_object(const std::string& text,
                                  std::string_view what) {
  boost::system::error_code error;
  json::value value = json::parse(text, error);
  if (error) {
    return make_error(Status::invalid, "{} is not valid JSON: {}", what,
                      error.message());
  }
  if (!value.is_object()) {
    return make_error(Status::invalid, "{} must be a JSON object", what);
  }
  return std::move(value.as_object());
}

struct Input {
  std::string role; // image, vmlinux, config
  std::string source;
  std::string file; // name in the entry
  uint64_t size = 0;
};

Result<uint64_t> input_size(const std::string& path, std::string_view role) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      return make_error(Status::not_found, "{} file {} does not exist", role,
                        path);
    }
    return errno_error(errno,
                       fmt::format("cannot stat {} file {}", role, path));
  }
  if (!S_ISREG(st.st_mode)) {
    return make_error(Status::invalid, "{} file {} is not a regular file", role,
                      path);
  }
  return static_cast<uint64_t>(st.st_size);
}

// Builds the metadata object: the caller's extra fields first, then the
// fields the request names, then the fields only store may set.
Result<json::object> build_metadata(const StoreRequest& request,
                                    const std::string& image_name) {
  json::object object;
  if (!request.metadata_json.empty()) {
    KTC_TRY_ASSIGN(object,
                   parse_object(request.metadata_json, "the extra metadata"));
  }
  if (request.version) {
    object["version"] = *request.version;
  } else if (!object.contains("version")) {
    object["version"] = nullptr;
  }
  if (!request.source_json.empty()) {
    KTC_TRY_ASSIGN(json::object source,
                   parse_object(request.source_json, "the source"));
    auto type = source.find("type");
    if (type == source.end() || !type->value().is_string() ||
        type->value().as_string().empty()) {
      return make_error(Status::invalid,
                        "the source needs a non-empty string \"type\"");
    }
    object["source"] = std::move(source);
  } else if (!object.contains("source")) {
    object["source"] = json::object{{"type", "local"},
                                    {"source_tree_path", nullptr},
                                    {"git_hash", nullptr}};
  }
  object["arch"] = request.arch.empty() ? host_arch() : request.arch;
  object["image_name"] = image_name;
  if (!object.contains("config_hash")) {
    object["config_hash"] = nullptr;
  }
  if (auto built = object.find("built_at");
      built == object.end() || !built->value().is_string()) {
    object["built_at"] = utc_timestamp_now();
  }
  // ktstr's own fragment hash is ktstr's to write.
  if (!object.contains("ktstr_kconfig_hash")) {
    object["ktstr_kconfig_hash"] = nullptr;
  }
  for (const char* optional :
       {"source_vmlinux_size", "source_vmlinux_mtime_secs"}) {
    if (!object.contains(optional)) {
      object[optional] = nullptr;
    }
  }
  object["schema_version"] = k_schema_version;
  if (request.kconfig_hash) {
    object["kconfig_hash"] = *request.kconfig_hash;
  } else if (!object.contains("kconfig_hash")) {
    object["kconfig_hash"] = nullptr;
  }
  if (!object.contains("inputs")) {
    object["inputs"] = json::object{};
  }
  return object;
}

bool rename_exchange_unsupported(int error_number) {
  return error_number == EINVAL || error_number == ENOSYS ||
         error_number == EOPNOTSUPP || error_number == EXDEV;
}

struct TempName {
  std::string key;
  bool ours = false; // our format carries a nonce; ktstr's does not
  pid_t pid = 0;
};

// Parses ".tmp-<key>-<nonce>-<pid>" (ours), ".tmp-<key>-<pid>" (ktstr's),
// and the same shapes after ".swap-" and ".trash-". The PID is last, where
// ktstr's sweep looks for it.
std::optional<TempName> parse_temp_name(std::string_view name,
                                        std::string_view prefix) {
  if (!name.starts_with(prefix)) {
    return std::nullopt;
  }
  std::string_view rest = name.substr(prefix.size());
  size_t dash = rest.rfind('-');
  if (dash == std::string_view::npos || dash == 0) {
    return std::nullopt;
  }
  std::string_view pid_text = rest.substr(dash + 1);
  if (pid_text.empty() || pid_text.size() > 10 ||
      pid_text.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  long long pid = std::stoll(std::string(pid_text));
  // 0 and negatives would be process-group probes for kill().
  if (pid <= 0 || pid > INT_MAX) {
    return std::nullopt;
  }
  TempName parsed;
  parsed.pid = static_cast<pid_t>(pid);
  std::string_view head = rest.substr(0, dash);
  size_t nonce_dash = head.rfind('-');
  if (nonce_dash != std::string_view::npos &&
      head.size() - nonce_dash - 1 == 16 &&
      head.substr(nonce_dash + 1).find_first_not_of("0123456789abcdef") ==
          std::string_view::npos) {
    parsed.key = std::string(head.substr(0, nonce_dash));
    parsed.ours = true;
  } else {
    parsed.key = std::string(head);
  }
  return parsed;
}

bool process_is_dead(pid_t pid) {
  // Only ESRCH proves death; EPERM means another user's live process.
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}

} // namespace

Result<void> Cache::publish(int root_fd,
                            const std::string& temp_name,
                            const std::string& key) {
  if (sys::renameat(root_fd, temp_name.c_str(), root_fd, key.c_str()) == 0) {
    return {};
  }
  if (errno != ENOTEMPTY && errno != EEXIST) {
    if (errno == ENOTDIR) {
      return make_error(Status::io,
                        "cannot publish {}/{}: it exists and is not a "
                        "directory",
                        m_options.root, key);
    }
    return errno_error(
        errno, fmt::format("cannot publish {}/{}", m_options.root, key));
  }

  if (!m_options.force_rename_fallback) {
    if (sys::renameat2(root_fd, temp_name.c_str(), root_fd, key.c_str(),
                       RENAME_EXCHANGE) == 0) {
      // The temp name now holds the old entry, which the caller removes.
      sys::checkpoint("after-swap");
      return {};
    }
    if (!rename_exchange_unsupported(errno)) {
      return errno_error(
          errno, fmt::format("cannot swap in {}/{}", m_options.root, key));
    }
    KTC_LOG(info,
            "RENAME_EXCHANGE unsupported under {}: {}; using the "
            "two-rename fallback",
            m_options.root, std::strerror(errno));
  }

  // Fallback: move the old entry aside, then move the new one in. Both run
  // under the entry's exclusive lock, and lookups that miss wait for that
  // lock, so no reader of this library sees the key missing; a crash in
  // between leaves the old entry under .swap-*, which the next sweep moves
  // back into place.
  std::string aside =
      fmt::format(".swap-{}-{}-{}", key, random_nonce(), ::getpid());
  if (sys::renameat(root_fd, key.c_str(), root_fd, aside.c_str()) != 0) {
    return errno_error(
        errno, fmt::format("cannot move {}/{} aside", m_options.root, key));
  }
  // Where a crash leaves the key missing until the sweep puts it back.
  sys::checkpoint("mid-swap");
  if (sys::renameat(root_fd, temp_name.c_str(), root_fd, key.c_str()) != 0) {
    int error = errno;
    if (::renameat(root_fd, aside.c_str(), root_fd, key.c_str()) != 0) {
      KTC_LOG(error, "Failed to restore {}/{} from {}: {}", m_options.root, key,
              aside, std::strerror(errno));
    }
    return errno_error(
        error, fmt::format("cannot publish {}/{}", m_options.root, key));
  }
  sys::checkpoint("after-swap");
  // The old entry now sits at `aside`; hand it back for removal under the
  // temp name the caller will delete.
  if (::renameat(root_fd, aside.c_str(), root_fd, temp_name.c_str()) != 0) {
    (void)fs::remove_tree(root_fd, aside);
  }
  return {};
}

Result<Entry> Cache::store(const std::string& key,
                           const StoreRequest& request) {
  KTC_TRY(validate_key(key));
  std::string image_name = request.image_name.empty()
                               ? fs::base_name(request.image)
                               : request.image_name;
  if (request.image.empty()) {
    return make_error(Status::invalid, "store of \"{}\" needs an image", key);
  }
  KTC_TRY(validate_image_name(image_name));
  KTC_TRY_ASSIGN(json::object object, build_metadata(request, image_name));

  std::vector<Input> inputs;
  inputs.push_back({"image", request.image, image_name, 0});
  if (!request.vmlinux.empty()) {
    inputs.push_back({"vmlinux", request.vmlinux, "vmlinux", 0});
  }
  if (!request.config.empty()) {
    inputs.push_back({"config", request.config, "config", 0});
  }
  uint64_t total = k_space_margin;
  for (auto& input : inputs) {
    KTC_TRY_ASSIGN(input.size, input_size(input.source, input.role));
    total += input.size;
  }

  KTC_TRY_ASSIGN(FileLock lock, lock_entry(key, LockMode::exclusive,
                                           m_options.store_lock_timeout));
  sweep_orphans(key);

  KTC_TRY_ASSIGN(Fd root, fs::open_dir(AT_FDCWD, m_options.root, false));
  KTC_TRY_ASSIGN(uint64_t available, fs::free_bytes(m_options.root));
  if (available < total) {
    return make_error(Status::no_space,
                      "not enough free space in {} to store \"{}\": {} bytes "
                      "needed, {} available",
                      m_options.root, key, total, available);
  }

  std::string temp_name =
      fmt::format(".tmp-{}-{}-{}", key, random_nonce(), ::getpid());
  if (::mkdirat(root.get(), temp_name.c_str(), 0777) != 0) {
    return errno_error(
        errno, fmt::format("cannot create {}/{}", m_options.root, temp_name));
  }
  // Whatever happens from here, the temp name is gone when we return: it
  // holds either the half-built entry or, after a swap, the old one.
  struct TempGuard {
    int root_fd;
    const std::string& name;
    ~TempGuard() {
      if (auto removed = fs::remove_tree(root_fd, name); !removed) {
        KTC_LOG(warn, "Failed to remove {}: {}", name, removed.error().message);
      }
    }
  } guard{root.get(), temp_name};

  KTC_TRY_ASSIGN(Fd temp, fs::open_dir(root.get(), temp_name, true));
  json::object artifacts;
  for (const auto& input : inputs) {
    KTC_TRY_ASSIGN(fs::CopyResult copied,
                   fs::copy_file(input.source, temp.get(), input.file));
    KTC_LOG(debug, "Copied {} ({} bytes, {})", input.source, copied.size,
            fs::to_string(copied.method));
    json::object record{
        {"file", input.file}, {"size", copied.size}, {"sha256", copied.sha256}};
    if (input.role == "vmlinux") {
      const VmlinuxOrigin& origin = request.vmlinux_origin;
      auto text_or_null = [](const std::optional<std::string>& text) {
        return text ? json::value(*text) : json::value(nullptr);
      };
      record["build_id"] = text_or_null(origin.build_id);
      record["strip_policy"] = origin.policy;
      record["strip_policy_version"] = text_or_null(origin.policy_version);
      record["strip_requested"] = text_or_null(origin.requested);
      record["strip_fallback"] = text_or_null(origin.fallback);
      record["original_size"] = origin.original_size.value_or(copied.size);
    }
    if (input.role == "config") {
      object["config_hash"] = copied.sha256.substr(0, 16);
    }
    artifacts[input.role] = std::move(record);
  }
  object["has_vmlinux"] = !request.vmlinux.empty();
  object["vmlinux_stripped"] =
      !request.vmlinux.empty() && request.vmlinux_origin.stripped;
  object["artifacts"] = std::move(artifacts);

  Metadata metadata(std::move(object));
  KTC_TRY(
      fs::write_file(temp.get(), "metadata.json", metadata.to_pretty_json()));
  KTC_TRY(fs::sync_dir(temp.get(), temp_name));
  temp.reset();
  sys::checkpoint("before-rename");

  KTC_TRY(publish(root.get(), temp_name, key));
  // The new entry is in place and whole: failing now would report a store
  // that changed the cache. An unsynced rename only risks a power cut
  // bringing back the old entry, or the temp directory for the sweep.
  if (auto synced = fs::sync_dir(root.get(), m_options.root); !synced) {
    KTC_LOG(warn, "Failed to sync {} after storing {}: {}", m_options.root, key,
            synced.error().message);
  }
  ::futimens(lock.fd(), nullptr);
  KTC_LOG(info, "Stored {}", key);

  Entry entry;
  entry.key = key;
  entry.path = m_options.root + "/" + key;
  entry.metadata = std::make_shared<const Metadata>(std::move(metadata));
  entry.last_used = static_cast<int64_t>(::time(nullptr));
  return entry;
}

size_t Cache::sweep_orphans(std::string_view held_key) {
  Fd root(::open(m_options.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) {
    return 0;
  }
  int scan_fd = ::openat(root.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* stream = scan_fd >= 0 ? ::fdopendir(scan_fd) : nullptr;
  if (stream == nullptr) {
    if (scan_fd >= 0) {
      ::close(scan_fd);
    }
    return 0;
  }
  std::vector<std::string> names;
  while (dirent* ent = ::readdir(stream)) {
    std::string_view name = ent->d_name;
    if (name.starts_with(".tmp-") || name.starts_with(".swap-") ||
        name.starts_with(".trash-")) {
      names.emplace_back(name);
    }
  }
  ::closedir(stream);
  // A crashed fallback's old entry goes back first, before its key is
  // looked at again.
  std::stable_partition(names.begin(), names.end(), [](const auto& name) {
    return name.starts_with(".swap-");
  });

  size_t removed = 0;
  for (const auto& name : names) {
    std::string_view prefix = name.starts_with(".tmp-")    ? ".tmp-"
                              : name.starts_with(".swap-") ? ".swap-"
                                                           : ".trash-";
    auto parsed = parse_temp_name(name, prefix);
    if (!parsed || !process_is_dead(parsed->pid)) {
      continue;
    }
    struct stat st;
    if (::fstatat(root.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISDIR(st.st_mode)) {
      continue;
    }
    // A dead PID alone is not proof: in another PID namespace a live
    // store's PID can look dead from here. A live store holds its key's
    // exclusive lock, so a free lock is the second, namespace-proof test.
    FileLock probe;
    if (parsed->key != held_key) {
      LockRequest request;
      request.path = lock_path(parsed->key);
      request.what = fmt::format("cache entry \"{}\"", parsed->key);
      request.mode = LockMode::exclusive;
      request.create = false;
      auto locked = acquire_lock(request);
      if (!locked && locked.error().status != Status::not_found) {
        KTC_LOG(debug, "Sparing {}: {}", name, locked.error().message);
        continue;
      }
      if (locked) {
        probe = std::move(*locked);
      }
    }
    if (prefix == ".swap-" &&
        ::fstatat(root.get(), parsed->key.c_str(), &st, AT_SYMLINK_NOFOLLOW) !=
            0 &&
        errno == ENOENT) {
      if (::renameat(root.get(), name.c_str(), root.get(),
                     parsed->key.c_str()) == 0) {
        KTC_LOG(warn, "Restored {} from {} left by a crashed store",
                parsed->key, name);
        continue;
      }
    }
    if (auto result = fs::remove_tree(root.get(), name); result) {
      KTC_LOG(info, "Removed orphaned {} (PID {} is gone)", name, parsed->pid);
      ++removed;
    } else {
      KTC_LOG(warn, "Failed to remove orphaned {}: {}", name,
              result.error().message);
    }
  }
  return removed;
}

} // namespace ktc::cache
