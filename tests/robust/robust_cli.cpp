#include "robust_cli.hpp"

#include "util/sha256.hpp"

#include <doctest/doctest.h>

namespace ktc::robust {

ktc::test::ProcessResult CliCache::run(const std::vector<std::string>& args,
                                       const EnvOverrides& env) const {
  std::vector<std::string> argv{ktc::test::env_path("KTCACHE_CLI"),
                                "--cache-dir", root};
  argv.insert(argv.end(), args.begin(), args.end());
  ktc::test::ProcessOptions options;
  options.env = {{"KTCACHE_TEST_FAULT", std::nullopt},
                 {"KTCACHE_TEST_CRASH", std::nullopt},
                 {"KTCACHE_TEST_STALL", std::nullopt},
                 {"KTCACHE_TEST_NO_RENAME_EXCHANGE", std::nullopt}};
  for (const auto& [name, value] : env) {
    options.env[name] = value;
  }
  options.timeout = std::chrono::seconds(60);
  return ktc::test::run_process(argv, options);
}

std::string CliCache::make_image(const std::string& name,
                                 size_t size,
                                 unsigned seed) const {
  std::string path = dir / name;
  ktc::test::write_file(path, ktc::test::random_bytes(size, seed));
  return path;
}

std::string TwoVersions::image_sha256(const std::string& path) {
  return ktc::sha256_hex(ktc::test::read_file(path));
}

void check_whole(const std::string& root,
                 const std::string& key,
                 const std::string& expected_sha) {
  auto state = inspect(root, key);
  REQUIRE_MESSAGE(state.kind == KeyState::Kind::valid, state.problem);
  CHECK_MESSAGE(state.verified, state.problem);
  CHECK(state.image_sha256 == expected_sha);
  CHECK(state.recorded_sha256 == expected_sha);
}

} // namespace ktc::robust
