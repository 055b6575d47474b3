#include "cache/cache.hpp"
#include "cache/lock.hpp"
#include "test_util.hpp"
#include "util/fs.hpp"

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

using ktc::cache::Cache;
using ktc::cache::CacheOptions;
using ktc::cache::FileLock;
using ktc::cache::LockMode;
using ktc::test::exists;
using ktc::test::list_dir;
using ktc::test::TempDir;

namespace {

constexpr const char* k_nonce = "0123456789abcdef";

Cache open_cache(const std::string& root) {
  CacheOptions options;
  options.root = root;
  auto cache = Cache::open(std::move(options));
  REQUIRE_MESSAGE(cache.ok(), cache.error().message);
  return std::move(cache).value();
}

// The PID of a child that has exited and been reaped: surely dead (until
// the kernel wraps around its PID space, which a test run does not).
pid_t dead_pid() {
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  return child;
}

// A directory with a nested file, as a crashed store leaves it.
std::string make_debris(const std::string& root, const std::string& name) {
  std::string path = root + "/" + name;
  REQUIRE(ktc::fs::make_dirs(path + "/sub").ok());
  ktc::test::write_file(path + "/sub/file", "debris");
  ktc::test::write_file(path + "/metadata.json", "{}");
  return path;
}

FileLock hold(Cache& cache, const std::string& key, LockMode mode) {
  ktc::cache::LockRequest request;
  request.path = cache.lock_path(key);
  request.what = "test holder";
  request.mode = mode;
  auto lock = ktc::cache::acquire_lock(request);
  REQUIRE_MESSAGE(lock.ok(), lock.error().message);
  return std::move(lock).value();
}

} // namespace

TEST_SUITE_BEGIN("CacheSweep");

TEST_CASE("sweep removes the temp dir of a dead store whose lock is free") {
  TempDir dir;
  std::string root = dir / "cache";
  Cache cache = open_cache(root);
  pid_t dead = dead_pid();

  SUBCASE("the lock file exists and is free") {
    hold(cache, "k", LockMode::exclusive).release();
    std::string debris =
        make_debris(root, fmt::format(".tmp-k-{}-{}", k_nonce, dead));
    CHECK(cache.sweep_orphans() == 1);
    CHECK_FALSE(exists(debris));
  }
  SUBCASE("the key was never locked") {
    std::string debris =
        make_debris(root, fmt::format(".tmp-k-{}-{}", k_nonce, dead));
    CHECK(cache.sweep_orphans() == 1);
    CHECK_FALSE(exists(debris));
    // Probing a lock never creates one.
    CHECK_FALSE(exists(root + "/.locks"));
  }
  SUBCASE("ktstr's shape, without a nonce") {
    std::string debris = make_debris(root, fmt::format(".tmp-k-{}", dead));
    CHECK(cache.sweep_orphans() == 1);
    CHECK_FALSE(exists(debris));
  }
  SUBCASE("a key with dashes in it") {
    std::string debris = make_debris(
        root, fmt::format(".tmp-6.14.2-tarball-x86_64-kc1a2b3c4d-{}-{}",
                          k_nonce, dead));
    CHECK(cache.sweep_orphans() == 1);
    CHECK_FALSE(exists(debris));
  }
  SUBCASE("a double dash before the PID parses as a positive PID") {
    std::string debris = make_debris(root, fmt::format(".tmp-k--{}", dead));
    CHECK(cache.sweep_orphans() == 1);
    CHECK_FALSE(exists(debris));
  }
}

TEST_CASE("sweep keeps the temp dir of a live store") {
  TempDir dir;
  std::string root = dir / "cache";
  Cache cache = open_cache(root);
  std::string ours =
      make_debris(root, fmt::format(".tmp-k-{}-{}", k_nonce, ::getpid()));
  std::string init = make_debris(root, fmt::format(".tmp-k-{}-1", k_nonce));
  CHECK(cache.sweep_orphans() == 0);
  CHECK(exists(ours + "/sub/file"));
  CHECK(exists(init + "/sub/file"));
}

TEST_CASE("sweep keeps a dead PID's temp dir while its key is locked") {
  TempDir dir;
  std::string root = dir / "cache";
  Cache cache = open_cache(root);
  pid_t dead = dead_pid();
  std::string debris =
      make_debris(root, fmt::format(".tmp-k-{}-{}", k_nonce, dead));

  SUBCASE("exclusively, as a store in another PID namespace would") {
    FileLock lock = hold(cache, "k", LockMode::exclusive);
    CHECK(cache.sweep_orphans() == 0);
    CHECK(exists(debris + "/sub/file"));
    lock.release();
    CHECK(cache.sweep_orphans() == 1);
    CHECK_FALSE(exists(debris));
  }
  SUBCASE("shared") {
    FileLock lock = hold(cache, "k", LockMode::shared);
    CHECK(cache.sweep_orphans() == 0);
    CHECK(exists(debris + "/sub/file"));
  }
  SUBCASE("by the caller, who names the key it holds") {
    FileLock lock = hold(cache, "k", LockMode::exclusive);
    CHECK(cache.sweep_orphans("k") == 1);
    CHECK_FALSE(exists(debris));
  }
}

TEST_CASE("sweep keeps names whose PID suffix is not a usable PID") {
  TempDir dir;
  std::string root = dir / "cache";
  Cache cache = open_cache(root);
  std::vector<std::string> kept;

  for (std::string name : {
           ".tmp-k-abc",               // non-numeric
           ".tmp-k-",                  // empty
           ".tmp-nodash",              // no dash at all
           ".tmp-k-0",                 // 0 would probe the process group
           ".tmp-k-+123",              // a sign is not a digit
           ".tmp-k-12a",               // digits then junk
           ".tmp-k-99999999999",       // too long for a PID
           ".tmp-k-4294967297",        // beyond pid_t
           ".tmp-k-2147483648",        // just beyond INT_MAX
           ".trash-k-0123456789abcdef" // a nonce where the PID belongs
       }) {
    kept.push_back(make_debris(root, name));
  }
  CHECK(cache.sweep_orphans() == 0);
  for (const auto& path : kept) {
    CAPTURE(path);
    CHECK(exists(path + "/sub/file"));
  }
}

TEST_CASE("sweep leaves a regular file with a temp dir's name") {
  TempDir dir;
  std::string root = dir / "cache";
  REQUIRE(::mkdir(root.c_str(), 0777) == 0);
  Cache cache = open_cache(root);
  std::string file = fmt::format("{}/.tmp-k-{}-{}", root, k_nonce, dead_pid());
  ktc::test::write_file(file, "a file, not a store");
  CHECK(cache.sweep_orphans() == 0);
  CHECK(ktc::test::read_file(file) == "a file, not a store");
}

TEST_CASE("sweep never follows a symbolic link with a temp dir's name") {
  TempDir dir;
  std::string root = dir / "cache";
  REQUIRE(::mkdir(root.c_str(), 0777) == 0);
  Cache cache = open_cache(root);
  std::string target = make_debris(dir.path(), "precious");
  std::string link = fmt::format("{}/.tmp-k-{}-{}", root, k_nonce, dead_pid());
  REQUIRE(::symlink(target.c_str(), link.c_str()) == 0);
  cache.sweep_orphans();
  CHECK(ktc::test::read_file(target + "/sub/file") == "debris");
  CHECK(exists(target + "/metadata.json"));
}

TEST_CASE("sweep puts back an entry a crashed replacement moved aside") {
  TempDir dir;
  std::string root = dir / "cache";
  Cache cache = open_cache(root);
  pid_t dead = dead_pid();
  std::string aside =
      make_debris(root, fmt::format(".swap-k-{}-{}", k_nonce, dead));
  ktc::test::write_file(aside + "/bzImage", "old entry");

  SUBCASE("the key is missing: the old entry is restored") {
    CHECK(cache.sweep_orphans() == 0);
    CHECK_FALSE(exists(aside));
    CHECK(ktc::test::read_file(root + "/k/bzImage") == "old entry");
    CHECK(ktc::test::read_file(root + "/k/sub/file") == "debris");
  }
  SUBCASE("the key is present: the aside copy is removed") {
    REQUIRE(::mkdir((root + "/k").c_str(), 0777) == 0);
    ktc::test::write_file(root + "/k/bzImage", "new entry");
    CHECK(cache.sweep_orphans() == 1);
    CHECK_FALSE(exists(aside));
    CHECK(ktc::test::read_file(root + "/k/bzImage") == "new entry");
  }
  SUBCASE("a live process's aside copy is left alone") {
    std::string live =
        make_debris(root, fmt::format(".swap-j-{}-{}", k_nonce, ::getpid()));
    cache.sweep_orphans();
    CHECK(exists(live + "/sub/file"));
    CHECK_FALSE(exists(root + "/j"));
  }
}

TEST_CASE("sweep removes the trash of a dead clean") {
  TempDir dir;
  std::string root = dir / "cache";
  Cache cache = open_cache(root);
  std::string dead_trash =
      make_debris(root, fmt::format(".trash-k-{}-{}", k_nonce, dead_pid()));
  std::string live_trash =
      make_debris(root, fmt::format(".trash-j-{}-{}", k_nonce, ::getpid()));
  CHECK(cache.sweep_orphans() == 1);
  CHECK_FALSE(exists(dead_trash));
  CHECK(exists(live_trash + "/sub/file"));
}

TEST_CASE("sweep ignores everything else at the root") {
  TempDir dir;
  std::string root = dir / "cache";
  Cache cache = open_cache(root);
  pid_t dead = dead_pid();
  std::vector<std::string> kept = {
      make_debris(root, fmt::format("entry-{}", dead)),
      make_debris(root, fmt::format(".other-k-{}", dead)),
      make_debris(root, fmt::format(".tmpk-{}", dead)),
      make_debris(root, fmt::format("tmp-k-{}", dead)),
  };
  hold(cache, "k", LockMode::shared).release();
  std::string removed =
      make_debris(root, fmt::format(".tmp-k-{}-{}", k_nonce, dead));
  CHECK(cache.sweep_orphans() == 1);
  CHECK_FALSE(exists(removed));
  for (const auto& path : kept) {
    CAPTURE(path);
    CHECK(exists(path + "/sub/file"));
  }
  CHECK(list_dir(root + "/.locks") == std::vector<std::string>{"k.lock"});
}

TEST_CASE("sweep of a missing root does nothing") {
  TempDir dir;
  Cache cache = open_cache(dir / "cache");
  CHECK(cache.sweep_orphans() == 0);
  CHECK_FALSE(exists(dir / "cache"));
}

TEST_CASE("store sweeps orphans of other keys") {
  TempDir dir;
  std::string root = dir / "cache";
  Cache cache = open_cache(root);
  pid_t dead = dead_pid();
  std::string other =
      make_debris(root, fmt::format(".tmp-other-{}-{}", k_nonce, dead));
  std::string same = make_debris(root, fmt::format(".tmp-k-{}", dead));
  ktc::test::write_file(dir / "image", "image");
  ktc::cache::StoreRequest request;
  request.image = dir / "image";
  REQUIRE(cache.store("k", request).ok());
  CHECK_FALSE(exists(other));
  CHECK_FALSE(exists(same));
  CHECK(list_dir(root) == std::vector<std::string>{".locks", "k"});
}

TEST_CASE("clean sweeps orphans too") {
  TempDir dir;
  std::string root = dir / "cache";
  Cache cache = open_cache(root);
  std::string trash =
      make_debris(root, fmt::format(".trash-k-{}-{}", k_nonce, dead_pid()));
  ktc::cache::CleanRequest request;
  auto items = cache.clean(request);
  REQUIRE(items.ok());
  CHECK(items->empty());
  CHECK_FALSE(exists(trash));
}

TEST_SUITE_END();
