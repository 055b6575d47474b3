// The resolve command: the entry directory a kernel identifier names.

#include "cli_commands.hpp"
#include "cli_output.hpp"
#include "cli_progress.hpp"

#include <CLI/CLI.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <fmt/format.h>

namespace ktc::cli {

CLI::App* add_resolve(CLI::App& app, ResolveOptions& options) {
  auto* command = app.add_subcommand(
      "resolve", "Print the entry directory a kernel identifier names");
  command->add_option_function<std::string>(
      "ID", [&options](const std::string& value) { options.id = value; },
      "A version (6.14.2), series (6.14), RC (6.15-rc3), "
      "git+URL#REF, git:URL@REF, a path, a cache key or "
      "<scheme>:...");
  command->add_flag("--no-build", options.no_build,
                    "Exit 1 on a miss instead of building");
  command->add_flag("--newest", options.newest,
                    "The newest usable entry (narrowed by ID when it is a "
                    "version or series); never builds");
  command
      ->add_option_function<std::string>(
          "--kconfig-hash",
          [&options](const std::string& value) {
            options.kconfig_hash = value;
          },
          "--newest: skip entries whose recorded kconfig hash differs")
      ->type_name("HASH");
  add_build_options(command, options.build);
  command->add_flag("--json", options.json,
                    "Print one JSON document (see below)");
  command->footer(
      "A cache key is looked up and never builds. A version, series, RC, git "
      "source,\nplugin spec or source tree is resolved to its key: a hit is "
      "printed at once,\na miss is built first (as `ktcache build` would; "
      "with --no-build it exits 1).\nA path to an entry directory, or to a "
      "file in one, names that entry. A range\nnames several kernels and is "
      "refused (see `ktcache build A..B`).\n\n--newest is what a harness "
      "asks when told nothing: the newest valid entry of\nthe arch whose "
      "image and ELF vmlinux are present and, with --kconfig-hash,\nwhose "
      "kconfig is not stale.\n\nPrints the entry directory as the last line. "
      "--json prints the entry object\n(as lookup --json) plus \"resolve\": "
      "{id, kind, key, outcome (hit, built,\nwaited, built_not_stored, "
      "newest), entry_dir, build (the build report or\nnull)}. Exit: 1 on a "
      "miss that is not built, 2 for a malformed identifier.");
  return command;
}

int run_resolve(ktc_cache* cache, const ResolveOptions& options) {
  if (!options.newest && !options.id) {
    throw CliError(k_exit_usage,
                   "resolve needs an ID (or --newest for the newest entry)");
  }
  CancelOnSignals cancel_on_signals;
  ProgressView progress(options.quiet);
  ktc_hooks hooks = progress.hooks();
  BuildArguments arguments(options.build, &hooks);
  ktc_build_options build = arguments.get();

  ktc_resolve_options resolve = KTC_RESOLVE_OPTIONS_INIT;
  resolve.id = options.id ? options.id->c_str() : nullptr;
  resolve.arch = build.arch;
  resolve.kconfig_hash =
      options.kconfig_hash ? options.kconfig_hash->c_str() : nullptr;
  resolve.build = &build;
  if (options.no_build) {
    resolve.flags |= KTC_RESOLVE_NO_BUILD;
  }
  if (options.newest) {
    resolve.flags |= KTC_RESOLVE_NEWEST;
  }
  ktc_entry* raw_entry = nullptr;
  char* raw_report = nullptr;
  int status = ktc_resolve(&raw_entry, cache, &resolve, &raw_report);
  progress.finish();
  check(status);
  EntryPtr entry(raw_entry);
  LibraryString report_text(raw_report);
  boost::json::object report =
      boost::json::parse(report_text.get()).as_object();
  if (options.json) {
    boost::json::object result;
    if (entry) {
      result = entry_json(entry.get(), std::nullopt).as_object();
    }
    result["resolve"] = report;
    print_json(result);
    return k_exit_ok;
  }
  if (!entry) {
    // A dirty tree built but not stored: its image, as build prints it.
    const auto& build_report = report.at("build");
    const auto* image = build_report.is_object()
                            ? build_report.as_object().if_contains("image")
                            : nullptr;
    fmt::print("{}\n", image != nullptr && image->is_string()
                           ? std::string(image->as_string())
                           : std::string());
    return k_exit_ok;
  }
  if (!options.quiet) {
    fmt::print(stderr, "ktcache: {} {}: {}\n",
               std::string_view(report.at("outcome").as_string()),
               options.id.value_or("(newest)"),
               std::string_view(report.at("key").as_string()));
  }
  fmt::print("{}\n", entry_info(entry.get()).path);
  return k_exit_ok;
}

} // namespace ktc::cli
