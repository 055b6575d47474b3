// Stores killed with SIGKILL at random moments.

#include "robust_cli.hpp"
#include "robust_support.hpp"
#include "test_util.hpp"
#include "util/sha256.hpp"

#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <thread>

namespace {

using Kind = ktc::robust::KeyState::Kind;

const std::string k_key = "6.14.2-tarball-x86_64-kckill";
const std::string k_timed_key = "6.14.3-tarball-x86_64-kckill";
constexpr int k_rounds = 30;

} // namespace

TEST_SUITE_BEGIN("Store");

TEST_CASE("a store killed at a random moment leaves the key whole or absent "
          "and a later store leaves nothing behind") {
  ktc::robust::CliCache cache;
  const size_t size = 20u << 20;
  const std::string images[] = {cache.make_image("a.img", size, 11),
                                cache.make_image("b.img", size, 12)};
  const std::string hashes[] = {
      ktc::sha256_hex(ktc::test::read_file(images[0])),
      ktc::sha256_hex(ktc::test::read_file(images[1]))};
  const std::string cli = ktc::test::env_path("KTCACHE_CLI");

  // Kills spread over a whole store (copy, fsync, swap, removal of the old
  // entry), measured once here under another key.
  auto started = std::chrono::steady_clock::now();
  auto timed = cache.run({"store", k_timed_key, "--image", images[1]});
  REQUIRE_MESSAGE(timed.exit_code == 0, timed.err);
  auto store_time = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  const long max_delay = std::clamp<long>(store_time.count() * 3 / 2, 50, 1000);
  MESSAGE("a store takes ", store_time.count(), " ms; kills within 0-",
          max_delay, " ms");

  std::mt19937 engine(std::random_device{}());
  int killed = 0;
  int completed = 0;
  int present = 0;
  for (int round = 0; round < k_rounds; ++round) {
    CAPTURE(round);
    ktc::robust::SpawnOptions options;
    options.output_path = cache.dir / "store.log";
    pid_t pid = ktc::robust::spawn({cli, "--cache-dir", cache.root, "store",
                                    k_key, "--image", images[round % 2]},
                                   options);
    std::this_thread::sleep_for(std::chrono::milliseconds(
        static_cast<long>(engine() % static_cast<unsigned>(max_delay + 1))));
    ::kill(pid, SIGKILL);
    int status = ktc::robust::wait_status(pid);
    if (WIFSIGNALED(status)) {
      ++killed;
    } else {
      REQUIRE_MESSAGE(WEXITSTATUS(status) == 0,
                      ktc::test::read_file(options.output_path));
      ++completed;
    }

    auto state = ktc::robust::inspect(cache.root, k_key);
    CAPTURE(state.problem);
    REQUIRE(state.kind != Kind::broken);
    if (state.kind == Kind::valid) {
      ++present;
      CHECK(state.verified);
      CHECK(
          (state.image_sha256 == hashes[0] || state.image_sha256 == hashes[1]));
    }
    REQUIRE(ktc::robust::corrupt_entries(cache.root).empty());
  }
  MESSAGE(killed, " stores killed, ", completed, " completed; the key was ",
          "whole after ", present, " rounds and absent after the rest");
  CHECK(killed > 0);

  auto result = cache.run({"store", k_key, "--image", images[0]});
  REQUIRE_MESSAGE(result.exit_code == 0, result.err);
  CHECK(ktc::robust::leftovers(cache.root).empty());
  auto state = ktc::robust::inspect(cache.root, k_key);
  CHECK(state.kind == Kind::valid);
  CHECK(state.verified);
  CHECK(state.image_sha256 == hashes[0]);
}

TEST_SUITE_END();
