// ktcache: the reference command-line front end of libktcache. It uses the
// public C API only, as any other host application would.

#include "cli_capi.hpp"
#include "cli_commands.hpp"
#include "cli_output.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <ktcache/ktcache.h>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace {

using namespace ktc::cli;

constexpr const char* k_main_footer =
    "Exit codes:\n"
    "  0  success\n"
    "  1  not found (lookup of a missing key; verify or clean of a named\n"
    "     key that does not exist; kconfig of an absent option or config)\n"
    "  2  usage error or invalid input (bad arguments, invalid key,\n"
    "     malformed JSON, missing input file)\n"
    "  3  integrity failure (verify mismatch, corrupt entry)\n"
    "  4  unverifiable (verify of an entry that records no hashes, such as\n"
    "     one ktstr wrote)\n"
    "  5  busy (a lock is held by another process; clean skipped an entry\n"
    "     in use)\n"
    "  6  environment or I/O error (cache root unresolvable, permissions,\n"
    "     no space, unsupported filesystem)\n"
    "  7  plugin error (no usable plugin for a scheme or policy, or the\n"
    "     plugin failed; the message names its file)\n"
    "  8  a kernel build failed (configure or make; the log's tail is\n"
    "     printed and the whole log kept)\n"
    "  9  network error (a download or a remote lookup failed, or it was\n"
    "     needed while offline)\n"
    "  130 interrupted (SIGINT or SIGTERM; a build's make was stopped)\n"
    "Once its COMMAND has started, `run` exits with COMMAND's status (see\n"
    "ktcache run --help).\n"
    "Every error is one line on stderr: \"ktcache: <message>\".\n"
    "\n"
    "Output: tables and results go to stdout; logs, notes and the cache root\n"
    "go to stderr. With --json a command prints one JSON document on one\n"
    "line of stdout instead of its table; its shape is stable and described\n"
    "in the command's --help.\n"
    "\n"
    "Environment:\n"
    "  KTCACHE_DIR                 the cache root (else\n"
    "                              $XDG_CACHE_HOME/ktcache/kernels, else\n"
    "                              $HOME/.cache/ktcache/kernels)\n"
    "  KTCACHE_ALLOW_NETWORK_FS=1  same as --allow-network-fs\n"
    "  KTCACHE_OFFLINE=1           same as --offline (only \"1\"; any other\n"
    "                              value is off)\n"
    "  KTCACHE_RELEASES_TTL        seconds a copy of releases.json is used\n"
    "                              before it is fetched again (default\n"
    "                              86400; not a number: the default, with a\n"
    "                              warning)\n"
    "  KTCACHE_RELEASES_URL        where releases.json is fetched (default\n"
    "                              https://www.kernel.org/releases.json)\n"
    "  KTCACHE_PLUGIN_PATH         ':'-separated plugin directories, searched\n"
    "                              after --plugin-dir and before the\n"
    "                              installed one (ignored when setuid)";

constexpr const char* k_entry_json_doc =
    "An entry object has: key, path, status (\"valid\" or \"corrupt\").\n"
    "Valid entries add: metadata (the metadata.json object, unknown fields\n"
    "included), image_path, vmlinux_path (or null), config_path (or null),\n"
    "last_used (seconds since the epoch, or null), kconfig_status\n"
    "(\"matches\", \"stale\" or \"untracked\" against --kconfig-hash; without\n"
    "it, \"untracked\" when the entry records no hash, else \"unchecked\").\n"
    "Corrupt entries add: error_kind (missing, unreadable, schema_drift,\n"
    "malformed, truncated, parse_error, image_missing, unknown) and reason.";

struct Verbosity {
  int verbose = 0;
  bool quiet = false;

  int log_level() const {
    if (quiet) {
      return KTC_LOG_ERROR;
    }
    return std::min(KTC_LOG_WARN + verbose, static_cast<int>(KTC_LOG_TRACE));
  }
};

void log_to_stderr(int level, const char* message, void* /*userdata*/) {
  static const std::map<int, const char*> k_names = {
      {KTC_LOG_ERROR, "error"}, {KTC_LOG_WARN, "warn"},
      {KTC_LOG_INFO, "info"},   {KTC_LOG_DEBUG, "debug"},
      {KTC_LOG_TRACE, "trace"},
  };
  auto it = k_names.find(level);
  fmt::print(stderr, "ktcache: {}: {}\n",
             it == k_names.end() ? "log" : it->second, message);
}

// Binds an option whose absence matters (an unset --version is NULL for
// the library, not an empty string).
CLI::Option* add_optional(CLI::App* app,
                          const std::string& name,
                          std::optional<std::string>& target,
                          const std::string& help) {
  return app
      ->add_option_function<std::string>(
          name, [&target](const std::string& value) { target = value; }, help)
      ->type_name("TEXT");
}

CLI::App* add_json_flag(CLI::App* command, bool& json) {
  command->add_flag("--json", json, "Print one JSON document (see below)");
  return command;
}

struct Commands {
  GlobalOptions global;
  ListOptions list;
  LookupOptions lookup;
  StoreOptions store;
  CleanOptions clean;
  VerifyOptions verify;
  LocksOptions locks;
  PluginsOptions plugins;
  SourceDescribeOptions source_describe;
  SourceFetchOptions source_fetch;
  BuildOptions build;
  ResolveOptions resolve;
  StripOptions strip;
  KconfigOptions kconfig;
  RunOptions run;
  BtfOptions btf;
  std::map<CLI::App*, std::function<int(ktc_cache*)>> runners;
};

void add_list(CLI::App& app, Commands& commands) {
  auto& options = commands.list;
  auto* command = app.add_subcommand("list", "List cached kernels");
  add_json_flag(command, options.json);
  auto* kconfig_hash =
      add_optional(command, "--kconfig-hash", options.kconfig_hash,
                   "Tag entries whose kconfig hash differs (stale) or is not "
                   "recorded (untracked)")
          ->type_name("HASH");
  auto* eol = command->add_flag(
      "--eol", options.eol,
      "Tag entries of a series kernel.org no longer lists (end of life)");
  command->add_flag("--refresh", options.refresh,
                    "With --eol or --range: fetch releases.json now");
  add_optional(command, "--range", options.range,
               "Print the stable and longterm releases from START to END "
               "(inclusive) instead of the entries")
      ->type_name("START..END")
      ->excludes(eol)
      ->excludes(kconfig_hash);
  command->footer(
      std::string(
          "Table columns: KEY, VERSION, SOURCE, ARCH, BUILT, SIZE, then "
          "tags. Corrupt\nentries come last. The cache root is printed on "
          "stderr.\n\n--eol tags \"(EOL)\" the entries whose version's "
          "MAJOR.MINOR releases.json no\nlonger lists. It reads the copy of "
          "releases.json kept in <root>/.releases.json\nand never waits on "
          "the network (--refresh fetches it first). Without a copy\nnothing "
          "is tagged and stderr says so; a copy older than its time to live\n"
          "(KTCACHE_RELEASES_TTL, default 86400 s) is used with a note of its "
          "age.\n\n--range START..END prints one version per line (no entry "
          "is read): every\nstable and longterm release of releases.json "
          "from START to END, oldest\nfirst, an RC below its release; the "
          "ends need not be releases. The copy is\nfetched again when older "
          "than its time to live. Exit 2 for a malformed or\ninverted range, "
          "1 when no release falls in it. --range --json prints\n{range, "
          "start, end, versions}.\n\n--json prints an array of entry "
          "objects, valid ones newest first; with --eol\neach has \"eol\": "
          "true, false or null (unknown: no releases.json, or "
          "no\nversion).\n") +
      k_entry_json_doc);
  commands.runners[command] = [&options](ktc_cache* cache) {
    return run_list(cache, options);
  };
}

void add_lookup(CLI::App& app, Commands& commands) {
  auto& options = commands.lookup;
  auto* command = app.add_subcommand(
      "lookup", "Print the directory of a cached kernel (exit 1 if missing)");
  command->add_option("KEY", options.key, "The cache key")->required();
  command->add_flag("--lease", options.lease,
                    "Hold a shared lock on the entry until ktcache exits");
  add_json_flag(command, options.json);
  command->footer(std::string("--json prints one entry object.\n") +
                  k_entry_json_doc);
  commands.runners[command] = [&options](ktc_cache* cache) {
    return run_lookup(cache, options);
  };
}

void add_store(CLI::App& app, Commands& commands) {
  auto& options = commands.store;
  auto* command = app.add_subcommand(
      "store", "Copy a built kernel into the cache, replacing KEY atomically");
  command->add_option("KEY", options.key, "The cache key")->required();
  command->add_option("--image", options.image, "The boot image")
      ->required()
      ->type_name("FILE");
  add_optional(command, "--vmlinux", options.vmlinux, "The vmlinux ELF")
      ->type_name("FILE");
  add_optional(command, "--config", options.config, "The kernel .config")
      ->type_name("FILE");
  add_optional(command, "--arch", options.arch,
               "x86_64, aarch64, ... (default: the host's)");
  add_optional(command, "--version", options.version, "The kernel version");
  add_optional(command, "--image-name", options.image_name,
               "The image's file name in the entry (default: its basename)")
      ->type_name("NAME");
  auto* source_json =
      add_optional(command, "--source-json", options.source_json,
                   "The source as a JSON object with a string \"type\"")
          ->type_name("JSON");
  add_optional(command, "--source", options.source_spec,
               "A source spec (local:/src/linux, <scheme>:...) resolved and "
               "described by its plugin; recorded as the entry's source")
      ->type_name("SPEC")
      ->excludes(source_json);
  add_optional(command, "--metadata-json", options.metadata_json,
               "Extra metadata fields as a JSON object")
      ->type_name("JSON");
  add_optional(command, "--kconfig-hash", options.kconfig_hash,
               "The hash of the requested kconfig fragments")
      ->type_name("HASH");
  auto* strip = add_optional(command, "--strip", options.strip_policy,
                             "The vmlinux's strip policy: btf (the default), "
                             "debug, none or a plugin's; an output that loses "
                             "symbols, BTF, the build-id or IKCONFIG falls "
                             "back to debug, then to the whole file")
                    ->type_name("POLICY");
  command
      ->add_flag("--no-strip", options.no_strip,
                 "Store the vmlinux as given (same as --strip none, without "
                 "loading a plugin)")
      ->excludes(strip);
  add_json_flag(command, options.json);
  command->footer(std::string("Prints the new entry's directory; --json "
                              "prints its entry object.\n") +
                  k_entry_json_doc);
  commands.runners[command] = [&options](ktc_cache* cache) {
    return run_store(cache, options);
  };
}

void add_clean(CLI::App& app, Commands& commands) {
  auto& options = commands.clean;
  auto* command = app.add_subcommand(
      "clean", "Remove cached kernels; entries in use are skipped");
  auto* keep =
      command
          ->add_option_function<uint32_t>(
              "--keep",
              [&options](const uint32_t& count) { options.keep = count; },
              "Keep the N newest valid entries, remove the rest")
          ->type_name("N");
  auto* corrupt_only = command->add_flag("--corrupt-only", options.corrupt_only,
                                         "Remove corrupt entries only");
  auto* all = command->add_flag("--all", options.all, "Remove every entry");
  keep->excludes(corrupt_only)->excludes(all);
  corrupt_only->excludes(all);
  command->add_option("KEY", options.keys, "Remove these entries");
  command->add_flag("--dry-run", options.dry_run,
                    "Show what would be removed; change nothing");
  add_json_flag(command, options.json);
  command->footer(
      "Exactly one selector is required: --keep N, --corrupt-only, --all or\n"
      "KEYs. Corrupt entries never use a keep slot. ktcache never prompts.\n"
      "Lines: \"removed KEY (SIZE)\", \"would remove KEY (SIZE)\", \"skipped "
      "KEY:\nin use (...)\", \"failed KEY: ...\", \"not found KEY\", then a "
      "summary.\nExit: 0, or 6 if a removal failed, else 5 if an entry was "
      "in use,\nelse 1 if a named key was not found.\n\n"
      "--json prints an array of {key, action (removed, would_remove,\n"
      "skipped_in_use, failed, not_found), corrupt (bool), bytes, message\n"
      "(string or null)}.");
  commands.runners[command] = [&options](ktc_cache* cache) {
    return run_clean(cache, options);
  };
}

void add_verify(CLI::App& app, Commands& commands) {
  auto& options = commands.verify;
  auto* command = app.add_subcommand(
      "verify", "Check entries' files against their recorded SHA-256");
  command->add_option("KEY", options.keys,
                      "Entries to check (default: every valid entry)");
  add_json_flag(command, options.json);
  command->footer(
      "Lines: \"ok KEY\", \"MISMATCH KEY: ...\", \"unverifiable KEY: ...\",\n"
      "\"corrupt KEY: ...\", \"missing KEY\", \"busy KEY: ...\", "
      "\"error KEY: ...\".\nExit: 3 on any mismatch or corrupt entry, 1 "
      "when a named key is missing,\n4 when the only problems are "
      "unverifiable entries, else 0.\n\n--json prints an array of {key, "
      "result (ok, mismatch, unverifiable,\ncorrupt, missing, busy, error), "
      "message (string or null)}.");
  commands.runners[command] = [&options](ktc_cache* cache) {
    return run_verify(cache, options);
  };
}

void add_locks(CLI::App& app, Commands& commands) {
  auto& options = commands.locks;
  auto* command = app.add_subcommand(
      "locks", "Show the cache's lock files and who holds them");
  add_json_flag(command, options.json);
  command->footer(
      "Rows: NAME, PATH, then one \"pid=N (shared|exclusive) cmd=...\" line "
      "per\nholder, or \"(none)\".\n\n--json prints an array of {name, "
      "path, holders: [{pid, exclusive (bool),\ncmdline}]}.");
  commands.runners[command] = [&options](ktc_cache* cache) {
    return run_locks(cache, options);
  };
}

void add_plugins(CLI::App& app, Commands& commands) {
  auto& options = commands.plugins;
  auto* command = app.add_subcommand(
      "plugins", "List the source and strip plugins ktcache can load");
  command->add_flag("--all", options.all,
                    "Also show rejected and shadowed plugin files, and why");
  add_json_flag(command, options.json);
  command->footer(
      "Loads every plugin in the search path: --plugin-dir directories, "
      "then\nKTCACHE_PLUGIN_PATH, then the installed directory. Columns: "
      "NAME, KIND,\nVERSION, ABI, FILE; with --all, then one \"rejected "
      "FILE: REASON\" or\n\"shadowed FILE: REASON\" line per refused "
      "file.\n\n--json prints an array of {name, kind, version, file, "
      "abi_major,\nabi_minor, state (loaded, rejected, shadowed), "
      "description, reason}.");
  commands.runners[command] = [&options](ktc_cache* cache) {
    return run_plugins(cache, options);
  };
}

void add_source(CLI::App& app, Commands& commands) {
  auto& options = commands.source_describe;
  auto* command = app.add_subcommand("source", "Work with kernel source specs");
  command->require_subcommand(1);
  auto* describe = command->add_subcommand(
      "describe", "Resolve a source spec through its plugin and describe it");
  describe->add_option("SPEC", options.spec, "<scheme>:<rest>")->required();
  add_json_flag(describe, options.json);
  describe->footer(
      "Loads only the plugin of SPEC's scheme (source_<scheme>.so) and "
      "fetches\nnothing it can avoid. Prints the plugin, the identity "
      "(version, commit,\ndigest, ...), the metadata `source` payload and "
      "the cache key's parts.\n\n--json prints {spec, plugin: {name, "
      "version, file, abi_major, abi_minor},\nidentity: {...}, source: "
      "{type, ...}, key_parts: [...]}.");
  commands.runners[describe] = [&options](ktc_cache* cache) {
    return run_source_describe(cache, options);
  };

  auto& fetch_options = commands.source_fetch;
  auto* fetch = command->add_subcommand(
      "fetch", "Put a source spec's kernel tree into a directory");
  fetch->add_option("SPEC", fetch_options.spec, "<scheme>:<rest>")->required();
  fetch
      ->add_option("DIR", fetch_options.directory,
                   "An empty or missing directory")
      ->required();
  add_json_flag(fetch, fetch_options.json);
  fetch->footer(
      "Downloads, verifies and extracts a tarball, clones a git commit, or "
      "names a\nlocal tree in place (local: sources are never copied). "
      "Prints the tree's\npath as the last line; on failure DIR is left "
      "empty. Progress goes to\nstderr. --json prints the `source describe` "
      "object plus \"tree\".");
  commands.runners[fetch] = [&fetch_options](ktc_cache* cache) {
    return run_source_fetch(cache, fetch_options);
  };
}

void add_strip(CLI::App& app, Commands& commands) {
  auto& options = commands.strip;
  auto* command = app.add_subcommand(
      "strip", "Write a copy of a vmlinux cut down by a strip policy");
  command->add_option("IN", options.input, "The input ELF file")->required();
  command->add_option("-o,--output", options.output, "The output file")
      ->required()
      ->type_name("OUT");
  add_optional(command, "--policy", options.policy,
               "The strip policy (default: btf); loads strip_<policy>.so "
               "only")
      ->type_name("POLICY");
  add_json_flag(command, options.json);
  command->footer("Prints the sizes before and after and the time taken. "
                  "The output is\nwritten beside OUT and renamed into "
                  "place: a failure leaves none.\n\n--json prints {input, "
                  "output, policy, input_bytes, output_bytes, seconds}.");
  commands.runners[command] = [&options](ktc_cache* cache) {
    return run_strip(cache, options);
  };
}

// The first word that is neither an option nor the value of --cache-dir or
// --plugin-dir: the
// command the user meant, when CLI11 did not recognise one.
std::string command_word(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--cache-dir" || arg == "--plugin-dir") {
      ++i;
    } else if (!arg.empty() && arg[0] != '-') {
      return std::string(arg);
    }
  }
  return {};
}

int parse_failure(const CLI::App& app,
                  const CLI::ParseError& error,
                  int argc,
                  char** argv) {
  if (error.get_exit_code() == 0) {
    // --help and --version.
    return app.exit(error);
  }
  std::string message = one_line(error.what());
  std::string word = command_word(argc, argv);
  if (app.get_subcommands().empty() && !word.empty()) {
    message = fmt::format(
        "unknown command \"{}\"; the commands are list, "
        "lookup, store, clean, verify, locks, plugins, source, strip, "
        "kconfig, build, resolve, run and btf",
        word);
  }
  fmt::print(stderr, "ktcache: {} (see ktcache --help)\n", message);
  return k_exit_usage;
}

// An absolute root, so that printed entry paths work from any directory.
std::string absolute_root(const std::string& dir) {
  if (dir.empty()) {
    throw CliError(k_exit_usage, "--cache-dir must not be empty");
  }
  std::string root = std::filesystem::absolute(dir).string();
  while (root.size() > 1 && root.back() == '/') {
    root.pop_back();
  }
  return root;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"ktcache: a cache of built Linux kernel images", "ktcache"};
  app.footer(k_main_footer);
  app.require_subcommand(1);
  // Global options are accepted after the command too.
  app.fallthrough();
  app.set_version_flag(
      "--version", [] { return std::string(ktc_version()); },
      "Print the library version and exit");

  Commands commands;
  Verbosity verbosity;
  app.add_option_function<std::string>(
         "--cache-dir",
         [&commands](const std::string& dir) {
           commands.global.cache_dir = dir;
         },
         "The cache root (default: $KTCACHE_DIR, then the XDG cache)")
      ->type_name("DIR");
  auto* verbose =
      app.add_flag("-v,--verbose", verbosity.verbose,
                   "More log output on stderr (-v info, -vv debug, -vvv "
                   "trace)");
  auto* quiet = app.add_flag("-q,--quiet", verbosity.quiet,
                             "Log errors only (the default is warnings)");
  verbose->excludes(quiet);
  app.add_option("--plugin-dir", commands.global.plugin_dirs,
                 "Search DIR for plugins first (repeatable)")
      ->type_name("DIR");
  app.add_flag("--allow-network-fs", commands.global.allow_network_fs,
               "Use a cache on NFS, CIFS, FUSE, ... although flock(2) may be "
               "unreliable there");
  app.add_flag("--offline", commands.global.offline,
               "Use only what is on disk: no download, no remote git, no "
               "releases.json fetch (what needs the network fails, exit 9)");

  add_list(app, commands);
  add_lookup(app, commands);
  add_store(app, commands);
  add_clean(app, commands);
  add_verify(app, commands);
  add_locks(app, commands);
  add_plugins(app, commands);
  add_source(app, commands);
  add_strip(app, commands);
  commands.runners[add_kconfig(app, commands.kconfig)] =
      [&commands](ktc_cache* cache) {
        return run_kconfig(cache, commands.kconfig);
      };
  commands.runners[add_btf(app, commands.btf)] = [&commands](ktc_cache* cache) {
    return run_btf(cache, commands.btf);
  };
  commands.runners[add_build(app, commands.build)] =
      [&commands](ktc_cache* cache) {
        return run_build(cache, commands.build);
      };
  commands.runners[add_resolve(app, commands.resolve)] =
      [&commands](ktc_cache* cache) {
        return run_resolve(cache, commands.resolve);
      };
  commands.runners[add_run(app, commands.run)] = [&commands](ktc_cache* cache) {
    return run_run(cache, commands.run);
  };

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return parse_failure(app, error, argc, argv);
  }
  ktc_log_set_callback(verbosity.log_level(), log_to_stderr, nullptr);

  try {
    if (commands.global.cache_dir) {
      commands.global.cache_dir = absolute_root(*commands.global.cache_dir);
    }
    commands.list.cache_dir = commands.global.cache_dir;
    commands.source_fetch.quiet = verbosity.quiet;
    commands.build.quiet = verbosity.quiet;
    commands.resolve.quiet = verbosity.quiet;
    commands.run.quiet = verbosity.quiet;
    CachePtr cache = open_cache(commands.global);
    for (const auto& [command, run] : commands.runners) {
      if (command->parsed()) {
        return run(cache.get());
      }
    }
    throw CliError(k_exit_usage, "no command given");
  } catch (const CliError& error) {
    fmt::print(stderr, "ktcache: {}\n", error.what());
    return error.exit_code();
  } catch (const std::exception& error) {
    fmt::print(stderr, "ktcache: {}\n", one_line(error.what()));
    return k_exit_environment;
  }
}
