// Start-up of the CLI: `ktcache --cache-dir R lookup KEY` of a hit as a
// whole process against `cat R/KEY/metadata.json`, both run through
// posix_spawn and waited for.

#include "bench_common.hpp"

#include <fmt/core.h>

#include <stdexcept>

namespace {

using namespace ktc::bench;

constexpr const char* k_usage =
    "usage: ktc-bench-startup --ktcache PATH [--runs N] [--json]\n"
    "                         [--json-file FILE] [--tmpdir DIR] [--keep]\n"
    "Times N runs (default 200) of `ktcache --cache-dir R lookup KEY` of a\n"
    "hit against `cat R/KEY/metadata.json`, alternating, in ms per process.\n";

constexpr const char* k_key = "6.14.2-tarball-x86_64-kc0123456789ab";

void run(int argc, char** argv) {
  Args args(argc, argv, k_usage);
  args.handle_help();
  auto ktcache = args.value("--ktcache");
  long runs = args.number_or("--runs", 200);
  bool json = args.flag("--json");
  std::string json_file = args.value_or("--json-file", "");
  std::string tmpdir = args.value_or("--tmpdir", "/tmp");
  bool keep = args.flag("--keep");
  args.finish();
  if (!ktcache) {
    throw std::runtime_error(std::string("--ktcache is required\n") + k_usage);
  }

  ScratchDir scratch(tmpdir, "ktc-bench-startup");
  if (keep) {
    scratch.keep();
  }
  std::string root = scratch / "cache";
  store_sample_entry(root, scratch.path(), k_key);

  std::vector<std::string> lookup = {*ktcache, "--cache-dir", root, "lookup",
                                     k_key};
  std::vector<std::string> cat = {
      find_program("cat"), fmt::format("{}/{}/metadata.json", root, k_key)};
  std::vector<std::function<Sample()>> variants = {
      [&] { return spawn_timed(lookup); },
      [&] { return spawn_timed(cat); },
  };
  // A few untimed runs load both programs and their libraries into the
  // page cache.
  for (int i = 0; i < 5; ++i) {
    for (const auto& variant : variants) {
      variant();
    }
  }
  std::vector<std::vector<Sample>> samples = run_interleaved(runs, variants);

  Report report("startup",
                "`ktcache lookup KEY` of a hit vs `cat metadata.json`, whole "
                "processes via posix_spawn",
                "ms");
  report.param("runs", std::to_string(runs));
  report.param("ktcache", json_string(*ktcache));
  report.add_timed("ktcache_lookup", "ktcache --cache-dir R lookup KEY",
                   samples[0], 1e3);
  report.add_timed("cat", "cat R/KEY/metadata.json", samples[1], 1e3);
  report.add_timed_ratio("ktcache lookup / cat", "ktcache_lookup", "cat", {});
  report.emit(json, json_file);
}

} // namespace

int main(int argc, char** argv) {
  return run_main("ktc-bench-startup", [&] { run(argc, argv); });
}
