#pragma once

// Helpers for the end-to-end CLI tests: a scratch cache per test, a runner
// for the real `ktcache` binary (KTCACHE_CLI), entries written by hand the
// way ktstr writes them, and a background lock holder.

#include "test_util.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace ktc::test::cli {

inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) {
      end = text.size();
    }
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

inline bool contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

// Parses a JSON document; fails the test when it is not JSON.
inline boost::json::value parse_json(const std::string& text) {
  std::error_code ec;
  boost::json::value value = boost::json::parse(text, ec);
  REQUIRE_MESSAGE(!ec, "not JSON: ", text);
  return value;
}

// The metadata.json ktstr writes: pretty JSON with its eleven fields and no
// artifact hashes.
inline std::string ktstr_metadata(const std::string& built_at,
                                  const std::string& kconfig_hash_json) {
  return fmt::format(R"({{
  "version": "6.14.2",
  "source": {{
    "type": "tarball"
  }},
  "arch": "x86_64",
  "image_name": "bzImage",
  "config_hash": "0c1d2e3f",
  "built_at": "{}",
  "ktstr_kconfig_hash": {},
  "has_vmlinux": false,
  "vmlinux_stripped": false,
  "source_vmlinux_size": null,
  "source_vmlinux_mtime_secs": null
}})",
                     built_at, kconfig_hash_json);
}

// A scratch cache and a runner for the CLI pointed at it.
class CliFixture {
public:
  CliFixture() : m_cli(env_path("KTCACHE_CLI")), m_root(m_dir / "cache") {}

  const std::string& root() const { return m_root; }
  std::string entry_dir(const std::string& key) const {
    return m_root + "/" + key;
  }
  std::string lock_path(const std::string& key) const {
    return m_root + "/.locks/" + key + ".lock";
  }
  // A path for input files, outside the cache.
  std::string input(const std::string& name) const { return m_dir / name; }

  // `ktcache --cache-dir ROOT ARGS...`, with KTCACHE_DIR pointing at a
  // directory that must stay untouched.
  ProcessResult run(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {m_cli, "--cache-dir", m_root};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_argv(argv);
  }

  // `ktcache ARGS...` with KTCACHE_DIR=ROOT and no --cache-dir.
  ProcessResult run_env(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {m_cli};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessOptions options;
    options.env["KTCACHE_DIR"] = m_root;
    return run_process(argv, options);
  }

  // Stores `key` from a fresh image file and returns the entry directory.
  std::string store(const std::string& key,
                    const std::vector<std::string>& extra = {}) const {
    std::string image = input("bzImage-" + key);
    write_file(image, random_bytes(4096, static_cast<unsigned>(
                                             std::hash<std::string>{}(key))));
    std::vector<std::string> args = {"store", key, "--image", image};
    args.insert(args.end(), extra.begin(), extra.end());
    ProcessResult result = run(args);
    REQUIRE_MESSAGE(result.exit_code == 0, "store ", key, ": ", result.err);
    return entry_dir(key);
  }

  // An entry as ktstr writes it (no hashes, no schema_version).
  void write_ktstr_entry(const std::string& key,
                         const std::string& built_at,
                         const std::string& kconfig_hash_json = "null") const {
    make_dirs(entry_dir(key));
    write_file(entry_dir(key) + "/bzImage", random_bytes(2048, 7));
    write_file(entry_dir(key) + "/metadata.json",
               ktstr_metadata(built_at, kconfig_hash_json));
  }

  // An entry directory whose metadata.json holds `metadata` (or is absent
  // when `metadata` is empty).
  void write_corrupt_entry(const std::string& key,
                           const std::string& metadata = "") const {
    make_dirs(entry_dir(key));
    if (!metadata.empty()) {
      write_file(entry_dir(key) + "/metadata.json", metadata);
    }
  }

  ProcessResult run_argv(const std::vector<std::string>& argv) const {
    ProcessOptions options;
    options.env["KTCACHE_DIR"] = m_dir / "unused-default-root";
    return run_process(argv, options);
  }

  static void make_dirs(const std::string& path) {
    for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
      std::string prefix = path.substr(0, slash);
      mkdir(prefix.c_str(), 0777);
      if (slash == std::string::npos) {
        break;
      }
    }
    REQUIRE(exists(path));
  }

private:
  TempDir m_dir;
  std::string m_cli;
  std::string m_root;
};

// A process started in its own process group and killed (the whole group)
// when this goes out of scope.
class BackgroundProcess {
public:
  explicit BackgroundProcess(const std::vector<std::string>& argv) {
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    for (int fd : {0, 1, 2}) {
      posix_spawn_file_actions_addopen(&actions, fd, "/dev/null",
                                       fd == 0 ? O_RDONLY : O_WRONLY, 0);
    }
    std::vector<std::string> args = argv;
    std::vector<char*> arg_ptrs;
    for (auto& arg : args) {
      arg_ptrs.push_back(arg.data());
    }
    arg_ptrs.push_back(nullptr);
    int rc = posix_spawnp(&m_pid, arg_ptrs[0], &actions, &attr, arg_ptrs.data(),
                          environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    REQUIRE_MESSAGE(rc == 0, "spawn ", argv[0], " failed");
  }
  ~BackgroundProcess() {
    kill(-m_pid, SIGKILL);
    int status = 0;
    while (waitpid(m_pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  pid_t pid() const { return m_pid; }

private:
  pid_t m_pid = -1;
};

// Holds a shared flock(1) lock on `key`'s lock file until destroyed, and
// waits until `ktcache locks` sees it.
class SharedLockHolder {
public:
  SharedLockHolder(const CliFixture& cache, const std::string& key)
      : m_process(start(cache, key)) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      if (held_by_pid(cache, key)) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL("flock never appeared as a holder of ", cache.lock_path(key));
  }

  pid_t pid() const { return m_process.pid(); }

private:
  static std::vector<std::string> start(const CliFixture& cache,
                                        const std::string& key) {
    CliFixture::make_dirs(cache.root() + "/.locks");
    return {"flock", "-s", cache.lock_path(key), "sleep", "60"};
  }

  bool held_by_pid(const CliFixture& cache, const std::string& key) const {
    ProcessResult result = cache.run({"locks", "--json"});
    if (result.exit_code != 0) {
      return false;
    }
    std::error_code ec;
    boost::json::value locks = boost::json::parse(result.out, ec);
    if (ec || !locks.is_array()) {
      return false;
    }
    for (const auto& lock : locks.as_array()) {
      if (lock.at("name") != boost::json::value(key)) {
        continue;
      }
      for (const auto& holder : lock.at("holders").as_array()) {
        if (holder.at("pid").to_number<int64_t>() == m_process.pid()) {
          return true;
        }
      }
    }
    return false;
  }

  BackgroundProcess m_process;
};

} // namespace ktc::test::cli
