#pragma once

#include "util/fd.hpp"
#include "util/result.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ktc::cache {

enum class LockMode { shared, exclusive };

struct LockHolder {
  int64_t pid = 0;
  bool exclusive = false;
  std::string cmdline; // "<cmdline unavailable>" when unreadable
};

// A held flock(2) lock on a file under <root>/.locks/. Released (the fd
// closed) on destruction; lock files are never deleted.
class FileLock {
public:
  FileLock() = default;
  FileLock(Fd fd, std::string path, LockMode mode)
      : m_fd(std::move(fd)), m_path(std::move(path)), m_mode(mode) {}

  bool held() const { return m_fd.valid(); }
  const std::string& path() const { return m_path; }
  LockMode mode() const { return m_mode; }
  int fd() const { return m_fd.get(); }
  void release() { m_fd.reset(); }

private:
  Fd m_fd;
  std::string m_path;
  LockMode m_mode = LockMode::shared;
};

struct LockRequest {
  // <root>/.locks/<name>.lock is the file; `what` names it in messages
  // (for example: cache entry "6.14.2-tarball-x86_64-kc...").
  std::string path;
  std::string what;
  LockMode mode = LockMode::shared;
  // Zero: try once without waiting.
  std::chrono::milliseconds timeout{0};
  // Create the file (and its directory) when missing. When false and the
  // file does not exist, the lock is trivially free: Status::not_found.
  bool create = true;
};

// Takes a flock on `request.path` (O_CLOEXEC|O_NOFOLLOW; O_RDWR|O_CREAT,
// mode 0666 & ~umask, when creating, after making the directory if it is
// missing; O_RDONLY otherwise, and as the fallback when an existing file
// cannot be opened for writing: EROFS, EACCES). Polls LOCK_NB with a
// backoff of 5 ms growing to 100 ms until the timeout. Contention and
// timeouts give Status::locked with the holders in the message, e.g.:
//   cache entry "k" is locked (lockfile /r/.locks/k.lock, holders:
//   pid=12 (shared) cmd=ktcache run k -- sleep 9); LOCK_EX timed out
//   after 10s
// (without a timeout the tail is "; LOCK_EX not granted without waiting").
// A missing file with `create` false is Status::not_found; a lock path that
// is not a regular file is Status::invalid; other failures carry errno.
// Thread safe: each call opens its own descriptor, so threads of one
// process contend like separate processes.
Result<FileLock> acquire_lock(const LockRequest& request);

// The processes holding a flock on `path`, from /proc/locks matched by the
// superblock's device (major:minor from /proc/self/mountinfo, not st_dev)
// and the inode. One entry per pid (exclusive when any of its locks is);
// waiters are not holders. Empty on any failure.
std::vector<LockHolder> lock_holders(const std::string& path);

// "pid=1 (exclusive) cmd=a b; pid=2 (shared) cmd=c" or "<none recorded>".
std::string format_holders(const std::vector<LockHolder>& holders);

// Refuses filesystems where flock is unreliable (NFS, CIFS/SMB2, Ceph, AFS,
// FUSE, 9p, Lustre, GPFS) with Status::unsupported, checking `path` or its
// nearest existing ancestor. statfs failures are not errors. The
// KTCACHE_ALLOW_NETWORK_FS override is the caller's to apply.
Result<void> check_lock_filesystem(const std::string& path);

// The filesystem name for a statfs f_type, or "" when it is not refused.
// Sign-extended 32-bit magics are recognised too.
std::string_view refused_filesystem_name(int64_t magic);

// Parsing helpers, exposed for unit tests.
namespace detail {
// Unescapes mountinfo's octal escapes (\040, \011, \012, \134, \NNN).
std::string unescape_mountinfo(std::string_view field);
// "major:minor" of the mount whose mount point is the longest
// component-wise prefix of `path` (absolute, canonical), from mountinfo
// text; of equal mount points the last listed (the topmost) wins. Lines
// without the " - fstype source" tail are ignored as truncated.
std::optional<std::pair<unsigned, unsigned>>
device_for_path(std::string_view mountinfo, std::string_view path);
struct ProcLock {
  int64_t pid;
  bool exclusive;
  unsigned major;
  unsigned minor;
  uint64_t inode;
};
// The FLOCK lines of /proc/locks text (POSIX and OFDLCK lines skipped,
// "->" waiter lines and malformed lines ignored). Not deduplicated.
std::vector<ProcLock> parse_proc_locks(std::string_view text);
// A /proc/<pid>/cmdline for messages: NULs and other control characters
// become spaces, ends trimmed, invalid UTF-8 replaced by U+FFFD, cut after
// 100 characters with "…"; "<cmdline unavailable>" when nothing is left.
std::string format_cmdline(std::string_view raw);
} // namespace detail

} // namespace ktc::cache
