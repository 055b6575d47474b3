#include "robust_support.hpp"

#include "cache/cache.hpp"
#include "util/fd.hpp"
#include "util/sha256.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string_view>
#include <thread>

extern char** environ;

namespace ktc::robust {

std::string file_sha256(const std::string& path) {
  Fd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) {
    return {};
  }
  auto digest = sha256_fd(file.get(), path);
  return digest ? *digest : std::string();
}

std::vector<std::string> leftovers(const std::string& root) {
  std::vector<std::string> names;
  DIR* dir = ::opendir(root.c_str());
  if (dir == nullptr) {
    return names;
  }
  while (dirent* ent = ::readdir(dir)) {
    std::string_view name = ent->d_name;
    if (name.starts_with(".tmp-") || name.starts_with(".swap-") ||
        name.starts_with(".trash-")) {
      names.emplace_back(name);
    }
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

namespace {

cache::Cache open_cache(const std::string& root) {
  cache::CacheOptions options;
  options.root = root;
  auto opened = cache::Cache::open(std::move(options));
  if (!opened) {
    throw std::runtime_error("cannot open cache " + root + ": " +
                             opened.error().message);
  }
  return std::move(*opened);
}

} // namespace

std::vector<std::string> corrupt_entries(const std::string& root) {
  cache::Cache cache = open_cache(root);
  std::vector<std::string> keys;
  for (const auto& entry : cache.list_entries()) {
    if (!entry.valid()) {
      keys.push_back(entry.key);
    }
  }
  return keys;
}

KeyState inspect(const std::string& root, const std::string& key) {
  cache::Cache cache = open_cache(root);
  KeyState state;
  auto entry = cache.lookup(key, true);
  if (!entry) {
    if (entry.error().status == Status::not_found) {
      state.kind = KeyState::Kind::absent;
    } else {
      state.kind = KeyState::Kind::broken;
      state.problem = entry.error().message;
    }
    return state;
  }
  state.kind = KeyState::Kind::valid;
  state.image_sha256 = file_sha256(entry->image_path());
  if (auto record = entry->metadata->artifact("image")) {
    state.recorded_sha256 = record->sha256;
  }
  auto verified = cache.verify(key);
  state.verified = verified.ok();
  if (!verified) {
    state.problem = verified.error().message;
  }
  return state;
}

std::string store_with_core(const std::string& root,
                            const std::string& key,
                            const std::string& image) {
  cache::Cache cache = open_cache(root);
  cache::StoreRequest request;
  request.image = image;
  request.image_name = "bzImage";
  auto stored = cache.store(key, request);
  return stored ? std::string() : stored.error().message;
}

pid_t spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
  std::vector<std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view line = *entry;
    if (!options.env.contains(std::string(line.substr(0, line.find('='))))) {
      env.emplace_back(line);
    }
  }
  for (const auto& [name, value] : options.env) {
    if (value) {
      env.push_back(name + "=" + *value);
    }
  }
  std::vector<char*> env_ptrs;
  for (auto& item : env) {
    env_ptrs.push_back(item.data());
  }
  env_ptrs.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> arg_ptrs;
  for (auto& item : args) {
    arg_ptrs.push_back(item.data());
  }
  arg_ptrs.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (options.stdin_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, options.stdin_fd, 0);
  } else {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  }
  std::string output =
      options.output_path.empty() ? "/dev/null" : options.output_path;
  posix_spawn_file_actions_addopen(&actions, 1, output.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0666);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);

  std::fflush(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, arg_ptrs[0], &actions, nullptr, arg_ptrs.data(),
                        env_ptrs.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    throw std::runtime_error("spawn " + argv[0] + ": " + std::strerror(rc));
  }
  return pid;
}

pid_t fork_child(const std::function<int()>& body) {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    int code = 99;
    try {
      code = body();
    } catch (...) {
      code = 99;
    }
    // No exit handlers: they belong to the test runner in the parent.
    ::_exit(code);
  }
  return pid;
}

int wait_status(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return -1;
    }
  }
  return status;
}

std::string describe_status(int status) {
  if (status == -1) {
    return "not waitable";
  }
  if (WIFEXITED(status)) {
    return "exit " + std::to_string(WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return "signal " + std::to_string(WTERMSIG(status));
  }
  return "status " + std::to_string(status);
}

bool wait_until(const std::function<bool()>& ready,
                std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (ready()) {
      return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

bool flock_held(const std::string& path) {
  Fd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) {
    return false;
  }
  if (::flock(file.get(), LOCK_EX | LOCK_NB) == 0) {
    return false; // released with the descriptor
  }
  return errno == EWOULDBLOCK;
}

} // namespace ktc::robust
