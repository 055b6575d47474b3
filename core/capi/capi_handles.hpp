#pragma once

// The handles behind ktcache.h's opaque types, and the conversions every
// shim file shares. Included by the core/capi/*.cpp files only.

#include "build/pipeline.hpp"
#include "cache/cache.hpp"
#include "plugin/host.hpp"
#include "plugin/operations.hpp"
#include "util/result.hpp"

#include <ktcache/ktcache.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// The handles behind the opaque types of ktcache.h.
struct ktc_cache {
  ktc::cache::Cache cache;
  ktc::plugin::Registry plugins;
};

struct ktc_entry {
  ktc_entry() = default;
  explicit ktc_entry(ktc::cache::Entry from);

  // Drops what the entry owns, leaving a shell that is cheap to destroy.
  void release_resources() {
    entry = ktc::cache::Entry{};
    std::string().swap(metadata_json);
    std::string().swap(image_path);
    std::string().swap(vmlinux_path);
    std::string().swap(config_path);
  }

  ktc::cache::Entry entry;
  // The strings ktc_entry_info borrows, computed once so that get_info
  // never allocates. Empty means NULL.
  std::string metadata_json;
  std::string image_path;
  std::string vmlinux_path;
  std::string config_path;
  // A static string (to_string of the kind), or NULL.
  const char* error_kind = nullptr;
};

struct ktc_list {
  std::vector<ktc_entry> entries;
};

struct ktc_clean_report {
  std::vector<ktc::cache::CleanItem> items;
};

struct ktc_lock_list {
  std::vector<ktc::cache::LockFileInfo> locks;
};

struct ktc_plugin_list {
  std::vector<ktc::plugin::Record> records;
};

namespace ktc::capi {

// A copy the caller frees with ktc_free(). Throws std::bad_alloc.
char* malloc_string(std::string_view text);

// Whether the `file_or_key` argument of ktc_kconfig_read() and
// ktc_btf_read() names a file: it contains a '/' or names an existing
// non-directory. Anything else is a cache key.
bool names_a_file(const char* argument);

// Refuses bits outside `known`, naming the field.
Result<void> check_flags(uint32_t flags, uint32_t known, std::string_view what);

// An optional path or name of an options struct: NULL means "not given"
// (an empty result), while an empty string is a caller mistake.
Result<std::string> optional_text(const char* text, std::string_view field);

std::optional<std::string> optional_value(const char* text);

// The caller's progress and cancel callbacks as the core's hooks.
Result<plugin::CallHooks> call_hooks(const ktc_hooks* hooks);

// A C array of `count` strings, none NULL.
Result<std::vector<std::string>>
string_array(const char* const* items, size_t count, std::string_view what);

// The start of a call that hands out an entry and a report: clears both
// outputs, then checks the arguments every such call needs.
Result<void> start_entry_call(ktc_entry** out,
                              char** report,
                              const ktc_cache* cache,
                              const void* options);

// Hands an operation's results to the caller: *out gets a new handle for
// `entry` (NULL when there is none), and *report, unless `report` is NULL,
// a copy of `report_json`. Allocates everything before setting anything.
void hand_out(ktc_entry** out,
              std::optional<cache::Entry> entry,
              char** report,
              std::string_view report_json);

// A ktc_build_options (already size-checked) as the pipeline's request.
Result<build::BuildRequest> build_request(const ktc_build_options& options);

} // namespace ktc::capi
