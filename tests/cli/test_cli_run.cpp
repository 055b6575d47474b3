#include "test_cli_fixture.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace ktc::test;
using namespace ktc::test::cli;

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

// `ktcache --cache-dir ROOT ARGS...` with `env` set (or unset) on top of the
// test's environment.
ProcessResult
run_with_env(const CliFixture& cache,
             const std::vector<std::string>& args,
             const std::map<std::string, std::optional<std::string>>& env) {
  std::vector<std::string> argv = {env_path("KTCACHE_CLI"), "--cache-dir",
                                   cache.root()};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessOptions options;
  options.env = env;
  return run_process(argv, options);
}

// `VAR=value` lines of a file written by env(1).
std::map<std::string, std::string> read_env_file(const std::string& path) {
  std::map<std::string, std::string> result;
  for (const auto& line : split_lines(read_file(path))) {
    size_t equals = line.find('=');
    if (equals != std::string::npos) {
      result[line.substr(0, equals)] = line.substr(equals + 1);
    }
  }
  return result;
}

// Polls `ready` until it returns true; fails the test after `timeout`.
void wait_until(const std::function<bool()>& ready,
                const std::string& what,
                seconds timeout = seconds(30)) {
  auto deadline = steady_clock::now() + timeout;
  while (!ready()) {
    if (steady_clock::now() > deadline) {
      FAIL("timed out waiting for ", what);
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
}

// `ktcache --cache-dir ROOT ARGS...` started in the background in a process
// group of its own (killed, whole, when this goes out of scope), its output
// in files.
class Spawned {
public:
  Spawned(const CliFixture& cache, const std::vector<std::string>& args)
      : m_out(cache.input(fmt::format("out-{}", s_count))),
        m_err(cache.input(fmt::format("err-{}", s_count))) {
    ++s_count;
    std::vector<std::string> argv = {env_path("KTCACHE_CLI"), "--cache-dir",
                                     cache.root()};
    argv.insert(argv.end(), args.begin(), args.end());
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, m_out.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0666);
    posix_spawn_file_actions_addopen(&actions, 2, m_err.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0666);
    std::vector<char*> pointers;
    for (auto& arg : argv) {
      pointers.push_back(arg.data());
    }
    pointers.push_back(nullptr);
    int rc = posix_spawn(&m_pid, pointers[0], &actions, &attr, pointers.data(),
                         environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    REQUIRE_MESSAGE(rc == 0, "spawn ", argv[0], " failed");
  }
  ~Spawned() {
    kill(-m_pid, SIGKILL);
    if (!m_status) {
      int status = 0;
      while (waitpid(m_pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }
  Spawned(const Spawned&) = delete;
  Spawned& operator=(const Spawned&) = delete;

  pid_t pid() const { return m_pid; }

  // Whether the process has exited (and then reaps it).
  bool exited() {
    if (m_status) {
      return true;
    }
    int status = 0;
    pid_t rc = waitpid(m_pid, &status, WNOHANG);
    if (rc == m_pid) {
      m_status = status;
    }
    return m_status.has_value();
  }

  // The exit code (-1 when killed by a signal), waiting up to `timeout`.
  int wait_exit(seconds timeout = seconds(60)) {
    wait_until([this] { return exited(); }, "ktcache to exit", timeout);
    REQUIRE_MESSAGE(WIFEXITED(*m_status), "ktcache was killed by signal ",
                    WTERMSIG(*m_status), "; stderr: ", err());
    return WEXITSTATUS(*m_status);
  }

  std::string out() const { return read_file(m_out); }
  std::string err() const { return read_file(m_err); }

private:
  static inline int s_count = 0;
  std::string m_out;
  std::string m_err;
  pid_t m_pid = -1;
  std::optional<int> m_status;
};

// A child script that says it is ready (its PID in READY) and then blocks
// until RELEASE appears.
std::string blocking_script(const std::string& ready,
                            const std::string& release) {
  return fmt::format("echo $$ >'{0}.tmp' && mv '{0}.tmp' '{0}'; "
                     "while [ ! -e '{1}' ]; do sleep 0.05; done; exit 0",
                     ready, release);
}

// The holders of `key`'s lock as `ktcache locks --json` reports them:
// (pid, exclusive) pairs.
std::vector<std::pair<int64_t, bool>> lock_holders(const CliFixture& cache,
                                                   const std::string& key) {
  ProcessResult result = cache.run({"locks", "--json"});
  REQUIRE_MESSAGE(result.exit_code == 0, result.err);
  std::vector<std::pair<int64_t, bool>> holders;
  boost::json::value locks = parse_json(result.out);
  for (const auto& lock : locks.as_array()) {
    if (lock.at("name") != boost::json::value(key)) {
      continue;
    }
    for (const auto& holder : lock.at("holders").as_array()) {
      holders.emplace_back(holder.at("pid").to_number<int64_t>(),
                           holder.at("exclusive").as_bool());
    }
  }
  return holders;
}

const std::string k_not_found_message =
    "ktcache: cache key nothere not found; `ktcache list` shows the cached "
    "kernels\n";

} // namespace

TEST_SUITE_BEGIN("Cli");

TEST_CASE("run passes the command's exit status through") {
  CliFixture cache;
  cache.store("k");

  ProcessResult seven = cache.run({"run", "k", "--", "sh", "-c", "exit 7"});
  CHECK_MESSAGE(seven.exit_code == 7, seven.err);
  CHECK(seven.err.empty());
  ProcessResult zero = cache.run({"run", "k", "--", "true"});
  CHECK_MESSAGE(zero.exit_code == 0, zero.err);
  ProcessResult one = cache.run({"run", "k", "--", "false"});
  CHECK(one.exit_code == 1);
  // --no-build before -- is run's; the key never builds anyway.
  ProcessResult no_build =
      cache.run({"run", "k", "--no-build", "--", "sh", "-c", "exit 4"});
  CHECK_MESSAGE(no_build.exit_code == 4, no_build.err);
}

TEST_CASE("run gives the command its arguments after -- untouched") {
  CliFixture cache;
  cache.store("k");
  ProcessResult result = cache.run(
      {"run", "k", "--", "sh", "-c", "printf '%s|' \"$@\"", "sh", "--json",
       "-q", "--cache-dir", "x", "list", "--", "run", "--no-build", "a b"});
  CHECK_MESSAGE(result.exit_code == 0, result.err);
  CHECK(result.out == "--json|-q|--cache-dir|x|list|--|run|--no-build|a b|");
  // The command's output goes straight to ktcache's stdout, nothing more.
  ProcessResult echo = cache.run({"run", "k", "--", "echo", "hello"});
  CHECK(echo.exit_code == 0);
  CHECK(echo.out == "hello\n");
}

TEST_CASE("run reports a command killed by a signal as 128 + the signal") {
  CliFixture cache;
  cache.store("k");
  ProcessResult term =
      cache.run({"run", "k", "--", "sh", "-c", "kill -TERM $$"});
  CHECK(term.signal == 0);
  CHECK_MESSAGE(term.exit_code == 143, term.err);
  ProcessResult kill9 =
      cache.run({"run", "k", "--", "sh", "-c", "kill -KILL $$"});
  CHECK(kill9.exit_code == 137);
}

TEST_CASE("run sets the entry's variables in the command's environment") {
  CliFixture cache;
  std::string vmlinux = cache.input("vmlinux");
  write_file(vmlinux, random_bytes(8192, 3));
  std::string config = cache.input("dot-config");
  write_file(config, "CONFIG_HZ=250\n");
  cache.store("with-vmlinux",
              {"--vmlinux", vmlinux, "--config", config, "--no-strip"});
  cache.store("plain");

  // Inherited values of the entry variables never leak through.
  std::map<std::string, std::optional<std::string>> env = {
      {"KTCACHE_VMLINUX", "/inherited/vmlinux"},
      {"KTCACHE_CONFIG", "/inherited/config"},
      {"KTSTR_KERNEL", "/inherited/kernel"},
      {"KTCACHE_RUN_TEST_MARK", "inherited"},
  };

  std::string full_env = cache.input("env-with-vmlinux");
  ProcessResult full = run_with_env(
      cache,
      {"run", "with-vmlinux", "--", "sh", "-c", "env >'" + full_env + "'"},
      env);
  REQUIRE_MESSAGE(full.exit_code == 0, full.err);
  auto vars = read_env_file(full_env);
  std::string dir = cache.entry_dir("with-vmlinux");
  CHECK(vars["KTCACHE_ENTRY_DIR"] == dir);
  CHECK(vars["KTCACHE_KEY"] == "with-vmlinux");
  CHECK(vars["KTCACHE_IMAGE"] == dir + "/bzImage-with-vmlinux");
  CHECK(exists(vars["KTCACHE_IMAGE"]));
  CHECK(vars["KTSTR_KERNEL"] == dir);
  REQUIRE(vars.count("KTCACHE_VMLINUX") == 1);
  CHECK(vars["KTCACHE_VMLINUX"].rfind(dir + "/", 0) == 0);
  CHECK(read_file(vars["KTCACHE_VMLINUX"]) == read_file(vmlinux));
  REQUIRE(vars.count("KTCACHE_CONFIG") == 1);
  CHECK(vars["KTCACHE_CONFIG"].rfind(dir + "/", 0) == 0);
  CHECK(read_file(vars["KTCACHE_CONFIG"]) == "CONFIG_HZ=250\n");
  CHECK(vars["KTCACHE_RUN_TEST_MARK"] == "inherited");

  std::string plain_env = cache.input("env-plain");
  ProcessResult plain = run_with_env(
      cache, {"run", "plain", "--", "sh", "-c", "env >'" + plain_env + "'"},
      env);
  REQUIRE_MESSAGE(plain.exit_code == 0, plain.err);
  vars = read_env_file(plain_env);
  CHECK(vars["KTCACHE_ENTRY_DIR"] == cache.entry_dir("plain"));
  CHECK(vars["KTCACHE_KEY"] == "plain");
  CHECK(vars["KTCACHE_IMAGE"] == cache.entry_dir("plain") + "/bzImage-plain");
  CHECK(vars["KTSTR_KERNEL"] == cache.entry_dir("plain"));
  CHECK(vars.count("KTCACHE_VMLINUX") == 0);
  CHECK(vars.count("KTCACHE_CONFIG") == 0);
  CHECK(vars["KTCACHE_RUN_TEST_MARK"] == "inherited");
}

TEST_CASE("run forwards signals sent to ktcache and survives them") {
  CliFixture cache;
  cache.store("k");
  std::string ready = cache.input("ready");
  std::string mark = cache.input("mark");

  auto script = [&](const std::string& signal) {
    return fmt::format("trap 'echo got {0} >\"{1}\"; exit 0' {0}; "
                       "echo ready >'{2}.tmp' && mv '{2}.tmp' '{2}'; "
                       "while :; do sleep 0.1; done",
                       signal, mark, ready);
  };

  for (const auto& [name, number] :
       std::vector<std::pair<std::string, int>>{{"TERM", SIGTERM},
                                                {"INT", SIGINT},
                                                {"HUP", SIGHUP},
                                                {"QUIT", SIGQUIT}}) {
    CAPTURE(name);
    unlink(ready.c_str());
    unlink(mark.c_str());
    Spawned run(cache, {"run", "k", "--", "sh", "-c", script(name)});
    wait_until([&] { return exists(ready) || run.exited(); },
               "the command to start");
    REQUIRE_MESSAGE(!run.exited(), run.err());
    REQUIRE(kill(run.pid(), number) == 0);
    CHECK_MESSAGE(run.wait_exit() == 0, run.err());
    REQUIRE(exists(mark));
    CHECK(read_file(mark) == "got " + name + "\n");
  }
}

// A forwarded duplicate would mostly merge with the pending first SIGINT,
// so this cannot reliably catch one; it checks that ktcache survives a
// terminal's ^C and that the command gets it from the terminal.
TEST_CASE("run survives a terminal's Ctrl-C, which reaches the command") {
  CliFixture cache;
  cache.store("k");
  std::string ready = cache.input("ready");
  std::string mark = cache.input("mark");
  // Counts the SIGINTs it gets, for three seconds.
  std::string script = fmt::format(
      "n=0; trap 'n=$((n+1)); echo $n >>\"{0}\"' INT; "
      "echo ready >'{1}.tmp' && mv '{1}.tmp' '{1}'; "
      "i=0; while [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done; exit 0",
      mark, ready);
  std::vector<std::string> argv = {env_path("KTCACHE_CLI"),
                                   "--cache-dir",
                                   cache.root(),
                                   "run",
                                   "k",
                                   "--",
                                   "sh",
                                   "-c",
                                   script};
  std::vector<char*> pointers;
  for (auto& arg : argv) {
    pointers.push_back(arg.data());
  }
  pointers.push_back(nullptr);

  // ktcache runs in a session of its own whose controlling terminal is a
  // pseudo-terminal: its ^C makes the kernel signal the foreground group.
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  REQUIRE(master >= 0);
  REQUIRE(grantpt(master) == 0);
  REQUIRE(unlockpt(master) == 0);
  std::string terminal = ptsname(master);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    setsid();
    int slave = open(terminal.c_str(), O_RDWR);
    if (slave < 0) {
      _exit(120);
    }
    dup2(slave, 0);
    dup2(slave, 1);
    dup2(slave, 2);
    execv(pointers[0], pointers.data());
    _exit(121);
  }
  auto reap = [&] {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
  };
  bool started = false;
  auto deadline = steady_clock::now() + seconds(30);
  while (steady_clock::now() < deadline) {
    if (exists(ready)) {
      started = true;
      break;
    }
    if (waitpid(pid, nullptr, WNOHANG) == pid) {
      break;
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  if (!started) {
    kill(pid, SIGKILL);
    reap();
    close(master);
    FAIL("the command never started");
  }
  REQUIRE(write(master, "\x03", 1) == 1);
  // Drain the terminal until ktcache and its command have closed it.
  char buffer[256];
  while (read(master, buffer, sizeof buffer) > 0) {
  }
  int status = reap();
  close(master);
  REQUIRE_MESSAGE(WIFEXITED(status), "ktcache died of signal ",
                  WTERMSIG(status));
  CHECK(WEXITSTATUS(status) == 0);
  REQUIRE(exists(mark));
  CHECK(read_file(mark) == "1\n");
}

TEST_CASE("run exits 128 + N when a forwarded signal kills the command") {
  CliFixture cache;
  cache.store("k");
  std::string ready = cache.input("ready");
  Spawned run(cache, {"run", "k", "--", "sh", "-c",
                      fmt::format("echo ready >'{0}.tmp' && mv '{0}.tmp' "
                                  "'{0}'; while :; do sleep 0.1; done",
                                  ready)});
  wait_until([&] { return exists(ready) || run.exited(); },
             "the command to start");
  REQUIRE_MESSAGE(!run.exited(), run.err());
  REQUIRE(kill(run.pid(), SIGTERM) == 0);
  CHECK(run.wait_exit() == 143);
}

TEST_CASE("run holds a lease: clean skips the entry and store waits") {
  CliFixture cache;
  cache.store("k");
  std::string old_image = read_file(cache.entry_dir("k") + "/bzImage-k");
  std::string ready = cache.input("ready");
  std::string release = cache.input("release");

  Spawned run(cache,
              {"run", "k", "--", "sh", "-c", blocking_script(ready, release)});
  wait_until([&] { return exists(ready) || run.exited(); },
             "the command to start");
  REQUIRE_MESSAGE(!run.exited(), run.err());
  int64_t child_pid = std::stoll(read_file(ready));

  // ktcache holds the shared lock; the command did not inherit it.
  auto holders = lock_holders(cache, "k");
  REQUIRE(holders.size() == 1);
  CHECK(holders[0].first == run.pid());
  CHECK(holders[0].second == false);
  CHECK(holders[0].first != child_pid);

  ProcessResult clean_all = cache.run({"clean", "--all"});
  CHECK(clean_all.exit_code == 5);
  CHECK(contains(clean_all.out, "skipped k: in use"));
  CHECK(exists(cache.entry_dir("k") + "/metadata.json"));
  ProcessResult clean_key = cache.run({"clean", "k"});
  CHECK(clean_key.exit_code == 5);
  CHECK(contains(clean_key.out, "skipped k: in use"));
  CHECK(exists(cache.entry_dir("k") + "/metadata.json"));

  // A replacing store waits for the lease.
  std::string new_image_file = cache.input("bzImage-k");
  std::string new_image = random_bytes(4096, 99);
  REQUIRE(new_image != old_image);
  write_file(new_image_file, new_image);
  Spawned store(cache, {"store", "k", "--image", new_image_file});
  std::this_thread::sleep_for(seconds(1));
  CHECK_FALSE(store.exited());
  CHECK(read_file(cache.entry_dir("k") + "/bzImage-k") == old_image);

  write_file(release, "");
  CHECK_MESSAGE(run.wait_exit() == 0, run.err());
  CHECK_MESSAGE(store.wait_exit() == 0, store.err());
  CHECK(read_file(cache.entry_dir("k") + "/bzImage-k") == new_image);
  // The lease ended with ktcache.
  CHECK(lock_holders(cache, "k").empty());
}

TEST_CASE("run waits for an exclusive lock, then exits 5 naming its holder") {
  CliFixture cache;
  cache.store("k");
  CliFixture::make_dirs(cache.root() + "/.locks");
  BackgroundProcess holder(
      {"flock", "-x", cache.lock_path("k"), "sleep", "60"});
  wait_until(
      [&] {
        for (const auto& [pid, exclusive] : lock_holders(cache, "k")) {
          if (pid == holder.pid() && exclusive) {
            return true;
          }
        }
        return false;
      },
      "flock to hold the lock");
  std::string marker = cache.input("ran");
  ProcessResult result =
      cache.run({"run", "k", "--", "sh", "-c", "echo ran >'" + marker + "'"});
  CHECK(result.exit_code == 5);
  CHECK(contains(result.err, fmt::format("pid={}", holder.pid())));
  CHECK(split_lines(result.err).size() == 1);
  CHECK_FALSE(exists(marker));
}

TEST_CASE("run refuses a missing key, a malformed identifier and a missing "
          "command") {
  CliFixture cache;
  cache.store("k");

  SUBCASE("missing key") {
    ProcessResult result = cache.run({"run", "nothere", "--", "true"});
    CHECK(result.exit_code == 1);
    CHECK(result.out.empty());
    CHECK(result.err == k_not_found_message);
  }
  SUBCASE("malformed identifiers") {
    for (const std::string key :
         {"", "x..y", "6.14..6.12", "git+https://h/r", "6.12.3.4"}) {
      CAPTURE(key);
      ProcessResult result = cache.run({"run", key, "--", "true"});
      CHECK(result.exit_code == 2);
      CHECK(split_lines(result.err).size() == 1);
      CHECK(result.err.rfind("ktcache: ", 0) == 0);
    }
  }
  SUBCASE("paths that name nothing") {
    for (const std::string path : {"./nothere", "a/b"}) {
      CAPTURE(path);
      ProcessResult result = cache.run({"run", path, "--", "true"});
      CHECK(result.exit_code == 1);
      CHECK(contains(result.err, path));
      CHECK(split_lines(result.err).size() == 1);
    }
  }
  SUBCASE("no command") {
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"run", "k"}, {"run", "k", "--"}}) {
      ProcessResult result = cache.run(args);
      CHECK(result.exit_code == 2);
      CHECK(contains(result.err, "COMMAND"));
      CHECK(split_lines(result.err).size() == 1);
    }
    CHECK(cache.run({"run"}).exit_code == 2);
  }
  SUBCASE("command not found") {
    ProcessResult result =
        cache.run({"run", "k", "--", "ktcache-no-such-command", "x"});
    CHECK(result.exit_code == 127);
    CHECK(result.err ==
          "ktcache: ktcache-no-such-command: command not found\n");
    ProcessResult path = cache.run({"run", "k", "--", "/nonexistent/cmd"});
    CHECK(path.exit_code == 127);
    CHECK(contains(path.err, "/nonexistent/cmd"));
  }
  SUBCASE("command not executable") {
    std::string script = cache.input("not-executable");
    write_file(script, "#!/bin/sh\nexit 0\n");
    chmod(script.c_str(), 0644);
    ProcessResult result = cache.run({"run", "k", "--", script});
    CHECK(result.exit_code == 126);
    CHECK(contains(result.err, script));
    CHECK(split_lines(result.err).size() == 1);
  }
  // None of these left a holder behind.
  CHECK(lock_holders(cache, "k").empty());
}

TEST_CASE("run --help documents the environment, the lease and exit codes") {
  CliFixture cache;
  ProcessResult result = cache.run({"run", "--help"});
  CHECK(result.exit_code == 0);
  for (const char* word : {"KTCACHE_ENTRY_DIR", "KTCACHE_KEY", "KTCACHE_IMAGE",
                           "KTCACHE_VMLINUX", "KTCACHE_CONFIG", "KTSTR_KERNEL",
                           "128+N", "127", "126", "shared lock", "SIGTERM"}) {
    CHECK_MESSAGE(contains(result.out, word), word);
  }
}

TEST_SUITE_END();
