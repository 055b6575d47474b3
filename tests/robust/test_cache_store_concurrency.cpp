// Several processes storing and looking up one key at once.

#include "cache/cache.hpp"
#include "cache/metadata.hpp"
#include "robust_support.hpp"
#include "test_util.hpp"
#include "util/sha256.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <linux/magic.h>
#include <stdlib.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

namespace {

namespace cache = ktc::cache;
using ktc::robust::describe_status;
using ktc::robust::file_sha256;
using Clock = std::chrono::steady_clock;

constexpr int k_writers = 4;
constexpr int k_readers = 4;
constexpr auto k_race_time = std::chrono::seconds(3);
const std::string k_key = "6.14.2-tarball-x86_64-kcrace";

// Stores on a disk are slow (an fsync per file and directory), so the
// readers meet few swaps there; on tmpfs a store takes a millisecond or
// two and the race is much tighter. The cache goes to /dev/shm when it is
// a writable tmpfs, and to the scratch directory otherwise.
class RaceRoot {
public:
  explicit RaceRoot(const ktc::test::TempDir& scratch) {
    struct statfs st;
    char pattern[] = "/dev/shm/ktcache-race-XXXXXX";
    if (::statfs("/dev/shm", &st) == 0 && st.f_type == TMPFS_MAGIC &&
        ::mkdtemp(pattern) != nullptr) {
      m_owned = pattern;
      m_path = m_owned + "/cache";
    } else {
      m_path = scratch / "cache";
    }
  }
  ~RaceRoot() {
    if (!m_owned.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(m_owned, ignored);
    }
  }
  RaceRoot(const RaceRoot&) = delete;
  RaceRoot& operator=(const RaceRoot&) = delete;
  const std::string& path() const { return m_path; }

private:
  std::string m_owned;
  std::string m_path;
};

struct Race {
  ktc::test::TempDir dir;
  RaceRoot race_root{dir};
  std::string root = race_root.path();
  bool fallback = false;
  std::vector<std::string> images;
  std::set<std::string> known; // the SHA-256 of every writer's image
  Clock::time_point deadline;
  std::chrono::microseconds store_time{0}; // of one store, uncontended

  std::string log_path(std::string_view role, int index) const {
    return dir / fmt::format("{}-{}.log", role, index);
  }
};

// A child's last words, read by the parent after waitpid.
int report(const std::string& path, const std::string& text, int code) {
  std::ofstream(path) << text << '\n';
  return code;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

int run_writer(const Race& race, int index) {
  std::string log = race.log_path("writer", index);
  if (race.fallback) {
    ::setenv("KTCACHE_TEST_NO_RENAME_EXCHANGE", "1", 1);
  }
  cache::CacheOptions options;
  options.root = race.root;
  auto opened = cache::Cache::open(std::move(options));
  if (!opened) {
    return report(log, opened.error().message, 1);
  }
  if (opened->options().force_rename_fallback != race.fallback) {
    return report(log, "KTCACHE_TEST_NO_RENAME_EXCHANGE was not honoured", 1);
  }
  cache::StoreRequest request;
  request.image = race.images[static_cast<size_t>(index)];
  request.image_name = "bzImage";
  std::mt19937 engine(static_cast<unsigned>(index));
  long stores = 0;
  while (Clock::now() < race.deadline) {
    auto stored = opened->store(k_key, request);
    if (!stored) {
      return report(log,
                    fmt::format("store {} failed: {}", stores + 1,
                                stored.error().message),
                    1);
    }
    ++stores;
    // The entry lock serialises the stores; pausing two to six times as
    // long as a store takes leaves the leased readers room on any disk.
    std::this_thread::sleep_for(race.store_time * (2 + engine() % 5) +
                                std::chrono::milliseconds(1));
  }
  return report(log, fmt::format("{} stores", stores), stores > 0 ? 0 : 1);
}

int run_reader(const Race& race, int index, bool lease) {
  std::string log = race.log_path("reader", index);
  cache::CacheOptions options;
  options.root = race.root;
  auto opened = cache::Cache::open(std::move(options));
  if (!opened) {
    return report(log, opened.error().message, 1);
  }
  std::mt19937 engine(static_cast<unsigned>(100 + index));
  long found = 0;
  long busy = 0;
  long vanished = 0;
  auto fail = [&](const std::string& what) {
    return report(log, fmt::format("lookup {}: {}", found + 1, what), 1);
  };
  while (Clock::now() < race.deadline) {
    auto entry = opened->lookup(k_key, lease);
    if (!entry) {
      if (lease && entry.error().status == ktc::Status::locked) {
        ++busy;
        continue;
      }
      return fail(entry.error().message);
    }
    auto record = entry->metadata->artifact("image");
    if (!record) {
      return fail("the metadata records no image");
    }
    if (!race.known.contains(record->sha256)) {
      return fail("the metadata records an image no writer stored: " +
                  record->sha256);
    }
    std::string actual = file_sha256(entry->image_path());
    if (lease) {
      // No store swaps the entry while the lease is held, so the files
      // under its directory are the ones this lookup described.
      auto reread = cache::Metadata::parse(
          read_text(entry->path + "/metadata.json"), nullptr);
      auto reread_record = reread ? reread->artifact("image")
                                  : std::optional<ktc::cache::ArtifactRecord>();
      if (!reread_record || reread_record->sha256 != record->sha256) {
        return fail("metadata.json changed while the lease was held");
      }
      if (actual != record->sha256) {
        return fail(fmt::format("the image hashes to {}, its metadata says {}",
                                actual, record->sha256));
      }
    } else if (actual.empty()) {
      // Note: without a lease a store may replace the entry and empty the
      // old directory between the lookup and the open; leases exist for
      // this. The lookup itself must still never miss.
      ++vanished;
    } else if (!race.known.contains(actual)) {
      return fail("the image hashes to " + actual + ", which no writer stored");
    }
    ++found;
    entry->lease.release();
    // Gaps between leases let the writers get the exclusive lock.
    std::this_thread::sleep_for(std::chrono::microseconds(engine() % 2000));
  }
  return report(log,
                fmt::format("{} found, {} lease timeouts, {} images replaced "
                            "before they were opened",
                            found, busy, vanished),
                found > 0 ? 0 : 1);
}

void run_race(bool fallback) {
  Race race;
  race.fallback = fallback;
  for (int i = 0; i < k_writers; ++i) {
    std::string data =
        ktc::test::random_bytes(300 * 1024 + static_cast<size_t>(i) * 4096,
                                100 + static_cast<unsigned>(i));
    std::string path = race.dir / fmt::format("image-{}", i);
    ktc::test::write_file(path, data);
    race.images.push_back(path);
    race.known.insert(ktc::sha256_hex(data));
  }
  REQUIRE(race.known.size() == k_writers);
  // Stored before any reader starts, so no lookup may ever miss; the
  // fastest of a few stores sets the writers' pace.
  race.store_time = std::chrono::seconds(1);
  for (int i = 0; i < 3; ++i) {
    auto started = Clock::now();
    REQUIRE(ktc::robust::store_with_core(race.root, k_key, race.images[0]) ==
            "");
    race.store_time = std::min(
        race.store_time, std::chrono::duration_cast<std::chrono::microseconds>(
                             Clock::now() - started));
  }

  race.deadline = Clock::now() + k_race_time;
  std::vector<std::pair<std::string, pid_t>> children;
  for (int i = 0; i < k_writers; ++i) {
    children.emplace_back(
        fmt::format("writer {}", i),
        ktc::robust::fork_child([&] { return run_writer(race, i); }));
  }
  for (int i = 0; i < k_readers; ++i) {
    bool lease = i % 2 == 0;
    children.emplace_back(
        fmt::format("{} reader {}", lease ? "leased" : "plain", i),
        ktc::robust::fork_child([&] { return run_reader(race, i, lease); }));
  }
  std::string summary;
  for (size_t i = 0; i < children.size(); ++i) {
    const auto& [name, pid] = children[i];
    int status = ktc::robust::wait_status(pid);
    int index = static_cast<int>(i);
    std::string log = read_text(
        index < k_writers ? race.log_path("writer", index)
                          : race.log_path("reader", index - k_writers));
    summary += name + ": " + log;
    CHECK_MESSAGE(describe_status(status) == "exit 0", name, " ended with ",
                  describe_status(status), ": ", log);
  }
  MESSAGE("cache ", race.root, ", a store alone takes ",
          race.store_time.count(), " us\n", summary);

  auto state = ktc::robust::inspect(race.root, k_key);
  CHECK(state.kind == ktc::robust::KeyState::Kind::valid);
  CHECK_MESSAGE(state.verified, state.problem);
  CHECK(race.known.contains(state.image_sha256));
  CHECK(ktc::robust::leftovers(race.root).empty());
  CHECK(ktc::robust::corrupt_entries(race.root).empty());
}

} // namespace

TEST_SUITE_BEGIN("Store");

TEST_CASE("concurrent stores and lookups of one key show only whole entries "
          "and never miss") {
  SUBCASE("replacing with RENAME_EXCHANGE") {
    run_race(false);
  }
  SUBCASE("replacing with the two-rename fallback") {
    run_race(true);
  }
}

TEST_SUITE_END();
