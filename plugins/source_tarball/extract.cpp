#include "extract.hpp"

#include <openssl/evp.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace tarball {
namespace {

// The tar stream moves between the threads in blocks of this size, at most
// k_queue_blocks of them at once: enough to keep both threads busy through
// the uneven pace of file creation, little enough to stay out of the way.
constexpr size_t k_block_size = 1u << 20;
constexpr size_t k_queue_blocks = 8;
constexpr size_t k_read_size = 1u << 20;
// Progress is reported at most once per this many bytes.
constexpr uint64_t k_progress_step = 1u << 20;
// Kernel trees are a dozen levels deep; a path much deeper is an attempt
// to exhaust something (descriptors while removing it, say).
constexpr size_t k_max_depth = 128;

class Fd {
public:
  explicit Fd(int fd = -1) : m_fd(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : m_fd(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset(other.release());
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return m_fd; }
  explicit operator bool() const { return m_fd >= 0; }
  int release() {
    int fd = m_fd;
    m_fd = -1;
    return fd;
  }
  void reset(int fd = -1) {
    if (m_fd >= 0) {
      ::close(m_fd);
    }
    m_fd = fd;
  }

private:
  int m_fd;
};

std::string errno_text(int error) {
  return std::strerror(error);
}

// --- opening beneath a directory -----------------------------------------

// Set when the kernel has no openat2 (before 5.6): the walk below gives the
// same guarantee for the relative, ".."-free paths this plugin opens.
std::atomic<bool> g_no_openat2{false};

int open_walking(int dir_fd, const char* path, int flags, unsigned mode) {
  std::string_view rest(path);
  Fd current;
  int at = dir_fd;
  for (;;) {
    size_t slash = rest.find('/');
    if (slash == std::string_view::npos) {
      break;
    }
    std::string name(rest.substr(0, slash));
    rest.remove_prefix(slash + 1);
    if (name.empty() || name == ".") {
      continue;
    }
    if (name == "..") {
      errno = EXDEV;
      return -1;
    }
    int next = ::openat(at, name.c_str(),
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) {
      return -1;
    }
    current.reset(next);
    at = next;
  }
  if (rest == "..") {
    errno = EXDEV;
    return -1;
  }
  std::string last(rest.empty() ? "." : rest);
  return ::openat(at, last.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode);
}

int open_beneath(int dir_fd, const char* path, int flags, unsigned mode) {
  if (!g_no_openat2.load(std::memory_order_relaxed)) {
    struct open_how how;
    std::memset(&how, 0, sizeof how);
    how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
    how.mode = (flags & O_CREAT) != 0 ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    long fd;
    int attempts = 0;
    // EAGAIN: a rename raced the lookup, which RESOLVE_BENEATH refuses to
    // guess about.
    do {
      fd = ::syscall(SYS_openat2, dir_fd, path, &how, sizeof how);
    } while (fd < 0 && (errno == EAGAIN || errno == EINTR) && ++attempts < 16);
    if (fd >= 0) {
      return static_cast<int>(fd);
    }
    if (errno != ENOSYS) {
      return -1;
    }
    g_no_openat2.store(true, std::memory_order_relaxed);
  }
  return open_walking(dir_fd, path, flags, mode);
}

// --- SHA-256 ---------------------------------------------------------------

class Sha256 {
public:
  Sha256() : m_context(EVP_MD_CTX_new()) {
    if (m_context == nullptr ||
        EVP_DigestInit_ex(m_context, EVP_sha256(), nullptr) != 1) {
      EVP_MD_CTX_free(m_context);
      fail(KTC_PLUGIN_E_NOMEM, "SHA-256 could not be set up");
    }
  }
  ~Sha256() { EVP_MD_CTX_free(m_context); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(std::string_view data) {
    if (EVP_DigestUpdate(m_context, data.data(), data.size()) != 1) {
      fail(KTC_PLUGIN_E_GENERIC, "SHA-256 failed");
    }
  }
  std::string hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned length = 0;
    if (EVP_DigestFinal_ex(m_context, digest, &length) != 1) {
      fail(KTC_PLUGIN_E_GENERIC, "SHA-256 failed");
    }
    static const char digits[] = "0123456789abcdef";
    std::string text;
    for (unsigned index = 0; index < length; ++index) {
      text += digits[digest[index] >> 4];
      text += digits[digest[index] & 15];
    }
    return text;
  }

private:
  EVP_MD_CTX* m_context;
};

// --- inputs ------------------------------------------------------------------

class FileInput : public Input {
public:
  explicit FileInput(const std::string& path)
      : m_path(path), m_buffer(new char[k_read_size]) {
    m_fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!m_fd) {
      int error = errno;
      fail(error == ENOENT ? KTC_PLUGIN_E_NOTFOUND : KTC_PLUGIN_E_IO,
           path + ": " + errno_text(error));
    }
    struct stat st;
    if (::fstat(m_fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
      fail(KTC_PLUGIN_E_INVALID, path + ": not a regular file");
    }
    m_size = static_cast<uint64_t>(st.st_size);
    // One pass, front to back: tell the kernel to read ahead generously.
    (void)::posix_fadvise(m_fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  }

  std::string_view next() override {
    for (;;) {
      ssize_t count = ::read(m_fd.get(), m_buffer.get(), k_read_size);
      if (count >= 0) {
        return {m_buffer.get(), static_cast<size_t>(count)};
      }
      if (errno != EINTR) {
        fail(KTC_PLUGIN_E_IO, m_path + ": " + errno_text(errno));
      }
    }
  }
  uint64_t total() const override { return m_size; }
  const char* stage() const override { return "extract"; }

private:
  std::string m_path;
  Fd m_fd;
  std::unique_ptr<char[]> m_buffer;
  uint64_t m_size = 0;
};

class DownloadInput : public Input {
public:
  DownloadInput(const Call& call, const std::string& url)
      : m_download(call, url) {}
  std::string_view next() override { return m_download.next(); }
  uint64_t total() const override { return m_download.content_length(); }
  const char* stage() const override { return "download"; }

private:
  http::Download m_download;
};

// --- the queue between the threads -------------------------------------------

struct Block {
  std::unique_ptr<char[]> data{new char[k_block_size]};
  size_t size = 0;
};

// A fixed set of blocks circulating between a producer (the decompressing
// thread) and a consumer (the extracting one).
class BlockQueue {
public:
  BlockQueue() {
    for (size_t index = 0; index < k_queue_blocks; ++index) {
      m_storage.push_back(std::make_unique<Block>());
      m_free.push_back(m_storage.back().get());
    }
  }

  // Producer: an empty block, or nullptr once the consumer has stopped.
  Block* take_free() {
    std::unique_lock lock(m_mutex);
    m_changed.wait(lock, [&] { return m_stopped || !m_free.empty(); });
    if (m_stopped) {
      return nullptr;
    }
    Block* block = m_free.back();
    m_free.pop_back();
    block->size = 0;
    return block;
  }
  void push(Block* block) {
    std::lock_guard lock(m_mutex);
    if (m_stopped) {
      m_free.push_back(block);
    } else {
      m_full.push_back(block);
    }
    m_changed.notify_all();
  }
  // Producer: no more blocks after those queued (the end of the stream).
  void finish() {
    std::lock_guard lock(m_mutex);
    m_finished = true;
    m_changed.notify_all();
  }
  // Producer: it failed; the consumer gets nothing more, not even what is
  // queued (it would only be thrown away with the tree).
  void abort() {
    std::lock_guard lock(m_mutex);
    m_finished = true;
    for (Block* block : m_full) {
      m_free.push_back(block);
    }
    m_full.clear();
    m_changed.notify_all();
  }

  // Consumer: the next block, or nullptr at the end. The block returned
  // before goes back to the producer.
  const Block* pop() {
    std::unique_lock lock(m_mutex);
    if (m_in_use != nullptr) {
      m_free.push_back(m_in_use);
      m_in_use = nullptr;
      m_changed.notify_all();
    }
    m_changed.wait(lock, [&] { return m_finished || !m_full.empty(); });
    if (m_full.empty()) {
      return nullptr;
    }
    m_in_use = m_full.front();
    m_full.pop_front();
    return m_in_use;
  }
  // Consumer: it wants nothing more (done, or failed).
  void stop() {
    std::lock_guard lock(m_mutex);
    m_stopped = true;
    m_changed.notify_all();
  }
  bool stopped() {
    std::lock_guard lock(m_mutex);
    return m_stopped;
  }

private:
  std::mutex m_mutex;
  std::condition_variable m_changed;
  std::vector<std::unique_ptr<Block>> m_storage;
  std::vector<Block*> m_free;
  std::deque<Block*> m_full;
  Block* m_in_use = nullptr;
  bool m_finished = false;
  bool m_stopped = false;
};

// --- creating the tree -------------------------------------------------------

// A hostile or unusable entry: the whole extraction fails with this.
[[noreturn]] void refuse(const std::string& entry, const std::string& trick) {
  fail(KTC_PLUGIN_E_INVALID, "refused entry '" + entry + "': " + trick);
}

std::string join(const std::vector<std::string>& parts, size_t count) {
  std::string path;
  for (size_t index = 0; index < count; ++index) {
    if (index != 0) {
      path += '/';
    }
    path += parts[index];
  }
  return path;
}

// The components of an entry's name, or a refusal. "." and empty
// components are dropped ("./linux/" is "linux"); ".." is never accepted,
// even where it would stay inside, since nothing legitimate needs it.
std::vector<std::string> split_name(const std::string& entry,
                                    std::string_view name,
                                    std::string_view what) {
  if (name.empty()) {
    refuse(entry, std::string(what) + " with an empty name");
  }
  if (name[0] == '/') {
    refuse(entry, std::string(what) + " with an absolute path");
  }
  std::vector<std::string> parts;
  while (!name.empty()) {
    size_t slash = name.find('/');
    std::string_view part = name.substr(0, slash);
    if (part == "..") {
      refuse(entry,
             std::string(what) + " with a '..' component (path traversal)");
    }
    if (!part.empty() && part != ".") {
      parts.emplace_back(part);
    }
    if (slash == std::string_view::npos) {
      break;
    }
    name.remove_prefix(slash + 1);
  }
  if (parts.size() > k_max_depth) {
    refuse(entry,
           "a path deeper than " + std::to_string(k_max_depth) + " levels");
  }
  return parts;
}

// Creates the tree's entries, one at a time, in the extraction thread.
//
// libarchive only reads; every file is made here relative to a descriptor of
// dest_dir, through openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) (and
// *at() calls on directories opened that way), so nothing is ever written
// through a symbolic link or outside dest_dir, whatever came before. On top
// of that, entries are refused when they are:
//  - absolute, or have a ".." component;
//  - not under the first top-level directory (exactly one is accepted);
//  - symbolic links whose target is absolute, climbs above the top-level
//    directory from the link's own directory, or climbs after descending
//    ("a/../.."): a component may itself be a link, so only leading ".."
//    components mean what they say lexically;
//  - hard links to anything but a regular file already extracted;
//  - devices, FIFOs and sockets.
// Modes keep only the permission bits (no setuid, setgid or sticky), and
// the process umask applies on top.
class TreeWriter {
public:
  explicit TreeWriter(int root_fd) : m_root(root_fd) {}

  void write(archive* reader, archive_entry* entry);

  const std::string& top() const { return m_top; }
  uint64_t masked() const { return m_masked; }

private:
  struct DirResult {
    Fd fd;
    int error = 0;
    std::string failed_at;
  };

  DirResult
  open_dir(const std::vector<std::string>& parts, size_t count, bool create);
  int parent_of(const std::string& entry,
                const std::vector<std::string>& parts);
  void check_top(const std::string& entry,
                 const std::vector<std::string>& parts,
                 bool is_directory);
  [[noreturn]] void
  path_error(const std::string& entry, int error, const std::string& path);
  void replace_existing(int parent,
                        const std::string& name,
                        const std::string& entry);

  void make_file(archive* reader,
                 archive_entry* entry,
                 const std::string& name,
                 const std::vector<std::string>& parts);
  void make_directory(archive_entry* entry,
                      const std::string& name,
                      const std::vector<std::string>& parts);
  void make_symlink(archive_entry* entry,
                    const std::string& name,
                    const std::vector<std::string>& parts);
  void make_hardlink(const char* target,
                     const std::string& name,
                     const std::vector<std::string>& parts);

  int m_root;
  std::string m_top;
  // The directory the last entry went into: tar streams list a directory's
  // entries together, so most entries reuse it.
  std::string m_cached_path;
  Fd m_cached_fd;
  uint64_t m_masked = 0;
};

TreeWriter::DirResult TreeWriter::open_dir(
    const std::vector<std::string>& parts, size_t count, bool create) {
  DirResult result;
  std::string path = join(parts, count);
  int fd = open_beneath(m_root, path.c_str(), O_PATH | O_DIRECTORY, 0);
  if (fd >= 0) {
    result.fd.reset(fd);
    return result;
  }
  // Missing (to be created) or refused: one component at a time, which also
  // tells which component is at fault.
  Fd current;
  int at = m_root;
  std::string so_far;
  for (size_t index = 0; index < count; ++index) {
    if (index != 0) {
      so_far += '/';
    }
    so_far += parts[index];
    if (create && ::mkdirat(at, parts[index].c_str(), 0777) != 0 &&
        errno != EEXIST) {
      result.error = errno;
      result.failed_at = so_far;
      return result;
    }
    int next = open_beneath(at, parts[index].c_str(), O_PATH | O_DIRECTORY, 0);
    if (next < 0) {
      result.error = errno;
      result.failed_at = so_far;
      return result;
    }
    current.reset(next);
    at = next;
  }
  result.fd = std::move(current);
  return result;
}

void TreeWriter::path_error(const std::string& entry,
                            int error,
                            const std::string& path) {
  switch (error) {
  case ELOOP:
    refuse(entry, "'" + path +
                      "' is a symbolic link, and nothing is written through "
                      "one");
  case ENOTDIR:
    refuse(entry, "'" + path + "' is not a directory");
  case EXDEV:
    refuse(entry, "'" + path + "' leads outside the tree");
  default:
    fail(KTC_PLUGIN_E_IO, "'" + path + "': " + errno_text(error));
  }
}

// The descriptor of the directory holding `parts` (created as needed);
// owned by the cache, valid until the next call.
int TreeWriter::parent_of(const std::string& entry,
                          const std::vector<std::string>& parts) {
  size_t count = parts.size() - 1;
  if (count == 0) {
    return m_root;
  }
  std::string path = join(parts, count);
  if (m_cached_fd && path == m_cached_path) {
    return m_cached_fd.get();
  }
  DirResult dir = open_dir(parts, count, true);
  if (!dir.fd) {
    path_error(entry, dir.error, dir.failed_at);
  }
  m_cached_fd = std::move(dir.fd);
  m_cached_path = std::move(path);
  return m_cached_fd.get();
}

void TreeWriter::check_top(const std::string& entry,
                           const std::vector<std::string>& parts,
                           bool is_directory) {
  if (parts.size() == 1 && !is_directory) {
    refuse(entry, "a top-level entry that is not a directory (a kernel "
                  "tarball holds one directory)");
  }
  if (m_top.empty()) {
    m_top = parts[0];
  } else if (parts[0] != m_top) {
    refuse(entry, "a second top-level entry '" + parts[0] +
                      "' (the tarball must hold one directory; the first "
                      "was '" +
                      m_top + "')");
  }
}

// Makes room for an entry whose name exists already (a tarball may list a
// name twice; the later one wins, as with tar): anything but a directory is
// unlinked, which never touches what a link points to.
void TreeWriter::replace_existing(int parent,
                                  const std::string& name,
                                  const std::string& entry) {
  struct stat st;
  if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISDIR(st.st_mode)) {
    refuse(entry, "it would replace a directory");
  }
  if (::unlinkat(parent, name.c_str(), 0) != 0 && errno != ENOENT) {
    fail(KTC_PLUGIN_E_IO, "'" + entry + "': " + errno_text(errno));
  }
}

void write_all(int fd,
               const char* data,
               size_t size,
               const std::string& entry) {
  while (size > 0) {
    ssize_t written = ::write(fd, data, size);
    if (written < 0) {
      if (errno == EINTR) {
        continue;
      }
      fail(KTC_PLUGIN_E_IO, "'" + entry + "': " + errno_text(errno));
    }
    data += written;
    size -= static_cast<size_t>(written);
  }
}

unsigned permissions(archive_entry* entry, uint64_t& masked) {
  auto mode = static_cast<unsigned>(archive_entry_perm(entry));
  if ((mode & 07000) != 0) {
    ++masked;
  }
  return mode & 0777;
}

void TreeWriter::make_file(archive* reader,
                           archive_entry* entry,
                           const std::string& name,
                           const std::vector<std::string>& parts) {
  int parent = parent_of(name, parts);
  const std::string& base = parts.back();
  unsigned mode = permissions(entry, m_masked);
  int fd =
      open_beneath(parent, base.c_str(), O_WRONLY | O_CREAT | O_EXCL, mode);
  if (fd < 0 && errno == EEXIST) {
    replace_existing(parent, base, name);
    fd = open_beneath(parent, base.c_str(), O_WRONLY | O_CREAT | O_EXCL, mode);
  }
  if (fd < 0) {
    path_error(name, errno, name);
  }
  Fd file(fd);

  const void* data = nullptr;
  size_t size = 0;
  la_int64_t offset = 0;
  la_int64_t position = 0;
  int status;
  while ((status = archive_read_data_block(reader, &data, &size, &offset)) ==
         ARCHIVE_OK) {
    if (offset != position) {
      // A sparse entry: the gap stays a hole.
      if (::lseek(file.get(), offset, SEEK_SET) < 0) {
        fail(KTC_PLUGIN_E_IO, "'" + name + "': " + errno_text(errno));
      }
      position = offset;
    }
    write_all(file.get(), static_cast<const char*>(data), size, name);
    position += static_cast<la_int64_t>(size);
  }
  if (status != ARCHIVE_EOF) {
    const char* why = archive_error_string(reader);
    fail(KTC_PLUGIN_E_INVALID,
         "'" + name + "': " + (why != nullptr ? why : "unreadable data"));
  }
  if (archive_entry_size_is_set(entry) &&
      position < archive_entry_size(entry) &&
      ::ftruncate(file.get(), archive_entry_size(entry)) != 0) {
    fail(KTC_PLUGIN_E_IO, "'" + name + "': " + errno_text(errno));
  }
  if (archive_entry_mtime_is_set(entry)) {
    // make compares times: keep the tarball's, as tar does.
    struct timespec times[2];
    times[0].tv_sec = 0;
    times[0].tv_nsec = UTIME_OMIT;
    times[1].tv_sec = archive_entry_mtime(entry);
    times[1].tv_nsec = archive_entry_mtime_nsec(entry);
    (void)::futimens(file.get(), times);
  }
}

void TreeWriter::make_directory(archive_entry* entry,
                                const std::string& name,
                                const std::vector<std::string>& parts) {
  int parent = parent_of(name, parts);
  const std::string& base = parts.back();
  // Always writable and searchable by its owner while the tree is made
  // (and removed, should that fail).
  unsigned mode = permissions(entry, m_masked) | 0700;
  if (::mkdirat(parent, base.c_str(), mode) == 0) {
    return;
  }
  if (errno != EEXIST) {
    path_error(name, errno, name);
  }
  // Made earlier for an entry inside it, or listed twice: its mode now.
  Fd existing(open_beneath(parent, base.c_str(), O_RDONLY | O_DIRECTORY, 0));
  if (!existing) {
    path_error(name, errno, name);
  }
  (void)::fchmod(existing.get(), mode);
}

void TreeWriter::make_symlink(archive_entry* entry,
                              const std::string& name,
                              const std::vector<std::string>& parts) {
  const char* raw_target = archive_entry_symlink(entry);
  if (raw_target == nullptr) {
    raw_target = archive_entry_symlink_utf8(entry);
  }
  if (raw_target == nullptr || raw_target[0] == '\0') {
    refuse(name, "a symbolic link with no target");
  }
  std::string target(raw_target);
  if (target[0] == '/') {
    refuse(name, "a symbolic link to the absolute path '" + target + "'");
  }
  // How deep below the top-level directory the link's directory is.
  size_t depth = parts.size() - 2;
  bool descended = false;
  std::string_view rest(target);
  while (!rest.empty()) {
    size_t slash = rest.find('/');
    std::string_view part = rest.substr(0, slash);
    if (part == "..") {
      if (descended) {
        refuse(name, "a symbolic link whose target '" + target +
                         "' climbs back out of a name (what that reaches "
                         "depends on other links)");
      }
      if (depth == 0) {
        refuse(name,
               "a symbolic link escaping the tree (target '" + target + "')");
      }
      --depth;
    } else if (!part.empty() && part != ".") {
      descended = true;
    }
    if (slash == std::string_view::npos) {
      break;
    }
    rest.remove_prefix(slash + 1);
  }

  int parent = parent_of(name, parts);
  const std::string& base = parts.back();
  if (::symlinkat(target.c_str(), parent, base.c_str()) != 0) {
    if (errno != EEXIST) {
      path_error(name, errno, name);
    }
    replace_existing(parent, base, name);
    if (::symlinkat(target.c_str(), parent, base.c_str()) != 0) {
      path_error(name, errno, name);
    }
  }
}

void TreeWriter::make_hardlink(const char* raw_target,
                               const std::string& name,
                               const std::vector<std::string>& parts) {
  std::string target(raw_target);
  std::vector<std::string> target_parts =
      split_name(name, target, "a hard link target");
  if (target_parts.size() < 2 || target_parts[0] != m_top) {
    refuse(name, "a hard link to '" + target + "', outside the tree");
  }
  if (target_parts == parts) {
    refuse(name, "a hard link to itself");
  }
  const std::string& target_base = target_parts.back();
  DirResult target_dir = open_dir(target_parts, target_parts.size() - 1, false);
  struct stat st;
  if (!target_dir.fd ||
      ::fstatat(target_dir.fd.get(), target_base.c_str(), &st,
                AT_SYMLINK_NOFOLLOW) != 0 ||
      !S_ISREG(st.st_mode)) {
    // A link to a link would change what a relative target means.
    refuse(name, "a hard link to '" + target +
                     "', which is not a regular file extracted before it");
  }
  int parent = parent_of(name, parts);
  const std::string& base = parts.back();
  if (::linkat(target_dir.fd.get(), target_base.c_str(), parent, base.c_str(),
               0) != 0) {
    if (errno != EEXIST) {
      path_error(name, errno, name);
    }
    replace_existing(parent, base, name);
    if (::linkat(target_dir.fd.get(), target_base.c_str(), parent, base.c_str(),
                 0) != 0) {
      path_error(name, errno, name);
    }
  }
}

void TreeWriter::write(archive* reader, archive_entry* entry) {
  const char* raw = archive_entry_pathname(entry);
  if (raw == nullptr) {
    raw = archive_entry_pathname_utf8(entry);
  }
  if (raw == nullptr) {
    refuse("?", "a name that cannot be read");
  }
  std::string name(raw);
  std::vector<std::string> parts = split_name(name, name, "an entry");
  const char* hardlink = archive_entry_hardlink(entry);
  if (hardlink == nullptr) {
    hardlink = archive_entry_hardlink_utf8(entry);
  }
  auto type = archive_entry_filetype(entry);
  if (parts.empty()) {
    // "./" itself: the directory the tree goes into.
    if (type != AE_IFDIR || hardlink != nullptr) {
      refuse(name, "an entry for the extraction directory that is not a "
                   "directory");
    }
    return;
  }
  check_top(name, parts, type == AE_IFDIR && hardlink == nullptr);

  if (hardlink != nullptr) {
    make_hardlink(hardlink, name, parts);
    return;
  }
  switch (type) {
  case AE_IFREG:
    make_file(reader, entry, name, parts);
    return;
  case AE_IFDIR:
    make_directory(entry, name, parts);
    return;
  case AE_IFLNK:
    make_symlink(entry, name, parts);
    return;
  case AE_IFCHR:
    refuse(name, "a character device");
  case AE_IFBLK:
    refuse(name, "a block device");
  case AE_IFIFO:
    refuse(name, "a FIFO");
  case AE_IFSOCK:
    refuse(name, "a socket");
  default:
    refuse(name, "an entry of unknown type");
  }
}

// --- the two threads
// -----------------------------------------------------------

struct ArchiveDeleter {
  void operator()(archive* reader) const { archive_read_free(reader); }
};
using Archive = std::unique_ptr<archive, ArchiveDeleter>;

// The consumer's side: the tar reader over the queue, and the writer.
struct Consumer {
  explicit Consumer(int root_fd) : writer(root_fd) {}
  BlockQueue queue;
  TreeWriter writer;
  std::exception_ptr error;
  bool reached_end = false;
  std::atomic<uint64_t> entries{0};
  std::atomic<uint64_t> bytes{0};
};

la_ssize_t read_queue(archive*, void* data, const void** buffer) {
  auto* consumer = static_cast<Consumer*>(data);
  const Block* block = consumer->queue.pop();
  if (block == nullptr) {
    return 0;
  }
  consumer->bytes.fetch_add(block->size, std::memory_order_relaxed);
  *buffer = block->data.get();
  return static_cast<la_ssize_t>(block->size);
}

void consume(Consumer& consumer) {
  try {
    Archive reader(archive_read_new());
    if (!reader) {
      fail(KTC_PLUGIN_E_NOMEM, "libarchive could not make a reader");
    }
    // The tar formats only, and no filter: the stream is decompressed
    // already, and nothing else is accepted inside it.
    archive_read_support_format_tar(reader.get());
    archive_read_support_filter_none(reader.get());
    if (archive_read_open(reader.get(), &consumer, nullptr, read_queue,
                          nullptr) != ARCHIVE_OK) {
      const char* why = archive_error_string(reader.get());
      fail(KTC_PLUGIN_E_INVALID,
           std::string("not a tar archive (") +
               (why != nullptr ? why : "unrecognised data") + ")");
    }
    for (;;) {
      archive_entry* entry = nullptr;
      int status = archive_read_next_header(reader.get(), &entry);
      if (status == ARCHIVE_EOF) {
        break;
      }
      if (status < ARCHIVE_WARN) {
        const char* why = archive_error_string(reader.get());
        fail(KTC_PLUGIN_E_INVALID,
             std::string("damaged tar archive (") +
                 (why != nullptr ? why : "unreadable header") + ")");
      }
      consumer.writer.write(reader.get(), entry);
      consumer.entries.fetch_add(1, std::memory_order_relaxed);
    }
    consumer.reached_end = true;
  } catch (...) {
    consumer.error = std::current_exception();
  }
  consumer.queue.stop();
}

// The producer's side: what libarchive's raw reader pulls from.
struct Producer {
  const Call& call;
  Input& input;
  Sha256 sha256;
  uint64_t bytes = 0;
  uint64_t reported = 0;
  std::exception_ptr error;

  void account(std::string_view chunk) {
    sha256.update(chunk);
    bytes += chunk.size();
    if (bytes - reported >= k_progress_step || (reported == 0 && bytes != 0)) {
      reported = bytes;
      call.progress(input.stage(), bytes, input.total());
    }
  }
};

la_ssize_t read_input(archive* reader, void* data, const void** buffer) {
  auto* producer = static_cast<Producer*>(data);
  try {
    producer->call.check_cancelled();
    std::string_view chunk = producer->input.next();
    producer->account(chunk);
    *buffer = chunk.data();
    return static_cast<la_ssize_t>(chunk.size());
  } catch (...) {
    producer->error = std::current_exception();
    archive_set_error(reader, EIO, "input failed");
    return -1;
  }
}

// "LABEL: MESSAGE", or MESSAGE alone without a label.
std::string prefixed(std::string_view label, std::string_view message) {
  if (label.empty()) {
    return std::string(message);
  }
  return std::string(label) + ": " + std::string(message);
}

// Rethrows the failure behind a libarchive error of the raw reader: the
// input's own when it failed, else libarchive's.
[[noreturn]] void raw_failure(const Producer& producer,
                              archive* reader,
                              std::string_view label,
                              const char* doing) {
  if (producer.error) {
    std::rethrow_exception(producer.error);
  }
  const char* why = archive_error_string(reader);
  fail(KTC_PLUGIN_E_INVALID, prefixed(label, doing) + ": " +
                                 (why != nullptr ? why : "unknown error"));
}

Archive open_raw(Producer& producer, std::string_view label) {
  Archive reader(archive_read_new());
  if (!reader) {
    fail(KTC_PLUGIN_E_NOMEM, "libarchive could not make a reader");
  }
  // Compression filters that run in this process (none forks a program),
  // and the raw format: the decompressed bytes are the tar stream.
  archive* raw = reader.get();
  archive_read_support_filter_none(raw);
  archive_read_support_filter_gzip(raw);
  archive_read_support_filter_xz(raw);
  archive_read_support_filter_lzma(raw);
  archive_read_support_filter_lzip(raw);
  archive_read_support_filter_bzip2(raw);
  archive_read_support_filter_zstd(raw);
  archive_read_support_filter_lz4(raw);
  archive_read_support_filter_compress(raw);
  archive_read_support_format_raw(raw);
  if (archive_read_open(raw, &producer, nullptr, read_input, nullptr) !=
      ARCHIVE_OK) {
    // libarchive finds no format in nothing at all.
    if (producer.bytes == 0 && !producer.error) {
      fail(KTC_PLUGIN_E_INVALID, prefixed(label, "empty input"));
    }
    raw_failure(producer, raw, label, "cannot read");
  }
  archive_entry* entry = nullptr;
  int status = archive_read_next_header(raw, &entry);
  if (status == ARCHIVE_EOF) {
    fail(KTC_PLUGIN_E_INVALID, prefixed(label, "empty input"));
  }
  if (status < ARCHIVE_WARN) {
    raw_failure(producer, raw, label, "cannot decompress");
  }
  return reader;
}

// Joins the consumer when the producer leaves by an exception.
struct ConsumerThread {
  Consumer& consumer;
  std::thread thread;
  ~ConsumerThread() {
    if (thread.joinable()) {
      consumer.queue.abort();
      thread.join();
    }
  }
};

void remove_inside(int dir_fd, int depth) noexcept {
  int copy = ::dup(dir_fd);
  if (copy < 0) {
    return;
  }
  DIR* dir = ::fdopendir(copy);
  if (dir == nullptr) {
    ::close(copy);
    return;
  }
  std::vector<std::string> names;
  std::vector<bool> directories;
  try {
    while (struct dirent* item = ::readdir(dir)) {
      std::string_view name(item->d_name);
      if (name == "." || name == "..") {
        continue;
      }
      bool is_dir = item->d_type == DT_DIR;
      if (item->d_type == DT_UNKNOWN) {
        struct stat st;
        is_dir =
            ::fstatat(dir_fd, item->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISDIR(st.st_mode);
      }
      names.emplace_back(name);
      directories.push_back(is_dir);
    }
  } catch (...) {
  }
  ::closedir(dir);
  for (size_t index = 0; index < names.size(); ++index) {
    const char* name = names[index].c_str();
    if (directories[index] && depth < static_cast<int>(k_max_depth) + 2) {
      int child = ::openat(dir_fd, name,
                           O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child >= 0) {
        remove_inside(child, depth + 1);
        ::close(child);
      }
      ::unlinkat(dir_fd, name, AT_REMOVEDIR);
    } else {
      ::unlinkat(dir_fd, name, 0);
    }
  }
}

} // namespace

std::unique_ptr<Input> open_file_input(const std::string& path) {
  return std::make_unique<FileInput>(path);
}

std::unique_ptr<Input> open_download_input(const Call& call,
                                           const std::string& url) {
  return std::make_unique<DownloadInput>(call, url);
}

std::string hash_input(const Call& call, Input& input) {
  Producer producer{call, input, {}, 0, 0, nullptr};
  for (;;) {
    call.check_cancelled();
    std::string_view chunk = input.next();
    if (chunk.empty()) {
      break;
    }
    producer.account(chunk);
  }
  call.progress(input.stage(), producer.bytes, producer.bytes);
  return producer.sha256.hex();
}

void empty_directory(const std::string& dest_dir) noexcept {
  Fd root(::open(dest_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root) {
    remove_inside(root.get(), 0);
  }
}

std::optional<std::string> read_tree_file(const std::string& dest_dir,
                                          const std::string& relative,
                                          size_t limit) {
  Fd root(::open(dest_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) {
    return std::nullopt;
  }
  Fd file(open_beneath(root.get(), relative.c_str(), O_RDONLY | O_NONBLOCK, 0));
  struct stat st;
  if (!file || ::fstat(file.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<uint64_t>(st.st_size) > limit) {
    return std::nullopt;
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t filled = 0;
  while (filled < text.size()) {
    ssize_t count =
        ::read(file.get(), text.data() + filled, text.size() - filled);
    if (count < 0 && errno == EINTR) {
      continue;
    }
    if (count <= 0) {
      break;
    }
    filled += static_cast<size_t>(count);
  }
  text.resize(filled);
  return text;
}

Extracted extract(const Call& call,
                  Input& input,
                  const std::string& dest_dir,
                  std::string_view label) {
  Fd root(::open(dest_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) {
    fail(KTC_PLUGIN_E_IO, dest_dir + ": " + errno_text(errno));
  }
  Extracted result;
  try {
    Producer producer{call, input, {}, 0, 0, nullptr};
    Archive raw = open_raw(producer, label);
    Consumer consumer(root.get());
    {
      ConsumerThread running{consumer,
                             std::thread(consume, std::ref(consumer))};
      bool at_end = false;
      while (!at_end) {
        Block* block = consumer.queue.take_free();
        if (block == nullptr) {
          break; // the consumer is done, or failed
        }
        while (block->size < k_block_size) {
          la_ssize_t count =
              archive_read_data(raw.get(), block->data.get() + block->size,
                                k_block_size - block->size);
          if (count < 0) {
            consumer.queue.push(block);
            raw_failure(producer, raw.get(), label, "cannot decompress");
          }
          if (count == 0) {
            at_end = true;
            break;
          }
          block->size += static_cast<size_t>(count);
        }
        consumer.queue.push(block);
      }
      consumer.queue.finish();
      running.thread.join();
    }
    if (consumer.error) {
      try {
        std::rethrow_exception(consumer.error);
      } catch (const Failure& failure) {
        throw Failure(failure.status(), prefixed(label, failure.what()));
      }
    }
    if (!consumer.reached_end) {
      fail(KTC_PLUGIN_E_INVALID, prefixed(label, "truncated tarball"));
    }
    // The tar stream ended; whatever follows (the end padding, the rest of
    // the compressed stream) is still hashed, so the digest covers every
    // byte of the input.
    raw.reset();
    for (;;) {
      call.check_cancelled();
      std::string_view chunk = input.next();
      if (chunk.empty()) {
        break;
      }
      producer.account(chunk);
    }
    call.progress(input.stage(), producer.bytes,
                  input.total() != 0 ? input.total() : producer.bytes);
    uint64_t tar_bytes = consumer.bytes.load();
    if (std::string_view(input.stage()) != "extract") {
      call.progress("extract", tar_bytes, tar_bytes);
    }
    if (consumer.writer.top().empty()) {
      fail(KTC_PLUGIN_E_INVALID,
           prefixed(label, "the tarball holds no directory"));
    }
    result.sha256 = producer.sha256.hex();
    result.input_bytes = producer.bytes;
    result.top = consumer.writer.top();
    result.entries = consumer.entries.load();
    result.bytes = tar_bytes;
    result.masked = consumer.writer.masked();
  } catch (...) {
    root.reset();
    empty_directory(dest_dir);
    throw;
  }
  return result;
}

} // namespace tarball
