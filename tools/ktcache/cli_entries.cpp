// The commands that read or write entries: list, lookup, store.

#include "cli_commands.hpp"
#include "cli_output.hpp"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <system_error>

namespace ktc::cli {

namespace {

const char* c_str_or_null(const std::optional<std::string>& text) {
  return text ? text->c_str() : nullptr;
}

// A string field of a JSON object, or `fallback`.
std::string string_field(const boost::json::value& object,
                         std::string_view name,
                         std::string_view fallback) {
  if (const auto* fields = object.if_object()) {
    auto it = fields->find(name);
    if (it != fields->end() && it->value().is_string()) {
      return std::string(it->value().get_string());
    }
  }
  return std::string(fallback);
}

// Quotes a shell word when it holds anything beyond plain path characters.
std::string shell_word(const std::string& word) {
  bool plain =
      !word.empty() &&
      word.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                             "0123456789_-+.,/=:@%") == std::string::npos;
  if (plain) {
    return word;
  }
  std::string quoted = "'";
  for (char c : word) {
    quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  }
  return quoted + "'";
}

std::string kconfig_tag(const ktc_entry* entry, const std::string& hash) {
  int status = 0;
  check(ktc_entry_kconfig_status(&status, entry, hash.c_str()));
  switch (status) {
  case KTC_KCONFIG_STALE:
    return " (stale kconfig)";
  case KTC_KCONFIG_UNTRACKED:
    return " (untracked kconfig)";
  default:
    return "";
  }
}

struct ListCounts {
  size_t corrupt = 0;
  size_t stale = 0;
  size_t untracked = 0;
  size_t eol = 0;
};

// What `list --eol` knows of the series kernel.org still lists.
struct EolStatus {
  // False: nothing is marked (no list, or an empty one).
  bool known = false;
  std::vector<std::string> active;
};

// "MAJOR.MINOR" of a version, the minor cut to its leading digits
// ("6.15-rc3" -> "6.15"), as the library names active series.
std::optional<std::string> series_of(std::string_view version) {
  auto digits = [](std::string_view text) {
    size_t count = 0;
    while (count < text.size() && text[count] >= '0' && text[count] <= '9') {
      ++count;
    }
    return count;
  };
  size_t major = digits(version);
  if (major == 0 || major >= version.size() || version[major] != '.') {
    return std::nullopt;
  }
  std::string_view rest = version.substr(major + 1);
  size_t minor = digits(rest);
  if (minor == 0) {
    return std::nullopt;
  }
  return std::string(version.substr(0, major + 1 + minor));
}

std::string format_age(int64_t seconds) {
  if (seconds < 120) {
    return fmt::format("{} s", seconds);
  }
  if (seconds < 2 * 3600) {
    return fmt::format("{} min", seconds / 60);
  }
  if (seconds < 2 * 86400) {
    return fmt::format("{} h", seconds / 3600);
  }
  return fmt::format("{} days", seconds / 86400);
}

// The active series from the library's list: the copy on disk (never the
// network) unless `refresh`. Says on stderr why nothing can be marked, or
// how old a stale copy is.
EolStatus eol_status(ktc_cache* cache, bool refresh) {
  char* raw = nullptr;
  int status = ktc_releases(&raw, cache,
                            refresh ? uint32_t{KTC_RELEASES_REFRESH}
                                    : uint32_t{KTC_RELEASES_NO_FETCH});
  LibraryString text(raw);
  EolStatus result;
  if (status != KTC_OK) {
    if (status == KTC_E_NOTFOUND && !refresh) {
      fmt::print(stderr,
                 "ktcache: EOL status unknown: releases.json is not cached "
                 "(run `ktcache list --eol --refresh`)\n");
    } else {
      fmt::print(stderr, "ktcache: EOL status unknown: {}\n",
                 one_line(ktc_error_message()));
    }
    return result;
  }
  std::error_code ec;
  boost::json::value list = boost::json::parse(text.get(), ec);
  const auto* object = list.if_object();
  const auto* series = object ? object->if_contains("active_series") : nullptr;
  if (ec || series == nullptr || !series->is_array()) {
    fmt::print(stderr, "ktcache: EOL status unknown: the library's releases "
                       "list has no active_series\n");
    return result;
  }
  for (const auto& name : series->as_array()) {
    if (name.is_string()) {
      result.active.emplace_back(name.as_string());
    }
  }
  if (result.active.empty()) {
    fmt::print(stderr,
               "ktcache: EOL status unknown: releases.json lists no series\n");
    return result;
  }
  result.known = true;
  const auto* fresh = object->if_contains("fresh");
  const auto* age = object->if_contains("age_seconds");
  if (fresh != nullptr && fresh->is_bool() && !fresh->as_bool()) {
    int64_t seconds = age != nullptr && age->is_int64() ? age->as_int64() : 0;
    fmt::print(stderr,
               "ktcache: note: EOL status from a releases.json fetched {} "
               "ago (older than its time to live; run `ktcache list --eol "
               "--refresh`)\n",
               format_age(seconds));
  }
  return result;
}

// true / false, or nullopt when it cannot be told: no list, or an entry
// without a version of a known series shape.
std::optional<bool> entry_eol(const EolStatus& eol,
                              const boost::json::value& metadata) {
  if (!eol.known) {
    return std::nullopt;
  }
  const auto* object = metadata.if_object();
  const auto* version = object ? object->if_contains("version") : nullptr;
  if (version == nullptr || !version->is_string()) {
    return std::nullopt;
  }
  auto series = series_of(version->as_string());
  if (!series) {
    return std::nullopt;
  }
  return std::find(eol.active.begin(), eol.active.end(), *series) ==
         eol.active.end();
}

void print_list_footers(const ListCounts& counts, const ListOptions& options) {
  if (counts.eol > 0) {
    fmt::print(stderr,
               "EOL: {} of a series releases.json no longer lists (end of "
               "life: no more fixes)\n",
               count_entries(counts.eol));
  }
  if (counts.untracked > 0) {
    fmt::print(stderr,
               "untracked kconfig: {} {} no kconfig hash; it is unknown "
               "whether {} the current fragments\n",
               count_entries(counts.untracked),
               counts.untracked == 1 ? "records" : "record",
               counts.untracked == 1 ? "it matches" : "they match");
  }
  if (counts.stale > 0) {
    fmt::print(stderr,
               "stale kconfig: {} built from other kconfig fragments "
               "than --kconfig-hash; rebuild to refresh\n",
               count_entries(counts.stale));
  }
  if (counts.corrupt > 0) {
    std::string command = "ktcache";
    if (options.cache_dir) {
      command += " --cache-dir " + shell_word(*options.cache_dir);
    }
    fmt::print(stderr, "{} corrupt; remove with `{} clean --corrupt-only`\n",
               count_entries(counts.corrupt), command);
  }
}

} // namespace

CachePtr open_cache(const GlobalOptions& global) {
  ktc_open_options options = KTC_OPEN_OPTIONS_INIT;
  options.root = c_str_or_null(global.cache_dir);
  if (global.allow_network_fs) {
    options.flags |= KTC_OPEN_ALLOW_NETWORK_FS;
  }
  if (global.offline) {
    options.flags |= KTC_OPEN_OFFLINE;
  }
  ktc_cache* cache = nullptr;
  check(ktc_cache_open(&cache, &options));
  CachePtr owned(cache);
  for (const auto& directory : global.plugin_dirs) {
    check(ktc_plugin_dir_add(owned.get(), directory.c_str()));
  }
  return owned;
}

void require_valid_key(const std::string& key) {
  if (ktc_key_validate(key.c_str()) != KTC_OK) {
    throw CliError(k_exit_usage, one_line(ktc_error_message()));
  }
}

namespace {

// `list --range A..B`: the releases the range names; no entry is read.
int run_range(ktc_cache* cache, const ListOptions& options) {
  const std::string& text = *options.range;
  ktc_kernel_id* raw_id = nullptr;
  check(ktc_kernel_id_parse(&raw_id, text.c_str()));
  ktc_kernel_id_info info = KTC_KERNEL_ID_INFO_INIT;
  int status = ktc_kernel_id_get_info(raw_id, &info);
  bool is_range = status == KTC_OK && info.kind == KTC_KERNEL_ID_RANGE;
  ktc_kernel_id_free(raw_id);
  check(status);
  if (!is_range) {
    throw CliError(
        k_exit_usage,
        fmt::format("'{}' is not a range (expected START..END)", text));
  }
  fmt::print(stderr, "ktcache: expanding kernel range {}\n", text);
  char* raw = nullptr;
  check(
      ktc_range_expand(&raw, cache, text.c_str(),
                       options.refresh ? uint32_t{KTC_RELEASES_REFRESH} : 0u));
  LibraryString expanded(raw);
  boost::json::value result = boost::json::parse(expanded.get());
  std::vector<std::string> versions;
  for (const auto& version : result.at("versions").as_array()) {
    versions.emplace_back(version.as_string());
  }
  std::string joined;
  for (const auto& version : versions) {
    joined += (joined.empty() ? "" : ", ") + version;
  }
  fmt::print(stderr, "ktcache: range expanded to {} kernel(s): {}\n",
             versions.size(), joined);
  if (options.json) {
    print_json(result);
    return k_exit_ok;
  }
  for (const auto& version : versions) {
    fmt::print("{}\n", version);
  }
  return k_exit_ok;
}

} // namespace

int run_list(ktc_cache* cache, const ListOptions& options) {
  if (options.range) {
    return run_range(cache, options);
  }
  if (options.refresh && !options.eol) {
    throw CliError(k_exit_usage, "--refresh applies to --eol or --range");
  }
  ktc_list* raw = nullptr;
  check(ktc_list_entries(&raw, cache));
  ListPtr list(raw);
  size_t count = ktc_list_count(list.get());
  fmt::print(stderr, "cache: {}\n", ktc_cache_root(cache));
  EolStatus eol;
  if (options.eol) {
    eol = eol_status(cache, options.refresh);
  }
  auto metadata_of = [](const ktc_entry_info& info) {
    std::error_code ec;
    boost::json::value metadata =
        boost::json::parse(info.metadata_json ? info.metadata_json : "{}", ec);
    return ec ? boost::json::value(boost::json::object()) : metadata;
  };

  if (options.json) {
    boost::json::array entries;
    for (size_t i = 0; i < count; ++i) {
      const ktc_entry* entry = ktc_list_at(list.get(), i);
      boost::json::value object = entry_json(entry, options.kconfig_hash);
      if (options.eol) {
        ktc_entry_info info = entry_info(entry);
        std::optional<bool> is_eol;
        if (info.state == KTC_ENTRY_VALID) {
          is_eol = entry_eol(eol, metadata_of(info));
        }
        object.as_object()["eol"] =
            is_eol ? boost::json::value(*is_eol) : boost::json::value(nullptr);
      }
      entries.push_back(std::move(object));
    }
    print_json(entries);
    return k_exit_ok;
  }
  if (count == 0) {
    fmt::print("no cached kernels\n");
    return k_exit_ok;
  }

  Table table({"KEY", "VERSION", "SOURCE", "ARCH", "BUILT", "SIZE"});
  ListCounts counts;
  for (size_t i = 0; i < count; ++i) {
    const ktc_entry* entry = ktc_list_at(list.get(), i);
    ktc_entry_info info = entry_info(entry);
    if (info.state != KTC_ENTRY_VALID) {
      ++counts.corrupt;
      std::string reason = info.reason ? one_line(info.reason) : "unknown";
      table.add_wide_row(info.key, "(corrupt: " + reason + ")");
      continue;
    }
    std::error_code ec;
    boost::json::value metadata =
        boost::json::parse(info.metadata_json ? info.metadata_json : "{}", ec);
    std::string source = "-";
    if (const auto* fields = metadata.if_object()) {
      if (auto it = fields->find("source"); it != fields->end()) {
        source = string_field(it->value(), "type", "-");
      }
    }
    std::string tags;
    if (options.kconfig_hash) {
      tags = kconfig_tag(entry, *options.kconfig_hash);
      counts.stale += tags == " (stale kconfig)";
      counts.untracked += tags == " (untracked kconfig)";
    }
    if (entry_eol(eol, metadata).value_or(false)) {
      tags += " (EOL)";
      ++counts.eol;
    }
    table.add_row({info.key, string_field(metadata, "version", "-"), source,
                   string_field(metadata, "arch", "-"),
                   string_field(metadata, "built_at", "-"),
                   format_size(directory_size(info.path)) + tags});
  }
  table.print();
  print_list_footers(counts, options);
  return k_exit_ok;
}

int run_lookup(ktc_cache* cache, const LookupOptions& options) {
  require_valid_key(options.key);
  ktc_entry* raw = nullptr;
  int status = ktc_lookup(&raw, cache, options.key.c_str(),
                          options.lease ? uint32_t{KTC_LOOKUP_LEASE} : 0u);
  if (status == KTC_E_NOTFOUND) {
    throw CliError(k_exit_not_found,
                   fmt::format("no entry for key {}", options.key));
  }
  check(status);
  EntryPtr entry(raw);
  if (options.json) {
    print_json(entry_json(entry.get(), std::nullopt));
  } else {
    fmt::print("{}\n", entry_info(entry.get()).path);
  }
  return k_exit_ok;
}

int run_store(ktc_cache* cache, const StoreOptions& options) {
  require_valid_key(options.key);
  ktc_store_options request = KTC_STORE_OPTIONS_INIT;
  if (options.no_strip) {
    request.flags |= KTC_STORE_NO_STRIP;
  }
  request.image = options.image.c_str();
  request.vmlinux = c_str_or_null(options.vmlinux);
  request.config = c_str_or_null(options.config);
  request.image_name = c_str_or_null(options.image_name);
  request.arch = c_str_or_null(options.arch);
  request.version = c_str_or_null(options.version);
  request.source_json = c_str_or_null(options.source_json);
  request.source_spec = c_str_or_null(options.source_spec);
  request.metadata_json = c_str_or_null(options.metadata_json);
  request.kconfig_hash = c_str_or_null(options.kconfig_hash);
  request.strip_policy = c_str_or_null(options.strip_policy);

  ktc_entry* raw = nullptr;
  int status = ktc_store(&raw, cache, options.key.c_str(), &request);
  if (status == KTC_E_NOTFOUND) {
    // A missing input file is bad input, not a cache miss.
    throw CliError(k_exit_usage, one_line(ktc_error_message()));
  }
  check(status);
  EntryPtr entry(raw);
  if (options.json) {
    print_json(entry_json(entry.get(), options.kconfig_hash));
  } else {
    fmt::print("{}\n", entry_info(entry.get()).path);
  }
  return k_exit_ok;
}

} // namespace ktc::cli
