#include "cache/cache.hpp"
#include "cache/key.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/sys.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <random>

namespace ktc::cache {
namespace {

std::string trash_name(const std::string& key) {
  static thread_local std::mt19937_64 engine{std::random_device{}()};
  return fmt::format(".trash-{}-{:016x}-{}", key, engine(), ::getpid());
}

// The entries a request selects, in list order.
Result<std::vector<const Entry*>> select(const std::vector<Entry>& entries,
                                         const CleanRequest& request,
                                         std::vector<CleanItem>* missing) {
  std::vector<const Entry*> chosen;
  switch (request.mode) {
  case CleanMode::all:
    for (const auto& entry : entries) {
      chosen.push_back(&entry);
    }
    break;
  case CleanMode::keep: {
    // Corrupt entries never take a keep slot.
    uint32_t kept = 0;
    for (const auto& entry : entries) {
      if (entry.valid() && kept < request.keep) {
        ++kept;
        continue;
      }
      chosen.push_back(&entry);
    }
    break;
  }
  case CleanMode::corrupt_only:
    for (const auto& entry : entries) {
      if (!entry.valid()) {
        chosen.push_back(&entry);
      }
    }
    break;
  case CleanMode::keys:
    for (const auto& key : request.keys) {
      KTC_TRY(validate_key(key));
    }
    for (const auto& key : request.keys) {
      auto found = std::find_if(entries.begin(), entries.end(),
                                [&](const Entry& e) { return e.key == key; });
      if (found == entries.end()) {
        CleanItem item;
        item.action = CleanAction::not_found;
        item.key = key;
        item.message = "no such entry";
        missing->push_back(std::move(item));
      } else if (std::find(chosen.begin(), chosen.end(), &*found) ==
                 chosen.end()) {
        chosen.push_back(&*found);
      }
    }
    break;
  }
  return chosen;
}

} // namespace

Result<std::vector<CleanItem>> Cache::clean(const CleanRequest& request) {
  std::vector<CleanItem> items;
  Result<void> listed;
  std::vector<Entry> entries = list_entries(&listed);
  KTC_TRY(std::move(listed));
  KTC_TRY_ASSIGN(auto chosen, select(entries, request, &items));

  if (request.dry_run) {
    Fd root(::open(m_options.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    for (const Entry* entry : chosen) {
      CleanItem item;
      item.action = CleanAction::would_remove;
      item.key = entry->key;
      item.corrupt = !entry->valid();
      item.bytes = root ? fs::tree_size(root.get(), entry->key) : 0;
      items.push_back(std::move(item));
    }
    return items;
  }
  if (chosen.empty() && items.empty()) {
    sweep_orphans();
    return items;
  }

  KTC_TRY(check_filesystem());
  KTC_TRY_ASSIGN(Fd root, fs::open_dir(AT_FDCWD, m_options.root, false));
  sweep_orphans();
  for (const Entry* entry : chosen) {
    CleanItem item;
    item.key = entry->key;
    item.corrupt = !entry->valid();

    item.bytes = fs::tree_size(root.get(), entry->key);
    auto lock = lock_entry(entry->key, LockMode::exclusive,
                           std::chrono::milliseconds(0));
    if (!lock) {
      item.action = lock.error().status == Status::locked
                        ? CleanAction::skipped_in_use
                        : CleanAction::failed;
      item.message = lock.error().message;
      items.push_back(std::move(item));
      continue;
    }
    // A corrupt entry may have been replaced by a good one since it was
    // listed; --corrupt-only must not remove that.
    if (request.mode == CleanMode::corrupt_only &&
        read_entry(entry->key, root.get()).valid()) {
      continue;
    }

    // Rename first, delete after: a crash mid-delete leaves a .trash-*
    // directory that nobody lists, never half an entry under its key.
    std::string trash = trash_name(entry->key);
    if (sys::renameat(root.get(), entry->key.c_str(), root.get(),
                      trash.c_str()) != 0) {
      if (errno == ENOENT) {
        item.action = CleanAction::not_found;
        item.message = "removed by someone else meanwhile";
      } else {
        item.action = CleanAction::failed;
        item.message =
            errno_error(errno, "cannot move " + entry->key + " out of sight")
                .message;
      }
      items.push_back(std::move(item));
      continue;
    }
    (void)fs::sync_dir(root.get(), m_options.root);
    sys::checkpoint("mid-clean");
    if (auto removed = fs::remove_tree(root.get(), trash); !removed) {
      KTC_LOG(warn, "Failed to delete {} (swept later): {}", trash,
              removed.error().message);
    }
    item.action = CleanAction::removed;
    KTC_LOG(info, "Removed {}", entry->key);
    items.push_back(std::move(item));
  }
  return items;
}

} // namespace ktc::cache
