#pragma once

// A scratch cache driven through the ktcache CLI (KTCACHE_CLI, set by
// Meson), for the tests whose hooks must be set before a process starts.

#include "robust_support.hpp"
#include "test_util.hpp"

#include <string>
#include <vector>

namespace ktc::robust {

struct CliCache {
  ktc::test::TempDir dir;
  std::string root = dir / "cache";

  // Runs `ktcache --cache-dir <root> <args...>`. The test hooks are unset
  // unless `env` sets them.
  ktc::test::ProcessResult run(const std::vector<std::string>& args,
                               const EnvOverrides& env = {}) const;
  // A file of `size` pseudo-random bytes in the scratch directory.
  std::string
  make_image(const std::string& name, size_t size, unsigned seed) const;
};

// A cache and two images to store under one key, v1 then v2.
struct TwoVersions {
  CliCache cache;
  std::string v1 = cache.make_image("v1.img", 400 * 1024, 1);
  std::string v2 = cache.make_image("v2.img", 450 * 1024, 2);
  std::string v1_sha = image_sha256(v1);
  std::string v2_sha = image_sha256(v2);

  static std::string image_sha256(const std::string& path);
};

// Checks (doctest) that `key` is a valid entry that verifies and whose image
// hashes to `expected_sha`.
void check_whole(const std::string& root,
                 const std::string& key,
                 const std::string& expected_sha);

} // namespace ktc::robust
