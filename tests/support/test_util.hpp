#pragma once

// Helpers shared by every test binary. The custom doctest main creates one
// scratch directory per run (kept and printed when a test fails, removed
// otherwise); TempDir hands out fresh directories inside it.

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ktc::test {

// The run's scratch directory (created by main).
const std::string& run_dir();

// A fresh directory under run_dir(). It is left in place: main removes the
// whole run directory when every test passed, and keeps it otherwise.
class TempDir {
public:
  TempDir();
  ~TempDir() = default;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return m_path; }
  std::string operator/(std::string_view name) const;

private:
  std::string m_path;
};

void write_file(const std::string& path, std::string_view data);
std::string read_file(const std::string& path);
bool exists(const std::string& path);
// Names in a directory, sorted, "." and ".." left out.
std::vector<std::string> list_dir(const std::string& path);
// Deterministic pseudo-random bytes.
std::string random_bytes(size_t size, unsigned seed);

struct ProcessResult {
  int exit_code = -1; // -1 when killed by a signal
  int signal = 0;
  std::string out;
  std::string err;
};

struct ProcessOptions {
  // Set (or, with nullopt, unset) these on top of the current environment.
  std::map<std::string, std::optional<std::string>> env;
  std::string stdin_data;
  std::chrono::milliseconds timeout{120'000};
};

// Runs argv[0] (looked up in PATH when it has no '/'), captures output.
ProcessResult run_process(const std::vector<std::string>& argv,
                          const ProcessOptions& options = {});

// Sets or unsets an environment variable for a scope.
class ScopedEnv {
public:
  ScopedEnv(std::string name, std::optional<std::string> value);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
  std::string m_name;
  std::optional<std::string> m_old;
};

// Path of a build artefact passed by Meson in the environment variable
// `name` (for example KTCACHE_CLI); fails the test when unset.
std::string env_path(const char* name);

} // namespace ktc::test
