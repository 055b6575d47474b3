#pragma once

// The subcommands. Each returns the process's exit code, or throws
// CliError for a failure that ends it early.

#include "cli_capi.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
} // namespace CLI

namespace ktc::cli {

struct GlobalOptions {
  std::optional<std::string> cache_dir;
  bool allow_network_fs = false;
  // KTC_OPEN_OFFLINE: nothing is fetched.
  bool offline = false;
  // Searched for plugins before KTCACHE_PLUGIN_PATH, in this order.
  std::vector<std::string> plugin_dirs;
};

CachePtr open_cache(const GlobalOptions& global);

// Throws a usage error (exit 2) when `key` is not a valid cache key, before
// anything touches the disk.
void require_valid_key(const std::string& key);

struct ListOptions {
  bool json = false;
  std::optional<std::string> kconfig_hash;
  // Repeated in the corrupt-entry hint so it can be pasted as is.
  std::optional<std::string> cache_dir;
  // Tag entries of series releases.json no longer lists.
  bool eol = false;
  // Fetch releases.json now (with eol or range).
  bool refresh = false;
  // Print the releases a range names instead of the entries.
  std::optional<std::string> range;
};
int run_list(ktc_cache* cache, const ListOptions& options);

struct LookupOptions {
  std::string key;
  bool lease = false;
  bool json = false;
};
int run_lookup(ktc_cache* cache, const LookupOptions& options);

struct StoreOptions {
  std::string key;
  std::string image;
  std::optional<std::string> vmlinux;
  std::optional<std::string> config;
  std::optional<std::string> arch;
  std::optional<std::string> version;
  std::optional<std::string> image_name;
  std::optional<std::string> source_json;
  std::optional<std::string> source_spec;
  std::optional<std::string> metadata_json;
  std::optional<std::string> kconfig_hash;
  std::optional<std::string> strip_policy;
  bool no_strip = false;
  bool json = false;
};
int run_store(ktc_cache* cache, const StoreOptions& options);

struct CleanOptions {
  std::optional<uint32_t> keep;
  bool corrupt_only = false;
  bool all = false;
  std::vector<std::string> keys;
  bool dry_run = false;
  bool json = false;
};
int run_clean(ktc_cache* cache, const CleanOptions& options);

struct VerifyOptions {
  std::vector<std::string> keys;
  bool json = false;
};
int run_verify(ktc_cache* cache, const VerifyOptions& options);

struct LocksOptions {
  bool json = false;
};
int run_locks(ktc_cache* cache, const LocksOptions& options);

struct PluginsOptions {
  bool all = false;
  bool json = false;
};
int run_plugins(ktc_cache* cache, const PluginsOptions& options);

struct SourceDescribeOptions {
  std::string spec;
  bool json = false;
};
int run_source_describe(ktc_cache* cache, const SourceDescribeOptions& options);

struct SourceFetchOptions {
  std::string spec;
  std::string directory;
  bool json = false;
  bool quiet = false;
};
int run_source_fetch(ktc_cache* cache, const SourceFetchOptions& options);

struct StripOptions {
  std::string input;
  std::string output;
  std::optional<std::string> policy;
  bool json = false;
};
int run_strip(ktc_cache* cache, const StripOptions& options);

struct KconfigOptions {
  std::string file_or_key;
  std::optional<std::string> get;
  bool json = false;
};
int run_kconfig(ktc_cache* cache, const KconfigOptions& options);
// Adds the kconfig subcommand to `app`, bound to `options`.
CLI::App* add_kconfig(CLI::App& app, KconfigOptions& options);

struct BtfOptions {
  std::string file_or_key;
  std::string output;
  bool no_sidecar = false;
  bool json = false;
};
int run_btf(ktc_cache* cache, const BtfOptions& options);
// Adds the btf subcommand to `app`, bound to `options`.
CLI::App* add_btf(CLI::App& app, BtfOptions& options);

struct BuildOptions {
  std::string spec;
  std::optional<std::string> base_config;
  std::vector<std::string> kconfig_files;
  std::vector<std::string> kconfig_settings;
  std::vector<std::string> make_args;
  std::optional<std::string> arch;
  uint32_t jobs = 0;
  std::optional<std::string> strip_policy;
  bool no_strip = false;
  bool force = false;
  bool store_dirty = false;
  bool keep_tree = false;
  std::optional<std::string> sha256;
  std::optional<std::string> cross_compile;
  std::optional<std::string> cc;
  std::optional<std::string> llvm;
  bool json = false;
  bool quiet = false;
};
CLI::App* add_build(CLI::App& app, BuildOptions& options);
// The options that say how a kernel is built (--base-config ... --make-arg;
// not the spec, --force, --keep-tree or --sha256), for the commands that
// build on a miss.
void add_build_options(CLI::App* command, BuildOptions& options);

// A ktc_build_options for `options` (spec unset), with the arrays it
// points into; valid while this lives.
class BuildArguments {
public:
  BuildArguments(const BuildOptions& options, const ktc_hooks* hooks);
  BuildArguments(const BuildArguments&) = delete;
  BuildArguments& operator=(const BuildArguments&) = delete;
  const ktc_build_options& get() const { return m_build; }

private:
  std::vector<const char*> m_kconfig_files;
  std::vector<const char*> m_kconfig_settings;
  std::vector<const char*> m_make_args;
  ktc_build_options m_build = KTC_BUILD_OPTIONS_INIT;
};
int run_build(ktc_cache* cache, const BuildOptions& options);

struct ResolveOptions {
  std::optional<std::string> id;
  bool no_build = false;
  bool newest = false;
  std::optional<std::string> kconfig_hash;
  // How a miss is built; its arch also narrows --newest.
  BuildOptions build;
  bool json = false;
  bool quiet = false;
};
CLI::App* add_resolve(CLI::App& app, ResolveOptions& options);
int run_resolve(ktc_cache* cache, const ResolveOptions& options);
struct RunOptions {
  // A cache key (KEY-OR-ID).
  std::string id;
  bool no_build = false;
  // COMMAND and its arguments: everything after `--`.
  std::vector<std::string> command;
  bool quiet = false;
};
CLI::App* add_run(CLI::App& app, RunOptions& options);
// The entry `options.id` names, leased (a shared lock held until it is
// freed). The one place that decides how KEY-OR-ID is resolved.
EntryPtr acquire_entry(ktc_cache* cache, const RunOptions& options);
int run_run(ktc_cache* cache, const RunOptions& options);

} // namespace ktc::cli
