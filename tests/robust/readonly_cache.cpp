// A cache on a read-only mount still answers: lookups, list, verify and
// leases (the lock files exist from when it was written); writers fail with
// a clear error and change nothing. Needs a private mount namespace and the
// right to mount (root); exits 77 (skipped) where it cannot.

#include "robust_cli.hpp"
#include "robust_main.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

const std::string k_key = "6.1.0-debian-x86_64-kcreadonly";

std::string enter_private_mount_namespace() {
  if (::unshare(CLONE_NEWNS) != 0) {
    return std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno);
  }
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return std::string("making / private: ") + std::strerror(errno);
  }
  return {};
}

// Turns `path` into a read-only bind mount of itself.
bool make_read_only(const std::string& path) {
  return ::mount(path.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) == 0 &&
         ::mount(nullptr, path.c_str(), nullptr,
                 MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) == 0;
}

} // namespace

TEST_SUITE_BEGIN("ReadOnly");

TEST_CASE("a read-only cache answers lookups and refuses writes cleanly") {
  ktc::robust::CliCache cache;
  std::string image = cache.make_image("bzImage", 64 * 1024, 7);
  auto stored = cache.run({"store", k_key, "--image", image});
  REQUIRE_MESSAGE(stored.exit_code == 0, stored.err);
  auto before = ktc::test::list_dir(cache.root);

  if (!make_read_only(cache.root)) {
    ktc::robust::skip_run(std::string("read-only bind mount: ") +
                          std::strerror(errno));
    return;
  }

  auto plain = cache.run({"lookup", k_key});
  CHECK_MESSAGE(plain.exit_code == 0, plain.err);
  CHECK(plain.out == cache.root + "/" + k_key + "\n");

  auto leased = cache.run({"lookup", "--lease", k_key});
  CHECK_MESSAGE(leased.exit_code == 0, leased.err);

  auto listed = cache.run({"list"});
  CHECK_MESSAGE(listed.exit_code == 0, listed.err);
  CHECK(listed.out.find(k_key) != std::string::npos);

  auto verified = cache.run({"verify", k_key});
  CHECK_MESSAGE(verified.exit_code == 0, verified.err);

  auto missing = cache.run({"lookup", "no-such-key"});
  CHECK(missing.exit_code == 1);

  auto store = cache.run({"store", k_key, "--image", image});
  CHECK(store.exit_code == 6);
  CHECK_MESSAGE(store.err.find("Read-only file system") != std::string::npos,
                store.err);
  CHECK(std::count(store.err.begin(), store.err.end(), '\n') == 1);

  auto clean = cache.run({"clean", "--all"});
  CHECK(clean.exit_code != 0);

  ::umount2(cache.root.c_str(), MNT_DETACH);
  CHECK(ktc::test::list_dir(cache.root) == before);
  ktc::robust::check_whole(cache.root, k_key,
                           ktc::robust::TwoVersions::image_sha256(image));
}

int main(int argc, char** argv) {
  if (std::string reason = enter_private_mount_namespace(); !reason.empty()) {
    std::fprintf(stderr, "skipped: %s\n", reason.c_str());
    return ktc::robust::k_exit_skipped;
  }
  return ktc::robust::run_doctest(argc, argv);
}
