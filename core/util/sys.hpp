#pragma once

// Thin wrappers over the system calls that change the cache, so tests can
// inject failures (ENOSPC at the Nth write, fsync or rename) and crashes at
// named points without a debugger. Injection is driven by two test-only
// environment variables read once per process:
//
//   KTCACHE_TEST_FAULT=<op>:<n>[,<op>:<n>...]  op = write|fsync|rename;
//       the n-th call (1-based) of that kind fails with ENOSPC.
//   KTCACHE_TEST_CRASH=<point>[:<n>]  SIGKILLs the process the n-th time
//       (default first) it reaches `point` (copy, before-rename,
//       after-swap, mid-clean).
//   KTCACHE_TEST_STALL=<point>:<ms>  sleeps at `point` (for race tests).

#include <sys/types.h>

#include <cstddef>
#include <string_view>

namespace ktc::sys {

ssize_t write(int fd, const void* data, size_t size);
int fsync(int fd);
int renameat(int old_dir,
             const char* old_path,
             int new_dir,
             const char* new_path);
// renameat2 with flags; returns -1/ENOSYS-style errors like the syscall.
int renameat2(int old_dir,
              const char* old_path,
              int new_dir,
              const char* new_path,
              unsigned int flags);
ssize_t copy_file_range(int in_fd, int out_fd, size_t size);
ssize_t sendfile(int out_fd, int in_fd, size_t size);

// A named point where tests may crash or stall the process.
void checkpoint(std::string_view point);

// Writes all of `data`, retrying short writes and EINTR. 0 or errno.
int write_all(int fd, const void* data, size_t size);

} // namespace ktc::sys
