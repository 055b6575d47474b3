#include "cache/lock.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <latch>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using namespace std::chrono_literals;
using ktc::Status;
using ktc::cache::acquire_lock;
using ktc::cache::FileLock;
using ktc::cache::lock_holders;
using ktc::cache::LockHolder;
using ktc::cache::LockMode;
using ktc::cache::LockRequest;
using Clock = std::chrono::steady_clock;

constexpr const char* k_what = "cache entry \"k\"";

LockRequest make_request(std::string path,
                         LockMode mode,
                         std::chrono::milliseconds timeout = 0ms) {
  LockRequest request;
  request.path = std::move(path);
  request.what = k_what;
  request.mode = mode;
  request.timeout = timeout;
  return request;
}

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

int flock_operation(LockMode mode) {
  return mode == LockMode::exclusive ? LOCK_EX : LOCK_SH;
}

mode_t current_umask() {
  mode_t mask = ::umask(0);
  ::umask(mask);
  return mask;
}

// A forked child must not keep the parent's lock descriptors open: flock
// belongs to the open file description, so a child's copy would hold the
// parent's lock after the parent releases it.
void close_fds_except(int keep_a, int keep_b) {
  for (int fd = 3; fd < 1024; ++fd) {
    if (fd != keep_a && fd != keep_b) {
      ::close(fd);
    }
  }
}

// Whether a forked child gets `mode` on `path` without waiting.
bool child_can_lock(const std::string& path, LockMode mode) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close_fds_except(-1, -1);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    ::_exit(fd >= 0 && ::flock(fd, flock_operation(mode) | LOCK_NB) == 0 ? 0
                                                                         : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  return WEXITSTATUS(status) == 0;
}

// A forked child holding a flock on `path` (taken without waiting) until
// release(). Only system calls run between fork and _exit.
class ForkedHolder {
public:
  ForkedHolder(const std::string& path, LockMode mode) {
    int ready[2];
    int release_pipe[2];
    REQUIRE(::pipe2(ready, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(release_pipe, O_CLOEXEC) == 0);
    m_pid = ::fork();
    REQUIRE(m_pid >= 0);
    if (m_pid == 0) {
      close_fds_except(ready[1], release_pipe[0]);
      int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
      bool locked =
          fd >= 0 && ::flock(fd, flock_operation(mode) | LOCK_NB) == 0;
      char status = locked ? 'y' : 'n';
      if (::write(ready[1], &status, 1) != 1) {
        ::_exit(3);
      }
      char ignored;
      while (::read(release_pipe[0], &ignored, 1) < 0 && errno == EINTR) {
      }
      ::_exit(locked ? 0 : 2);
    }
    ::close(ready[1]);
    ::close(release_pipe[0]);
    m_release_fd = release_pipe[1];
    char status = 0;
    ssize_t got;
    do {
      got = ::read(ready[0], &status, 1);
    } while (got < 0 && errno == EINTR);
    ::close(ready[0]);
    REQUIRE(got == 1);
    REQUIRE(status == 'y');
  }
  ~ForkedHolder() { release(); }
  ForkedHolder(const ForkedHolder&) = delete;
  ForkedHolder& operator=(const ForkedHolder&) = delete;

  pid_t pid() const { return m_pid; }

  void release() {
    if (m_release_fd >= 0) {
      ::close(m_release_fd);
      m_release_fd = -1;
      ::waitpid(m_pid, nullptr, 0);
    }
  }

private:
  pid_t m_pid = -1;
  int m_release_fd = -1;
};

// A spawned program in its own process group, killed with the group.
class Spawned {
public:
  explicit Spawned(std::vector<std::string> argv) {
    posix_spawnattr_t attributes;
    ::posix_spawnattr_init(&attributes);
    ::posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
    ::posix_spawnattr_setpgroup(&attributes, 0);
    std::vector<char*> pointers;
    for (auto& arg : argv) {
      pointers.push_back(arg.data());
    }
    pointers.push_back(nullptr);
    int rc = ::posix_spawnp(&m_pid, pointers[0], nullptr, &attributes,
                            pointers.data(), environ);
    ::posix_spawnattr_destroy(&attributes);
    REQUIRE(rc == 0);
  }
  ~Spawned() {
    ::kill(-m_pid, SIGKILL);
    ::waitpid(m_pid, nullptr, 0);
  }
  Spawned(const Spawned&) = delete;
  Spawned& operator=(const Spawned&) = delete;

  pid_t pid() const { return m_pid; }

private:
  pid_t m_pid = -1;
};

// Polls until `pid` shows up as a holder of `path` (or 10 s pass).
std::vector<LockHolder> wait_for_holder(const std::string& path, pid_t pid) {
  auto deadline = Clock::now() + 10s;
  for (;;) {
    auto holders = lock_holders(path);
    for (const auto& holder : holders) {
      if (holder.pid == pid) {
        return holders;
      }
    }
    if (Clock::now() > deadline) {
      return holders;
    }
    std::this_thread::sleep_for(10ms);
  }
}

std::chrono::milliseconds since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() -
                                                               start);
}

} // namespace

TEST_SUITE_BEGIN("Lock");

TEST_CASE("acquire_lock creates the lock file and its directories on first "
          "use and keeps them after release") {
  ktc::test::TempDir root;
  std::string locks_dir = root / "cache/.locks";
  std::string path = locks_dir + "/k.lock";
  REQUIRE_FALSE(ktc::test::exists(root / "cache"));

  auto lock = acquire_lock(make_request(path, LockMode::exclusive));
  REQUIRE(lock.ok());
  CHECK(lock->held());
  CHECK(lock->path() == path);
  CHECK(lock->mode() == LockMode::exclusive);
  CHECK_FALSE(child_can_lock(path, LockMode::shared));

  struct stat dir_stat;
  struct stat file_stat;
  REQUIRE(::stat(locks_dir.c_str(), &dir_stat) == 0);
  REQUIRE(::stat(path.c_str(), &file_stat) == 0);
  CHECK(S_ISDIR(dir_stat.st_mode));
  CHECK((dir_stat.st_mode & 07777) == (0777 & ~current_umask()));
  CHECK(S_ISREG(file_stat.st_mode));
  CHECK((file_stat.st_mode & 07777) == (0666 & ~current_umask()));

  lock->release();
  CHECK_FALSE(lock->held());
  CHECK(child_can_lock(path, LockMode::exclusive));
  CHECK(ktc::test::list_dir(locks_dir) == std::vector<std::string>{"k.lock"});
}

TEST_CASE("four threads hold a shared lock at the same time") {
  ktc::test::TempDir root;
  std::string path = root / ".locks/k.lock";
  std::array<bool, 4> acquired{};
  std::array<std::string, 4> errors;
  std::latch all_tried(5);
  std::latch checked(1);
  std::vector<std::thread> threads;
  for (size_t index = 0; index < 4; ++index) {
    threads.emplace_back([&, index] {
      auto lock = acquire_lock(make_request(path, LockMode::shared));
      acquired[index] = lock.ok();
      if (!lock.ok()) {
        errors[index] = lock.error().message;
      }
      all_tried.arrive_and_wait();
      checked.wait();
    });
  }
  all_tried.arrive_and_wait();
  auto holders = lock_holders(path);
  bool child_exclusive = child_can_lock(path, LockMode::exclusive);
  bool child_shared = child_can_lock(path, LockMode::shared);
  checked.count_down();
  for (auto& thread : threads) {
    thread.join();
  }

  for (size_t index = 0; index < 4; ++index) {
    INFO("thread ", index, ": ", errors[index]);
    CHECK(acquired[index]);
  }
  // Four descriptors in one process are one holder.
  REQUIRE(holders.size() == 1);
  CHECK(holders[0].pid == ::getpid());
  CHECK_FALSE(holders[0].exclusive);
  CHECK_FALSE(child_exclusive);
  CHECK(child_shared);
  CHECK(child_can_lock(path, LockMode::exclusive));
}

TEST_CASE("four processes hold a shared lock at the same time") {
  ktc::test::TempDir root;
  std::string path = root / "k.lock";
  ForkedHolder first(path, LockMode::shared);
  ForkedHolder second(path, LockMode::shared);
  ForkedHolder third(path, LockMode::shared);
  ForkedHolder fourth(path, LockMode::shared);

  auto holders = lock_holders(path);
  std::vector<int64_t> pids;
  for (const auto& holder : holders) {
    pids.push_back(holder.pid);
    CHECK_FALSE(holder.exclusive);
  }
  std::sort(pids.begin(), pids.end());
  std::vector<int64_t> expected{first.pid(), second.pid(), third.pid(),
                                fourth.pid()};
  std::sort(expected.begin(), expected.end());
  CHECK(pids == expected);

  auto shared = acquire_lock(make_request(path, LockMode::shared));
  CHECK(shared.ok());
}

TEST_CASE("an exclusive lock in one process keeps other processes out until "
          "it is released") {
  ktc::test::TempDir root;
  std::string path = root / "k.lock";
  auto lock = acquire_lock(make_request(path, LockMode::exclusive));
  REQUIRE(lock.ok());
  CHECK_FALSE(child_can_lock(path, LockMode::shared));
  CHECK_FALSE(child_can_lock(path, LockMode::exclusive));
  lock->release();
  CHECK(child_can_lock(path, LockMode::exclusive));
}

TEST_CASE("a non-blocking request fails at once while another holder "
          "conflicts, naming the lock file and the holder") {
  ktc::test::TempDir root;
  std::string path = root / "k.lock";

  SUBCASE("exclusive against a shared holder in another process") {
    ForkedHolder holder(path, LockMode::shared);
    auto start = Clock::now();
    auto lock = acquire_lock(make_request(path, LockMode::exclusive));
    CHECK(since(start) < 1s);
    REQUIRE_FALSE(lock.ok());
    const auto& error = lock.error();
    CHECK(error.status == Status::locked);
    INFO(error.message);
    CHECK(contains(error.message,
                   "cache entry \"k\" is locked (lockfile " + path +
                       ", holders: pid=" + std::to_string(holder.pid()) +
                       " (shared) cmd="));
    CHECK(contains(error.message, "; LOCK_EX not granted without waiting"));
    CHECK_FALSE(contains(error.message, "timed out"));
  }

  SUBCASE("shared against an exclusive holder in another thread") {
    FileLock held;
    std::thread([&] {
      // No assertions here: a failing REQUIRE off the main thread would
      // terminate the run.
      auto lock = acquire_lock(make_request(path, LockMode::exclusive));
      if (lock.ok()) {
        held = std::move(*lock);
      }
    }).join();
    REQUIRE(held.held());
    auto lock = acquire_lock(make_request(path, LockMode::shared));
    REQUIRE_FALSE(lock.ok());
    CHECK(lock.error().status == Status::locked);
    INFO(lock.error().message);
    CHECK(contains(lock.error().message,
                   "holders: pid=" + std::to_string(::getpid()) +
                       " (exclusive) cmd="));
    CHECK(contains(lock.error().message, "LOCK_SH not granted"));
  }
}

TEST_CASE("a waiting request times out after about its timeout") {
  ktc::test::TempDir root;
  std::string path = root / "k.lock";

  SUBCASE("exclusive against a shared holder, sub-second timeout") {
    ForkedHolder holder(path, LockMode::shared);
    auto start = Clock::now();
    auto lock = acquire_lock(make_request(path, LockMode::exclusive, 300ms));
    auto elapsed = since(start);
    CHECK(elapsed >= 300ms);
    CHECK(elapsed < 1200ms);
    REQUIRE_FALSE(lock.ok());
    CHECK(lock.error().status == Status::locked);
    INFO(lock.error().message);
    CHECK(contains(lock.error().message,
                   "pid=" + std::to_string(holder.pid()) + " (shared)"));
    CHECK(contains(lock.error().message, "lockfile " + path));
    CHECK(contains(lock.error().message, "); LOCK_EX timed out after 300ms"));
  }

  SUBCASE("shared against an exclusive holder, whole seconds") {
    ForkedHolder holder(path, LockMode::exclusive);
    auto start = Clock::now();
    auto lock = acquire_lock(make_request(path, LockMode::shared, 1000ms));
    auto elapsed = since(start);
    CHECK(elapsed >= 1000ms);
    CHECK(elapsed < 2s);
    REQUIRE_FALSE(lock.ok());
    CHECK(lock.error().status == Status::locked);
    INFO(lock.error().message);
    CHECK(contains(lock.error().message,
                   "pid=" + std::to_string(holder.pid()) + " (exclusive)"));
    CHECK(contains(lock.error().message, "; LOCK_SH timed out after 1s"));
  }

  SUBCASE("fractional seconds") {
    ForkedHolder holder(path, LockMode::exclusive);
    auto lock = acquire_lock(make_request(path, LockMode::shared, 1050ms));
    REQUIRE_FALSE(lock.ok());
    CHECK(contains(lock.error().message, "timed out after 1.05s"));
  }
}

TEST_CASE("a waiting exclusive request succeeds when the holder releases "
          "mid-wait") {
  ktc::test::TempDir root;
  std::string path = root / "k.lock";

  SUBCASE("holder in another thread") {
    auto held = acquire_lock(make_request(path, LockMode::shared));
    REQUIRE(held.ok());
    std::thread releaser([&] {
      std::this_thread::sleep_for(400ms);
      held->release();
    });
    auto start = Clock::now();
    auto lock = acquire_lock(make_request(path, LockMode::exclusive, 10s));
    auto elapsed = since(start);
    releaser.join();
    INFO((lock.ok() ? std::string() : lock.error().message));
    CHECK(lock.ok());
    CHECK(elapsed >= 300ms);
    // The poll interval is capped at 100 ms, so the lock follows soon.
    CHECK(elapsed < 2s);
  }

  SUBCASE("holder in another process") {
    ForkedHolder holder(path, LockMode::exclusive);
    std::thread releaser([&] {
      std::this_thread::sleep_for(400ms);
      holder.release();
    });
    auto start = Clock::now();
    auto lock = acquire_lock(make_request(path, LockMode::exclusive, 10s));
    auto elapsed = since(start);
    releaser.join();
    INFO((lock.ok() ? std::string() : lock.error().message));
    CHECK(lock.ok());
    CHECK(elapsed >= 300ms);
    // The poll interval is capped at 100 ms, so the lock follows soon.
    CHECK(elapsed < 2s);
  }
}

TEST_CASE("a request without create on a missing lock file is not_found and "
          "creates nothing") {
  ktc::test::TempDir root;
  std::string path;
  SUBCASE("missing file") {
    path = root / "k.lock";
  }
  SUBCASE("missing directory") {
    path = root / ".locks/k.lock";
  }
  auto request = make_request(path, LockMode::shared, 200ms);
  request.create = false;
  auto start = Clock::now();
  auto lock = acquire_lock(request);
  CHECK(since(start) < 150ms);
  REQUIRE_FALSE(lock.ok());
  CHECK(lock.error().status == Status::not_found);
  CHECK(contains(lock.error().message, path));
  CHECK(ktc::test::list_dir(root.path()).empty());
}

TEST_CASE("a request without create locks an existing file read-only") {
  ktc::test::TempDir root;
  std::string path = root / "k.lock";
  ktc::test::write_file(path, "");
  auto request = make_request(path, LockMode::exclusive);
  request.create = false;
  auto lock = acquire_lock(request);
  REQUIRE(lock.ok());
  CHECK((::fcntl(lock->fd(), F_GETFL) & O_ACCMODE) == O_RDONLY);
  CHECK_FALSE(child_can_lock(path, LockMode::shared));
}

TEST_CASE("the lock descriptor is close-on-exec and not inherited by a "
          "spawned program") {
  ktc::test::TempDir root;
  std::string path = root / "k.lock";
  auto request = make_request(path, LockMode::exclusive);
  SUBCASE("created") {}
  SUBCASE("opened read-only") {
    ktc::test::write_file(path, "");
    request.create = false;
  }
  auto lock = acquire_lock(request);
  REQUIRE(lock.ok());
  int flags = ::fcntl(lock->fd(), F_GETFD);
  REQUIRE(flags >= 0);
  CHECK((flags & FD_CLOEXEC) != 0);

  Spawned sleeper({"sleep", "30"});
  lock->release();
  CHECK(child_can_lock(path, LockMode::exclusive));
}

TEST_CASE("a lock path that is not a plain regular file is refused") {
  ktc::test::TempDir root;
  auto request = make_request("", LockMode::shared);

  SUBCASE("empty path") {
    auto lock = acquire_lock(request);
    REQUIRE_FALSE(lock.ok());
    CHECK(lock.error().status == Status::invalid);
  }

  SUBCASE("symbolic link") {
    std::string target = root / "target.lock";
    ktc::test::write_file(target, "");
    request.path = root / "link.lock";
    REQUIRE(::symlink(target.c_str(), request.path.c_str()) == 0);
    for (bool create : {true, false}) {
      request.create = create;
      auto lock = acquire_lock(request);
      REQUIRE_FALSE(lock.ok());
      CHECK(lock.error().status == Status::io);
      CHECK(contains(lock.error().message, request.path));
    }
    CHECK(child_can_lock(target, LockMode::exclusive));
  }

  SUBCASE("directory") {
    request.path = root.path();
    request.create = false;
    auto lock = acquire_lock(request);
    REQUIRE_FALSE(lock.ok());
    CHECK(lock.error().status == Status::invalid);
    CHECK(lock.error().message ==
          "lock file " + root.path() + " is not a regular file");
  }

  SUBCASE("FIFO, which must not block the open") {
    request.path = root / "fifo.lock";
    REQUIRE(::mkfifo(request.path.c_str(), 0666) == 0);
    for (bool create : {true, false}) {
      request.create = create;
      auto lock = acquire_lock(request);
      REQUIRE_FALSE(lock.ok());
      CHECK(lock.error().status == Status::invalid);
    }
  }
}

TEST_CASE("an existing lock file that cannot be opened for writing is "
          "locked through a read-only descriptor") {
  // Runs the check as an unprivileged user: root could write anyway.
  std::string base = ktc::test::run_dir() + "/readonly-XXXXXX";
  REQUIRE(::mkdtemp(base.data()) != nullptr);
  REQUIRE(::chmod(ktc::test::run_dir().c_str(), 0755) == 0);
  REQUIRE(::chmod(base.c_str(), 0755) == 0);
  std::string path = base + "/k.lock";
  ktc::test::write_file(path, "");
  REQUIRE(::chmod(path.c_str(), 0444) == 0);
  std::string missing = base + "/missing.lock";

  // Exit codes: 0 success, 1-9 a failed step, 10 not reachable.
  auto check = [&]() -> int {
    if (::access(path.c_str(), R_OK) != 0) {
      return 10;
    }
    for (LockMode mode : {LockMode::shared, LockMode::exclusive}) {
      auto lock = acquire_lock(make_request(path, mode));
      if (!lock.ok()) {
        return 1;
      }
      if ((::fcntl(lock->fd(), F_GETFL) & O_ACCMODE) != O_RDONLY) {
        return 2;
      }
    }
    auto lock = acquire_lock(make_request(missing, LockMode::shared));
    if (lock.ok() || lock.error().status != Status::io ||
        !contains(lock.error().message, "Permission denied")) {
      return 3;
    }
    return 0;
  };

  int result = 0;
  if (::geteuid() == 0) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      if (::setgid(65534) != 0 || ::setuid(65534) != 0) {
        ::_exit(9);
      }
      ::_exit(check());
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    result = WEXITSTATUS(status);
  } else {
    result = check();
  }
  ::chmod(ktc::test::run_dir().c_str(), 0700);
  if (result == 10) {
    MESSAGE("skipped: the scratch directory is not reachable by uid 65534");
    return;
  }
  CHECK(result == 0);
  CHECK_FALSE(ktc::test::exists(missing));
}

TEST_CASE("lock_holders names a flock(1) holder with its pid, mode and "
          "command line") {
  ktc::test::TempDir root;
  std::string path = root / "k.lock";
  ktc::test::write_file(path, "");

  SUBCASE("shared") {
    Spawned flock_process({"flock", "-s", path, "sleep", "30"});
    auto holders = wait_for_holder(path, flock_process.pid());
    REQUIRE(holders.size() == 1);
    CHECK(holders[0].pid == flock_process.pid());
    CHECK_FALSE(holders[0].exclusive);
    CHECK(holders[0].cmdline == "flock -s " + path + " sleep 30");

    auto lock = acquire_lock(make_request(path, LockMode::exclusive));
    REQUIRE_FALSE(lock.ok());
    INFO(lock.error().message);
    CHECK(contains(lock.error().message,
                   "holders: pid=" + std::to_string(flock_process.pid()) +
                       " (shared) cmd=flock -s " + path + " sleep 30)"));
  }

  SUBCASE("exclusive") {
    Spawned flock_process({"flock", "-x", path, "sleep", "30"});
    auto holders = wait_for_holder(path, flock_process.pid());
    REQUIRE(holders.size() == 1);
    CHECK(holders[0].pid == flock_process.pid());
    CHECK(holders[0].exclusive);
    CHECK(holders[0].cmdline == "flock -x " + path + " sleep 30");
  }
}

TEST_CASE("lock_holders reports a forked holder and its mode") {
  ktc::test::TempDir root;
  std::string path = root / "k.lock";
  for (LockMode mode : {LockMode::shared, LockMode::exclusive}) {
    ForkedHolder holder(path, mode);
    auto holders = lock_holders(path);
    REQUIRE(holders.size() == 1);
    CHECK(holders[0].pid == holder.pid());
    CHECK(holders[0].exclusive == (mode == LockMode::exclusive));
    CHECK_FALSE(holders[0].cmdline.empty());
    CHECK(holders[0].cmdline != "<cmdline unavailable>");
  }
}

TEST_CASE("lock_holders merges one process's descriptors into one holder") {
  ktc::test::TempDir root;
  std::string path = root / "k.lock";
  auto first = acquire_lock(make_request(path, LockMode::shared));
  auto second = acquire_lock(make_request(path, LockMode::shared));
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  ForkedHolder other(path, LockMode::shared);
  auto holders = lock_holders(path);
  REQUIRE(holders.size() == 2);
  CHECK(holders[0].pid != holders[1].pid);
  for (const auto& holder : holders) {
    CHECK((holder.pid == ::getpid() || holder.pid == other.pid()));
  }
}

TEST_CASE("lock_holders resolves symbolic links in the path") {
  ktc::test::TempDir root;
  std::string real_dir = root / "real";
  REQUIRE(::mkdir(real_dir.c_str(), 0777) == 0);
  std::string link_dir = root / "link";
  REQUIRE(::symlink(real_dir.c_str(), link_dir.c_str()) == 0);
  auto lock =
      acquire_lock(make_request(real_dir + "/k.lock", LockMode::exclusive));
  REQUIRE(lock.ok());
  auto holders = lock_holders(link_dir + "/k.lock");
  REQUIRE(holders.size() == 1);
  CHECK(holders[0].pid == ::getpid());
  CHECK(holders[0].exclusive);
}

TEST_CASE("lock_holders is empty for a free lock and a missing file") {
  ktc::test::TempDir root;
  std::string path = root / "k.lock";
  CHECK(lock_holders(path).empty());
  CHECK(lock_holders("").empty());
  auto lock = acquire_lock(make_request(path, LockMode::exclusive));
  REQUIRE(lock.ok());
  lock->release();
  CHECK(lock_holders(path).empty());
  // A lock on another file of the same directory is not this file's.
  auto other =
      acquire_lock(make_request(root / "other.lock", LockMode::exclusive));
  REQUIRE(other.ok());
  CHECK(lock_holders(path).empty());
}

TEST_CASE("format_holders joins holders or says none are recorded") {
  using ktc::cache::format_holders;
  CHECK(format_holders({}) == "<none recorded>");
  CHECK(format_holders({{12, true, "ktcache store k"}}) ==
        "pid=12 (exclusive) cmd=ktcache store k");
  CHECK(
      format_holders(
          {{12, false, "a b"}, {34, true, "<cmdline unavailable>"}}) ==
      "pid=12 (shared) cmd=a b; pid=34 (exclusive) cmd=<cmdline unavailable>");
}

TEST_CASE("format_cmdline flattens, trims, repairs and truncates a command "
          "line") {
  using ktc::cache::detail::format_cmdline;
  SUBCASE("NUL separators become spaces and the ends are trimmed") {
    CHECK(format_cmdline(std::string_view("flock\0-s\0/x\0", 12)) ==
          "flock -s /x");
    CHECK(format_cmdline(std::string_view("  a\0\0b \n", 8)) == "a  b");
  }
  SUBCASE("control characters become spaces") {
    CHECK(format_cmdline("a\nb\tc\x7f"
                         "d") == "a b c d");
  }
  SUBCASE("nothing left is unavailable") {
    CHECK(format_cmdline("") == "<cmdline unavailable>");
    CHECK(format_cmdline(std::string_view("\0\0", 2)) ==
          "<cmdline unavailable>");
  }
  SUBCASE("more than 100 characters are cut with an ellipsis") {
    std::string exact(100, 'x');
    CHECK(format_cmdline(exact) == exact);
    CHECK(format_cmdline(exact + "y") == exact + "\u2026");
  }
  SUBCASE("characters, not bytes, are counted and never split") {
    std::string accented;
    for (int index = 0; index < 101; ++index) {
      accented += "\u00e9";
    }
    std::string expected;
    for (int index = 0; index < 100; ++index) {
      expected += "\u00e9";
    }
    CHECK(format_cmdline(accented) == expected + "\u2026");
  }
  SUBCASE("invalid UTF-8 becomes U+FFFD") {
    CHECK(format_cmdline("a\xff"
                         "b") == "a\uFFFDb");
    CHECK(format_cmdline("\xc3") == "\uFFFD");
    CHECK(format_cmdline("\xed\xa0\x80") == "\uFFFD\uFFFD\uFFFD");
    CHECK(format_cmdline("\xe2\x82\xac") == "\u20ac");
  }
}

TEST_CASE("unescape_mountinfo decodes octal escapes and keeps anything else") {
  using ktc::cache::detail::unescape_mountinfo;
  CHECK(unescape_mountinfo("/mnt/plain") == "/mnt/plain");
  CHECK(unescape_mountinfo("/mnt/my\\040disk") == "/mnt/my disk");
  CHECK(unescape_mountinfo("a\\011b") == "a\tb");
  CHECK(unescape_mountinfo("a\\012b") == "a\nb");
  CHECK(unescape_mountinfo("a\\134b") == "a\\b");
  CHECK(unescape_mountinfo("\\101\\102") == "AB");
  CHECK(unescape_mountinfo("a\\377") == "a\xff");
  SUBCASE("out of range octal is kept") {
    CHECK(unescape_mountinfo("a\\777b") == "a\\777b");
    CHECK(unescape_mountinfo("a\\400") == "a\\400");
  }
  SUBCASE("non-octal and short escapes are kept") {
    CHECK(unescape_mountinfo("a\\xb") == "a\\xb");
    CHECK(unescape_mountinfo("a\\08") == "a\\08");
    CHECK(unescape_mountinfo("a\\04") == "a\\04");
    CHECK(unescape_mountinfo("a\\") == "a\\");
    CHECK(unescape_mountinfo("\\\\040") == "\\ ");
  }
}

TEST_CASE("device_for_path picks the longest mount point on component "
          "boundaries") {
  using ktc::cache::detail::device_for_path;
  using Device = std::pair<unsigned, unsigned>;
  const std::string mountinfo =
      "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
      "40 27 0:40 / /mnt/a rw shared:1 - tmpfs tmpfs rw\n"
      "41 27 0:41 / /mnt/ab rw - tmpfs tmpfs rw\n"
      "42 40 8:17 /sub /mnt/a/deep rw master:2 shared:3 - xfs /dev/sdb1 rw\n"
      "43 27 0:43 / /mnt/my\\040disk rw - btrfs /dev/sdc rw\n";

  CHECK(device_for_path(mountinfo, "/") == Device{254, 0});
  CHECK(device_for_path(mountinfo, "/home/u/.cache") == Device{254, 0});
  CHECK(device_for_path(mountinfo, "/mnt/a") == Device{0, 40});
  CHECK(device_for_path(mountinfo, "/mnt/a/x/y") == Device{0, 40});
  CHECK(device_for_path(mountinfo, "/mnt/ab/x") == Device{0, 41});
  CHECK(device_for_path(mountinfo, "/mnt/abc/x") == Device{254, 0});
  CHECK(device_for_path(mountinfo, "/mnt/a/deep/k.lock") == Device{8, 17});
  CHECK(device_for_path(mountinfo, "/mnt/a/deeper") == Device{0, 40});
  CHECK(device_for_path(mountinfo, "/mnt/my disk/.locks/k.lock") ==
        Device{0, 43});
  CHECK(device_for_path(mountinfo, "/mnt/my\\040disk") == Device{254, 0});

  SUBCASE("a mount stacked on the same point wins") {
    std::string stacked = mountinfo + "50 40 0:50 / /mnt/a rw - tmpfs t rw\n";
    CHECK(device_for_path(stacked, "/mnt/a/x") == Device{0, 50});
  }
  SUBCASE("relative or empty paths match nothing") {
    CHECK_FALSE(device_for_path(mountinfo, "mnt/a").has_value());
    CHECK_FALSE(device_for_path(mountinfo, "").has_value());
  }
  SUBCASE("no mounts, no device") {
    CHECK_FALSE(device_for_path("", "/x").has_value());
  }
  SUBCASE("malformed and truncated lines are ignored") {
    const std::string broken = "27 1 254:0 / / rw - ext4 /dev/vda rw\n"
                               "\n"
                               "garbage\n"
                               "60 27 0:60 / /mnt/a\n"
                               "61 27 0:61 / /mnt/a rw\n"
                               "62 27 0:62 / /mnt/a rw -\n"
                               "63 27 0:63 / /mnt/a rw - tmpfs\n"
                               "64 27 x:64 / /mnt/a rw - tmpfs t rw\n"
                               "65 27 0:65x / /mnt/a rw - tmpfs t rw\n"
                               "66 27 065 / /mnt/a rw - tmpfs t rw\n"
                               "67 27 0:67 / relative rw - tmpfs t rw\n"
                               "68 27 :68 / /mnt/a rw - tmpfs t rw\n"
                               "69 27 99999999999:1 / /mnt/a rw - tmpfs t rw\n"
                               "70 27 0:70 / /mnt/a - tmpfs t rw\n"
                               "71 27 0:71 / /mnt/b rw - tmpfs t";
    CHECK(device_for_path(broken, "/mnt/a/x") == Device{254, 0});
    CHECK(device_for_path(broken, "/mnt/b/x") == Device{0, 71});
  }
}

TEST_CASE("device_for_path finds the device of a real lock directory") {
  using ktc::cache::detail::device_for_path;
  ktc::test::TempDir root;
  std::string text = ktc::test::read_file("/proc/self/mountinfo");
  char* resolved = ::realpath(root.path().c_str(), nullptr);
  REQUIRE(resolved != nullptr);
  std::string canonical = resolved;
  std::free(resolved);
  CHECK(device_for_path(text, canonical).has_value());
  CHECK(device_for_path(text, "/").has_value());
}

TEST_CASE("parse_proc_locks keeps held FLOCK locks only") {
  using ktc::cache::detail::parse_proc_locks;
  const std::string text =
      "1: FLOCK  ADVISORY  WRITE 1234 fe:00:10953128 0 EOF\n"
      "1: -> FLOCK  ADVISORY  WRITE 999 fe:00:10953128 0 EOF\n"
      "2: POSIX  ADVISORY  WRITE 5678 fe:00:10953128 0 EOF\n"
      "3: OFDLCK ADVISORY  READ  -1 fe:00:10953128 0 EOF\n"
      "4: FLOCK  ADVISORY  READ  42 103:0a:18446744073709551615 0 EOF\n"
      "5: LEASE  ACTIVE    READ  77 fe:00:1 0 EOF\n"
      "6: FLOCK  ADVISORY  READ  43 00:2f:99 0 EOF\n"
      "7: FLOCK  ADVISORY  READ  43 00:2f:99 0 EOF\n";
  auto locks = parse_proc_locks(text);
  REQUIRE(locks.size() == 4);
  CHECK(locks[0].pid == 1234);
  CHECK(locks[0].exclusive);
  CHECK(locks[0].major == 0xfe);
  CHECK(locks[0].minor == 0);
  CHECK(locks[0].inode == 10953128);
  CHECK(locks[1].pid == 42);
  CHECK_FALSE(locks[1].exclusive);
  CHECK(locks[1].major == 0x103);
  CHECK(locks[1].minor == 0x0a);
  CHECK(locks[1].inode == 18446744073709551615ULL);
  // Deduplication is lock_holders' job; the parser reports every line.
  CHECK(locks[2].pid == 43);
  CHECK(locks[3].pid == 43);

  SUBCASE("malformed lines are ignored") {
    const std::string broken =
        "\n"
        "garbage\n"
        "FLOCK ADVISORY WRITE 1 fe:00:1 0 EOF\n"
        "1: FLOCK\n"
        "2: FLOCK ADVISORY WRITE\n"
        "3: FLOCK ADVISORY WRITE 12\n"
        "4: FLOCK ADVISORY UNLCK 12 fe:00:1 0 EOF\n"
        "5: FLOCK ADVISORY WRITE x12 fe:00:1 0 EOF\n"
        "6: FLOCK ADVISORY WRITE 12 <none>:0 0 EOF\n"
        "7: FLOCK ADVISORY WRITE 12 fe:00 0 EOF\n"
        "8: FLOCK ADVISORY WRITE 12 fe:zz:1 0 EOF\n"
        "9: FLOCK ADVISORY WRITE 12 fe:00:1x 0 EOF\n"
        "10: FLOCK ADVISORY WRITE 12 fe::1 0 EOF\n"
        "11: FLOCK ADVISORY WRITE 12 fe:00:99999999999999999999 0 EOF\n"
        "12: FLOCK ADVISORY WRITE 12 fe:00:7";
    auto parsed = parse_proc_locks(broken);
    REQUIRE(parsed.size() == 1);
    CHECK(parsed[0].pid == 12);
    CHECK(parsed[0].inode == 7);
  }
}

TEST_CASE("refused_filesystem_name names network and cluster filesystems "
          "only") {
  using ktc::cache::refused_filesystem_name;
  CHECK(refused_filesystem_name(0x6969) == "NFS");
  CHECK(refused_filesystem_name(0xFF534D42) == "CIFS");
  CHECK(refused_filesystem_name(0xFE534D42) == "SMB2");
  CHECK(refused_filesystem_name(0x517B) == "SMB");
  CHECK(refused_filesystem_name(0x00C36400) == "Ceph");
  CHECK(refused_filesystem_name(0x5346414F) == "AFS");
  CHECK(refused_filesystem_name(0x6B414653) == "AFS");
  CHECK(refused_filesystem_name(0x65735546) == "FUSE");
  CHECK(refused_filesystem_name(0x01021997) == "9p");
  CHECK(refused_filesystem_name(0x0BD00BD0) == "Lustre");
  CHECK(refused_filesystem_name(0x47504653) == "GPFS");

  SUBCASE("sign-extended 32-bit magics") {
    CHECK(refused_filesystem_name(static_cast<int32_t>(0xFF534D42)) == "CIFS");
    CHECK(refused_filesystem_name(static_cast<int32_t>(0xFE534D42)) == "SMB2");
  }
  SUBCASE("local filesystems") {
    CHECK(refused_filesystem_name(0xEF53).empty());     // ext4
    CHECK(refused_filesystem_name(0x01021994).empty()); // tmpfs
    CHECK(refused_filesystem_name(0x9123683E).empty()); // btrfs
    CHECK(refused_filesystem_name(0x58465342).empty()); // xfs
    CHECK(refused_filesystem_name(0).empty());
    CHECK(refused_filesystem_name(0x1000006969).empty());
  }
}

TEST_CASE("check_lock_filesystem accepts local paths, existing or not") {
  using ktc::cache::check_lock_filesystem;
  ktc::test::TempDir root;
  CHECK(check_lock_filesystem(root.path()).ok());
  CHECK(check_lock_filesystem(root / "a/b/.locks/k.lock").ok());
  CHECK(check_lock_filesystem("relative/missing/k.lock").ok());
  CHECK(check_lock_filesystem("").ok());
  CHECK(check_lock_filesystem("/dev/shm").ok());
  SUBCASE("statfs errors other than a missing path are not errors") {
    std::string file = root / "file";
    ktc::test::write_file(file, "");
    CHECK(check_lock_filesystem(file + "/below/k.lock").ok());
  }
}

TEST_SUITE_END();
