#include "util/fs.hpp"

#include "util/log.hpp"
#include "util/sha256.hpp"
#include "util/sys.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

namespace ktc::fs {
namespace {

constexpr size_t k_chunk = 8u << 20;

// Errors after which the next copy method may still work: the kernel or
// filesystem lacks this one, or the two files are on different devices.
bool method_unsupported(int error_number) {
  return error_number == EXDEV || error_number == ENOSYS ||
         error_number == EOPNOTSUPP || error_number == EINVAL ||
         error_number == ENOTTY || error_number == EBADF ||
         error_number == EPERM;
}

CopyMethod first_method() {
  const char* forced = std::getenv("KTCACHE_TEST_COPY");
  if (forced == nullptr) {
    return CopyMethod::clone;
  }
  std::string_view name = forced;
  if (name == "copy_file_range") {
    return CopyMethod::copy_file_range;
  }
  if (name == "sendfile") {
    return CopyMethod::sendfile;
  }
  if (name == "read_write") {
    return CopyMethod::read_write;
  }
  return CopyMethod::clone;
}

// Hashes the source on a second thread while the kernel copies it, so a
// store reads the data once from the page cache in parallel with the copy
// instead of in a second pass afterwards.
class BackgroundHash {
public:
  BackgroundHash(int fd, std::string name)
      : m_thread([this, fd, name = std::move(name)] {
          m_result.emplace(sha256_fd(fd, name));
        }) {}
  BackgroundHash(const BackgroundHash&) = delete;
  BackgroundHash& operator=(const BackgroundHash&) = delete;
  ~BackgroundHash() {
    if (m_thread.joinable()) {
      m_thread.join();
    }
  }
  Result<std::string> join() {
    m_thread.join();
    return std::move(*m_result);
  }

private:
  std::optional<Result<std::string>> m_result;
  std::thread m_thread;
};

// Copies with read/write from the current offsets, hashing what it reads.
Result<void> copy_read_write(int in,
                             int out,
                             const std::string& source,
                             Sha256* hash,
                             uint64_t* copied) {
  auto buffer = std::make_unique<char[]>(k_chunk);
  for (;;) {
    ssize_t got = ::read(in, buffer.get(), k_chunk);
    if (got < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno_error(errno, "cannot read " + source);
    }
    if (got == 0) {
      return {};
    }
    if (hash != nullptr) {
      hash->update(buffer.get(), static_cast<size_t>(got));
    }
    if (int error = sys::write_all(out, buffer.get(), static_cast<size_t>(got));
        error != 0) {
      return errno_error(error, "cannot write the copy of " + source);
    }
    *copied += static_cast<uint64_t>(got);
    sys::checkpoint("copy");
  }
}

} // namespace

std::string_view to_string(CopyMethod method) {
  switch (method) {
  case CopyMethod::clone:
    return "clone";
  case CopyMethod::copy_file_range:
    return "copy_file_range";
  case CopyMethod::sendfile:
    return "sendfile";
  case CopyMethod::read_write:
    return "read_write";
  }
  return "unknown";
}

Result<CopyResult>
copy_file(const std::string& source, int dir_fd, const std::string& name) {
  // The source may be a symbolic link (a kernel tree's
  // arch/x86_64/boot/bzImage is one): the caller named it. What must be a
  // regular file is what it resolves to. O_NONBLOCK: opening a FIFO for
  // reading would otherwise wait for a writer before the check below.
  Fd in(::open(source.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!in) {
    return errno_error(errno, "cannot open " + source);
  }
  struct stat st;
  if (fstat(in.get(), &st) != 0) {
    return errno_error(errno, "cannot stat " + source);
  }
  if (!S_ISREG(st.st_mode)) {
    return make_error(Status::invalid, "{} is not a regular file", source);
  }
  // Back to blocking I/O for the copy (no status flag was set but that one).
  if (::fcntl(in.get(), F_SETFL, 0) != 0) {
    return errno_error(errno, "cannot open " + source);
  }
  auto size = static_cast<uint64_t>(st.st_size);

  Fd out(::openat(dir_fd, name.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666));
  if (!out) {
    return errno_error(errno, "cannot create " + name);
  }

  CopyResult result;
  result.size = size;
  uint64_t copied = 0;
  CopyMethod method = first_method();

  if (method == CopyMethod::clone) {
    if (::ioctl(out.get(), FICLONE, in.get()) == 0) {
      copied = size;
      result.method = CopyMethod::clone;
      sys::checkpoint("copy");
    } else if (!method_unsupported(errno)) {
      return errno_error(errno, "cannot clone " + source);
    }
    method = CopyMethod::copy_file_range;
  }

  std::optional<BackgroundHash> background;
  std::optional<Sha256> inline_hash;
  if (copied < size && method != CopyMethod::read_write) {
    background.emplace(in.get(), source);
  }

  while (copied < size && method != CopyMethod::read_write) {
    size_t want =
        static_cast<size_t>(std::min<uint64_t>(size - copied, k_chunk));
    ssize_t done = method == CopyMethod::copy_file_range
                       ? sys::copy_file_range(in.get(), out.get(), want)
                       : sys::sendfile(out.get(), in.get(), want);
    if (done < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (method_unsupported(errno)) {
        KTC_LOG(debug, "Falling back from {} for {}: {}", to_string(method),
                source, std::strerror(errno));
        method = method == CopyMethod::copy_file_range ? CopyMethod::sendfile
                                                       : CopyMethod::read_write;
        continue;
      }
      return errno_error(errno, "cannot copy " + source);
    }
    if (done == 0) {
      break; // the source shrank; caught by the size check below
    }
    copied += static_cast<uint64_t>(done);
    result.method = method;
    sys::checkpoint("copy");
  }

  if (copied < size && method == CopyMethod::read_write) {
    result.method = CopyMethod::read_write;
    if (!background) {
      // Hash inline; the offsets are where the earlier methods stopped, so
      // the bytes already copied are hashed first.
      inline_hash.emplace();
      if (copied > 0) {
        auto prefix = std::make_unique<char[]>(k_chunk);
        uint64_t hashed = 0;
        while (hashed < copied) {
          size_t want =
              static_cast<size_t>(std::min<uint64_t>(copied - hashed, k_chunk));
          ssize_t got =
              ::pread(in.get(), prefix.get(), want, static_cast<off_t>(hashed));
          if (got <= 0) {
            return errno_error(got < 0 ? errno : EIO, "cannot read " + source);
          }
          inline_hash->update(prefix.get(), static_cast<size_t>(got));
          hashed += static_cast<uint64_t>(got);
        }
      }
    }
    KTC_TRY(copy_read_write(in.get(), out.get(), source,
                            inline_hash ? &*inline_hash : nullptr, &copied));
  }

  if (copied != size) {
    return make_error(Status::io, "{} changed size while it was copied",
                      source);
  }
  // Flush while the hash thread still reads: the two overlap.
  int sync_status = sys::fsync(out.get());
  int sync_errno = errno;
  if (background) {
    KTC_TRY_ASSIGN(result.sha256, background->join());
  } else if (inline_hash) {
    result.sha256 = inline_hash->finish_hex();
  } else {
    KTC_TRY_ASSIGN(result.sha256, sha256_fd(in.get(), source));
  }
  if (sync_status != 0) {
    errno = sync_errno;
    return errno_error(errno, "cannot sync " + name);
  }
  return result;
}

Result<void>
write_file(int dir_fd, const std::string& name, std::string_view data) {
  Fd out(::openat(dir_fd, name.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666));
  if (!out) {
    return errno_error(errno, "cannot create " + name);
  }
  if (int error = sys::write_all(out.get(), data.data(), data.size());
      error != 0) {
    return errno_error(error, "cannot write " + name);
  }
  if (sys::fsync(out.get()) != 0) {
    return errno_error(errno, "cannot sync " + name);
  }
  return {};
}

Result<std::string>
read_file(int dir_fd, const std::string& name, int* error_number) {
  // O_NONBLOCK and the type check: a FIFO must not block the reader, nor a
  // device feed it without end.
  Fd in(::openat(dir_fd, name.c_str(),
                 O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  auto fail = [&](int error) {
    if (error_number != nullptr) {
      *error_number = error;
    }
    return errno_error(error, "cannot read " + name);
  };
  if (!in) {
    return fail(errno);
  }
  struct stat st;
  if (::fstat(in.get(), &st) != 0) {
    return fail(errno);
  }
  if (S_ISDIR(st.st_mode)) {
    return fail(EISDIR);
  }
  if (!S_ISREG(st.st_mode)) {
    return fail(EINVAL);
  }
  std::string data;
  char buffer[16384];
  for (;;) {
    ssize_t got = ::read(in.get(), buffer, sizeof buffer);
    if (got < 0) {
      if (errno == EINTR) {
        continue;
      }
      return fail(errno);
    }
    if (got == 0) {
      break;
    }
    data.append(buffer, static_cast<size_t>(got));
  }
  return data;
}

Result<Fd>
open_beneath(int dir_fd, const std::string& relative_path, int* error_number) {
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH;
  int raw = static_cast<int>(
      ::syscall(SYS_openat2, dir_fd, relative_path.c_str(), &how, sizeof how));
  if (raw < 0 && errno == ENOSYS) {
    raw = ::openat(dir_fd, relative_path.c_str(),
                   O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
  }
  if (raw < 0) {
    // EXDEV is how RESOLVE_BENEATH refuses; it means a link, as ELOOP does.
    int error = errno == EXDEV ? ELOOP : errno;
    if (error_number != nullptr) {
      *error_number = error;
    }
    return errno_error(error, "cannot open " + relative_path);
  }
  return Fd(raw);
}

Result<std::string>
read_small(int fd, std::string_view name_for_errors, int* error_number) {
  auto fail = [&](int error) {
    if (error_number != nullptr) {
      *error_number = error;
    }
    return errno_error(error, "cannot read " + std::string(name_for_errors));
  };
  constexpr size_t k_limit = 1u << 20;
  std::string data;
  char buffer[16384];
  for (;;) {
    ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0) {
      if (errno == EINTR) {
        continue;
      }
      return fail(errno);
    }
    data.append(buffer, static_cast<size_t>(got));
    if (static_cast<size_t>(got) < sizeof buffer) {
      break;
    }
    if (data.size() > k_limit) {
      return fail(EFBIG);
    }
  }
  if (data.empty()) {
    // Empty, or a FIFO without a writer: only a regular file is a file.
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      return fail(errno);
    }
    if (!S_ISREG(st.st_mode)) {
      return fail(S_ISDIR(st.st_mode) ? EISDIR : EINVAL);
    }
  }
  return data;
}

Result<std::string> read_small_file(int dir_fd,
                                    const std::string& relative_path,
                                    int* error_number) {
  KTC_TRY_ASSIGN(Fd in, open_beneath(dir_fd, relative_path, error_number));
  return read_small(in.get(), relative_path, error_number);
}

Result<Fd> open_dir(int dir_fd, const std::string& path, bool nofollow) {
  int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0);
  Fd fd(::openat(dir_fd, path.c_str(), flags));
  if (!fd) {
    return errno_error(errno, "cannot open directory " + path);
  }
  return fd;
}

Result<void> sync_dir(int dir_fd, std::string_view name_for_errors) {
  if (sys::fsync(dir_fd) != 0) {
    return errno_error(errno, "cannot sync " + std::string(name_for_errors));
  }
  return {};
}

Result<void> make_dirs(const std::string& path) {
  size_t position = 0;
  while (position != std::string::npos) {
    position = path.find('/', position + 1);
    std::string prefix = path.substr(0, position);
    if (prefix.empty()) {
      continue;
    }
    if (::mkdir(prefix.c_str(), 0777) != 0 && errno != EEXIST) {
      return errno_error(errno, "cannot create directory " + prefix);
    }
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return errno_error(errno, "cannot create directory " + path);
  }
  if (!S_ISDIR(st.st_mode)) {
    return make_error(Status::io, "{} exists and is not a directory", path);
  }
  return {};
}

Result<void> remove_tree(int dir_fd, const std::string& name) {
  if (::unlinkat(dir_fd, name.c_str(), 0) == 0) {
    return {};
  }
  if (errno == ENOENT) {
    return {};
  }
  if (errno != EISDIR && errno != EPERM) {
    return errno_error(errno, "cannot remove " + name);
  }
  Fd dir(::openat(dir_fd, name.c_str(),
                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) {
    return errno_error(errno, "cannot open " + name);
  }
  DIR* stream = ::fdopendir(dir.get());
  if (stream == nullptr) {
    return errno_error(errno, "cannot read " + name);
  }
  int stream_fd = dir.release();
  std::optional<Error> failure;
  while (dirent* ent = ::readdir(stream)) {
    std::string child = ent->d_name;
    if (child == "." || child == "..") {
      continue;
    }
    auto removed = remove_tree(stream_fd, child);
    if (!removed && !failure) {
      failure = std::move(removed).error();
    }
  }
  ::closedir(stream);
  if (failure) {
    return std::move(*failure);
  }
  if (::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return errno_error(errno, "cannot remove " + name);
  }
  return {};
}

Result<void> remove_tree(const std::string& path) {
  return remove_tree(AT_FDCWD, path);
}

namespace {

template <typename Visit>
Result<void> for_each_child(const std::string& path, Visit&& visit) {
  Fd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) {
    return errno_error(errno, path);
  }
  DIR* stream = ::fdopendir(dir.get());
  if (stream == nullptr) {
    return errno_error(errno, path);
  }
  int stream_fd = dir.release();
  std::vector<std::string> children;
  while (dirent* ent = ::readdir(stream)) {
    std::string_view child = ent->d_name;
    if (child != "." && child != "..") {
      children.emplace_back(child);
    }
  }
  Result<void> outcome;
  for (const auto& child : children) {
    auto visited = visit(stream_fd, child);
    if (!visited && outcome) {
      outcome = std::move(visited);
    }
  }
  ::closedir(stream);
  return outcome;
}

} // namespace

Result<void> empty_directory(const std::string& path) {
  return for_each_child(path, [](int dir_fd, const std::string& child) {
    return remove_tree(dir_fd, child);
  });
}

Result<bool> directory_is_empty(const std::string& path) {
  bool empty = true;
  KTC_TRY(for_each_child(path, [&](int, const std::string&) -> Result<void> {
    empty = false;
    return {};
  }));
  return empty;
}

Result<std::string> absolute_path(std::string_view path) {
  std::filesystem::path result(path);
  if (result.is_relative()) {
    std::error_code error;
    auto here = std::filesystem::current_path(error);
    if (error) {
      return errno_error(error.value(), "the working directory");
    }
    result = here / result;
  }
  std::string text = result.lexically_normal().string();
  while (text.size() > 1 && text.back() == '/') {
    text.pop_back();
  }
  return text;
}

uint64_t tree_size(int dir_fd, const std::string& name) {
  struct stat st;
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return 0;
  }
  if (S_ISREG(st.st_mode)) {
    return static_cast<uint64_t>(st.st_size);
  }
  if (!S_ISDIR(st.st_mode)) {
    return 0;
  }
  int fd = ::openat(dir_fd, name.c_str(),
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return 0;
  }
  DIR* stream = ::fdopendir(fd);
  if (stream == nullptr) {
    ::close(fd);
    return 0;
  }
  uint64_t total = 0;
  while (dirent* ent = ::readdir(stream)) {
    std::string child = ent->d_name;
    if (child != "." && child != "..") {
      total += tree_size(fd, child);
    }
  }
  ::closedir(stream);
  return total;
}

Result<uint64_t> free_bytes(const std::string& path) {
  struct statvfs st;
  if (::statvfs(path.c_str(), &st) != 0) {
    return errno_error(errno, "cannot query free space of " + path);
  }
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

Result<CopyResult> copy_file_to(const std::string& source,
                                const std::string& target) {
  size_t slash = target.rfind('/');
  std::string directory =
      slash == std::string::npos ? "." : target.substr(0, slash + 1);
  Fd dir_fd(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd) {
    return errno_error(errno, directory);
  }
  return copy_file(source, dir_fd.get(), base_name(target));
}

std::string base_name(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') {
    path.remove_suffix(1);
  }
  size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path
                                                     : path.substr(slash + 1));
}

} // namespace ktc::fs
