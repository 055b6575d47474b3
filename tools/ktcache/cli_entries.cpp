// The commands that read or write entries: list, lookup, store.

#include "cli_commands.hpp"
#include "cli_output.hpp"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <fmt/format.h>

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
};

void print_list_footers(const ListCounts& counts, const ListOptions& options) {
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

int run_list(ktc_cache* cache, const ListOptions& options) {
  ktc_list* raw = nullptr;
  check(ktc_list_entries(&raw, cache));
  ListPtr list(raw);
  size_t count = ktc_list_count(list.get());
  fmt::print(stderr, "cache: {}\n", ktc_cache_root(cache));

  if (options.json) {
    boost::json::array entries;
    for (size_t i = 0; i < count; ++i) {
      entries.push_back(
          entry_json(ktc_list_at(list.get(), i), options.kconfig_hash));
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
