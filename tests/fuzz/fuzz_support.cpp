#include "fuzz_support.hpp"

#include <dirent.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace ktc::fuzz {

InputFile::InputFile() {
  m_fd = ::memfd_create("ktc-fuzz-input", MFD_CLOEXEC);
  if (m_fd < 0) {
    fail(std::string("memfd_create: ") + std::strerror(errno));
  }
  m_path = "/proc/self/fd/" + std::to_string(m_fd);
}

InputFile::~InputFile() {
  if (m_fd >= 0) {
    ::close(m_fd);
  }
}

void InputFile::assign(const uint8_t* data, size_t size) {
  if (::ftruncate(m_fd, 0) != 0) {
    fail(std::string("ftruncate: ") + std::strerror(errno));
  }
  size_t done = 0;
  while (done < size) {
    ssize_t written =
        ::pwrite(m_fd, data + done, size - done, static_cast<off_t>(done));
    if (written <= 0) {
      fail(std::string("pwrite: ") + std::strerror(written < 0 ? errno : EIO));
    }
    done += static_cast<size_t>(written);
  }
}

namespace {

volatile std::sig_atomic_t g_file_size_exceeded = 0;

void limit_file_size() {
  struct rlimit limit;
  limit.rlim_cur = k_max_file_size;
  limit.rlim_max = k_max_file_size;
  if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) {
    fail(std::string("setrlimit RLIMIT_FSIZE: ") + std::strerror(errno));
  }
  std::signal(SIGXFSZ, [](int) { g_file_size_exceeded = 1; });
}

// Removes what harnesses that died (a crash aborts past the cleanup) left
// in `parent`: directories ktc-fuzz-<pid>-* whose process is gone. On tmpfs
// their files hold RAM until someone does.
void remove_stale_dirs(const std::string& parent) {
  DIR* dir = ::opendir(parent.c_str());
  if (dir == nullptr) {
    return;
  }
  while (const dirent* entry = ::readdir(dir)) {
    long pid = 0;
    if (std::sscanf(entry->d_name, "ktc-fuzz-%ld-", &pid) == 1 && pid > 0 &&
        ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      std::error_code ignored;
      std::filesystem::remove_all(parent + "/" + entry->d_name, ignored);
    }
  }
  ::closedir(dir);
}

std::string make_scratch_dir() {
  limit_file_size();
  std::string parent = "/dev/shm";
  if (::access(parent.c_str(), W_OK) != 0) {
    const char* tmp = std::getenv("TMPDIR");
    parent = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  }
  remove_stale_dirs(parent);
  std::string pattern =
      parent + "/ktc-fuzz-" + std::to_string(::getpid()) + "-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    fail("mkdtemp " + pattern + ": " + std::strerror(errno));
  }
  return pattern;
}

} // namespace

const std::string& scratch_dir() {
  // Never destroyed: the atexit handler below runs after static
  // destructors registered later would have run.
  static const std::string& dir = *new std::string([] {
    std::string made = make_scratch_dir();
    // The harnesses unlink what they write before returning, so the
    // directory is empty at a normal exit; after a crash it stays, with the
    // output that went wrong, until the next harness sweeps it.
    std::atexit([] { ::rmdir(scratch_dir().c_str()); });
    return made;
  }());
  return dir;
}

bool take_file_size_exceeded() {
  bool exceeded = g_file_size_exceeded != 0;
  g_file_size_exceeded = 0;
  return exceeded;
}

void fail(const std::string& what) {
  std::fprintf(stderr, "ktc-fuzz: %s\n", what.c_str());
  std::abort();
}

} // namespace ktc::fuzz
