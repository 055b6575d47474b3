// A real disk-full store on a small tmpfs. Needs a private mount namespace
// and the right to mount (root); exits 77 (skipped) where it cannot.

#include "robust_cli.hpp"
#include "robust_main.hpp"
#include "robust_support.hpp"
#include "test_util.hpp"
#include "util/fd.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

const std::string k_key = "6.14.2-tarball-x86_64-kctmpfs";
constexpr size_t k_mib = 1u << 20;

// A tmpfs mounted for one test, detached at the end.
class Tmpfs {
public:
  Tmpfs(std::string path, const std::string& size) : m_path(std::move(path)) {
    REQUIRE(::mkdir(m_path.c_str(), 0777) == 0);
    std::string options = "size=" + size;
    REQUIRE_MESSAGE(::mount("ktcache-test", m_path.c_str(), "tmpfs", 0,
                            options.c_str()) == 0,
                    "mount tmpfs on ", m_path, ": ", std::strerror(errno));
  }
  ~Tmpfs() { ::umount2(m_path.c_str(), MNT_DETACH); }
  Tmpfs(const Tmpfs&) = delete;
  Tmpfs& operator=(const Tmpfs&) = delete;
  const std::string& path() const { return m_path; }

private:
  std::string m_path;
};

// Makes this process's mounts private to it, so the tmpfs mounts of the
// tests vanish with it. Returns why it cannot, or "".
std::string enter_private_mount_namespace() {
  if (::unshare(CLONE_NEWNS) != 0) {
    return std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno);
  }
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return std::string("making / private: ") + std::strerror(errno);
  }
  char probe[] = "/tmp/ktcache-tmpfs-probe-XXXXXX";
  if (::mkdtemp(probe) == nullptr) {
    return std::string("mkdtemp: ") + std::strerror(errno);
  }
  std::string reason;
  if (::mount("ktcache-test", probe, "tmpfs", 0, "size=1m") != 0) {
    reason = std::string("mount -t tmpfs: ") + std::strerror(errno);
  } else {
    ::umount2(probe, MNT_DETACH);
  }
  ::rmdir(probe);
  return reason;
}

// Writes zeros to a new file until the filesystem is full.
void fill_filesystem(const std::string& path) {
  ktc::Fd file(
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
  REQUIRE(file);
  std::string block(k_mib, '\0');
  for (;;) {
    ssize_t done = ::write(file.get(), block.data(), block.size());
    if (done < 0) {
      REQUIRE_MESSAGE(errno == ENOSPC, std::strerror(errno));
      return;
    }
  }
}

off_t file_size(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

} // namespace

TEST_SUITE_BEGIN("Store");

TEST_CASE("a store bigger than the free space fails naming the root and "
          "leaves nothing partial") {
  ktc::robust::CliCache cache;
  Tmpfs tmpfs(cache.dir / "fs", "8m");
  cache.root = tmpfs.path() + "/kernels";
  std::string small = cache.make_image("small.img", k_mib, 1);
  std::string big = cache.make_image("big.img", 12 * k_mib, 2);
  auto stored = cache.run({"store", k_key, "--image", small});
  REQUIRE_MESSAGE(stored.exit_code == 0, stored.err);

  for (const std::string& key : {k_key, std::string("local-0123abc-kctmpfs")}) {
    CAPTURE(key);
    auto result = cache.run({"store", key, "--image", big});
    CHECK(result.exit_code == 6);
    CHECK_MESSAGE(result.err.find("not enough free space in " + cache.root) !=
                      std::string::npos,
                  result.err);
    CHECK(ktc::robust::leftovers(cache.root).empty());
  }
  ktc::robust::check_whole(cache.root, k_key,
                           ktc::robust::TwoVersions::image_sha256(small));
  CHECK(ktc::robust::inspect(cache.root, "local-0123abc-kctmpfs").kind ==
        ktc::robust::KeyState::Kind::absent);
  CHECK(ktc::test::list_dir(cache.root) ==
        std::vector<std::string>{".locks", k_key});
}

TEST_CASE("a store whose disk fills up mid-copy fails with no space and "
          "leaves nothing partial") {
  ktc::robust::CliCache cache;
  Tmpfs tmpfs(cache.dir / "fs", "24m");
  cache.root = tmpfs.path() + "/kernels";
  std::string small = cache.make_image("small.img", k_mib, 3);
  const off_t big_size = 12 * k_mib;
  std::string big = cache.make_image("big.img", big_size, 4);
  auto stored = cache.run({"store", k_key, "--image", small});
  REQUIRE_MESSAGE(stored.exit_code == 0, stored.err);

  // The free-space check passes (about 23 MiB free for 13 needed); the copy
  // stalls after each chunk, and the first stall is when the disk fills.
  ktc::robust::SpawnOptions options;
  options.env = {{"KTCACHE_TEST_STALL", "copy:3000"}};
  options.output_path = cache.dir / "store.log";
  pid_t store =
      ktc::robust::spawn({ktc::test::env_path("KTCACHE_CLI"), "--cache-dir",
                          cache.root, "store", k_key, "--image", big},
                         options);
  off_t last_size = -1;
  auto last_change = std::chrono::steady_clock::now();
  bool stalled = ktc::robust::wait_until(
      [&] {
        off_t size = -1;
        for (const auto& name : ktc::robust::leftovers(cache.root)) {
          size =
              std::max(size, file_size(cache.root + "/" + name + "/big.img"));
        }
        auto now = std::chrono::steady_clock::now();
        if (size != last_size) {
          last_size = size;
          last_change = now;
          return false;
        }
        return size > 0 && size < big_size &&
               now - last_change > std::chrono::milliseconds(200);
      },
      std::chrono::seconds(10));
  if (!stalled) {
    ::kill(store, SIGKILL);
  }
  REQUIRE_MESSAGE(stalled, "the copy never stalled part-way; last size ",
                  last_size);
  MESSAGE("the copy stalled at ", last_size, " of ", big_size, " bytes");
  fill_filesystem(tmpfs.path() + "/filler");

  int status = ktc::robust::wait_status(store);
  std::string log = ktc::test::read_file(options.output_path);
  CHECK_MESSAGE(ktc::robust::describe_status(status) == "exit 6", log);
  CHECK_MESSAGE(log.find("No space left on device") != std::string::npos, log);
  CHECK(ktc::robust::leftovers(cache.root).empty());
  ktc::robust::check_whole(cache.root, k_key,
                           ktc::robust::TwoVersions::image_sha256(small));

  // With the space back, the same store goes through.
  REQUIRE(::unlink((tmpfs.path() + "/filler").c_str()) == 0);
  auto again = cache.run({"store", k_key, "--image", big});
  REQUIRE_MESSAGE(again.exit_code == 0, again.err);
  ktc::robust::check_whole(cache.root, k_key,
                           ktc::robust::TwoVersions::image_sha256(big));
}

TEST_SUITE_END();

int main(int argc, char** argv) {
  if (std::string reason = enter_private_mount_namespace(); !reason.empty()) {
    std::fprintf(stderr, "skipped: %s\n", reason.c_str());
    return ktc::robust::k_exit_skipped;
  }
  return ktc::robust::run_doctest(argc, argv);
}
