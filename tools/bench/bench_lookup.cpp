// Lookup of a hit through the public C API, plain and leased, against the
// floor of reading that entry's metadata.json with open + read + close.

#include "bench_common.hpp"

#include <fmt/core.h>
#include <ktcache/ktcache.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace {

using namespace ktc::bench;

constexpr const char* k_usage =
    "usage: ktc-bench-lookup [--reps N] [--iterations N] [--json]\n"
    "                        [--json-file FILE] [--tmpdir DIR] [--keep]\n"
    "                        [--only lookup|lookup_lease|floor]\n"
    "Times ktc_lookup of a hit (plain and KTC_LOOKUP_LEASE) against\n"
    "open+read+close of the entry's metadata.json, in ns per operation.\n"
    "--only runs one of them alone, for a profiler.\n";

constexpr const char* k_key = "6.14.2-tarball-x86_64-kc0123456789ab";

Sample time_lookups(ktc_cache* cache, long iterations, uint32_t flags) {
  Stopwatch watch;
  for (long i = 0; i < iterations; ++i) {
    ktc_entry* entry = nullptr;
    int status = ktc_lookup(&entry, cache, k_key, flags);
    if (status != KTC_OK) {
      check_status(status, "lookup");
    }
    ktc_entry_free(entry);
  }
  return watch.elapsed();
}

// The floor: the least a lookup could do, read the metadata. One read
// suffices: the file is far smaller than the buffer, and a short read of a
// regular file means its end.
Sample time_reads(const std::string& path, long iterations) {
  static char buffer[65536];
  Stopwatch watch;
  for (long i = 0; i < iterations; ++i) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::read(fd, buffer, sizeof buffer) <= 0) {
      throw std::runtime_error(
          fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    }
    ::close(fd);
  }
  return watch.elapsed();
}

// One variant alone, for a profiler (perf record, valgrind
// --tool=callgrind) to see nothing else.
void run_only(const std::string& name,
              const std::vector<std::function<Sample()>>& variants,
              long reps,
              long iterations) {
  const std::vector<std::string> names = {"lookup", "lookup_lease", "floor"};
  auto it = std::find(names.begin(), names.end(), name);
  if (it == names.end()) {
    throw std::runtime_error("--only wants lookup, lookup_lease or floor");
  }
  std::vector<double> cpu;
  for (long rep = 0; rep < reps; ++rep) {
    cpu.push_back(variants[static_cast<size_t>(it - names.begin())]().cpu);
  }
  fmt::print("{}: {:.0f} ns/op (median cpu)\n", name,
             median(cpu) * 1e9 / static_cast<double>(iterations));
}

void run(int argc, char** argv) {
  Args args(argc, argv, k_usage);
  args.handle_help();
  long reps = args.number_or("--reps", 11);
  long iterations = args.number_or("--iterations", 20000);
  bool json = args.flag("--json");
  std::string json_file = args.value_or("--json-file", "");
  std::string tmpdir = args.value_or("--tmpdir", "/tmp");
  bool keep = args.flag("--keep");
  auto only = args.value("--only");
  args.finish();

  ScratchDir scratch(tmpdir, "ktc-bench-lookup");
  if (keep) {
    scratch.keep();
  }
  std::string root = scratch / "cache";
  store_sample_entry(root, scratch.path(), k_key);
  std::string metadata = fmt::format("{}/{}/metadata.json", root, k_key);

  CacheHandle cache(root);
  std::vector<std::function<Sample()>> variants = {
      [&] { return time_lookups(cache.get(), iterations, 0); },
      [&] { return time_lookups(cache.get(), iterations, KTC_LOOKUP_LEASE); },
      [&] { return time_reads(metadata, iterations); },
  };
  if (only) {
    run_only(*only, variants, reps, iterations);
    return;
  }
  // One untimed pass warms the dentry and page caches and the allocator.
  for (const auto& variant : variants) {
    variant();
  }
  std::vector<std::vector<Sample>> samples = run_interleaved(reps, variants);

  Report report("lookup", "ktc_lookup of a hit vs reading its metadata.json",
                "ns/op");
  report.param("reps", std::to_string(reps));
  report.param("iterations_per_rep", std::to_string(iterations));
  double scale = 1e9 / static_cast<double>(iterations);
  report.add_timed("lookup", "ktc_lookup plain", samples[0], scale);
  report.add_timed("lookup_lease", "ktc_lookup KTC_LOOKUP_LEASE", samples[1],
                   scale);
  report.add_timed("floor", "open+read+close metadata.json", samples[2], scale);
  report.add_timed_ratio("lookup / floor", "lookup", "floor", 2.0);
  report.add_timed_ratio("lookup lease / floor", "lookup_lease", "floor", {});
  report.emit(json, json_file);
}

} // namespace

int main(int argc, char** argv) {
  return run_main("ktc-bench-lookup", [&] { run(argc, argv); });
}
