// The build command: a kernel from the cache, or built and stored.

#include "cli_commands.hpp"
#include "cli_output.hpp"
#include "cli_progress.hpp"

#include <CLI/CLI.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace ktc::cli {
namespace {

std::vector<const char*> c_strings(const std::vector<std::string>& items) {
  std::vector<const char*> result;
  result.reserve(items.size());
  for (const auto& item : items) {
    result.push_back(item.c_str());
  }
  return result;
}

const char* c_str_or_null(const std::optional<std::string>& text) {
  return text ? text->c_str() : nullptr;
}

bool is_sha256(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c)) &&
                  !std::isupper(static_cast<unsigned char>(c));
         });
}

} // namespace

BuildArguments::BuildArguments(const BuildOptions& options,
                               const ktc_hooks* hooks)
    : m_kconfig_files(c_strings(options.kconfig_files)),
      m_kconfig_settings(c_strings(options.kconfig_settings)),
      m_make_args(c_strings(options.make_args)) {
  m_build.arch = c_str_or_null(options.arch);
  m_build.base_config = c_str_or_null(options.base_config);
  m_build.kconfig_files = m_kconfig_files.data();
  m_build.kconfig_file_count = m_kconfig_files.size();
  m_build.kconfig_settings = m_kconfig_settings.data();
  m_build.kconfig_setting_count = m_kconfig_settings.size();
  m_build.make_args = m_make_args.data();
  m_build.make_arg_count = m_make_args.size();
  m_build.jobs = options.jobs;
  m_build.cross_compile = c_str_or_null(options.cross_compile);
  m_build.cc = c_str_or_null(options.cc);
  m_build.llvm = c_str_or_null(options.llvm);
  m_build.strip_policy = c_str_or_null(options.strip_policy);
  m_build.hooks = hooks;
  if (options.force) {
    m_build.flags |= KTC_BUILD_FORCE;
  }
  if (options.store_dirty) {
    m_build.flags |= KTC_BUILD_STORE_DIRTY;
  }
  if (options.no_strip) {
    m_build.flags |= KTC_BUILD_NO_STRIP;
  }
  if (options.keep_tree) {
    m_build.flags |= KTC_BUILD_KEEP_TREE;
  }
}

void add_build_options(CLI::App* command, BuildOptions& options) {
  command
      ->add_option_function<std::string>(
          "--base-config",
          [&options](const std::string& value) { options.base_config = value; },
          "A make target (defconfig, the default; tinyconfig; ...) or a "
          "config file (a path with a '/')")
      ->type_name("TARGET-OR-FILE");
  command
      ->add_option("--kconfig", options.kconfig_files,
                   "A config fragment merged over the base (repeatable)")
      ->type_name("FILE");
  command
      ->add_option("--kconfig-set", options.kconfig_settings,
                   "One setting, CONFIG_X=y or X=n (repeatable, after the "
                   "files)")
      ->type_name("X=Y");
  command
      ->add_option_function<std::string>(
          "--arch",
          [&options](const std::string& value) { options.arch = value; },
          "x86_64 or aarch64 (default: the host's)")
      ->type_name("ARCH");
  command->add_option("-j,--jobs", options.jobs,
                      "make -j (default: the CPUs this process may use)");
  auto* strip = command
                    ->add_option_function<std::string>(
                        "--strip",
                        [&options](const std::string& value) {
                          options.strip_policy = value;
                        },
                        "The vmlinux's strip policy (default: btf)")
                    ->type_name("POLICY");
  command
      ->add_flag("--no-strip", options.no_strip, "Store the vmlinux as built")
      ->excludes(strip);
  command->add_flag("--store-dirty", options.store_dirty,
                    "Store a build of a dirty or non-git local tree "
                    "(recorded as dirty)");
  command
      ->add_option_function<std::string>(
          "--cross-compile",
          [&options](const std::string& value) {
            options.cross_compile = value;
          },
          "CROSS_COMPILE prefix (default: $CROSS_COMPILE)")
      ->type_name("PREFIX");
  command
      ->add_option_function<std::string>(
          "--cc", [&options](const std::string& value) { options.cc = value; },
          "The C compiler (make CC=...)")
      ->type_name("CC");
  command
      ->add_option_function<std::string>(
          "--llvm",
          [&options](const std::string& value) { options.llvm = value; },
          "Build with LLVM (make LLVM=1, LLVM=-14, ...)")
      ->type_name("V");
  command
      ->add_option("--make-arg", options.make_args,
                   "An extra make argument (repeatable; part of the key)")
      ->type_name("ARG");
}

CLI::App* add_build(CLI::App& app, BuildOptions& options) {
  auto* command = app.add_subcommand(
      "build", "Get a kernel from the cache, or build, strip and store it");
  command
      ->add_option("SPEC", options.spec,
                   "tarball:VERSION|FILE|URL, a bare version (6.12.3, 6.12, "
                   "6.15-rc3), a range START..END, git:URL@REF, local:PATH, "
                   "or a plugin's scheme")
      ->required();
  add_build_options(command, options);
  command->add_flag("--force", options.force,
                    "Build and replace the entry even when it is cached");
  command->add_flag("--keep-tree", options.keep_tree,
                    "Keep the build directory of a fetched source");
  command
      ->add_option_function<std::string>(
          "--sha256",
          [&options](const std::string& value) { options.sha256 = value; },
          "The tarball's expected SHA-256 (tarball specs)")
      ->type_name("HEX");
  command->add_flag("--json", options.json,
                    "Print one JSON document (see below)");
  command->footer(
      "A cached kernel is returned at once; a missing one is acquired (a "
      "tarball is\ndownloaded, verified and extracted; a git commit is "
      "fetched; a local tree is\nbuilt in place), configured (the base, then "
      "the fragments, then olddefconfig;\nevery fragment line that does not "
      "survive is named), built with make,\nstripped and stored. Processes "
      "asking for the same missing kernel share one\nbuild. Fetched sources "
      "build under <root>/.build/; the log is kept at\n"
      "<root>/.build/logs/<key>.log and its tail is printed on failure.\n\n"
      "Prints the entry's directory as the last line of stdout (a dirty "
      "local tree\nthat is not stored: the image's path). --json prints the "
      "entry object (as\nlookup --json) plus \"outcome\" (hit, built, "
      "waited, built_not_stored) and\n\"build\" (key, log, dropped_kconfig, "
      "inputs, seconds per stage).\nExit: 8 when the build fails, 9 when it "
      "needs the network offline, 130\nwhen interrupted.\n\n"
      "A series (6.12) builds the newest 6.12.y that releases.json lists, "
      "read\nthrough the copy in <root>/.releases.json (as `list --range`); "
      "a series it\nno longer lists is found by probing the mirror.\n\n"
      "A range START..END builds each stable and longterm release in it "
      "(see\n`list --range`) in turn (\"[i/N] ktcache build V\" on stderr), "
      "goes on past a\nfailure and prints each entry's directory as it is "
      "built; the options apply\nto each. It fails at the end with \"build "
      "range A..B: F/N version(s) failed:\nV, ...\" and the exit code of "
      "the first failure. --json then prints one\narray of {version, ok, "
      "entry (the object above, or null), error (or null)}.");
  return command;
}

namespace {

// One kernel built (or found): what `build --json` prints for it, and the
// directory (or a dirty tree's image) the plain form prints.
struct Built {
  boost::json::object result;
  std::string printed;
};

// Gets one kernel; throws CliError on failure.
Built build_one(ktc_cache* cache,
                const BuildOptions& options,
                const std::string& spec) {
  CancelOnSignals cancel_on_signals;
  ProgressView progress(options.quiet);
  ktc_hooks hooks = progress.hooks();
  BuildArguments arguments(options, &hooks);
  ktc_build_options build = arguments.get();
  build.spec = spec.c_str();

  ktc_entry* raw_entry = nullptr;
  char* raw_report = nullptr;
  int status = ktc_ensure(&raw_entry, cache, &build, &raw_report);
  progress.finish();
  check(status);
  EntryPtr entry(raw_entry);
  LibraryString report_text(raw_report);
  boost::json::object report =
      boost::json::parse(report_text.get()).as_object();
  std::string outcome(report.at("outcome").as_string());
  Built built;
  if (entry) {
    built.result = entry_json(entry.get(), std::nullopt).as_object();
  }
  built.result["outcome"] = outcome;
  built.result["build"] = report;
  if (!options.json && !options.quiet) {
    if (outcome == "hit") {
      fmt::print(stderr, "ktcache: cached kernel found: {}\n",
                 std::string_view(report.at("key").as_string()));
    } else if (outcome == "waited") {
      fmt::print(stderr, "ktcache: built by another process: {}\n",
                 std::string_view(report.at("key").as_string()));
    } else if (outcome == "built") {
      fmt::print(stderr, "ktcache: kernel built and cached: {}\n",
                 std::string_view(report.at("key").as_string()));
    }
  }
  if (entry) {
    built.printed = entry_info(entry.get()).path;
  } else {
    const auto& image = report.at("image");
    built.printed = image.is_string() ? std::string(image.as_string()) : "";
  }
  return built;
}

// The versions a range names (ktc_range_expand()); nullopt when `spec` is
// not a range (or not an identifier at all: ktc_ensure() then says why).
std::optional<std::vector<std::string>>
range_versions(ktc_cache* cache, const std::string& spec) {
  ktc_kernel_id* raw_id = nullptr;
  if (ktc_kernel_id_parse(&raw_id, spec.c_str()) != KTC_OK) {
    return std::nullopt;
  }
  ktc_kernel_id_info info = KTC_KERNEL_ID_INFO_INIT;
  int status = ktc_kernel_id_get_info(raw_id, &info);
  bool is_range = status == KTC_OK && info.kind == KTC_KERNEL_ID_RANGE;
  ktc_kernel_id_free(raw_id);
  check(status);
  if (!is_range) {
    return std::nullopt;
  }
  fmt::print(stderr, "ktcache: expanding kernel range {}\n", spec);
  char* raw = nullptr;
  check(ktc_range_expand(&raw, cache, spec.c_str(), 0));
  LibraryString expanded(raw);
  boost::json::value result = boost::json::parse(expanded.get());
  std::vector<std::string> versions;
  for (const auto& version : result.at("versions").as_array()) {
    versions.emplace_back(version.as_string());
  }
  return versions;
}

std::string joined(const std::vector<std::string>& items) {
  std::string text;
  for (const auto& item : items) {
    text += (text.empty() ? "" : ", ") + item;
  }
  return text;
}

// Builds every version of a range in turn, past failures; the exit code
// is the first failure's.
int build_range(ktc_cache* cache,
                const BuildOptions& options,
                const std::vector<std::string>& versions) {
  fmt::print(stderr, "ktcache: range expanded to {} kernel(s): {}\n",
             versions.size(), joined(versions));
  boost::json::array results;
  std::vector<std::string> failed;
  int first_failure = k_exit_ok;
  for (size_t i = 0; i < versions.size(); ++i) {
    const std::string& version = versions[i];
    fmt::print(stderr, "ktcache: [{}/{}] ktcache build {}\n", i + 1,
               versions.size(), version);
    boost::json::object item;
    item["version"] = version;
    try {
      Built built = build_one(cache, options, version);
      item["ok"] = true;
      item["entry"] = std::move(built.result);
      item["error"] = nullptr;
      if (!options.json) {
        fmt::print("{}\n", built.printed);
        std::fflush(stdout);
      }
    } catch (const CliError& error) {
      fmt::print(stderr, "ktcache: build {}: {}\n", version, error.what());
      item["ok"] = false;
      item["entry"] = nullptr;
      item["error"] = error.what();
      failed.push_back(version);
      if (first_failure == k_exit_ok) {
        first_failure = error.exit_code();
      }
      if (error.exit_code() == k_exit_cancelled) {
        // An interrupt stops the whole range, not just this build.
        results.push_back(std::move(item));
        break;
      }
    }
    results.push_back(std::move(item));
  }
  if (options.json) {
    print_json(results);
  }
  if (failed.empty()) {
    return k_exit_ok;
  }
  throw CliError(first_failure,
                 fmt::format("build range {}: {}/{} version(s) failed: {}",
                             options.spec, failed.size(), versions.size(),
                             joined(failed)));
}

} // namespace

int run_build(ktc_cache* cache, const BuildOptions& options) {
  std::string spec = options.spec;
  if (auto versions = range_versions(cache, spec)) {
    if (options.sha256) {
      throw CliError(k_exit_usage,
                     "--sha256 names one tarball; it does not apply to a "
                     "range");
    }
    return build_range(cache, options, *versions);
  }
  if (options.sha256) {
    if (!is_sha256(*options.sha256)) {
      throw CliError(k_exit_usage,
                     fmt::format("--sha256 '{}' is not 64 lower-case hex "
                                 "digits",
                                 *options.sha256));
    }
    spec += "#sha256=" + *options.sha256;
  }
  Built built = build_one(cache, options, spec);
  if (options.json) {
    print_json(built.result);
  } else {
    fmt::print("{}\n", built.printed);
  }
  return k_exit_ok;
}

} // namespace ktc::cli
