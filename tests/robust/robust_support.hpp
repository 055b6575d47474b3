#pragma once

// Helpers for the robustness tests. The core's test hooks
// (KTCACHE_TEST_FAULT, KTCACHE_TEST_CRASH, KTCACHE_TEST_STALL) are read once
// per process, so every hooked store runs in a child: the ktcache CLI
// started with the variable set, or a forked child that calls the core and
// leaves with _exit. Nothing here uses doctest: the children must not
// report through it, and the callers do the checking.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ktc::robust {

// Lower-case hex SHA-256 of a file's contents; empty when it cannot be
// opened or read.
std::string file_sha256(const std::string& path);

// The .tmp-*, .swap-* and .trash-* names in a cache root, sorted.
std::vector<std::string> leftovers(const std::string& root);

// The keys of the entries list_entries() reports as corrupt.
std::vector<std::string> corrupt_entries(const std::string& root);

// A key as a reader sees it: read under a leased lookup, then verified.
struct KeyState {
  enum class Kind { absent, valid, broken };
  Kind kind = Kind::absent;
  std::string image_sha256;    // the image file's hash (valid only)
  std::string recorded_sha256; // the metadata's image hash (valid only)
  bool verified = false;       // Cache::verify passed (valid only)
  std::string problem;         // why the lookup or verify failed
};
KeyState inspect(const std::string& root, const std::string& key);

// Stores `image` under `key` with the core, in this process; returns the
// error message, empty on success.
std::string store_with_core(const std::string& root,
                            const std::string& key,
                            const std::string& image);

// Environment overrides for a child: a value sets, nullopt unsets.
using EnvOverrides = std::map<std::string, std::optional<std::string>>;

struct SpawnOptions {
  EnvOverrides env;
  // stdout and stderr go here (created or truncated); empty: /dev/null.
  std::string output_path;
  // Becomes the child's stdin when >= 0; /dev/null otherwise.
  int stdin_fd = -1;
};

// Starts argv[0] (looked up in PATH) without waiting; throws on failure.
pid_t spawn(const std::vector<std::string>& argv,
            const SpawnOptions& options = {});

// Runs `body` in a forked child that leaves with _exit(body's result);
// an exception in the body exits 99.
pid_t fork_child(const std::function<int()>& body);

// waitpid, retrying EINTR; returns the raw wait status.
int wait_status(pid_t pid);

// "exit 0", "signal 9", ...
std::string describe_status(int status);

// Polls `ready` every few milliseconds until it is true or `limit` passes.
bool wait_until(const std::function<bool()>& ready,
                std::chrono::milliseconds limit);

// Whether a flock(2) on `path` is held by someone: a non-blocking exclusive
// flock on a fresh descriptor fails.
bool flock_held(const std::string& path);

} // namespace ktc::robust
