#include "cache/lock.hpp"

#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/utf8.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <thread>

namespace ktc::cache {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Short first sleeps catch a lock released soon after contention; the cap
// bounds how late a waiter notices a release during a long wait.
constexpr milliseconds k_first_backoff{5};
constexpr milliseconds k_max_backoff{100};

constexpr size_t k_cmdline_max_chars = 100;
constexpr size_t k_proc_file_max_bytes = 16 << 20;
constexpr std::string_view k_cmdline_unavailable = "<cmdline unavailable>";

// O_NONBLOCK keeps open() from hanging on a FIFO planted at the lock path;
// it has no effect on flock(2), which takes LOCK_NB separately.
constexpr int k_open_flags = O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK;

std::string_view flock_name(LockMode mode) {
  return mode == LockMode::exclusive ? "LOCK_EX" : "LOCK_SH";
}

int open_retrying(const char* path, int flags, mode_t mode) {
  int fd;
  do {
    fd = ::open(path, flags, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// "a/b" -> "a", "/a" -> "/", "a" -> "", trailing slashes ignored.
std::string parent_dir(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') {
    path.remove_suffix(1);
  }
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) {
    return {};
  }
  if (slash == 0) {
    return "/";
  }
  return std::string(path.substr(0, slash));
}

Result<Fd> open_lock_file(const LockRequest& request) {
  const char* path = request.path.c_str();
  if (!request.create) {
    int fd = open_retrying(path, O_RDONLY | k_open_flags, 0);
    if (fd < 0) {
      return errno_error(errno, "lock file " + request.path);
    }
    return Fd(fd);
  }

  constexpr int create_flags = O_RDWR | O_CREAT | k_open_flags;
  int fd = open_retrying(path, create_flags, 0666);
  if (fd < 0 && errno == ENOENT) {
    // The directory is made only when missing, so the common path costs
    // one open().
    if (std::string dir = parent_dir(request.path); !dir.empty()) {
      KTC_TRY(fs::make_dirs(dir));
    }
    fd = open_retrying(path, create_flags, 0666);
  }
  if (fd < 0 && (errno == EROFS || errno == EACCES)) {
    // flock(2) works on read-only descriptors, so an existing lock file on
    // a read-only or foreign-owned cache still coordinates readers.
    int write_error = errno;
    fd = open_retrying(path, O_RDONLY | k_open_flags, 0);
    if (fd < 0) {
      errno = write_error;
    }
  }
  if (fd < 0) {
    return errno_error(errno, "lock file " + request.path);
  }
  return Fd(fd);
}

Result<Fd> open_regular_lock_file(const LockRequest& request) {
  KTC_TRY_ASSIGN(Fd fd, open_lock_file(request));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return errno_error(errno, "lock file " + request.path);
  }
  if (!S_ISREG(st.st_mode)) {
    return make_error(Status::invalid, "lock file {} is not a regular file",
                      request.path);
  }
  return fd;
}

// 0, EWOULDBLOCK on contention, or another errno.
int try_flock(int fd, int operation) {
  while (::flock(fd, operation | LOCK_NB) != 0) {
    if (errno != EINTR) {
      return errno;
    }
  }
  return 0;
}

// "250ms", "10s", "1.5s".
std::string format_duration(milliseconds duration) {
  auto count = duration.count();
  if (count < 1000) {
    return fmt::format("{}ms", count);
  }
  std::string text = fmt::format("{}.{:03}", count / 1000, count % 1000);
  while (text.back() == '0') {
    text.pop_back();
  }
  if (text.back() == '.') {
    text.pop_back();
  }
  return text + "s";
}

Error contention_error(const LockRequest& request) {
  std::string_view what =
      request.what.empty() ? std::string_view("lock file") : request.what;
  std::string message =
      fmt::format("{} is locked (lockfile {}, holders: {})", what, request.path,
                  format_holders(lock_holders(request.path)));
  if (request.timeout.count() > 0) {
    message += fmt::format("; {} timed out after {}", flock_name(request.mode),
                           format_duration(request.timeout));
  } else {
    message += fmt::format("; {} not granted without waiting",
                           flock_name(request.mode));
  }
  return Error{Status::locked, std::move(message)};
}

// /proc files report a zero size, so they are read to EOF.
std::optional<std::string> read_proc_file(const std::string& path) {
  int raw_fd = open_retrying(path.c_str(), O_RDONLY | O_CLOEXEC, 0);
  if (raw_fd < 0) {
    return std::nullopt;
  }
  Fd fd(raw_fd);
  std::string text;
  char buffer[8192];
  while (text.size() < k_proc_file_max_bytes) {
    ssize_t got = ::read(fd.get(), buffer, sizeof buffer);
    if (got > 0) {
      text.append(buffer, static_cast<size_t>(got));
    } else if (got == 0) {
      return text;
    } else if (errno != EINTR) {
      return std::nullopt;
    }
  }
  return text;
}

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t position = 0;
  while (position < line.size()) {
    size_t start = line.find_first_not_of(" \t", position);
    if (start == std::string_view::npos) {
      break;
    }
    size_t end = line.find_first_of(" \t", start);
    if (end == std::string_view::npos) {
      end = line.size();
    }
    fields.push_back(line.substr(start, end - start));
    position = end;
  }
  return fields;
}

template <typename Callback>
void for_each_line(std::string_view text, Callback&& callback) {
  while (!text.empty()) {
    size_t newline = text.find('\n');
    callback(text.substr(0, newline));
    if (newline == std::string_view::npos) {
      break;
    }
    text.remove_prefix(newline + 1);
  }
}

// Parses all of `text` as a number in `base`; false on any leftover.
template <typename Number>
bool parse_number(std::string_view text, Number& out, int base = 10) {
  if (text.empty()) {
    return false;
  }
  const char* end = text.data() + text.size();
  auto [stop, error] = std::from_chars(text.data(), end, out, base);
  return error == std::errc() && stop == end;
}

// "MAJ:MIN", both numbers in `base`.
bool parse_device(std::string_view text,
                  int base,
                  unsigned& major,
                  unsigned& minor) {
  size_t colon = text.find(':');
  return colon != std::string_view::npos &&
         parse_number(text.substr(0, colon), major, base) &&
         parse_number(text.substr(colon + 1), minor, base);
}

// True when `mount_point` is `path` or one of its ancestors.
bool covers(std::string_view mount_point, std::string_view path) {
  while (mount_point.size() > 1 && mount_point.back() == '/') {
    mount_point.remove_suffix(1);
  }
  if (mount_point == "/") {
    return true;
  }
  return path.substr(0, mount_point.size()) == mount_point &&
         (path.size() == mount_point.size() || path[mount_point.size()] == '/');
}

// The byte length of the valid UTF-8 sequence at the start of `text`, or 0.
size_t utf8_sequence_length(std::string_view text) {
  utf8::Sequence sequence = utf8::sequence_at(text);
  return sequence.kind == utf8::Sequence::Kind::valid ? sequence.length : 0;
}

std::string read_cmdline(int64_t pid) {
  if (pid <= 0) {
    return std::string(k_cmdline_unavailable);
  }
  auto raw = read_proc_file(fmt::format("/proc/{}/cmdline", pid));
  if (!raw) {
    return std::string(k_cmdline_unavailable);
  }
  return detail::format_cmdline(*raw);
}

} // namespace

Result<FileLock> acquire_lock(const LockRequest& request) {
  if (request.path.empty()) {
    return make_error(Status::invalid, "lock request for {} has no path",
                      request.what);
  }
  KTC_TRY_ASSIGN(Fd fd, open_regular_lock_file(request));

  int operation = request.mode == LockMode::exclusive ? LOCK_EX : LOCK_SH;
  auto deadline = Clock::now() + request.timeout;
  milliseconds backoff = k_first_backoff;
  bool waiting = false;
  for (;;) {
    int error = try_flock(fd.get(), operation);
    if (error == 0) {
      if (waiting) {
        KTC_LOG(debug, "Took {} on {} after waiting", flock_name(request.mode),
                request.path);
      }
      return FileLock(std::move(fd), request.path, request.mode);
    }
    if (error != EWOULDBLOCK) {
      return errno_error(error,
                         fmt::format("flock {} on lock file {}",
                                     flock_name(request.mode), request.path));
    }
    auto now = Clock::now();
    if (request.timeout.count() <= 0 || now >= deadline) {
      break;
    }
    if (!waiting) {
      KTC_LOG(debug, "Waiting up to {} for {} on {}",
              format_duration(request.timeout), flock_name(request.mode),
              request.path);
      waiting = true;
    }
    std::this_thread::sleep_for(
        std::min<Clock::duration>(backoff, deadline - now));
    backoff = std::min(backoff * 2, k_max_backoff);
  }
  return contention_error(request);
}

std::vector<LockHolder> lock_holders(const std::string& path) {
  struct stat st;
  if (path.empty() || ::stat(path.c_str(), &st) != 0) {
    return {};
  }
  std::string canonical = path;
  if (char* resolved = ::realpath(path.c_str(), nullptr)) {
    canonical = resolved;
    std::free(resolved);
  }
  // Note: st_dev is not the superblock's device on btrfs subvolumes or
  // overlayfs, while /proc/locks prints the superblock's; mountinfo has it.
  auto mountinfo = read_proc_file("/proc/self/mountinfo");
  if (!mountinfo) {
    return {};
  }
  auto device = detail::device_for_path(*mountinfo, canonical);
  if (!device) {
    return {};
  }
  auto locks_text = read_proc_file("/proc/locks");
  if (!locks_text) {
    return {};
  }

  std::vector<LockHolder> holders;
  for (const auto& lock : detail::parse_proc_locks(*locks_text)) {
    if (lock.major != device->first || lock.minor != device->second ||
        lock.inode != static_cast<uint64_t>(st.st_ino)) {
      continue;
    }
    // One process may hold the file through several descriptors.
    auto same_pid = [&](const LockHolder& holder) {
      return holder.pid == lock.pid;
    };
    if (auto it = std::find_if(holders.begin(), holders.end(), same_pid);
        it != holders.end()) {
      it->exclusive = it->exclusive || lock.exclusive;
      continue;
    }
    holders.push_back(LockHolder{lock.pid, lock.exclusive, {}});
  }
  for (auto& holder : holders) {
    holder.cmdline = read_cmdline(holder.pid);
  }
  return holders;
}

std::string format_holders(const std::vector<LockHolder>& holders) {
  if (holders.empty()) {
    return "<none recorded>";
  }
  std::string text;
  for (const auto& holder : holders) {
    if (!text.empty()) {
      text += "; ";
    }
    text +=
        fmt::format("pid={} ({}) cmd={}", holder.pid,
                    holder.exclusive ? "exclusive" : "shared", holder.cmdline);
  }
  return text;
}

Result<void> check_lock_filesystem(const std::string& path) {
  std::string probe = path.empty() ? "." : path;
  struct statfs st;
  for (;;) {
    int rc;
    do {
      rc = ::statfs(probe.c_str(), &st);
    } while (rc != 0 && errno == EINTR);
    if (rc == 0) {
      break;
    }
    // Note: any failure but a missing path ends the check without an
    // error; the open that follows reports real problems better.
    if (errno != ENOENT) {
      return {};
    }
    std::string parent = parent_dir(probe);
    if (parent.empty()) {
      parent.assign(1, '.');
    }
    if (parent == probe) {
      return {};
    }
    probe = std::move(parent);
  }
  std::string_view name =
      refused_filesystem_name(static_cast<int64_t>(st.f_type));
  if (name.empty()) {
    return {};
  }
  return make_error(Status::unsupported,
                    "{}: the {} filesystem is not supported for ktcache lock "
                    "files (flock is unreliable there); use a local "
                    "filesystem (ext4, xfs, btrfs, tmpfs), or set "
                    "KTCACHE_ALLOW_NETWORK_FS=1 to override",
                    path, name);
}

std::string_view refused_filesystem_name(int64_t magic) {
  // f_type is a signed long: where it is 32 bits wide, magics with the top
  // bit set (CIFS, SMB2) arrive sign-extended.
  if (magic < 0 && magic >= INT32_MIN) {
    magic &= 0xFFFFFFFF;
  }
  switch (magic) {
  case 0x6969:
    return "NFS";
  case 0xFF534D42:
    return "CIFS";
  case 0xFE534D42:
    return "SMB2";
  case 0x517B:
    return "SMB";
  case 0x00C36400:
    return "Ceph";
  case 0x5346414F:
  case 0x6B414653:
    return "AFS";
  case 0x65735546:
    return "FUSE";
  case 0x01021997:
    return "9p";
  case 0x0BD00BD0:
    return "Lustre";
  case 0x47504653:
    return "GPFS";
  default:
    return {};
  }
}

namespace detail {

std::string unescape_mountinfo(std::string_view field) {
  std::string text;
  text.reserve(field.size());
  auto is_octal = [](char c) { return c >= '0' && c <= '7'; };
  for (size_t index = 0; index < field.size(); ++index) {
    if (field[index] == '\\' && index + 3 < field.size() &&
        is_octal(field[index + 1]) && is_octal(field[index + 2]) &&
        is_octal(field[index + 3])) {
      int value = (field[index + 1] - '0') * 64 + (field[index + 2] - '0') * 8 +
                  (field[index + 3] - '0');
      if (value <= 0377) {
        text += static_cast<char>(value);
        index += 3;
        continue;
      }
    }
    text += field[index];
  }
  return text;
}

std::optional<std::pair<unsigned, unsigned>>
device_for_path(std::string_view mountinfo, std::string_view path) {
  std::optional<std::pair<unsigned, unsigned>> best;
  if (path.empty() || path.front() != '/') {
    return best;
  }
  size_t best_length = 0;
  for_each_line(mountinfo, [&](std::string_view line) {
    // id parent major:minor root mount-point options [optional...] - type
    // source super-options; a line cut short lacks the " - type source"
    // tail and is skipped rather than trusted.
    auto fields = split_fields(line);
    auto separator = std::find(fields.begin(), fields.end(), "-");
    if (separator - fields.begin() < 6 || fields.end() - separator < 3) {
      return;
    }
    unsigned major = 0;
    unsigned minor = 0;
    if (!parse_device(fields[2], 10, major, minor)) {
      return;
    }
    std::string mount_point = unescape_mountinfo(fields[4]);
    if (mount_point.empty() || mount_point.front() != '/' ||
        !covers(mount_point, path)) {
      return;
    }
    // ">=": a later line with the same mount point is stacked on top.
    if (!best || mount_point.size() >= best_length) {
      best_length = mount_point.size();
      best = std::make_pair(major, minor);
    }
  });
  return best;
}

std::vector<ProcLock> parse_proc_locks(std::string_view text) {
  std::vector<ProcLock> locks;
  for_each_line(text, [&](std::string_view line) {
    // "1: FLOCK  ADVISORY  WRITE 1234 fe:01:5678 0 EOF"; waiters carry "->"
    // after the ordinal and hold nothing.
    auto fields = split_fields(line);
    if (fields.size() < 6 || fields[0].size() < 2 || fields[0].back() != ':' ||
        fields[1] != "FLOCK") {
      return;
    }
    ProcLock lock{};
    if (fields[3] == "WRITE") {
      lock.exclusive = true;
    } else if (fields[3] != "READ") {
      return;
    }
    auto device_and_inode = fields[5];
    size_t last_colon = device_and_inode.rfind(':');
    if (!parse_number(fields[4], lock.pid) ||
        last_colon == std::string_view::npos ||
        !parse_device(device_and_inode.substr(0, last_colon), 16, lock.major,
                      lock.minor) ||
        !parse_number(device_and_inode.substr(last_colon + 1), lock.inode)) {
      return;
    }
    locks.push_back(lock);
  });
  return locks;
}

std::string format_cmdline(std::string_view raw) {
  // NULs separate the arguments; other control characters would break
  // the one-line messages the command line ends up in.
  std::string flat(raw);
  for (auto& c : flat) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
      c = ' ';
    }
  }
  std::string_view trimmed = flat;
  size_t first = trimmed.find_first_not_of(' ');
  if (first == std::string_view::npos) {
    return std::string(k_cmdline_unavailable);
  }
  trimmed = trimmed.substr(first, trimmed.find_last_not_of(' ') - first + 1);

  std::string text;
  size_t chars = 0;
  while (!trimmed.empty()) {
    if (chars == k_cmdline_max_chars) {
      text += "\u2026";
      break;
    }
    size_t length = utf8_sequence_length(trimmed);
    if (length == 0) {
      text += "\uFFFD";
      length = 1;
    } else {
      text.append(trimmed.substr(0, length));
    }
    trimmed.remove_prefix(length);
    ++chars;
  }
  return text;
}

} // namespace detail

} // namespace ktc::cache
