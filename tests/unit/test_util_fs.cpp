#include "test_util.hpp"
#include "util/fs.hpp"
#include "util/sha256.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

using ktc::Status;
using ktc::fs::CopyMethod;
using ktc::test::exists;
using ktc::test::ScopedEnv;
using ktc::test::TempDir;

namespace {

ktc::Fd open_directory(const std::string& path) {
  ktc::Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  REQUIRE(fd.valid());
  return fd;
}

mode_t mode_of(const std::string& path) {
  struct stat st;
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_mode;
}

// Restores the process umask when the test ends.
class ScopedUmask {
public:
  explicit ScopedUmask(mode_t mask) : m_old(::umask(mask)) {}
  ~ScopedUmask() { ::umask(m_old); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

private:
  mode_t m_old;
};

// Runs `body` in a child process that a 10 s alarm kills, so a call that
// blocks fails the test instead of hanging the run. The child's exit code,
// or minus the signal that ended it.
int in_child(const std::function<int()>& body) {
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::alarm(10);
    ::_exit(body());
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

struct ForcedMethod {
  const char* env;
  CopyMethod method;
};

constexpr ForcedMethod k_methods[] = {
    {"clone", CopyMethod::clone},
    {"copy_file_range", CopyMethod::copy_file_range},
    {"sendfile", CopyMethod::sendfile},
    {"read_write", CopyMethod::read_write},
};

} // namespace

TEST_SUITE_BEGIN("Fs");

TEST_CASE("copy_file copies bytes, size and digest with every method") {
  // The forced method is where copy_file starts; a filesystem without it
  // (ext4 has no FICLONE) moves on to a later one, never an earlier one.
  for (const ForcedMethod& forced : k_methods) {
    for (size_t size :
         {size_t{0}, size_t{1}, size_t{4096 + 3}, size_t{20u << 20}}) {
      CAPTURE(forced.env);
      CAPTURE(size);
      ScopedEnv env("KTCACHE_TEST_COPY", forced.env);
      TempDir dir;
      std::string data = ktc::test::random_bytes(size, 7);
      ktc::test::write_file(dir / "source", data);
      ktc::Fd out_dir = open_directory(dir.path());

      auto copied = ktc::fs::copy_file(dir / "source", out_dir.get(), "copy");
      REQUIRE(copied.ok());
      CHECK(copied->size == size);
      CHECK(copied->sha256 == ktc::sha256_hex(data));
      CHECK(ktc::test::read_file(dir / "copy") == data);
      if (size > 0) {
        CHECK(static_cast<int>(copied->method) >=
              static_cast<int>(forced.method));
      }
      // The source is copied, not moved.
      CHECK(ktc::test::read_file(dir / "source") == data);
    }
  }
}

TEST_CASE("copy_file with read_write forced uses read and write") {
  ScopedEnv env("KTCACHE_TEST_COPY", "read_write");
  TempDir dir;
  std::string data = ktc::test::random_bytes(100'000, 3);
  ktc::test::write_file(dir / "source", data);
  ktc::Fd out_dir = open_directory(dir.path());
  auto copied = ktc::fs::copy_file(dir / "source", out_dir.get(), "copy");
  REQUIRE(copied.ok());
  CHECK(copied->method == CopyMethod::read_write);
  CHECK(copied->sha256 == ktc::sha256_hex(data));
}

TEST_CASE("copy_file reads KTCACHE_TEST_COPY on every call") {
  TempDir dir;
  ktc::test::write_file(dir / "source", "some bytes");
  ktc::Fd out_dir = open_directory(dir.path());
  {
    ScopedEnv env("KTCACHE_TEST_COPY", "read_write");
    auto copied = ktc::fs::copy_file(dir / "source", out_dir.get(), "one");
    REQUIRE(copied.ok());
    CHECK(copied->method == CopyMethod::read_write);
  }
  {
    ScopedEnv env("KTCACHE_TEST_COPY", "copy_file_range");
    auto copied = ktc::fs::copy_file(dir / "source", out_dir.get(), "two");
    REQUIRE(copied.ok());
    CHECK(copied->method != CopyMethod::clone);
  }
  {
    ScopedEnv env("KTCACHE_TEST_COPY", "no-such-method");
    auto copied = ktc::fs::copy_file(dir / "source", out_dir.get(), "three");
    REQUIRE(copied.ok());
    CHECK(ktc::test::read_file(dir / "three") == "some bytes");
  }
}

TEST_CASE("copy_file creates the copy with mode 0666 minus the umask") {
  ScopedUmask mask(022);
  TempDir dir;
  ktc::test::write_file(dir / "source", "x");
  REQUIRE(::chmod((dir / "source").c_str(), 0600) == 0);
  ktc::Fd out_dir = open_directory(dir.path());
  REQUIRE(ktc::fs::copy_file(dir / "source", out_dir.get(), "copy").ok());
  CHECK((mode_of(dir / "copy") & 07777) == 0644);
}

TEST_CASE("copy_file refuses what it must not copy") {
  TempDir dir;
  ktc::test::write_file(dir / "source", "source bytes");
  ktc::Fd out_dir = open_directory(dir.path());

  SUBCASE("an existing destination") {
    ktc::test::write_file(dir / "copy", "already here");
    auto copied = ktc::fs::copy_file(dir / "source", out_dir.get(), "copy");
    REQUIRE_FALSE(copied.ok());
    CHECK(copied.error().message.find("copy") != std::string::npos);
    CHECK(copied.error().message.find(std::strerror(EEXIST)) !=
          std::string::npos);
    CHECK(ktc::test::read_file(dir / "copy") == "already here");
  }
  SUBCASE("a destination that is a dangling symbolic link") {
    REQUIRE(::symlink((dir / "elsewhere").c_str(), (dir / "copy").c_str()) ==
            0);
    auto copied = ktc::fs::copy_file(dir / "source", out_dir.get(), "copy");
    REQUIRE_FALSE(copied.ok());
    CHECK_FALSE(exists(dir / "elsewhere"));
  }
  SUBCASE("a symbolic link to a directory as the source") {
    REQUIRE(::mkdir((dir / "linked-dir").c_str(), 0777) == 0);
    REQUIRE(::symlink((dir / "linked-dir").c_str(), (dir / "link").c_str()) ==
            0);
    auto copied = ktc::fs::copy_file(dir / "link", out_dir.get(), "copy");
    REQUIRE_FALSE(copied.ok());
    CHECK(copied.error().status == Status::invalid);
    CHECK(copied.error().message.find(dir / "link") != std::string::npos);
    CHECK_FALSE(exists(dir / "copy"));
  }
  SUBCASE("a directory as the source") {
    REQUIRE(::mkdir((dir / "subdir").c_str(), 0777) == 0);
    auto copied = ktc::fs::copy_file(dir / "subdir", out_dir.get(), "copy");
    REQUIRE_FALSE(copied.ok());
    CHECK(copied.error().status == Status::invalid);
    CHECK(copied.error().message.find("not a regular file") !=
          std::string::npos);
    CHECK_FALSE(exists(dir / "copy"));
  }
  SUBCASE("a character device as the source") {
    auto copied = ktc::fs::copy_file("/dev/null", out_dir.get(), "copy");
    REQUIRE_FALSE(copied.ok());
    CHECK(copied.error().status == Status::invalid);
    CHECK(copied.error().message.find("/dev/null") != std::string::npos);
    CHECK_FALSE(exists(dir / "copy"));
  }
  SUBCASE("a FIFO as the source, without blocking for a writer") {
    REQUIRE(::mkfifo((dir / "fifo").c_str(), 0666) == 0);
    int out_fd = out_dir.get();
    std::string fifo = dir / "fifo";
    CHECK(in_child([&] {
            auto copied = ktc::fs::copy_file(fifo, out_fd, "copy");
            return !copied.ok() && copied.error().status == Status::invalid ? 0
                                                                            : 1;
          }) == 0);
    CHECK_FALSE(exists(dir / "copy"));
  }
  SUBCASE("a missing source") {
    auto copied = ktc::fs::copy_file(dir / "absent", out_dir.get(), "copy");
    REQUIRE_FALSE(copied.ok());
    CHECK(copied.error().status == Status::not_found);
    CHECK(copied.error().message.find(dir / "absent") != std::string::npos);
    CHECK_FALSE(exists(dir / "copy"));
  }
}

TEST_CASE("write_file and read_file round-trip bytes") {
  TempDir dir;
  ktc::Fd fd = open_directory(dir.path());

  SUBCASE("text") {
    REQUIRE(ktc::fs::write_file(fd.get(), "note", "hello\n").ok());
    auto text = ktc::fs::read_file(fd.get(), "note");
    REQUIRE(text.ok());
    CHECK(*text == "hello\n");
  }
  SUBCASE("binary larger than the read buffer") {
    std::string data = ktc::test::random_bytes(100'003, 11);
    data[5] = '\0';
    REQUIRE(ktc::fs::write_file(fd.get(), "blob", data).ok());
    auto text = ktc::fs::read_file(fd.get(), "blob");
    REQUIRE(text.ok());
    CHECK(*text == data);
  }
  SUBCASE("empty") {
    REQUIRE(ktc::fs::write_file(fd.get(), "empty", "").ok());
    auto text = ktc::fs::read_file(fd.get(), "empty");
    REQUIRE(text.ok());
    CHECK(text->empty());
  }
  SUBCASE("through a path relative to AT_FDCWD") {
    REQUIRE(ktc::fs::write_file(fd.get(), "note", "abc").ok());
    auto text = ktc::fs::read_file(AT_FDCWD, dir / "note");
    REQUIRE(text.ok());
    CHECK(*text == "abc");
  }
}

TEST_CASE("write_file never overwrites") {
  TempDir dir;
  ktc::Fd fd = open_directory(dir.path());
  ktc::test::write_file(dir / "note", "original");
  auto written = ktc::fs::write_file(fd.get(), "note", "replacement");
  REQUIRE_FALSE(written.ok());
  CHECK(written.error().message.find("note") != std::string::npos);
  CHECK(ktc::test::read_file(dir / "note") == "original");
}

TEST_CASE("read_file reports the errno of a failure") {
  TempDir dir;
  ktc::Fd fd = open_directory(dir.path());
  int error = 0;

  SUBCASE("missing") {
    auto text = ktc::fs::read_file(fd.get(), "absent", &error);
    REQUIRE_FALSE(text.ok());
    CHECK(error == ENOENT);
    CHECK(text.error().status == Status::not_found);
    CHECK(text.error().message.find("absent") != std::string::npos);
  }
  SUBCASE("a directory") {
    REQUIRE(::mkdir((dir / "subdir").c_str(), 0777) == 0);
    auto text = ktc::fs::read_file(fd.get(), "subdir", &error);
    REQUIRE_FALSE(text.ok());
    CHECK(error == EISDIR);
  }
  SUBCASE("a FIFO, without blocking for a writer") {
    REQUIRE(::mkfifo((dir / "fifo").c_str(), 0666) == 0);
    int dir_fd = fd.get();
    CHECK(in_child([&] {
            int child_error = 0;
            auto text = ktc::fs::read_file(dir_fd, "fifo", &child_error);
            return !text.ok() && child_error == EINVAL ? 0 : 1;
          }) == 0);
  }
  SUBCASE("a character device") {
    auto text = ktc::fs::read_file(AT_FDCWD, "/dev/null", &error);
    REQUIRE_FALSE(text.ok());
    CHECK(error == EINVAL);
  }
  SUBCASE("a symbolic link") {
    ktc::test::write_file(dir / "target", "secret");
    REQUIRE(::symlink("target", (dir / "link").c_str()) == 0);
    auto text = ktc::fs::read_file(fd.get(), "link", &error);
    REQUIRE_FALSE(text.ok());
    CHECK(error == ELOOP);
  }
}

TEST_CASE("open_dir opens directories and refuses links when asked") {
  TempDir dir;
  REQUIRE(::mkdir((dir / "real").c_str(), 0777) == 0);
  REQUIRE(::symlink("real", (dir / "link").c_str()) == 0);
  ktc::test::write_file(dir / "file", "x");
  ktc::Fd fd = open_directory(dir.path());

  CHECK(ktc::fs::open_dir(fd.get(), "real", true).ok());
  CHECK(ktc::fs::open_dir(fd.get(), "link", false).ok());
  auto refused = ktc::fs::open_dir(fd.get(), "link", true);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message.find("link") != std::string::npos);
  CHECK_FALSE(ktc::fs::open_dir(fd.get(), "file", false).ok());
  auto missing = ktc::fs::open_dir(fd.get(), "absent", false);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().status == Status::not_found);
}

TEST_CASE("sync_dir succeeds on an open directory") {
  TempDir dir;
  ktc::Fd fd = open_directory(dir.path());
  CHECK(ktc::fs::sync_dir(fd.get(), dir.path()).ok());
  auto bad = ktc::fs::sync_dir(-1, "nothing");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("nothing") != std::string::npos);
}

TEST_CASE("remove_tree removes nested directories") {
  TempDir dir;
  std::string top = dir / "top";
  REQUIRE(ktc::fs::make_dirs(top + "/a/b/c").ok());
  REQUIRE(ktc::fs::make_dirs(top + "/d").ok());
  ktc::test::write_file(top + "/file", "1");
  ktc::test::write_file(top + "/a/file", "2");
  ktc::test::write_file(top + "/a/b/c/deep", "3");
  REQUIRE(::symlink("/nonexistent", (top + "/d/dangling").c_str()) == 0);
  ktc::Fd fd = open_directory(dir.path());

  REQUIRE(ktc::fs::remove_tree(fd.get(), "top").ok());
  CHECK_FALSE(exists(top));
  CHECK(ktc::test::list_dir(dir.path()).empty());
}

TEST_CASE("remove_tree removes a symbolic link, never what it points to") {
  TempDir dir;
  REQUIRE(::mkdir((dir / "target").c_str(), 0777) == 0);
  ktc::test::write_file(dir / "target/keep", "precious");
  ktc::Fd fd = open_directory(dir.path());

  SUBCASE("a link to a directory") {
    REQUIRE(::symlink("target", (dir / "link").c_str()) == 0);
    REQUIRE(ktc::fs::remove_tree(fd.get(), "link").ok());
    CHECK_FALSE(exists(dir / "link"));
  }
  SUBCASE("a link inside the removed tree") {
    REQUIRE(::mkdir((dir / "tree").c_str(), 0777) == 0);
    REQUIRE(::symlink((dir / "target").c_str(), (dir / "tree/link").c_str()) ==
            0);
    REQUIRE(ktc::fs::remove_tree(fd.get(), "tree").ok());
    CHECK_FALSE(exists(dir / "tree"));
  }
  CHECK(ktc::test::read_file(dir / "target/keep") == "precious");
}

TEST_CASE("remove_tree accepts a regular file and a missing name") {
  TempDir dir;
  ktc::Fd fd = open_directory(dir.path());
  ktc::test::write_file(dir / "file", "x");
  CHECK(ktc::fs::remove_tree(fd.get(), "file").ok());
  CHECK_FALSE(exists(dir / "file"));
  CHECK(ktc::fs::remove_tree(fd.get(), "absent").ok());
}

TEST_CASE("tree_size sums the regular files below a name") {
  TempDir dir;
  REQUIRE(ktc::fs::make_dirs(dir / "tree/sub/deeper").ok());
  ktc::test::write_file(dir / "tree/a", std::string(100, 'a'));
  ktc::test::write_file(dir / "tree/sub/b", std::string(20, 'b'));
  ktc::test::write_file(dir / "tree/sub/deeper/c", std::string(3, 'c'));
  ktc::test::write_file(dir / "outside", std::string(5000, 'o'));
  // Links are not followed, so the file they name is not counted twice.
  REQUIRE(::symlink((dir / "outside").c_str(), (dir / "tree/link").c_str()) ==
          0);
  ktc::Fd fd = open_directory(dir.path());

  CHECK(ktc::fs::tree_size(fd.get(), "tree") == 123);
  CHECK(ktc::fs::tree_size(fd.get(), "tree/sub") == 23);
  CHECK(ktc::fs::tree_size(fd.get(), "outside") == 5000);
  CHECK(ktc::fs::tree_size(fd.get(), "tree/link") == 0);
  CHECK(ktc::fs::tree_size(fd.get(), "absent") == 0);
}

TEST_CASE("base_name returns the last component") {
  using ktc::fs::base_name;
  CHECK(base_name("a/b/c") == "c");
  CHECK(base_name("/boot/vmlinuz-6.1") == "vmlinuz-6.1");
  CHECK(base_name("bzImage") == "bzImage");
  CHECK(base_name("arch/x86/boot/bzImage/") == "bzImage");
  CHECK(base_name("dir//") == "dir");
  CHECK(base_name("") == "");
}

TEST_CASE("make_dirs creates every missing level") {
  TempDir dir;

  SUBCASE("absolute, several levels") {
    std::string path = dir / "a/b/c";
    REQUIRE(ktc::fs::make_dirs(path).ok());
    CHECK(S_ISDIR(mode_of(path)));
  }
  SUBCASE("an existing directory") {
    CHECK(ktc::fs::make_dirs(dir.path()).ok());
  }
  SUBCASE("a trailing slash") {
    REQUIRE(ktc::fs::make_dirs(dir / "x/y/").ok());
    CHECK(S_ISDIR(mode_of(dir / "x/y")));
  }
  SUBCASE("mode 0777 minus the umask") {
    ScopedUmask mask(027);
    REQUIRE(ktc::fs::make_dirs(dir / "m/n").ok());
    CHECK((mode_of(dir / "m") & 07777) == 0750);
    CHECK((mode_of(dir / "m/n") & 07777) == 0750);
  }
  SUBCASE("a file in the way") {
    ktc::test::write_file(dir / "file", "x");
    auto made = ktc::fs::make_dirs(dir / "file/below");
    REQUIRE_FALSE(made.ok());
    CHECK(made.error().message.find("file") != std::string::npos);
  }
  SUBCASE("the path itself is a file") {
    ktc::test::write_file(dir / "file", "x");
    auto made = ktc::fs::make_dirs(dir / "file");
    REQUIRE_FALSE(made.ok());
    CHECK(made.error().message.find("not a directory") != std::string::npos);
  }
}

TEST_CASE("free_bytes reports space on an existing path only") {
  TempDir dir;
  auto free = ktc::fs::free_bytes(dir.path());
  REQUIRE(free.ok());
  CHECK(*free > 0);
  auto missing = ktc::fs::free_bytes(dir / "absent");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("absent") != std::string::npos);
}

TEST_CASE("to_string names each copy method") {
  CHECK(ktc::fs::to_string(CopyMethod::clone) == "clone");
  CHECK(ktc::fs::to_string(CopyMethod::copy_file_range) == "copy_file_range");
  CHECK(ktc::fs::to_string(CopyMethod::sendfile) == "sendfile");
  CHECK(ktc::fs::to_string(CopyMethod::read_write) == "read_write");
}

namespace {

constexpr const char* k_scenario_env = "KTCACHE_UNIT_FS_SCENARIO";
constexpr const char* k_fault_test_name =
    "injected faults and crashes and stalls reach the file operations";

// The fault switches are read once per process, so each scenario runs in a
// fresh copy of this binary that runs only this test case.
ktc::test::ProcessResult
run_scenario(const TempDir& dir,
             const std::string& scenario,
             std::map<std::string, std::optional<std::string>> env) {
  env[k_scenario_env] = scenario;
  env["KTCACHE_UNIT_FS_DIR"] = dir.path();
  // The child's own scratch directory lands in ours, even if it is killed.
  env["TMPDIR"] = dir.path();
  ktc::test::ProcessOptions options;
  options.env = std::move(env);
  options.timeout = std::chrono::seconds(60);
  auto result = ktc::test::run_process(
      {"/proc/self/exe", std::string("--test-case=") + k_fault_test_name},
      options);
  CHECK(ktc::test::exists(dir / "ran"));
  return result;
}

// What a scenario does inside the child; CHECK failures make it exit
// non-zero.
void run_scenario_here(std::string_view scenario) {
  std::string dir = std::getenv("KTCACHE_UNIT_FS_DIR");
  // Tells the parent the scenario ran (a filter that matches nothing would
  // pass silently).
  ktc::test::write_file(dir + "/ran", scenario);
  ktc::Fd fd = open_directory(dir);
  if (scenario == "second-write") {
    CHECK(ktc::fs::write_file(fd.get(), "first", "1").ok());
    auto second = ktc::fs::write_file(fd.get(), "second", "2");
    REQUIRE_FALSE(second.ok());
    CHECK(second.error().status == Status::no_space);
    CHECK(second.error().message.find("second") != std::string::npos);
    CHECK(ktc::fs::write_file(fd.get(), "third", "3").ok());
  } else if (scenario == "fsync") {
    auto written = ktc::fs::write_file(fd.get(), "synced", "data");
    REQUIRE_FALSE(written.ok());
    CHECK(written.error().status == Status::no_space);
    CHECK(written.error().message.find("cannot sync synced") !=
          std::string::npos);
  } else if (scenario == "copy-write") {
    ktc::test::write_file(dir + "/source", std::string(100'000, 's'));
    auto copied = ktc::fs::copy_file(dir + "/source", fd.get(), "copy");
    REQUIRE_FALSE(copied.ok());
    CHECK(copied.error().status == Status::no_space);
  } else if (scenario == "crash" || scenario == "stall") {
    ktc::test::write_file(dir + "/source", "bytes");
    CHECK(ktc::fs::copy_file(dir + "/source", fd.get(), "copy").ok());
  }
}

} // namespace

TEST_CASE(k_fault_test_name) {
  if (const char* scenario = std::getenv(k_scenario_env)) {
    run_scenario_here(scenario);
    return;
  }
  TempDir dir;

  SUBCASE("only the n-th write fails, with ENOSPC") {
    auto result =
        run_scenario(dir, "second-write", {{"KTCACHE_TEST_FAULT", "write:2"}});
    CHECK_MESSAGE(result.exit_code == 0, result.out, result.err);
    CHECK(exists(dir / "first"));
    CHECK(exists(dir / "third"));
  }
  SUBCASE("an fsync fails") {
    auto result =
        run_scenario(dir, "fsync", {{"KTCACHE_TEST_FAULT", "fsync:1"}});
    CHECK_MESSAGE(result.exit_code == 0, result.out, result.err);
  }
  SUBCASE("every copy method's first write fails") {
    for (const ForcedMethod& forced : k_methods) {
      CAPTURE(forced.env);
      TempDir method_dir;
      auto result = run_scenario(method_dir, "copy-write",
                                 {{"KTCACHE_TEST_FAULT", "write:1"},
                                  {"KTCACHE_TEST_COPY", forced.env}});
      CHECK_MESSAGE(result.exit_code == 0, result.out, result.err);
    }
  }
  SUBCASE("a crash point kills the process mid-copy") {
    auto result = run_scenario(dir, "crash", {{"KTCACHE_TEST_CRASH", "copy"}});
    CHECK(result.signal == SIGKILL);
  }
  SUBCASE("a crash point that is never reached does nothing") {
    auto result =
        run_scenario(dir, "crash", {{"KTCACHE_TEST_CRASH", "mid-clean"}});
    CHECK_MESSAGE(result.exit_code == 0, result.out, result.err);
  }
  SUBCASE("a stall point slows the copy down") {
    auto start = std::chrono::steady_clock::now();
    auto result =
        run_scenario(dir, "stall", {{"KTCACHE_TEST_STALL", "copy:300"}});
    CHECK_MESSAGE(result.exit_code == 0, result.out, result.err);
    CHECK(std::chrono::steady_clock::now() - start >=
          std::chrono::milliseconds(300));
  }
}

TEST_SUITE_END();
