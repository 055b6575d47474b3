#include "test_util.hpp"
#include "util/process.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

using ktc::Status;
using ktc::process::LoggedCommand;
using ktc::process::run_logged;
using ktc::test::read_file;
using ktc::test::TempDir;

namespace {

// Running, not a zombie waiting for a reaper (a container's init may
// never reap the orphans of a test).
bool process_alive(pid_t pid) {
  std::string stat;
  try {
    stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  } catch (...) {
    return false;
  }
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() &&
         stat[close + 2] != 'Z' && stat[close + 2] != 'X';
}

} // namespace

TEST_SUITE("util") {
  TEST_CASE("run_logged merges both streams into the log and the lines") {
    TempDir dir;
    std::string log_path = dir / "log";
    int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    REQUIRE(log_fd >= 0);
    LoggedCommand command;
    command.argv = {"sh", "-c",
                    "echo one; echo two >&2; printf 'three\\r\\nfour'; exit 3"};
    command.log_fd = log_fd;
    std::vector<std::string> seen;
    command.on_line = [&](std::string_view line) { seen.emplace_back(line); };
    auto outcome = run_logged(command);
    ::close(log_fd);
    REQUIRE(outcome);
    CHECK(outcome->exit_status == 3);
    CHECK_FALSE(outcome->cancelled);
    CHECK(seen == std::vector<std::string>{"one", "two", "three", "four"});
    CHECK(read_file(log_path) == "one\ntwo\nthree\r\nfour");
  }

  TEST_CASE("run_logged keeps only the last lines as the tail") {
    LoggedCommand command;
    command.argv = {"sh", "-c", "for i in $(seq 1 100); do echo line$i; done"};
    command.tail_lines = 3;
    auto outcome = run_logged(command);
    REQUIRE(outcome);
    REQUIRE(outcome->tail.size() == 3);
    CHECK(outcome->tail.front() == "line98");
    CHECK(outcome->tail.back() == "line100");
  }

  TEST_CASE("run_logged sets the environment and the working directory") {
    TempDir dir;
    LoggedCommand command;
    command.argv = {"sh", "-c", "echo \"$KT_PINNED $(pwd)\""};
    command.cwd = dir.path();
    command.environment = {{"KT_PINNED", "pinned-value"}};
    auto outcome = run_logged(command);
    REQUIRE(outcome);
    REQUIRE(outcome->tail.size() == 1);
    CHECK(outcome->tail.front() == "pinned-value " + dir.path());
  }

  TEST_CASE("cancelling stops the command and everything it started") {
    TempDir dir;
    std::string pid_file = dir / "grandchild";
    LoggedCommand command;
    // The grandchild ignores nothing and would sleep for a minute.
    command.argv = {"sh", "-c",
                    "sleep 60 & echo $! > " + pid_file +
                        "; echo started; wait"};
    std::atomic<bool> started{false};
    command.on_line = [&](std::string_view line) {
      if (line == "started") {
        started = true;
      }
    };
    command.cancelled = [&] { return started.load(); };
    auto begun = std::chrono::steady_clock::now();
    auto outcome = run_logged(command);
    auto took = std::chrono::steady_clock::now() - begun;
    REQUIRE(outcome);
    CHECK(outcome->cancelled);
    CHECK(outcome->exit_status >= 128);
    CHECK(took < std::chrono::seconds(20));
    pid_t grandchild = std::stoi(read_file(pid_file));
    // Reaped by init or already gone: either way not running for long.
    for (int attempt = 0; attempt < 50 && process_alive(grandchild);
         ++attempt) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK_FALSE(process_alive(grandchild));
  }

  TEST_CASE("a timeout stops the command") {
    LoggedCommand command;
    command.argv = {"sleep", "30"};
    command.timeout = std::chrono::milliseconds(200);
    auto outcome = run_logged(command);
    REQUIRE(outcome);
    CHECK(outcome->timed_out);
    CHECK(outcome->exit_status == 128 + SIGTERM);
  }

  TEST_CASE("a missing program is not_found") {
    LoggedCommand command;
    command.argv = {"/nonexistent/ktcache-no-such-tool"};
    auto outcome = run_logged(command);
    REQUIRE_FALSE(outcome);
    CHECK(outcome.error().status == Status::not_found);
  }
}
