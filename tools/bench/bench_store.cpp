// `ktcache store --no-strip` of a real boot image and vmlinux against `cp`
// of the same two files plus `sync` of the copies, so that both end
// durable. Nothing is dropped from the page cache (that cannot be done
// reliably on a shared machine): both read warm inputs.

#include "bench_common.hpp"

#include <fmt/core.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace {

using namespace ktc::bench;
namespace fs = std::filesystem;

constexpr const char* k_usage =
    "usage: ktc-bench-store --ktcache PATH --image FILE --vmlinux FILE\n"
    "                       [--reps N] [--work-dir DIR] [--json]\n"
    "                       [--json-file FILE] [--keep]\n"
    "Times `ktcache store KEY --image FILE --vmlinux FILE --no-strip`\n"
    "against `cp FILE FILE DIR/ && sync DIR/* DIR`, alternating, in\n"
    "seconds. The work directory (default: next to the image's directory)\n"
    "should be on the inputs' filesystem.\n";

constexpr const char* k_key = "6.1.0-bench-x86_64-kc0123456789ab";

struct stat stat_or_throw(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    throw std::runtime_error(
        fmt::format("cannot stat {}: {}", path, std::strerror(errno)));
  }
  return st;
}

// Reads a file to nowhere so that both contenders start from the page
// cache.
void warm(const std::string& path) {
  static char buffer[1 << 20];
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw std::runtime_error(
        fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  }
  while (::read(fd, buffer, sizeof buffer) > 0) {
  }
  ::close(fd);
}

// Untimed, between runs: writes back what the removal of the last run's
// outputs left dirty, so the next run does not pay for it.
void settle(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::syncfs(fd);
    ::close(fd);
  }
}

Sample timed(const std::vector<std::vector<std::string>>& commands) {
  Sample total;
  for (const auto& argv : commands) {
    Sample one = spawn_timed(argv);
    total.wall += one.wall;
    total.cpu += one.cpu;
  }
  return total;
}

void run(int argc, char** argv) {
  Args args(argc, argv, k_usage);
  args.handle_help();
  auto ktcache = args.value("--ktcache");
  auto image = args.value("--image");
  auto vmlinux = args.value("--vmlinux");
  long reps = args.number_or("--reps", 5);
  auto work_dir = args.value("--work-dir");
  bool json = args.flag("--json");
  std::string json_file = args.value_or("--json-file", "");
  bool keep = args.flag("--keep");
  args.finish();
  if (!ktcache || !image || !vmlinux) {
    throw std::runtime_error(
        std::string("--ktcache, --image and --vmlinux are required\n") +
        k_usage);
  }
  *image = fs::absolute(*image).string();
  *vmlinux = fs::absolute(*vmlinux).string();
  struct stat image_stat = stat_or_throw(*image);
  struct stat vmlinux_stat = stat_or_throw(*vmlinux);
  if (!work_dir) {
    work_dir = fs::path(*image).parent_path().parent_path().string();
  }

  ScratchDir scratch(*work_dir, "ktc-bench-store");
  if (keep) {
    scratch.keep();
  }
  bool same_filesystem =
      stat_or_throw(scratch.path()).st_dev == image_stat.st_dev;
  if (!same_filesystem) {
    fmt::print(stderr,
               "ktc-bench-store: warning: {} is not on the filesystem of {}\n",
               scratch.path(), *image);
  }
  std::string root = scratch / "cache";
  std::string copy_dir = scratch / "copy";
  fs::create_directories(copy_dir);
  std::string image_copy =
      copy_dir + "/" + fs::path(*image).filename().string();
  std::string vmlinux_copy =
      copy_dir + "/" + fs::path(*vmlinux).filename().string();

  std::vector<std::string> store = {
      *ktcache,  "--cache-dir", root,        "store",  k_key,
      "--image", *image,        "--vmlinux", *vmlinux, "--no-strip",
  };
  std::vector<std::string> cp = {find_program("cp"), *image, *vmlinux,
                                 copy_dir + "/"};
  // sync with arguments fsyncs exactly these files and the directory, as
  // store fsyncs its own; a bare sync would also wait for everyone else's
  // dirty data on this shared machine.
  std::vector<std::string> sync = {find_program("sync"), image_copy,
                                   vmlinux_copy, copy_dir};

  std::vector<std::function<Sample()>> variants = {
      [&] {
        Sample sample = timed({store});
        fs::remove_all(root + "/" + k_key);
        settle(scratch.path());
        return sample;
      },
      [&] {
        Sample sample = timed({cp, sync});
        fs::remove(image_copy);
        fs::remove(vmlinux_copy);
        settle(scratch.path());
        return sample;
      },
  };
  warm(*image);
  warm(*vmlinux);
  for (const auto& variant : variants) {
    variant();
  }
  std::vector<std::vector<Sample>> samples = run_interleaved(reps, variants);

  Report report("store",
                "`ktcache store --no-strip` of a boot image and vmlinux vs "
                "`cp` + `sync` of the same files",
                "s");
  report.param("reps", std::to_string(reps));
  report.param("image_bytes", std::to_string(image_stat.st_size));
  report.param("vmlinux_bytes", std::to_string(vmlinux_stat.st_size));
  report.param("work_dir", json_string(scratch.path()));
  report.param("same_filesystem", same_filesystem ? "true" : "false");
  report.add_timed("store", "ktcache store --no-strip", samples[0], 1);
  report.add_timed("cp_sync", "cp + sync FILES DIR", samples[1], 1);
  report.add(Ratio{"store / cp+sync (wall)", "store", "cp_sync", 1.2});
  report.add(Ratio{"store / cp+sync (cpu)", "store_cpu", "cp_sync_cpu", {}});
  report.emit(json, json_file);
}

} // namespace

int main(int argc, char** argv) {
  return run_main("ktc-bench-store", [&] { run(argc, argv); });
}
