#include "build/pipeline.hpp"

#include "build/kconfig_fragment.hpp"
#include "build/kernel_id.hpp"
#include "build/releases.hpp"
#include "build/toolchain.hpp"
#include "cache/key.hpp"
#include "cache/lock.hpp"
#include "elf/arch.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/process.hpp"
#include "util/sha256.hpp"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <ctime>
#include <deque>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

namespace ktc::build {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t k_tail_lines = 40;

// The environment every kernel build sees, so that two builds of the same
// inputs produce the same banner and the same `uname -v`.
const std::vector<std::pair<std::string, std::string>> k_pinned_environment = {
    {"KBUILD_BUILD_TIMESTAMP", "1970-01-01 00:00:00 UTC"},
    {"KBUILD_BUILD_USER", "ktcache"},
    {"KBUILD_BUILD_HOST", "ktcache"},
    {"KBUILD_BUILD_VERSION", "1"},
    {"LC_ALL", "C"},
};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

unsigned usable_cpus() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    int count = CPU_COUNT(&set);
    if (count > 0) {
      return static_cast<unsigned>(count);
    }
  }
  unsigned count = std::thread::hardware_concurrency();
  return count > 0 ? count : 1;
}

std::string random_nonce() {
  static std::atomic<unsigned> counter{0};
  std::random_device random;
  return fmt::format("{:08x}{:x}", random(), counter.fetch_add(1));
}

std::string utc_now() {
  std::time_t now = std::time(nullptr);
  std::tm parts{};
  ::gmtime_r(&now, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

bool is_regular_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::optional<std::string>
identity_value(const plugin::SourceDescription& description,
               std::string_view name) {
  for (const auto& [field, value] : description.identity) {
    if (field == name) {
      return value;
    }
  }
  return std::nullopt;
}

// VERSION.PATCHLEVEL.SUBLEVEL plus EXTRAVERSION from the tree's Makefile.
std::optional<std::string> makefile_version(const std::string& tree) {
  auto text = fs::read_file(AT_FDCWD, tree + "/Makefile");
  if (!text) {
    return std::nullopt;
  }
  std::map<std::string, std::string, std::less<>> values;
  std::string_view rest = *text;
  for (int line_count = 0; !rest.empty() && line_count < 40; ++line_count) {
    auto newline = rest.find('\n');
    std::string_view line = rest.substr(0, newline);
    rest = newline == std::string_view::npos ? std::string_view{}
                                             : rest.substr(newline + 1);
    auto equals = line.find('=');
    if (equals == std::string_view::npos) {
      continue;
    }
    auto trim = [](std::string_view text) {
      while (!text.empty() &&
             std::isspace(static_cast<unsigned char>(text.front()))) {
        text.remove_prefix(1);
      }
      while (!text.empty() &&
             std::isspace(static_cast<unsigned char>(text.back()))) {
        text.remove_suffix(1);
      }
      return text;
    };
    std::string_view name = trim(line.substr(0, equals));
    if (name == "VERSION" || name == "PATCHLEVEL" || name == "SUBLEVEL" ||
        name == "EXTRAVERSION") {
      values.emplace(std::string(name),
                     std::string(trim(line.substr(equals + 1))));
    }
  }
  if (!values.contains("VERSION") || !values.contains("PATCHLEVEL")) {
    return std::nullopt;
  }
  std::string version = values["VERSION"] + "." + values["PATCHLEVEL"];
  if (!values["SUBLEVEL"].empty()) {
    version += "." + values["SUBLEVEL"];
  }
  return version + values["EXTRAVERSION"];
}

struct BaseConfig {
  std::optional<std::string> target;
  std::optional<std::string> file;
  std::string file_sha256;
};

Result<BaseConfig> base_config_of(const std::string& text) {
  BaseConfig base;
  if (text.find('/') == std::string::npos) {
    bool valid =
        !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
                 c == '-' || c == '.';
        });
    if (!valid) {
      return make_error(Status::invalid,
                        "base config '{}' is neither a make target (such as "
                        "defconfig or tinyconfig) nor a file path (which "
                        "contains a '/')",
                        text);
    }
    base.target = text;
    return base;
  }
  KTC_TRY_ASSIGN(std::string path, fs::absolute_path(text));
  if (!is_regular_file(path)) {
    return make_error(Status::not_found, "base config {}: no such regular file",
                      path);
  }
  KTC_TRY_ASSIGN(std::string content, fs::read_file(AT_FDCWD, path));
  base.file = path;
  base.file_sha256 = sha256_hex(content);
  return base;
}

struct Fragments {
  std::vector<KconfigSetting> settings;
  boost::json::array files; // {"file", "sha256"}
  boost::json::array lines; // every requested line, in order
};

Result<Fragments> read_fragments(const BuildRequest& request) {
  Fragments fragments;
  for (const auto& file : request.kconfig_files) {
    KTC_TRY_ASSIGN(std::string path, fs::absolute_path(file));
    auto content = fs::read_file(AT_FDCWD, path);
    if (!content) {
      return make_error(
          content.error().status == Status::io ? Status::not_found
                                               : content.error().status,
          "kconfig fragment {}: {}", path, content.error().message);
    }
    KTC_TRY_ASSIGN(
        auto settings,
        parse_fragment(*content, fmt::format("kconfig fragment {}", path)));
    boost::json::object record;
    record["file"] = path;
    record["sha256"] = sha256_hex(*content);
    fragments.files.push_back(std::move(record));
    for (auto& setting : settings) {
      fragments.settings.push_back(std::move(setting));
    }
  }
  for (const auto& text : request.kconfig_settings) {
    KTC_TRY_ASSIGN(KconfigSetting setting, parse_setting(text));
    fragments.settings.push_back(std::move(setting));
  }
  for (const auto& setting : fragments.settings) {
    fragments.lines.emplace_back(setting.line);
  }
  return fragments;
}

boost::json::value optional_json(const std::optional<std::string>& text) {
  return text ? boost::json::value(*text) : boost::json::value(nullptr);
}

// Everything that changes what the build produces. Its hash is the key's
// "kc" part; it is recorded in metadata as `inputs`.
boost::json::object build_inputs(const plugin::SourceDescription& description,
                                 const elf::Arch& arch,
                                 const BaseConfig& base,
                                 const Fragments& fragments,
                                 const Toolchain& toolchain,
                                 const BuildRequest& request) {
  boost::json::object source;
  source["plugin"] = description.plugin->name();
  for (const auto& [name, value] : description.identity) {
    source[name] = optional_json(value);
  }
  boost::json::object base_json;
  if (base.target) {
    base_json["target"] = *base.target;
  } else {
    base_json["file"] = *base.file;
    base_json["sha256"] = base.file_sha256;
  }
  boost::json::array make_args;
  for (const auto& argument : request.make_args) {
    make_args.emplace_back(argument);
  }
  boost::json::object inputs;
  inputs["source"] = std::move(source);
  inputs["arch"] = arch.name;
  inputs["base_config"] = std::move(base_json);
  inputs["kconfig_files"] = fragments.files;
  inputs["kconfig"] = fragments.lines;
  inputs["compiler"] = toolchain.compiler;
  inputs["linker"] = toolchain.linker;
  inputs["pahole"] = toolchain.pahole;
  inputs["make"] = toolchain.make;
  inputs["make_args"] = std::move(make_args);
  inputs["cross_compile"] = optional_json(request.cross_compile);
  inputs["cc"] = optional_json(request.cc);
  inputs["llvm"] = optional_json(request.llvm);
  return inputs;
}

// The key's hash of the inputs. Where a source came from (a URL, a tree's
// path, a tarball's file name) is recorded but not hashed: the same
// commit or the same tarball bytes fetched from a mirror, or the same
// commit checked out twice, is the same kernel.
std::string inputs_hash(const boost::json::object& inputs) {
  boost::json::object hashed = inputs;
  auto& source = hashed["source"].as_object();
  for (std::string_view location : {"url", "tree", "digest_name"}) {
    source.erase(location);
  }
  return sha256_hex(boost::json::serialize(hashed)).substr(0, 8);
}

// The hash of the requested kconfig lines alone: what kconfig status
// compares (ktcache's kconfig_hash).
std::string fragment_hash(const Fragments& fragments) {
  Sha256 hash;
  for (const auto& setting : fragments.settings) {
    hash.update(setting.line);
    hash.update("\n");
  }
  return hash.finish_hex().substr(0, 16);
}

std::vector<std::string> make_command(const elf::Arch& arch,
                                      const BuildRequest& request) {
  std::vector<std::string> command{"make",
                                   fmt::format("ARCH={}", arch.kernel_arch)};
  if (request.cross_compile) {
    command.push_back("CROSS_COMPILE=" + *request.cross_compile);
  }
  if (request.cc) {
    command.push_back("CC=" + *request.cc);
  }
  if (request.llvm) {
    command.push_back("LLVM=" + *request.llvm);
  }
  for (const auto& argument : request.make_args) {
    command.push_back(argument);
  }
  return command;
}

std::string join_command(const std::vector<std::string>& argv) {
  std::string text;
  for (const auto& argument : argv) {
    if (!text.empty()) {
      text += ' ';
    }
    text += argument;
  }
  return text;
}

// Removing a built kernel tree (tens of thousands of files, a GB) can take
// minutes on a slow disk, and nobody waits for it: the tree is renamed to
// <build_root>/trash-<nonce> and removed by a detached `rm -rf` that holds
// a flock on it (through flock(1)), so that the next build's sweep can tell
// an abandoned trash directory from one being deleted. Without those tools
// the tree is removed here.
void discard_tree(const std::string& build_root, const std::string& tree) {
  std::string trash = fmt::format("{}/trash-{}", build_root, random_nonce());
  if (::rename(tree.c_str(), trash.c_str()) == 0) {
    auto spawned = process::spawn_detached(
        {"flock", "-x", trash, "rm", "-rf", "--one-file-system", "--", trash});
    if (spawned) {
      return;
    }
    KTC_LOG(debug, "Removing {} in place: {}", trash, spawned.error().message);
  } else {
    trash = tree;
  }
  auto removed = fs::remove_tree(trash);
  if (!removed) {
    KTC_LOG(warn, "Cannot remove the build directory {}: {}", trash,
            removed.error().message);
  }
}

// A build step that failed, with what a person needs to see why.
struct StepFailure {
  std::string step;
  int exit_status = 0;
  std::deque<std::string> tail;
};

class Builder {
public:
  Builder(cache::Cache& cache,
          plugin::Registry& registry,
          const BuildRequest& request,
          const elf::Arch& arch,
          BuildReport& report)
      : m_cache(cache), m_registry(registry), m_request(request), m_arch(arch),
        m_report(report) {}

  // The build itself: returns the stored entry, or none when the build is
  // not to be stored. A failed step is recorded in *failure.
  Result<std::optional<cache::Entry>>
  run(const plugin::SourceDescription& description,
      const Fragments& fragments,
      const BaseConfig& base,
      bool dirty,
      std::optional<StepFailure>* failure);

  ~Builder() { remove_work_dir(); }

private:
  Result<void> run_make(const std::vector<std::string>& argv,
                        const std::string& tree,
                        std::string_view stage,
                        std::optional<StepFailure>* failure);
  Result<void> configure(const std::string& tree,
                         const Fragments& fragments,
                         const BaseConfig& base,
                         std::optional<StepFailure>* failure);
  bool cancelled() const {
    return m_request.hooks.cancelled && m_request.hooks.cancelled();
  }
  void progress(std::string_view stage, uint64_t done, uint64_t total) const {
    if (m_request.hooks.progress) {
      m_request.hooks.progress(stage, done, total);
    }
  }
  void remove_work_dir() {
    if (!m_work_dir.empty() && !m_request.keep_tree) {
      discard_tree(m_cache.root() + "/.build", m_work_dir);
      m_work_dir.clear();
    }
  }

  cache::Cache& m_cache;
  plugin::Registry& m_registry;
  const BuildRequest& m_request;
  const elf::Arch& m_arch;
  BuildReport& m_report;
  std::string m_work_dir;
  Fd m_log;
  uint64_t m_expected_lines = 0;
};

Result<void> Builder::run_make(const std::vector<std::string>& argv,
                               const std::string& tree,
                               std::string_view stage,
                               std::optional<StepFailure>* failure) {
  if (cancelled()) {
    return make_error(Status::cancelled, "the build of {} was cancelled",
                      m_report.key);
  }
  std::string header =
      fmt::format("### {} (in {})\n", join_command(argv), tree);
  if (m_log) {
    (void)!::write(m_log.get(), header.data(), header.size());
  }
  KTC_LOG(info, "Running {} in {}", join_command(argv), tree);
  process::LoggedCommand command;
  command.argv = argv;
  command.cwd = tree;
  command.environment = k_pinned_environment;
  command.log_fd = m_log ? m_log.get() : -1;
  command.tail_lines = k_tail_lines;
  command.cancelled = m_request.hooks.cancelled;
  uint64_t lines = 0;
  bool building = stage == "build";
  command.on_line = [&](std::string_view) {
    ++lines;
    if (building) {
      progress(stage, lines, std::max(m_expected_lines, lines));
    }
  };
  progress(stage, 0, building ? m_expected_lines : 0);
  auto outcome = process::run_logged(command);
  if (!outcome) {
    if (outcome.error().status == Status::not_found) {
      return make_error(Status::not_found,
                        "{}: cannot run {}: install it (Debian: apt-get "
                        "install make)",
                        m_report.key, argv[0]);
    }
    return std::move(outcome).error();
  }
  if (outcome->cancelled) {
    return make_error(Status::cancelled,
                      "the build of {} was cancelled during {}", m_report.key,
                      stage);
  }
  if (outcome->exit_status != 0) {
    *failure = StepFailure{join_command(argv), outcome->exit_status,
                           std::move(outcome->tail)};
    return make_error(Status::build, "{} failed", join_command(argv));
  }
  return {};
}

Result<void> Builder::configure(const std::string& tree,
                                const Fragments& fragments,
                                const BaseConfig& base,
                                std::optional<StepFailure>* failure) {
  std::vector<std::string> make = make_command(m_arch, m_request);
  std::string config_path = tree + "/.config";
  if (base.target) {
    auto argv = make;
    argv.push_back(*base.target);
    KTC_TRY(run_make(argv, tree, "configure", failure));
  } else {
    ::unlink(config_path.c_str());
    KTC_TRY(fs::copy_file_to(*base.file, config_path));
  }
  if (fragments.settings.empty()) {
    return {};
  }
  KTC_TRY_ASSIGN(std::string config, fs::read_file(AT_FDCWD, config_path));
  std::string merged = merge_fragment(config, fragments.settings);
  std::string temp = config_path + ".ktcache-" + random_nonce();
  {
    Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
    if (!fd) {
      return errno_error(errno, temp);
    }
    if (::write(fd.get(), merged.data(), merged.size()) !=
        static_cast<ssize_t>(merged.size())) {
      int error = errno;
      ::unlink(temp.c_str());
      return errno_error(error, temp);
    }
  }
  if (::rename(temp.c_str(), config_path.c_str()) != 0) {
    int error = errno;
    ::unlink(temp.c_str());
    return errno_error(error, config_path);
  }
  auto argv = make;
  argv.push_back("olddefconfig");
  KTC_TRY(run_make(argv, tree, "configure", failure));
  KTC_TRY_ASSIGN(std::string final_config,
                 fs::read_file(AT_FDCWD, config_path));
  m_report.dropped_kconfig = dropped_settings(final_config, fragments.settings);
  for (const auto& line : m_report.dropped_kconfig) {
    KTC_LOG(warn,
            "{}: '{}' did not survive olddefconfig (unknown to this kernel, "
            "or its dependencies are not met)",
            m_report.key, line);
  }
  return {};
}

Result<std::optional<cache::Entry>>
Builder::run(const plugin::SourceDescription& description,
             const Fragments& fragments,
             const BaseConfig& base,
             bool dirty,
             std::optional<StepFailure>* failure) {
  std::string build_root = m_cache.root() + "/.build";
  KTC_TRY(fs::make_dirs(build_root + "/logs"));
  std::string log_path = build_root + "/logs/" + m_report.key + ".log";
  {
    // The previous log's length is the best guess of this one's.
    auto previous = fs::read_file(AT_FDCWD, log_path);
    if (previous) {
      m_expected_lines = static_cast<uint64_t>(
          std::count(previous->begin(), previous->end(), '\n'));
    }
  }
  m_log =
      Fd(::open(log_path.c_str(),
                O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0666));
  if (!m_log) {
    return errno_error(errno, log_path);
  }
  m_report.log = log_path;

  bool in_place =
      (description.plugin->source_ops().flags & KTC_SOURCE_IN_PLACE) != 0;
  auto started = Clock::now();
  std::string source_dir;
  if (!in_place) {
    m_work_dir = fmt::format("{}/{}-{}-{}", build_root, m_report.key,
                             random_nonce(), ::getpid());
    KTC_TRY(fs::make_dirs(m_work_dir + "/src"));
    source_dir = m_work_dir + "/src";
  }
  progress("acquire", 0, 0);
  KTC_TRY_ASSIGN(
      std::string tree,
      plugin::acquire_source(description, source_dir, m_request.hooks));
  m_report.tree = tree;
  m_report.seconds["acquire"] = seconds_since(started);
  if (!is_regular_file(tree + "/Makefile")) {
    return make_error(Status::invalid,
                      "source {}: {} is not a kernel source tree (no "
                      "Makefile)",
                      description.spec, tree);
  }
  std::optional<std::string> version = identity_value(description, "version");
  if (!version) {
    version = makefile_version(tree);
  }

  started = Clock::now();
  KTC_TRY(configure(tree, fragments, base, failure));
  m_report.seconds["configure"] = seconds_since(started);

  started = Clock::now();
  auto argv = make_command(m_arch, m_request);
  unsigned jobs = m_request.jobs != 0 ? m_request.jobs : usable_cpus();
  argv.insert(argv.begin() + 1, fmt::format("-j{}", jobs));
  KTC_TRY(run_make(argv, tree, "build", failure));
  m_report.seconds["build"] = seconds_since(started);

  std::string image = tree + "/" + std::string(m_arch.image_path);
  if (!is_regular_file(image)) {
    std::string at_root = tree + "/" + std::string(m_arch.image_name);
    if (!is_regular_file(at_root)) {
      return make_error(Status::build,
                        "{}: the build produced no {} (looked for {} and {})",
                        m_report.key, m_arch.image_name, image, at_root);
    }
    image = at_root;
  }
  m_report.image = image;
  std::string vmlinux = tree + "/vmlinux";
  if (!is_regular_file(vmlinux)) {
    KTC_LOG(warn, "{}: the build produced no vmlinux; none is stored",
            m_report.key);
    vmlinux.clear();
  } else {
    KTC_TRY(elf::check_vmlinux_arch(vmlinux, m_arch));
  }

  if (in_place) {
    auto unchanged = plugin::recheck_source(description, tree);
    if (!unchanged) {
      KTC_LOG(warn, "{}; the build is not stored", unchanged.error().message);
      m_report.outcome = Outcome::built_not_stored;
      return std::optional<cache::Entry>{};
    }
  }
  if (dirty && !m_request.store_dirty) {
    KTC_LOG(warn,
            "{}: the tree is dirty or not under git, so the build is not "
            "stored (commit or stash the changes, or pass --store-dirty); "
            "the image is {}",
            tree, image);
    m_report.outcome = Outcome::built_not_stored;
    return std::optional<cache::Entry>{};
  }

  cache::StoreRequest store;
  store.image = image;
  store.image_name = std::string(m_arch.image_name);
  store.vmlinux = vmlinux;
  store.config = tree + "/.config";
  store.arch = std::string(m_arch.name);
  store.version = version;
  boost::json::object source = description.source;
  if (dirty) {
    source["dirty"] = true;
  }
  store.source_json = boost::json::serialize(source);
  store.kconfig_hash = fragment_hash(fragments);
  boost::json::object extra;
  extra["inputs"] = m_report.inputs;
  extra["source_plugin"] = description.source_plugin_json();
  boost::json::array dropped;
  for (const auto& line : m_report.dropped_kconfig) {
    dropped.emplace_back(line);
  }
  extra["dropped_kconfig"] = std::move(dropped);
  if (in_place && !vmlinux.empty()) {
    struct stat st;
    if (::stat(vmlinux.c_str(), &st) == 0) {
      extra["source_vmlinux_size"] = static_cast<int64_t>(st.st_size);
      extra["source_vmlinux_mtime_secs"] = static_cast<int64_t>(st.st_mtime);
    }
  }
  store.metadata_json = boost::json::serialize(extra);

  started = Clock::now();
  progress("strip", 0, 0);
  plugin::StripScratch scratch;
  if (!vmlinux.empty()) {
    plugin::StoreStripOptions strip;
    strip.no_strip = m_request.no_strip;
    strip.policy = m_request.strip_policy;
    strip.scratch_base = build_root;
    KTC_TRY(plugin::strip_for_store(m_registry, store, strip, scratch));
  }
  m_report.seconds["strip"] = seconds_since(started);
  started = Clock::now();
  progress("store", 0, 0);
  KTC_TRY_ASSIGN(cache::Entry entry, m_cache.store(m_report.key, store));
  m_report.seconds["store"] = seconds_since(started);
  m_report.outcome = Outcome::built;
  remove_work_dir();
  return std::optional<cache::Entry>(std::move(entry));
}

// <root>/.build/<key>.failed: what waiters read instead of building again.
std::string failure_path(const cache::Cache& cache, const std::string& key) {
  return cache.root() + "/.build/" + key + ".failed";
}

void record_failure(const cache::Cache& cache,
                    const BuildReport& report,
                    const Error& error,
                    const std::optional<StepFailure>& failure) {
  boost::json::object record;
  record["key"] = report.key;
  record["spec"] = report.spec;
  record["pid"] = static_cast<int64_t>(::getpid());
  record["time"] = utc_now();
  record["message"] = error.message;
  record["log"] = optional_json(report.log);
  boost::json::array tail;
  if (failure) {
    record["step"] = failure->step;
    record["exit_status"] = failure->exit_status;
    for (const auto& line : failure->tail) {
      tail.emplace_back(line);
    }
  }
  record["tail"] = std::move(tail);
  std::string path = failure_path(cache, report.key);
  std::string temp = path + ".tmp-" + random_nonce();
  std::string text = boost::json::serialize(record) + "\n";
  Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
  if (!fd || ::write(fd.get(), text.data(), text.size()) !=
                 static_cast<ssize_t>(text.size())) {
    KTC_LOG(warn, "Cannot record the failed build of {} in {}", report.key,
            path);
    ::unlink(temp.c_str());
    return;
  }
  fd.reset();
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    ::unlink(temp.c_str());
  }
}

// The failure another process recorded after `since` (while this one
// waited), as the error to report.
std::optional<Error> failure_recorded_since(const cache::Cache& cache,
                                            const std::string& key,
                                            struct timespec since) {
  std::string path = failure_path(cache, key);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return std::nullopt;
  }
  bool newer =
      st.st_mtim.tv_sec > since.tv_sec || (st.st_mtim.tv_sec == since.tv_sec &&
                                           st.st_mtim.tv_nsec >= since.tv_nsec);
  if (!newer) {
    return std::nullopt;
  }
  auto text = fs::read_file(AT_FDCWD, path);
  if (!text) {
    return std::nullopt;
  }
  boost::system::error_code parse_error;
  boost::json::value parsed = boost::json::parse(*text, parse_error);
  if (parse_error || !parsed.is_object()) {
    return make_error(Status::build,
                      "{}: the build this process waited for failed (its "
                      "record {} is unreadable)",
                      key, path);
  }
  const auto& record = parsed.as_object();
  auto string_of = [&](std::string_view name) -> std::string {
    const auto* value = record.if_contains(name);
    return value != nullptr && value->is_string()
               ? std::string(value->as_string())
               : std::string("unknown");
  };
  auto pid = record.if_contains("pid");
  return make_error(Status::build,
                    "{}: the build this process waited for (pid {}, at {}) "
                    "failed: {}",
                    key,
                    pid != nullptr && pid->is_int64() ? pid->as_int64() : -1,
                    string_of("time"), string_of("message"));
}

struct timespec wall_now() {
  struct timespec now {};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return now;
}

// Waits for `request`'s lock while watching the cancel hook, reporting
// the wait as progress. Sets *waited when the lock was not free at once.
Result<cache::FileLock> wait_for_lock(cache::LockRequest request,
                                      std::chrono::milliseconds timeout,
                                      const plugin::CallHooks& hooks,
                                      bool* waited) {
  request.timeout = std::chrono::milliseconds(0);
  auto lock = cache::acquire_lock(request);
  if (lock || lock.error().status != Status::locked) {
    return lock;
  }
  *waited = true;
  KTC_LOG(info, "Waiting: {}", lock.error().message);
  auto started = Clock::now();
  while (true) {
    if (hooks.cancelled && hooks.cancelled()) {
      return make_error(Status::cancelled, "waiting for {} was cancelled",
                        request.what);
    }
    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        Clock::now() - started);
    if (hooks.progress) {
      hooks.progress("wait", static_cast<uint64_t>(elapsed.count() / 1000), 0);
    }
    auto left = timeout - elapsed;
    request.timeout = std::clamp(left, std::chrono::milliseconds(1),
                                 std::chrono::milliseconds(500));
    lock = cache::acquire_lock(request);
    if (lock || lock.error().status != Status::locked) {
      return lock;
    }
    if (left <= std::chrono::milliseconds(500)) {
      return lock;
    }
  }
}

void sweep_work_dirs(const cache::Cache& cache) {
  std::string build_root = cache.root() + "/.build";
  Fd dir(::open(build_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) {
    return;
  }
  DIR* stream = ::fdopendir(dir.get());
  if (stream == nullptr) {
    return;
  }
  dir.release();
  std::vector<std::string> orphans;
  while (dirent* ent = ::readdir(stream)) {
    std::string_view name = ent->d_name;
    if (name == "." || name == ".." || name == "logs" ||
        ent->d_type != DT_DIR) {
      continue;
    }
    if (name.starts_with("trash-")) {
      // Free of its deleter's lock: the deleter died (or never ran).
      std::string path = build_root + "/" + std::string(name);
      Fd trash(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (trash && ::flock(trash.get(), LOCK_EX | LOCK_NB) == 0) {
        orphans.emplace_back(name);
      }
      continue;
    }
    auto dash = name.rfind('-');
    if (dash == std::string_view::npos) {
      continue;
    }
    auto nonce_dash = name.rfind('-', dash - 1);
    if (nonce_dash == std::string_view::npos || nonce_dash == 0) {
      continue;
    }
    int pid = 0;
    auto pid_text = name.substr(dash + 1);
    if (pid_text.empty() ||
        !std::all_of(pid_text.begin(), pid_text.end(), ::isdigit)) {
      continue;
    }
    pid = std::stoi(std::string(pid_text));
    if (pid <= 0 || (::kill(pid, 0) != 0 && errno == ESRCH)) {
      std::string key(name.substr(0, nonce_dash));
      // A live build in another PID namespace holds its key's build lock.
      cache::LockRequest probe;
      probe.path = cache.lock_path(key + ".build");
      probe.what = "build " + key;
      probe.mode = cache::LockMode::exclusive;
      probe.create = false;
      auto lock = cache::acquire_lock(probe);
      if (lock || lock.error().status == Status::not_found) {
        orphans.emplace_back(name);
      }
    }
  }
  ::closedir(stream);
  for (const auto& orphan : orphans) {
    KTC_LOG(info, "Removing the orphaned build directory {}/{}", build_root,
            orphan);
    (void)fs::remove_tree(build_root + "/" + orphan);
  }
}

} // namespace

std::string_view to_string(Outcome outcome) {
  switch (outcome) {
  case Outcome::hit:
    return "hit";
  case Outcome::built:
    return "built";
  case Outcome::waited:
    return "waited";
  case Outcome::built_not_stored:
    return "built_not_stored";
  }
  return "unknown";
}

boost::json::object BuildReport::to_json() const {
  boost::json::object result;
  result["key"] = key;
  result["spec"] = spec;
  result["outcome"] = to_string(outcome);
  result["entry_dir"] =
      entry ? boost::json::value(entry->path) : boost::json::value(nullptr);
  result["image"] =
      optional_json(entry ? std::optional(entry->image_path()) : image);
  result["tree"] = optional_json(tree);
  result["log"] = optional_json(log);
  boost::json::array dropped;
  for (const auto& line : dropped_kconfig) {
    dropped.emplace_back(line);
  }
  result["dropped_kconfig"] = std::move(dropped);
  result["inputs"] = inputs;
  result["seconds"] = seconds;
  return result;
}

Result<std::string> source_spec_of(std::string_view text) {
  KTC_TRY_ASSIGN(KernelId id, parse_kernel_id(text));
  return source_spec_of(id);
}

Result<std::string> source_spec_of(const KernelId& id) {
  switch (id.kind) {
  case KernelIdKind::spec:
  case KernelIdKind::git:
  case KernelIdKind::version:
  case KernelIdKind::series:
  case KernelIdKind::rc:
    return id.spec;
  case KernelIdKind::path: {
    std::error_code error;
    std::filesystem::path absolute = std::filesystem::absolute(id.path, error);
    if (error) {
      return make_error(Status::invalid, "{}: {}", id.path, error.message());
    }
    std::string tree = absolute.lexically_normal().string();
    while (tree.size() > 1 && tree.back() == '/') {
      tree.pop_back();
    }
    struct stat status {};
    if (::stat(tree.c_str(), &status) != 0) {
      return make_error(Status::not_found, "source tree {}: no such directory",
                        id.path);
    }
    if (!S_ISDIR(status.st_mode)) {
      return make_error(Status::invalid,
                        "{} is a file, not a source tree: a build needs the "
                        "kernel's source directory",
                        id.path);
    }
    return "local:" + tree;
  }
  case KernelIdKind::range:
    return make_error(Status::invalid,
                      "range {} names several kernels; build each version "
                      "(`ktcache build {}` does)",
                      id.text, id.text);
  case KernelIdKind::key:
    return make_error(Status::invalid,
                      "{} is a cache key, which names a built entry, not a "
                      "source to build (look it up instead)",
                      id.text);
  }
  return make_error(Status::internal, "kernel identifier {}", id.text);
}

namespace {

// A series ("6.12") names the newest release of it that releases.json
// lists, read through the shared copy (as ktc_releases() reads it); a
// series the list lacks (end of life) or a list that cannot be had leaves
// the plugin's spec ("tarball:6.12"), whose plugin probes the mirror.
std::string series_spec(const cache::Cache& cache,
                        plugin::Registry& registry,
                        const KernelId& id) {
  auto list = load_releases(cache, registry, ReleasesOptions{});
  if (!list) {
    KTC_LOG(info, "Series {}: releases.json cannot be had ({}); {} resolves it",
            id.version, list.error().message, id.spec);
    return id.spec;
  }
  auto newest = newest_of_series(list->releases, id.version);
  if (!newest) {
    KTC_LOG(info,
            "Series {} is not in releases.json (an end-of-life series); {} "
            "resolves it",
            id.version, id.spec);
    return id.spec;
  }
  std::string spec = "tarball:" + *newest;
  KTC_LOG(info,
          "Series {}: the newest release in releases.json is {}; "
          "building {}",
          id.version, *newest, spec);
  return spec;
}

} // namespace

Result<BuildReport> ensure(cache::Cache& cache,
                           plugin::Registry& registry,
                           const BuildRequest& request) {
  BuildReport report;
  KTC_TRY_ASSIGN(KernelId id, parse_kernel_id(request.spec));
  if (id.kind == KernelIdKind::series) {
    report.spec = series_spec(cache, registry, id);
  } else {
    KTC_TRY_ASSIGN(report.spec, source_spec_of(id));
  }
  KTC_TRY_ASSIGN(
      elf::Arch arch,
      elf::find_arch(request.arch.empty() ? cache::host_arch() : request.arch));
  KTC_TRY_ASSIGN(BaseConfig base, base_config_of(request.base_config));
  KTC_TRY_ASSIGN(Fragments fragments, read_fragments(request));
  ToolchainRequest tools{request.cross_compile, request.cc, request.llvm};
  // The memo of tool versions lives in the build area; a read-only cache
  // simply probes every time.
  (void)fs::make_dirs(cache.root() + "/.build");
  KTC_TRY_ASSIGN(Toolchain toolchain,
                 probe_toolchain(tools, cache.root() + "/.build/tools.json"));

  auto started = Clock::now();
  if (request.hooks.progress) {
    request.hooks.progress("resolve", 0, 0);
  }
  KTC_TRY_ASSIGN(plugin::SourceDescription description,
                 plugin::describe_source(registry, report.spec));
  bool in_place =
      (description.plugin->source_ops().flags & KTC_SOURCE_IN_PLACE) != 0;
  cache::FileLock source_lock;
  // Without a build to make, another process's build of the tree is not
  // worth waiting for: its entry is either there already or not.
  if (in_place && !request.no_build) {
    // One build per tree at a time; the second builder then finds the
    // first one's entry. The state is read again once the tree is ours.
    std::string tree =
        identity_value(description, "tree").value_or(description.spec);
    cache::LockRequest lock;
    lock.path = cache.lock_path("source-" + sha256_hex(tree).substr(0, 16));
    lock.what = fmt::format("source tree {}", tree);
    lock.mode = cache::LockMode::exclusive;
    bool waited = false;
    KTC_TRY_ASSIGN(source_lock, wait_for_lock(lock, request.wait_timeout,
                                              request.hooks, &waited));
    if (waited) {
      KTC_TRY_ASSIGN(description,
                     plugin::describe_source(registry, report.spec));
    }
  }
  bool dirty = identity_value(description, "dirty") == "true";
  report.inputs =
      build_inputs(description, arch, base, fragments, toolchain, request);
  std::string input_hash = inputs_hash(report.inputs);
  std::vector<std::string_view> parts(description.key_parts.begin(),
                                      description.key_parts.end());
  parts.push_back(arch.name);
  std::string suffix = "kc" + input_hash;
  parts.push_back(suffix);
  KTC_TRY_ASSIGN(report.key, cache::compose_key(parts));
  report.seconds["resolve"] = seconds_since(started);

  // A dirty tree's key names the tree, not its contents: never a hit.
  bool reusable = !dirty;
  if (!request.force && reusable) {
    auto entry = cache.lookup(report.key, false);
    if (entry) {
      report.outcome = Outcome::hit;
      report.entry = std::move(*entry);
      return report;
    }
    if (entry.error().status != Status::not_found &&
        entry.error().status != Status::corrupt) {
      return std::move(entry).error();
    }
  }
  if (request.no_build) {
    if (!reusable) {
      return make_error(Status::not_found,
                        "{} is a dirty tree, whose builds are never cache "
                        "hits (key {})",
                        report.spec, report.key);
    }
    return make_error(Status::not_found,
                      "{} is not cached (key {}); `ktcache build` builds it",
                      report.spec, report.key);
  }

  KTC_TRY(fs::make_dirs(cache.root() + "/.build"));
  struct timespec wait_started = wall_now();
  cache::LockRequest lock;
  lock.path = cache.lock_path(report.key + ".build");
  lock.what = fmt::format("the build of {}", report.key);
  lock.mode = cache::LockMode::exclusive;
  bool waited = false;
  KTC_TRY_ASSIGN(
      cache::FileLock build_lock,
      wait_for_lock(lock, request.wait_timeout, request.hooks, &waited));
  if (waited) {
    if (reusable) {
      auto entry = cache.lookup(report.key, false);
      if (entry) {
        report.outcome = Outcome::waited;
        report.entry = std::move(*entry);
        return report;
      }
    }
    if (auto failed = failure_recorded_since(cache, report.key, wait_started)) {
      return std::move(*failed);
    }
  }
  ::unlink(failure_path(cache, report.key).c_str());
  sweep_work_dirs(cache);

  std::optional<StepFailure> failure;
  Builder builder(cache, registry, request, arch, report);
  auto built = builder.run(description, fragments, base, dirty, &failure);
  if (!built) {
    Error error = std::move(built).error();
    if (error.status == Status::cancelled) {
      return error;
    }
    if (error.status == Status::network && registry.offline()) {
      // Refused because ktcache is offline: no build was tried, so no
      // failure is recorded for waiters, and the empty log goes again.
      struct stat log_status {};
      if (report.log && ::stat(report.log->c_str(), &log_status) == 0 &&
          log_status.st_size == 0) {
        ::unlink(report.log->c_str());
      }
      return error;
    }
    if (failure) {
      for (const auto& line : failure->tail) {
        KTC_LOG(error, "| {}", line);
      }
      error = make_error(Status::build,
                         "the build of {} failed: {} exited with status {}; "
                         "the log is {}",
                         report.key, failure->step, failure->exit_status,
                         report.log.value_or("not kept"));
    } else {
      error.message =
          fmt::format("the build of {} failed: {}", report.key, error.message);
    }
    record_failure(cache, report, error, failure);
    return error;
  }
  report.entry = std::move(*built);
  return report;
}

} // namespace ktc::build
