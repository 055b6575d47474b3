// The btf command: the .BTF bytes of a vmlinux or an entry, written to a
// file, through the entry's BTF sidecar when the vmlinux is in the cache.

#include "cli_commands.hpp"
#include "cli_output.hpp"

#include <CLI/CLI.hpp>
#include <boost/json/object.hpp>
#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace ktc::cli {
namespace {

// As the library decides (ktc_btf_read()): a '/' or an existing
// non-directory makes a file.
bool names_a_file(const std::string& argument) {
  struct stat st;
  return argument.find('/') != std::string::npos ||
         (::stat(argument.c_str(), &st) == 0 && !S_ISDIR(st.st_mode));
}

// A missing file is bad input (exit 2), unlike a key without an entry.
bool is_missing_file(const std::string& argument) {
  struct stat st;
  return argument.find('/') != std::string::npos &&
         ::stat(argument.c_str(), &st) != 0;
}

// The sidecar the library would use for `file_or_key`, or empty when it
// would use none: only a vmlinux inside the cache root has one.
std::string expected_sidecar(ktc_cache* cache, const std::string& file_or_key) {
  std::string vmlinux;
  if (names_a_file(file_or_key)) {
    vmlinux = file_or_key;
  } else {
    ktc_entry* raw = nullptr;
    if (ktc_lookup(&raw, cache, file_or_key.c_str(), 0) != KTC_OK) {
      return {}; // ktc_btf_read() reports why
    }
    EntryPtr entry(raw);
    ktc_entry_info info = KTC_ENTRY_INFO_INIT;
    if (ktc_entry_get_info(entry.get(), &info) != KTC_OK ||
        info.vmlinux_path == nullptr) {
      return {};
    }
    vmlinux = info.vmlinux_path;
  }
  return ktc_path_inside_cache_root(cache, vmlinux.c_str()) == 1
             ? vmlinux + ".btf"
             : std::string();
}

struct FileIdentity {
  dev_t device = 0;
  ino_t inode = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileIdentity&) const = default;
};

std::optional<FileIdentity> identity(const std::string& path) {
  struct stat st;
  if (path.empty() || ::lstat(path.c_str(), &st) != 0) {
    return std::nullopt;
  }
  return FileIdentity{st.st_dev, st.st_ino,
                      static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
                          st.st_mtim.tv_nsec};
}

// Writes `data` to `output` through a temporary file beside it and a
// rename, so that OUT is either untouched or complete.
void write_output(const std::string& output, const void* data, size_t size) {
  size_t slash = output.rfind('/');
  std::string directory = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : output.substr(0, slash);
  std::string base =
      slash == std::string::npos ? output : output.substr(slash + 1);
  std::string temp = fmt::format("{}/.{}.tmp-{}", directory, base, ::getpid());
  auto fail = [&](int error, std::string_view what) {
    ::unlink(temp.c_str());
    return CliError(
        k_exit_environment,
        fmt::format("cannot {} {}: {}", what, output, std::strerror(error)));
  };
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) {
    throw CliError(k_exit_environment, fmt::format("cannot create {}: {}", temp,
                                                   std::strerror(errno)));
  }
  const auto* bytes = static_cast<const char*>(data);
  size_t done = 0;
  while (done < size) {
    ssize_t wrote = ::write(fd, bytes + done, size - done);
    if (wrote < 0 && errno == EINTR) {
      continue;
    }
    if (wrote < 0) {
      int error = errno;
      ::close(fd);
      throw fail(error, "write");
    }
    done += static_cast<size_t>(wrote);
  }
  if (::fsync(fd) != 0) {
    int error = errno;
    ::close(fd);
    throw fail(error, "sync");
  }
  if (::close(fd) != 0) {
    throw fail(errno, "write");
  }
  if (::rename(temp.c_str(), output.c_str()) != 0) {
    throw fail(errno, "rename a temporary file to");
  }
}

struct LibraryMemoryDeleter {
  void operator()(void* data) const { ktc_free(data); }
};

} // namespace

int run_btf(ktc_cache* cache, const BtfOptions& options) {
  const std::string& input = options.file_or_key;
  std::string expected =
      options.no_sidecar ? std::string() : expected_sidecar(cache, input);
  std::optional<FileIdentity> before = identity(expected);

  void* raw_data = nullptr;
  size_t size = 0;
  char* raw_sidecar = nullptr;
  int status = ktc_btf_read(
      &raw_data, &size, &raw_sidecar, cache, input.c_str(),
      options.no_sidecar ? uint32_t{KTC_BTF_NO_SIDECAR} : uint32_t{0});
  if (status == KTC_E_NOTFOUND && is_missing_file(input)) {
    throw CliError(k_exit_usage, one_line(ktc_error_message()));
  }
  check(status);
  std::unique_ptr<void, LibraryMemoryDeleter> data(raw_data);
  LibraryString sidecar(raw_sidecar);

  std::string_view state = "none";
  if (sidecar) {
    std::optional<FileIdentity> after = identity(sidecar.get());
    state = before && after && *before == *after ? "reused" : "written";
  } else if (!expected.empty()) {
    state = "unwritable";
  }

  write_output(options.output, data.get(), size);

  if (options.json) {
    boost::json::object result;
    result["input"] = input;
    result["output"] = options.output;
    result["bytes"] = static_cast<uint64_t>(size);
    if (sidecar) {
      result["sidecar"] = sidecar.get();
    } else {
      result["sidecar"] = nullptr;
    }
    result["sidecar_state"] = state;
    print_json(result);
    return k_exit_ok;
  }
  std::string note;
  if (state == "reused" || state == "written") {
    note = fmt::format("sidecar {} {}", sidecar.get(), state);
  } else if (state == "unwritable") {
    note = fmt::format("sidecar {} could not be written", expected);
  } else if (options.no_sidecar) {
    note = "no sidecar (--no-sidecar)";
  } else {
    note = "no sidecar (the vmlinux is outside the cache)";
  }
  fmt::print(stderr, "ktcache: {} of BTF from {}; {}\n", format_size(size),
             input, note);
  fmt::print("{}\n", options.output);
  return k_exit_ok;
}

CLI::App* add_btf(CLI::App& app, BtfOptions& options) {
  auto* command = app.add_subcommand(
      "btf", "Write the BTF (.BTF section) of a vmlinux or an entry to a file");
  command
      ->add_option("KEY-OR-FILE", options.file_or_key,
                   "The key of a cached kernel, or a vmlinux file")
      ->required();
  command->add_option("-o,--output", options.output, "The file to write")
      ->required()
      ->type_name("OUT");
  command->add_flag("--no-sidecar", options.no_sidecar,
                    "Neither read nor write the BTF sidecar; extract from "
                    "the vmlinux");
  command->add_flag("--json", options.json,
                    "Print one JSON document (see below)");
  command->footer(
      "KEY-OR-FILE is a file when it contains a '/' or names an existing "
      "file,\nelse a cache key. OUT is replaced atomically (a temporary "
      "file beside\nit, then a rename); its path is the last line of "
      "stdout, and a note on\nstderr gives the size and what became of the "
      "sidecar.\n\n"
      "For a vmlinux inside the cache root the bytes are kept in the "
      "sidecar\n<vmlinux>.btf: reused while it is not older than the "
      "vmlinux and starts\nwith the BTF magic, else extracted and written "
      "again. A sidecar that\ncannot be written (a read-only cache) is a "
      "warning only. Nothing is\never written beside a vmlinux outside the "
      "cache.\n\n"
      "Exit: 1 when no entry has KEY, the entry has no vmlinux, or the "
      "vmlinux\nhas no .BTF section (built without CONFIG_DEBUG_INFO_BTF); "
      "2 when FILE\ndoes not exist or is not ELF, or KEY is invalid; 3 when "
      "the ELF file or\nthe entry is corrupt; 6 when OUT cannot be written "
      "or another I/O error\noccurs.\n\n"
      "--json prints {input, output, bytes, sidecar (its path, or null), "
      "sidecar_state\n(\"reused\", \"written\", \"unwritable\" or "
      "\"none\")}.");
  return command;
}

} // namespace ktc::cli
