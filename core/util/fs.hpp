#pragma once

#include "util/fd.hpp"
#include "util/result.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace ktc::fs {

// How copy_file moved the bytes; reported for logs and tests.
enum class CopyMethod { clone, copy_file_range, sendfile, read_write };
std::string_view to_string(CopyMethod method);

struct CopyResult {
  uint64_t size = 0;
  std::string sha256; // lower-case hex of the copied bytes
  CopyMethod method = CopyMethod::read_write;
};

// Copies the regular file `source` (symbolic links followed) to a new file
// `name` in `dir_fd` (created O_EXCL, mode 0666 & ~umask), hashing it on the
// way. Tries FICLONE, then copy_file_range, then sendfile, then read/write;
// handles short counts and EXDEV. The new file is fsynced. Forcing a method
// for tests: KTCACHE_TEST_COPY=clone|copy_file_range|sendfile|read_write
// makes it start at that step.
Result<CopyResult>
copy_file(const std::string& source, int dir_fd, const std::string& name);

// copy_file() to the path `target` (a new file in an existing directory).
Result<CopyResult> copy_file_to(const std::string& source,
                                const std::string& target);

// Writes `data` to a new file `name` in `dir_fd` and fsyncs it.
Result<void>
write_file(int dir_fd, const std::string& name, std::string_view data);

// Reads a whole file relative to `dir_fd` (O_NOFOLLOW when `nofollow`).
// The errno of a failure is kept in Error::message and in `*error_number`.
Result<std::string>
read_file(int dir_fd, const std::string& name, int* error_number = nullptr);

// Opens `relative_path` below `dir_fd` for reading without following any
// symbolic link on the way (openat2 RESOLVE_NO_SYMLINKS where the kernel
// has it; before 5.6 only the last component is checked). O_NONBLOCK, so a
// FIFO never blocks. The errno of a failure is in `*error_number`.
Result<Fd> open_beneath(int dir_fd,
                        const std::string& relative_path,
                        int* error_number = nullptr);

// Reads a small file from an open descriptor (at most 1 MiB; EFBIG beyond):
// usually one read, as a short read of a regular file is its end. A FIFO or
// device never blocks or feeds it without end; only a regular file counts.
Result<std::string> read_small(int fd,
                               std::string_view name_for_errors,
                               int* error_number = nullptr);

// open_beneath() then read_small().
Result<std::string> read_small_file(int dir_fd,
                                    const std::string& relative_path,
                                    int* error_number = nullptr);

// Opens a directory (O_DIRECTORY | O_CLOEXEC, optionally O_NOFOLLOW).
Result<Fd> open_dir(int dir_fd, const std::string& path, bool nofollow);

// fsync on a directory.
Result<void> sync_dir(int dir_fd, std::string_view name_for_errors);

// mkdir -p with mode 0777 & ~umask.
Result<void> make_dirs(const std::string& path);

// Recursively removes `name` in `dir_fd` without following symlinks.
// Missing is success.
Result<void> remove_tree(int dir_fd, const std::string& name);

// remove_tree() of a path (relative to the working directory or absolute).
Result<void> remove_tree(const std::string& path);

// Removes everything inside the directory `path`, keeping it.
Result<void> empty_directory(const std::string& path);

// True when the directory `path` has no entries.
Result<bool> directory_is_empty(const std::string& path);

// `path` made absolute against the working directory (lexically: no
// symlink is resolved; "." and ".." components are folded).
Result<std::string> absolute_path(std::string_view path);

// Sum of the apparent sizes of the regular files below `name` in `dir_fd`.
uint64_t tree_size(int dir_fd, const std::string& name);

// Free bytes available to unprivileged users on the filesystem of `path`.
Result<uint64_t> free_bytes(const std::string& path);

// The last component of a path ("a/b/c" -> "c").
std::string base_name(std::string_view path);

} // namespace ktc::fs
