#include "util/sys.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

namespace ktc::sys {
namespace {

enum class Op { write, fsync, rename, count };

struct FaultPlan {
  // 1-based index of the call that fails, per operation; 0 = never.
  long fail_at[static_cast<int>(Op::count)] = {};
  std::atomic<long> calls[static_cast<int>(Op::count)] = {};
  std::string crash_point;
  long crash_at = 1;
  std::atomic<long> crash_hits{0};
  std::string stall_point;
  long stall_ms = 0;
  bool active = false;
};

long parse_long(const std::string& text) {
  char* end = nullptr;
  long value = std::strtol(text.c_str(), &end, 10);
  return end != text.c_str() ? value : 0;
}

// Reads the test-only switches once; production runs never set them.
FaultPlan& plan() {
  static FaultPlan* instance = [] {
    auto* p = new FaultPlan;
    if (const char* fault = std::getenv("KTCACHE_TEST_FAULT")) {
      std::string spec = fault;
      size_t start = 0;
      while (start < spec.size()) {
        size_t end = spec.find(',', start);
        std::string item = spec.substr(start, end - start);
        size_t colon = item.find(':');
        std::string name = item.substr(0, colon);
        long at =
            colon == std::string::npos ? 1 : parse_long(item.substr(colon + 1));
        if (name == "write") {
          p->fail_at[static_cast<int>(Op::write)] = at;
        } else if (name == "fsync") {
          p->fail_at[static_cast<int>(Op::fsync)] = at;
        } else if (name == "rename") {
          p->fail_at[static_cast<int>(Op::rename)] = at;
        }
        p->active = true;
        if (end == std::string::npos) {
          break;
        }
        start = end + 1;
      }
    }
    if (const char* crash = std::getenv("KTCACHE_TEST_CRASH")) {
      std::string spec = crash;
      size_t colon = spec.find(':');
      p->crash_point = spec.substr(0, colon);
      if (colon != std::string::npos) {
        p->crash_at = parse_long(spec.substr(colon + 1));
      }
      p->active = true;
    }
    if (const char* stall = std::getenv("KTCACHE_TEST_STALL")) {
      std::string spec = stall;
      size_t colon = spec.find(':');
      p->stall_point = spec.substr(0, colon);
      p->stall_ms = colon == std::string::npos
                        ? 1000
                        : parse_long(spec.substr(colon + 1));
      p->active = true;
    }
    return p;
  }();
  return *instance;
}

// True when this call of `op` is the one a test asked to fail.
bool inject(Op op) {
  FaultPlan& p = plan();
  if (!p.active) {
    return false;
  }
  long at = p.fail_at[static_cast<int>(op)];
  if (at <= 0) {
    return false;
  }
  long call = ++p.calls[static_cast<int>(op)];
  if (call == at) {
    errno = ENOSPC;
    return true;
  }
  return false;
}

} // namespace

ssize_t write(int fd, const void* data, size_t size) {
  if (inject(Op::write)) {
    return -1;
  }
  return ::write(fd, data, size);
}

int fsync(int fd) {
  if (inject(Op::fsync)) {
    return -1;
  }
  return ::fsync(fd);
}

int renameat(int old_dir,
             const char* old_path,
             int new_dir,
             const char* new_path) {
  if (inject(Op::rename)) {
    return -1;
  }
  return ::renameat(old_dir, old_path, new_dir, new_path);
}

int renameat2(int old_dir,
              const char* old_path,
              int new_dir,
              const char* new_path,
              unsigned int flags) {
  if (inject(Op::rename)) {
    return -1;
  }
  return static_cast<int>(
      ::syscall(SYS_renameat2, old_dir, old_path, new_dir, new_path, flags));
}

ssize_t copy_file_range(int in_fd, int out_fd, size_t size) {
  // Writes are where ENOSPC shows; count an in-kernel copy as one.
  if (inject(Op::write)) {
    return -1;
  }
  return ::copy_file_range(in_fd, nullptr, out_fd, nullptr, size, 0);
}

ssize_t sendfile(int out_fd, int in_fd, size_t size) {
  if (inject(Op::write)) {
    return -1;
  }
  return ::sendfile(out_fd, in_fd, nullptr, size);
}

void checkpoint(std::string_view point) {
  FaultPlan& p = plan();
  if (!p.active) {
    return;
  }
  if (!p.stall_point.empty() && p.stall_point == point) {
    std::this_thread::sleep_for(std::chrono::milliseconds(p.stall_ms));
  }
  if (!p.crash_point.empty() && p.crash_point == point &&
      ++p.crash_hits == p.crash_at) {
    // A crash, not an exit: no destructor, no atexit handler runs.
    ::kill(::getpid(), SIGKILL);
  }
}

int write_all(int fd, const void* data, size_t size) {
  const char* cursor = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t done = write(fd, cursor, size);
    if (done < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno;
    }
    cursor += done;
    size -= static_cast<size_t>(done);
  }
  return 0;
}

} // namespace ktc::sys
