// Listing a cache of many entries through ktc_list_entries against the
// floor of reading every entry's metadata.json in a readdir loop.

#include "bench_common.hpp"

#include <fmt/core.h>
#include <ktcache/ktcache.h>

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace {

using namespace ktc::bench;

constexpr const char* k_usage =
    "usage: ktc-bench-list [--entries N] [--reps N] [--json]\n"
    "                      [--json-file FILE] [--tmpdir DIR] [--keep]\n"
    "Times ktc_list_entries over N entries (default 10000) against a\n"
    "readdir loop that reads each entry's metadata.json, in ms per list.\n";

std::string entry_key(long index) {
  return fmt::format("6.14.{}-tarball-x86_64-kc{:012x}", index % 100,
                     static_cast<unsigned long>(index));
}

// One real store, then copies of its directory under other keys: listing
// cost depends on the number of entries, not on how they differ.
void fill_cache(const std::string& root,
                const std::string& scratch,
                long entries) {
  std::string first = entry_key(0);
  store_sample_entry(root, scratch, first);
  for (long i = 1; i < entries; ++i) {
    std::filesystem::copy(root + "/" + first, root + "/" + entry_key(i),
                          std::filesystem::copy_options::recursive);
  }
}

Sample time_list(ktc_cache* cache, long expected) {
  Stopwatch watch;
  ktc_list* list = nullptr;
  check_status(ktc_list_entries(&list, cache), "list");
  size_t count = ktc_list_count(list);
  ktc_list_free(list);
  Sample elapsed = watch.elapsed();
  if (count != static_cast<size_t>(expected)) {
    throw std::runtime_error(
        fmt::format("listed {} entries, expected {}", count, expected));
  }
  return elapsed;
}

Sample time_floor(const std::string& root, long expected) {
  static char buffer[65536];
  Stopwatch watch;
  DIR* dir = ::opendir(root.c_str());
  if (dir == nullptr) {
    throw std::runtime_error(
        fmt::format("cannot open {}: {}", root, std::strerror(errno)));
  }
  long count = 0;
  while (dirent* ent = ::readdir(dir)) {
    if (ent->d_name[0] == '.') {
      continue;
    }
    std::string name = fmt::format("{}/metadata.json", ent->d_name);
    int fd = ::openat(::dirfd(dir), name.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::read(fd, buffer, sizeof buffer) <= 0) {
      ::closedir(dir);
      throw std::runtime_error(
          fmt::format("cannot read {}: {}", name, std::strerror(errno)));
    }
    ::close(fd);
    ++count;
  }
  ::closedir(dir);
  Sample elapsed = watch.elapsed();
  if (count != expected) {
    throw std::runtime_error(
        fmt::format("read {} entries, expected {}", count, expected));
  }
  return elapsed;
}

void run(int argc, char** argv) {
  Args args(argc, argv, k_usage);
  args.handle_help();
  long entries = args.number_or("--entries", 10000);
  long reps = args.number_or("--reps", 15);
  bool json = args.flag("--json");
  std::string json_file = args.value_or("--json-file", "");
  std::string tmpdir = args.value_or("--tmpdir", "/tmp");
  bool keep = args.flag("--keep");
  args.finish();

  ScratchDir scratch(tmpdir, "ktc-bench-list");
  if (keep) {
    scratch.keep();
  }
  std::string root = scratch / "cache";
  fill_cache(root, scratch.path(), entries);

  CacheHandle cache(root);
  std::vector<std::function<Sample()>> variants = {
      [&] { return time_list(cache.get(), entries); },
      [&] { return time_floor(root, entries); },
  };
  for (const auto& variant : variants) {
    variant();
  }
  std::vector<std::vector<Sample>> samples = run_interleaved(reps, variants);

  Report report("list",
                fmt::format("ktc_list_entries of {} entries vs reading their "
                            "metadata.json in a readdir loop",
                            entries),
                "ms");
  report.param("entries", std::to_string(entries));
  report.param("reps", std::to_string(reps));
  report.add_timed("list", "ktc_list_entries + ktc_list_free", samples[0], 1e3);
  report.add_timed("floor", "readdir + open/read/close each", samples[1], 1e3);
  report.add_timed_ratio("list / floor", "list", "floor", 2.0);
  report.emit(json, json_file);
}

} // namespace

int main(int argc, char** argv) {
  return run_main("ktc-bench-list", [&] { run(argc, argv); });
}
