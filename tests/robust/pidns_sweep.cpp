// The orphan sweep against a live store in another PID namespace, whose
// PID in its temp directory's name is dead (or someone else) out here.
// Needs `unshare --pid --fork --mount-proc`; exits 77 (skipped) where it
// is not permitted.

#include "robust_cli.hpp"
#include "robust_main.hpp"
#include "robust_support.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <string>

namespace {

const std::string k_inner_key = "6.14.2-tarball-x86_64-kcinner";
const std::string k_outer_key = "6.14.2-tarball-x86_64-kcouter";

// Burns PIDs in the new namespace first, so the store's PID there is
// unlikely to be a live process's PID out here, then runs the store as a
// child of the shell (an exec would make it PID 1).
const char* const k_inner_script =
    "i=0; while [ $i -lt 300 ]; do /bin/true; i=$((i + 1)); done; "
    "\"$0\" --cache-dir \"$1\" store \"$2\" --image \"$3\"; exit $?";

std::string inner_temp_dir(const std::string& root) {
  for (const auto& name : ktc::robust::leftovers(root)) {
    if (name.starts_with(".tmp-" + k_inner_key + "-") &&
        ktc::test::exists(root + "/" + name + "/metadata.json")) {
      return name;
    }
  }
  return {};
}

} // namespace

TEST_SUITE_BEGIN("Store");

TEST_CASE("the orphan sweep spares a live store whose PID is dead in this "
          "PID namespace") {
  ktc::robust::CliCache cache;
  std::string image = cache.make_image("inner.img", 2u << 20, 7);
  ktc::robust::SpawnOptions options;
  // The stall keeps the inner store alive, holding its key's lock, with
  // its temp directory complete.
  options.env = {{"KTCACHE_TEST_STALL", "before-rename:4000"}};
  options.output_path = cache.dir / "inner.log";
  pid_t inner = ktc::robust::spawn(
      {"unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", k_inner_script,
       ktc::test::env_path("KTCACHE_CLI"), cache.root, k_inner_key, image},
      options);

  std::string temp;
  bool started = ktc::robust::wait_until(
      [&] { return !(temp = inner_temp_dir(cache.root)).empty(); },
      std::chrono::seconds(20));
  if (!started) {
    ::kill(inner, SIGKILL);
  }
  REQUIRE_MESSAGE(started, "the inner store never reached its rename: ",
                  ktc::test::read_file(options.output_path));
  pid_t named = static_cast<pid_t>(std::stol(temp.substr(temp.rfind('-') + 1)));
  CAPTURE(temp);
  if (::kill(named, 0) == 0 || errno != ESRCH) {
    ktc::robust::wait_status(inner);
    ktc::robust::skip_run("PID " + std::to_string(named) +
                          " of the inner store is alive in this namespace "
                          "too; the sweep would spare it for that alone");
    return;
  }

  MESSAGE("the inner store's temp directory names PID ", named,
          ", dead out here");
  // Storing another key runs the sweep, which finds the inner temp
  // directory's PID dead but its key locked.
  REQUIRE(ktc::robust::store_with_core(cache.root, k_outer_key, image) == "");
  CHECK(ktc::test::exists(cache.root + "/" + temp + "/metadata.json"));

  int status = ktc::robust::wait_status(inner);
  CHECK_MESSAGE(ktc::robust::describe_status(status) == "exit 0",
                ktc::test::read_file(options.output_path));
  std::string sha = ktc::robust::TwoVersions::image_sha256(image);
  ktc::robust::check_whole(cache.root, k_inner_key, sha);
  ktc::robust::check_whole(cache.root, k_outer_key, sha);
  CHECK(ktc::robust::leftovers(cache.root).empty());
}

TEST_SUITE_END();

int main(int argc, char** argv) {
  std::string reason;
  try {
    auto probe = ktc::test::run_process(
        {"unshare", "--pid", "--fork", "--mount-proc", "true"});
    if (probe.exit_code != 0) {
      reason = "unshare --pid --fork --mount-proc: " + probe.err;
    }
  } catch (const std::exception& error) {
    reason = error.what();
  }
  if (!reason.empty()) {
    std::fprintf(stderr, "skipped: %s\n", reason.c_str());
    return ktc::robust::k_exit_skipped;
  }
  return ktc::robust::run_doctest(argc, argv);
}
