// The extern "C" shims of ktcache.h over the C++ core. Each exported
// function validates its arguments, runs its body through capi::guard()
// and converts between the C structs and the core's types; no behaviour of
// the cache lives here.

#include "build/pipeline.hpp"
#include "cache/cache.hpp"
#include "cache/key.hpp"
#include "cache/metadata.hpp"
#include "cache/root.hpp"
#include "capi/capi_guard.hpp"
#include "capi/capi_handles.hpp"
#include "elf/elf_file.hpp"
#include "elf/ikconfig.hpp"
#include "plugin/host.hpp"
#include "plugin/operations.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/parallel.hpp"
#include "util/result.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>
#include <ktcache/ktcache.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#ifndef KTC_VERSION_STRING
#error "KTC_VERSION_STRING must be defined by the build (core/meson.build)"
#endif

// The header's version macros and the project's version move together.
#define KTC_STRINGIFY_INNER(x) #x
#define KTC_STRINGIFY(x) KTC_STRINGIFY_INNER(x)
static_assert(std::string_view(KTC_VERSION_STRING) ==
                  KTC_STRINGIFY(KTC_VERSION_MAJOR) "." KTC_STRINGIFY(
                      KTC_VERSION_MINOR) "." KTC_STRINGIFY(KTC_VERSION_PATCH),
              "meson.build's version differs from ktcache.h's KTC_VERSION_*");

using ktc::Result;
using ktc::Status;

// ktc::Status mirrors ktc_status so that a status crosses the ABI by value.
static_assert(static_cast<int>(Status::ok) == KTC_OK);
static_assert(static_cast<int>(Status::generic) == KTC_E_GENERIC);
static_assert(static_cast<int>(Status::invalid) == KTC_E_INVALID);
static_assert(static_cast<int>(Status::not_found) == KTC_E_NOTFOUND);
static_assert(static_cast<int>(Status::locked) == KTC_E_LOCKED);
static_assert(static_cast<int>(Status::corrupt) == KTC_E_CORRUPT);
static_assert(static_cast<int>(Status::io) == KTC_E_IO);
static_assert(static_cast<int>(Status::no_space) == KTC_E_NOSPC);
static_assert(static_cast<int>(Status::version) == KTC_E_VERSION);
static_assert(static_cast<int>(Status::no_memory) == KTC_E_NOMEM);
static_assert(static_cast<int>(Status::internal) == KTC_E_INTERNAL);
static_assert(static_cast<int>(Status::unsupported) == KTC_E_UNSUPPORTED);
static_assert(static_cast<int>(Status::mismatch) == KTC_E_MISMATCH);
static_assert(static_cast<int>(Status::unverifiable) == KTC_E_UNVERIFIABLE);
static_assert(static_cast<int>(Status::environment) == KTC_E_ENV);
static_assert(static_cast<int>(Status::plugin) == KTC_E_PLUGIN);
static_assert(static_cast<int>(Status::cancelled) == KTC_E_CANCELLED);
static_assert(static_cast<int>(Status::build) == KTC_E_BUILD);
static_assert(static_cast<int>(Status::network) == KTC_E_NETWORK);

static_assert(static_cast<int>(ktc::log::Level::error) == KTC_LOG_ERROR);
static_assert(static_cast<int>(ktc::log::Level::warn) == KTC_LOG_WARN);
static_assert(static_cast<int>(ktc::log::Level::info) == KTC_LOG_INFO);
static_assert(static_cast<int>(ktc::log::Level::debug) == KTC_LOG_DEBUG);
static_assert(static_cast<int>(ktc::log::Level::trace) == KTC_LOG_TRACE);
static_assert(std::is_same_v<ktc::log::Sink, ktc_log_fn>);

static_assert(ktc::cache::k_key_max == KTC_KEY_MAX);

namespace {
// Lists at least this long are built and freed on two threads.
constexpr size_t k_parallel_threshold = 256;
} // namespace

ktc_entry::ktc_entry(ktc::cache::Entry from) : entry(std::move(from)) {
  if (entry.valid()) {
    // The file's own text when it was read from disk: no second
    // serialisation on the lookup path.
    if (entry.metadata->text().empty()) {
      metadata_json = entry.metadata->to_compact_json();
    }
    image_path = entry.image_path();
    vmlinux_path = entry.vmlinux_path();
    config_path = entry.config_path();
  }
  if (entry.corruption) {
    // to_string() returns views of string literals, so data() ends in NUL.
    error_kind = to_string(entry.corruption->kind).data();
  }
}

namespace ktc::capi {
namespace {

// Like libgit2, a successful call does not clear the message: a caller may
// read it after the cleanup calls that follow a failure. Only failures
// write it.
thread_local std::string t_message;
thread_local bool t_failed = false;
// Set when the message itself could not be stored (out of memory).
thread_local const char* t_static_message = nullptr;

} // namespace

void set_error_message(std::string_view message) noexcept {
  t_failed = true;
  try {
    t_message.assign(message.empty() ? "unknown failure" : message);
    std::replace(t_message.begin(), t_message.end(), '\n', ' ');
    std::replace(t_message.begin(), t_message.end(), '\r', ' ');
    t_static_message = nullptr;
  } catch (...) {
    t_static_message = "out of memory while recording an error message";
  }
}

const char* error_message() noexcept {
  if (t_static_message != nullptr) {
    return t_static_message;
  }
  return t_failed ? t_message.c_str() : "no error";
}

int status_of(const Error& error) noexcept {
  int status = static_cast<int>(error.status);
  if (status >= 0 || status < KTC_E_NETWORK) {
    // A core bug: a failure must carry one of the published codes.
    try {
      set_error_message(fmt::format("{} (the core reported status {})",
                                    error.message, status));
    } catch (...) {
      set_error_message(error.message);
    }
    return KTC_E_INTERNAL;
  }
  set_error_message(error.message);
  return status;
}

int report_bad_alloc(const char* function) noexcept {
  try {
    set_error_message(fmt::format("out of memory in {}", function));
  } catch (...) {
    set_error_message("out of memory");
  }
  return KTC_E_NOMEM;
}

int report_exception(const char* function, const char* what) noexcept {
  try {
    set_error_message(fmt::format("internal error in {}: {}", function, what));
  } catch (...) {
    set_error_message("internal error");
  }
  return KTC_E_INTERNAL;
}

// A copy the caller frees with ktc_free().
char* malloc_string(std::string_view text) {
  auto* copy = static_cast<char*>(std::malloc(text.size() + 1));
  if (copy == nullptr) {
    throw std::bad_alloc();
  }
  std::memcpy(copy, text.data(), text.size());
  copy[text.size()] = '\0';
  return copy;
}

// Keys are directory names, and a working directory that holds entries
// (the cache root) must not turn keys into directories to read as ELF.
bool names_a_file(const char* argument) {
  if (std::strchr(argument, '/') != nullptr) {
    return true;
  }
  struct stat st;
  return ::stat(argument, &st) == 0 && !S_ISDIR(st.st_mode);
}

Result<void>
check_flags(uint32_t flags, uint32_t known, std::string_view what) {
  if ((flags & ~known) != 0) {
    return make_error(Status::invalid,
                      "{} has unknown bits 0x{:x} (this library knows 0x{:x})",
                      what, flags & ~known, known);
  }
  return {};
}

// An optional path or name of an options struct: NULL means "not given",
// while an empty string is a caller mistake the core would read as NULL.
Result<std::string> optional_text(const char* text, std::string_view field) {
  if (text == nullptr) {
    return std::string();
  }
  if (*text == '\0') {
    return make_error(Status::invalid, "{} is empty; pass NULL to leave it out",
                      field);
  }
  return std::string(text);
}

std::optional<std::string> optional_value(const char* text) {
  return text != nullptr ? std::optional<std::string>(text) : std::nullopt;
}

Result<plugin::CallHooks> call_hooks(const ktc_hooks* hooks) {
  plugin::CallHooks result;
  if (hooks == nullptr) {
    return result;
  }
  KTC_TRY_ASSIGN(ktc_hooks copy,
                 read_options(*hooks,
                              KTC_FIRST_SIZE(ktc_hooks, cancel_userdata),
                              "ktc_hooks"));
  if (copy.progress != nullptr) {
    result.progress = [copy](std::string_view stage, uint64_t done,
                             uint64_t total) {
      std::string text(stage);
      copy.progress(copy.progress_userdata, text.c_str(), done, total);
    };
  }
  if (copy.cancelled != nullptr) {
    result.cancelled = [copy] {
      return copy.cancelled(copy.cancel_userdata) != 0;
    };
  }
  return result;
}

Result<std::vector<std::string>>
string_array(const char* const* items, size_t count, std::string_view what) {
  std::vector<std::string> result;
  if (count != 0 && items == nullptr) {
    return make_error(Status::invalid, "{} is NULL with a count of {}", what,
                      count);
  }
  for (size_t index = 0; index < count; ++index) {
    if (items[index] == nullptr) {
      return make_error(Status::invalid, "{}[{}] is NULL", what, index);
    }
    result.emplace_back(items[index]);
  }
  return result;
}

Result<void> start_entry_call(ktc_entry** out,
                              char** report,
                              const ktc_cache* cache,
                              const void* options) {
  if (out != nullptr) {
    *out = nullptr;
  }
  if (report != nullptr) {
    *report = nullptr;
  }
  if (out == nullptr) {
    return null_argument("out");
  }
  if (cache == nullptr) {
    return null_argument("cache");
  }
  if (options == nullptr) {
    return null_argument("options");
  }
  return {};
}

void hand_out(ktc_entry** out,
              std::optional<cache::Entry> entry,
              char** report,
              std::string_view report_json) {
  std::unique_ptr<ktc_entry> handle;
  if (entry) {
    handle = std::make_unique<ktc_entry>(std::move(*entry));
  }
  if (report != nullptr) {
    *report = malloc_string(report_json);
  }
  *out = handle.release();
}

namespace {

const char* c_str_or_null(const std::string& text) {
  return text.empty() ? nullptr : text.c_str();
}

int32_t clean_action_code(cache::CleanAction action) {
  switch (action) {
  case cache::CleanAction::removed:
    return KTC_CLEAN_REMOVED;
  case cache::CleanAction::would_remove:
    return KTC_CLEAN_WOULD_REMOVE;
  case cache::CleanAction::skipped_in_use:
    return KTC_CLEAN_SKIPPED_IN_USE;
  case cache::CleanAction::failed:
    return KTC_CLEAN_FAILED;
  case cache::CleanAction::not_found:
    return KTC_CLEAN_NOT_FOUND;
  }
  return KTC_CLEAN_FAILED;
}

Result<cache::CleanMode> clean_mode(uint32_t mode) {
  switch (mode) {
  case KTC_CLEAN_ALL:
    return cache::CleanMode::all;
  case KTC_CLEAN_KEEP:
    return cache::CleanMode::keep;
  case KTC_CLEAN_CORRUPT_ONLY:
    return cache::CleanMode::corrupt_only;
  case KTC_CLEAN_KEYS:
    return cache::CleanMode::keys;
  default:
    return make_error(Status::invalid, "ktc_clean_options.mode {} is unknown",
                      mode);
  }
}

Result<cache::CleanRequest> clean_request(const ktc_clean_options& options) {
  KTC_TRY(
      check_flags(options.flags, KTC_CLEAN_DRY_RUN, "ktc_clean_options.flags"));
  cache::CleanRequest request;
  KTC_TRY_ASSIGN(request.mode, clean_mode(options.mode));
  request.dry_run = (options.flags & KTC_CLEAN_DRY_RUN) != 0;
  request.keep = options.keep;
  if (request.mode == cache::CleanMode::keys) {
    if (options.keys == nullptr && options.key_count > 0) {
      return null_argument("ktc_clean_options.keys");
    }
    for (size_t i = 0; i < options.key_count; ++i) {
      if (options.keys[i] == nullptr) {
        return make_error(Status::invalid, "ktc_clean_options.keys[{}] is NULL",
                          i);
      }
      request.keys.emplace_back(options.keys[i]);
    }
  }
  return request;
}

Result<cache::StoreRequest> store_request(const ktc_store_options& options) {
  KTC_TRY(check_flags(options.flags, KTC_STORE_NO_STRIP,
                      "ktc_store_options.flags"));
  if (options.image == nullptr) {
    return null_argument("ktc_store_options.image");
  }
  cache::StoreRequest request;
  KTC_TRY_ASSIGN(request.image,
                 optional_text(options.image, "ktc_store_options.image"));
  KTC_TRY_ASSIGN(request.vmlinux,
                 optional_text(options.vmlinux, "ktc_store_options.vmlinux"));
  KTC_TRY_ASSIGN(request.config,
                 optional_text(options.config, "ktc_store_options.config"));
  KTC_TRY_ASSIGN(request.image_name,
                 optional_text(options.image_name, "ktc_store_options.image_"
                                                   "name"));
  KTC_TRY_ASSIGN(request.arch,
                 optional_text(options.arch, "ktc_store_options.arch"));
  KTC_TRY_ASSIGN(
      request.source_json,
      optional_text(options.source_json, "ktc_store_options.source_json"));
  KTC_TRY_ASSIGN(
      request.metadata_json,
      optional_text(options.metadata_json, "ktc_store_options.metadata_json"));
  request.version = optional_value(options.version);
  request.kconfig_hash = optional_value(options.kconfig_hash);
  return request;
}

// Resolves a store's source spec through its plugin: the description
// becomes the entry's `source`, its version the entry's when none was
// given, and the plugin and identity are recorded as `source_plugin`.
Result<void> describe_into(cache::StoreRequest& request,
                           plugin::Registry& plugins,
                           const char* spec) {
  if (!request.source_json.empty()) {
    return make_error(Status::invalid,
                      "ktc_store_options: source_spec and source_json are "
                      "mutually exclusive");
  }
  KTC_TRY_ASSIGN(plugin::SourceDescription description,
                 plugin::describe_source(plugins, spec));
  request.source_json = boost::json::serialize(description.source);
  if (!request.version) {
    request.version = description.version();
  }
  boost::json::object extra;
  if (!request.metadata_json.empty()) {
    boost::system::error_code error;
    boost::json::value parsed =
        boost::json::parse(request.metadata_json, error);
    if (error || !parsed.is_object()) {
      return make_error(Status::invalid,
                        "ktc_store_options.metadata_json is not a JSON "
                        "object");
    }
    extra = std::move(parsed.as_object());
  }
  extra["source_plugin"] = description.source_plugin_json();
  request.metadata_json = boost::json::serialize(extra);
  return {};
}

boost::json::value text_or_null(const std::optional<std::string>& text) {
  return text ? boost::json::value(*text) : boost::json::value(nullptr);
}

// KTCACHE_OFFLINE=1 (exactly "1"; any other value is off).
bool offline_from_environment() {
  const char* value = std::getenv("KTCACHE_OFFLINE");
  return value != nullptr && std::string_view(value) == "1";
}

Result<cache::CacheOptions> cache_options(const ktc_open_options& options) {
  KTC_TRY(check_flags(options.flags,
                      KTC_OPEN_ALLOW_NETWORK_FS | KTC_OPEN_OFFLINE,
                      "ktc_open_options.flags"));
  cache::CacheOptions result;
  KTC_TRY_ASSIGN(result.root,
                 optional_text(options.root, "ktc_open_options.root"));
  // Cache::open() adds KTCACHE_ALLOW_NETWORK_FS=1 from the environment.
  result.allow_network_fs = (options.flags & KTC_OPEN_ALLOW_NETWORK_FS) != 0;
  if (options.store_lock_timeout_ms != 0) {
    result.store_lock_timeout =
        std::chrono::milliseconds(options.store_lock_timeout_ms);
  }
  if (options.shared_lock_timeout_ms != 0) {
    result.shared_lock_timeout =
        std::chrono::milliseconds(options.shared_lock_timeout_ms);
  }
  return result;
}

Result<std::string> resolve_root(const char* suffix) {
  if (suffix == nullptr) {
    return null_argument("suffix");
  }
  return cache::resolve_root(suffix);
}

template <typename T>
Result<void>
check_index(const std::vector<T>& items, size_t index, std::string_view what) {
  if (index >= items.size()) {
    return make_error(Status::invalid, "{} index {} is out of range ({} {})",
                      what, index, items.size(),
                      items.size() == 1 ? "item" : "items");
  }
  return {};
}

} // namespace
} // namespace ktc::capi

using namespace ktc::capi;
namespace kc = ktc::cache;

extern "C" {

// ktc_version, ktc_strerror and ktc_error_message only return static or
// thread-local text and cannot throw, so they need no guard.
const char* ktc_version(void) {
  return KTC_VERSION_STRING;
}

const char* ktc_strerror(int status) {
  switch (status) {
  case KTC_OK:
    return "success";
  case KTC_E_GENERIC:
    return "generic failure";
  case KTC_E_INVALID:
    return "invalid argument";
  case KTC_E_NOTFOUND:
    return "not found";
  case KTC_E_LOCKED:
    return "locked";
  case KTC_E_CORRUPT:
    return "corrupt entry";
  case KTC_E_IO:
    return "input/output error";
  case KTC_E_NOSPC:
    return "no space left";
  case KTC_E_VERSION:
    return "version mismatch";
  case KTC_E_NOMEM:
    return "out of memory";
  case KTC_E_INTERNAL:
    return "internal error";
  case KTC_E_UNSUPPORTED:
    return "unsupported filesystem";
  case KTC_E_MISMATCH:
    return "checksum mismatch";
  case KTC_E_UNVERIFIABLE:
    return "unverifiable entry";
  case KTC_E_ENV:
    return "environment error";
  case KTC_E_PLUGIN:
    return "plugin error";
  case KTC_E_CANCELLED:
    return "cancelled";
  case KTC_E_BUILD:
    return "build failed";
  case KTC_E_NETWORK:
    return "network error";
  default:
    return "unknown status";
  }
}

const char* ktc_error_message(void) {
  return error_message();
}

void ktc_free(void* ptr) {
  guard(__func__, [&]() -> Result<void> {
    std::free(ptr);
    return {};
  });
}

void ktc_log_set_callback(int max_level, ktc_log_fn callback, void* userdata) {
  guard(__func__, [&]() -> Result<void> {
    ktc::log::set_sink(max_level, callback, userdata);
    return {};
  });
}

int ktc_default_root(char** out) {
  return guard(__func__, [&]() -> Result<void> {
    if (out == nullptr) {
      return null_argument("out");
    }
    KTC_TRY_ASSIGN(std::string root, kc::resolve_root("kernels"));
    *out = malloc_string(root);
    return {};
  });
}

int ktc_resolve_root(const char* suffix, char** out) {
  return guard(__func__, [&]() -> Result<void> {
    if (out == nullptr) {
      return null_argument("out");
    }
    KTC_TRY_ASSIGN(std::string root, resolve_root(suffix));
    *out = malloc_string(root);
    return {};
  });
}

int ktc_key_validate(const char* key) {
  return guard(__func__, [&]() -> Result<void> {
    if (key == nullptr) {
      return null_argument("key");
    }
    return kc::validate_key(key);
  });
}

int ktc_key_compose(char** out, const char* const* parts, size_t count) {
  return guard(__func__, [&]() -> Result<void> {
    if (out == nullptr) {
      return null_argument("out");
    }
    if (parts == nullptr) {
      return null_argument("parts");
    }
    std::vector<std::string_view> views;
    for (size_t i = 0; i < count; ++i) {
      if (parts[i] == nullptr) {
        return ktc::make_error(Status::invalid, "key part {} is NULL", i);
      }
      views.emplace_back(parts[i]);
    }
    KTC_TRY_ASSIGN(std::string key, kc::compose_key(views));
    *out = malloc_string(key);
    return {};
  });
}

int ktc_cache_open(ktc_cache** out, const ktc_open_options* options) {
  return guard(__func__, [&]() -> Result<void> {
    if (out == nullptr) {
      return null_argument("out");
    }
    ktc_open_options copy = KTC_OPEN_OPTIONS_INIT;
    if (options != nullptr) {
      KTC_TRY_ASSIGN(copy, read_options(*options,
                                        KTC_FIRST_SIZE(ktc_open_options,
                                                       shared_lock_timeout_ms),
                                        "ktc_open_options"));
    }
    KTC_TRY_ASSIGN(kc::CacheOptions cache_options, cache_options(copy));
    KTC_TRY_ASSIGN(kc::Cache cache, kc::Cache::open(std::move(cache_options)));
    auto handle = std::make_unique<ktc_cache>(
        ktc_cache{std::move(cache), ktc::plugin::Registry{}});
    handle->plugins.set_offline((copy.flags & KTC_OPEN_OFFLINE) != 0 ||
                                ktc::capi::offline_from_environment());
    *out = handle.release();
    return {};
  });
}

void ktc_cache_free(ktc_cache* cache) {
  guard(__func__, [&]() -> Result<void> {
    delete cache;
    return {};
  });
}

const char* ktc_cache_root(const ktc_cache* cache) {
  return guard_value<const char*>(__func__, nullptr,
                                  [&]() -> Result<const char*> {
                                    if (cache == nullptr) {
                                      return null_argument("cache");
                                    }
                                    return cache->cache.root().c_str();
                                  });
}

int ktc_entry_get_info(const ktc_entry* entry, ktc_entry_info* info) {
  return guard(__func__, [&]() -> Result<void> {
    if (entry == nullptr) {
      return null_argument("entry");
    }
    if (info == nullptr) {
      return null_argument("info");
    }
    KTC_TRY(check_output(*info, KTC_FIRST_SIZE(ktc_entry_info, leased),
                         "ktc_entry_info"));
    const kc::Entry& source = entry->entry;
    ktc_entry_info full = KTC_ENTRY_INFO_INIT;
    full.state = source.valid() ? KTC_ENTRY_VALID : KTC_ENTRY_CORRUPT;
    full.key = source.key.c_str();
    full.path = source.path.c_str();
    full.metadata_json = !entry->metadata_json.empty()
                             ? entry->metadata_json.c_str()
                         : source.valid() ? source.metadata->text().c_str()
                                          : nullptr;
    full.image_path = c_str_or_null(entry->image_path);
    full.vmlinux_path = c_str_or_null(entry->vmlinux_path);
    full.config_path = c_str_or_null(entry->config_path);
    full.error_kind = entry->error_kind;
    full.reason =
        source.corruption ? source.corruption->reason.c_str() : nullptr;
    full.last_used = source.last_used;
    full.leased = source.lease.held() ? 1 : 0;
    write_output(*info, full);
    return {};
  });
}

void ktc_entry_free(ktc_entry* entry) {
  guard(__func__, [&]() -> Result<void> {
    delete entry;
    return {};
  });
}

int ktc_lookup(ktc_entry** out,
               ktc_cache* cache,
               const char* key,
               uint32_t flags) {
  return guard(__func__, [&]() -> Result<void> {
    if (out == nullptr) {
      return null_argument("out");
    }
    if (cache == nullptr) {
      return null_argument("cache");
    }
    if (key == nullptr) {
      return null_argument("key");
    }
    KTC_TRY(check_flags(flags, KTC_LOOKUP_LEASE, "lookup flags"));
    bool lease = (flags & KTC_LOOKUP_LEASE) != 0;
    KTC_TRY_ASSIGN(kc::Entry entry, cache->cache.lookup(key, lease));
    *out = new ktc_entry(std::move(entry));
    return {};
  });
}

int ktc_list_entries(ktc_list** out, ktc_cache* cache) {
  return guard(__func__, [&]() -> Result<void> {
    if (out == nullptr) {
      return null_argument("out");
    }
    if (cache == nullptr) {
      return null_argument("cache");
    }
    Result<void> error;
    std::vector<kc::Entry> entries = cache->cache.list_entries(&error);
    KTC_TRY(std::move(error));
    // The handles are built (paths, strings) on two threads for a large
    // cache, like the entries were read.
    auto list = std::make_unique<ktc_list>();
    list->entries.resize(entries.size());
    ktc::split_in_two(entries.size(), k_parallel_threshold,
                      [&](size_t begin, size_t end) {
                        for (size_t i = begin; i < end; ++i) {
                          list->entries[i] = ktc_entry(std::move(entries[i]));
                        }
                      });
    *out = list.release();
    return {};
  });
}

size_t ktc_list_count(const ktc_list* list) {
  return guard_value<size_t>(__func__, 0, [&]() -> Result<size_t> {
    if (list == nullptr) {
      return null_argument("list");
    }
    return list->entries.size();
  });
}

const ktc_entry* ktc_list_at(const ktc_list* list, size_t index) {
  return guard_value<const ktc_entry*>(
      __func__, nullptr, [&]() -> Result<const ktc_entry*> {
        if (list == nullptr) {
          return null_argument("list");
        }
        KTC_TRY(check_index(list->entries, index, "entry list"));
        return &list->entries[index];
      });
}

void ktc_list_free(ktc_list* list) {
  guard(__func__, [&]() -> Result<void> {
    if (list == nullptr) {
      return {};
    }
    // Freeing ten thousand parsed documents is measurable; halve it.
    std::vector<ktc_entry>& entries = list->entries;
    ktc::split_in_two(entries.size(), k_parallel_threshold,
                      [&](size_t begin, size_t end) {
                        for (size_t i = begin; i < end; ++i) {
                          entries[i].release_resources();
                        }
                      });
    delete list;
    return {};
  });
}

int ktc_store(ktc_entry** out,
              ktc_cache* cache,
              const char* key,
              const ktc_store_options* options) {
  return guard(__func__, [&]() -> Result<void> {
    if (cache == nullptr) {
      return null_argument("cache");
    }
    if (key == nullptr) {
      return null_argument("key");
    }
    if (options == nullptr) {
      return null_argument("options");
    }
    KTC_TRY_ASSIGN(ktc_store_options copy,
                   read_options(*options,
                                KTC_FIRST_SIZE(ktc_store_options, kconfig_hash),
                                "ktc_store_options"));
    KTC_TRY_ASSIGN(kc::StoreRequest request, store_request(copy));
    if (copy.source_spec != nullptr) {
      KTC_TRY(describe_into(request, cache->plugins, copy.source_spec));
    }
    // The key is checked before a possibly long strip.
    KTC_TRY(kc::validate_key(key));
    ktc::plugin::StripScratch scratch;
    if (!request.vmlinux.empty()) {
      ktc::plugin::StoreStripOptions strip;
      strip.no_strip = (copy.flags & KTC_STORE_NO_STRIP) != 0;
      strip.policy = optional_value(copy.strip_policy);
      KTC_TRY(ktc::plugin::strip_for_store(cache->plugins, request, strip,
                                           scratch));
    }
    KTC_TRY_ASSIGN(kc::Entry entry, cache->cache.store(key, request));
    if (out != nullptr) {
      *out = new ktc_entry(std::move(entry));
    }
    return {};
  });
}

int ktc_verify(ktc_cache* cache, const char* key) {
  return guard(__func__, [&]() -> Result<void> {
    if (cache == nullptr) {
      return null_argument("cache");
    }
    if (key == nullptr) {
      return null_argument("key");
    }
    return cache->cache.verify(key);
  });
}

int ktc_clean(ktc_clean_report** out,
              ktc_cache* cache,
              const ktc_clean_options* options) {
  return guard(__func__, [&]() -> Result<void> {
    if (out == nullptr) {
      return null_argument("out");
    }
    if (cache == nullptr) {
      return null_argument("cache");
    }
    ktc_clean_options copy = KTC_CLEAN_OPTIONS_INIT;
    if (options != nullptr) {
      KTC_TRY_ASSIGN(copy,
                     read_options(*options,
                                  KTC_FIRST_SIZE(ktc_clean_options, key_count),
                                  "ktc_clean_options"));
    }
    KTC_TRY_ASSIGN(kc::CleanRequest request, clean_request(copy));
    KTC_TRY_ASSIGN(std::vector<kc::CleanItem> items,
                   cache->cache.clean(request));
    *out = new ktc_clean_report{std::move(items)};
    return {};
  });
}

size_t ktc_clean_report_count(const ktc_clean_report* report) {
  return guard_value<size_t>(__func__, 0, [&]() -> Result<size_t> {
    if (report == nullptr) {
      return null_argument("report");
    }
    return report->items.size();
  });
}

int ktc_clean_report_get(const ktc_clean_report* report,
                         size_t index,
                         ktc_clean_item* item) {
  return guard(__func__, [&]() -> Result<void> {
    if (report == nullptr) {
      return null_argument("report");
    }
    if (item == nullptr) {
      return null_argument("item");
    }
    KTC_TRY(check_output(*item, KTC_FIRST_SIZE(ktc_clean_item, bytes),
                         "ktc_clean_item"));
    KTC_TRY(check_index(report->items, index, "clean report"));
    const kc::CleanItem& source = report->items[index];
    ktc_clean_item full = KTC_CLEAN_ITEM_INIT;
    full.action = clean_action_code(source.action);
    full.key = source.key.c_str();
    full.corrupt = source.corrupt ? 1 : 0;
    full.message = c_str_or_null(source.message);
    full.bytes = source.bytes;
    write_output(*item, full);
    return {};
  });
}

void ktc_clean_report_free(ktc_clean_report* report) {
  guard(__func__, [&]() -> Result<void> {
    delete report;
    return {};
  });
}

int ktc_locks(ktc_lock_list** out, ktc_cache* cache) {
  return guard(__func__, [&]() -> Result<void> {
    if (out == nullptr) {
      return null_argument("out");
    }
    if (cache == nullptr) {
      return null_argument("cache");
    }
    KTC_TRY_ASSIGN(std::vector<kc::LockFileInfo> locks, cache->cache.locks());
    *out = new ktc_lock_list{std::move(locks)};
    return {};
  });
}

size_t ktc_lock_list_count(const ktc_lock_list* list) {
  return guard_value<size_t>(__func__, 0, [&]() -> Result<size_t> {
    if (list == nullptr) {
      return null_argument("list");
    }
    return list->locks.size();
  });
}

int ktc_lock_list_get(const ktc_lock_list* list,
                      size_t index,
                      ktc_lock_info* info) {
  return guard(__func__, [&]() -> Result<void> {
    if (list == nullptr) {
      return null_argument("list");
    }
    if (info == nullptr) {
      return null_argument("info");
    }
    KTC_TRY(check_output(*info, KTC_FIRST_SIZE(ktc_lock_info, holder_count),
                         "ktc_lock_info"));
    KTC_TRY(check_index(list->locks, index, "lock list"));
    const kc::LockFileInfo& source = list->locks[index];
    ktc_lock_info full = KTC_LOCK_INFO_INIT;
    full.name = source.name.c_str();
    full.path = source.path.c_str();
    full.holder_count = source.holders.size();
    write_output(*info, full);
    return {};
  });
}

int ktc_lock_list_holder(const ktc_lock_list* list,
                         size_t index,
                         size_t holder_index,
                         ktc_lock_holder* holder) {
  return guard(__func__, [&]() -> Result<void> {
    if (list == nullptr) {
      return null_argument("list");
    }
    if (holder == nullptr) {
      return null_argument("holder");
    }
    KTC_TRY(check_output(*holder, KTC_FIRST_SIZE(ktc_lock_holder, cmdline),
                         "ktc_lock_holder"));
    KTC_TRY(check_index(list->locks, index, "lock list"));
    const kc::LockFileInfo& lock = list->locks[index];
    KTC_TRY(check_index(lock.holders, holder_index,
                        fmt::format("holder list of lock {}", lock.name)));
    const kc::LockHolder& source = lock.holders[holder_index];
    ktc_lock_holder full = KTC_LOCK_HOLDER_INIT;
    full.pid = source.pid;
    full.exclusive = source.exclusive ? 1 : 0;
    full.cmdline = source.cmdline.c_str();
    write_output(*holder, full);
    return {};
  });
}

void ktc_lock_list_free(ktc_lock_list* list) {
  guard(__func__, [&]() -> Result<void> {
    delete list;
    return {};
  });
}

int ktc_entry_kconfig_status(int* out,
                             const ktc_entry* entry,
                             const char* current_hash) {
  return guard(__func__, [&]() -> Result<void> {
    if (out == nullptr) {
      return null_argument("out");
    }
    if (entry == nullptr) {
      return null_argument("entry");
    }
    if (current_hash == nullptr) {
      return null_argument("current_hash");
    }
    if (!entry->entry.valid()) {
      return ktc::make_error(Status::invalid,
                             "cache entry \"{}\" is corrupt, so it has no "
                             "kconfig hash to compare",
                             entry->entry.key);
    }
    switch (kc::kconfig_status(*entry->entry.metadata, current_hash)) {
    case kc::KconfigStatus::matches:
      *out = KTC_KCONFIG_MATCHES;
      break;
    case kc::KconfigStatus::stale:
      *out = KTC_KCONFIG_STALE;
      break;
    case kc::KconfigStatus::untracked:
      *out = KTC_KCONFIG_UNTRACKED;
      break;
    }
    return {};
  });
}

int ktc_prefer_source_tree(char** out, const char* entry_dir) {
  return guard(__func__, [&]() -> Result<void> {
    if (out == nullptr) {
      return null_argument("out");
    }
    if (entry_dir == nullptr) {
      return null_argument("entry_dir");
    }
    std::optional<std::string> tree = kc::prefer_source_tree(entry_dir);
    if (!tree) {
      return ktc::make_error(Status::not_found,
                             "cache entry {} has no local source tree whose "
                             "vmlinux provably matches it",
                             entry_dir);
    }
    *out = malloc_string(*tree);
    return {};
  });
}

int ktc_recover_source_tree(char** out, const char* entry_dir) {
  return guard(__func__, [&]() -> Result<void> {
    if (out == nullptr) {
      return null_argument("out");
    }
    if (entry_dir == nullptr) {
      return null_argument("entry_dir");
    }
    std::optional<std::string> tree = kc::recover_source_tree(entry_dir);
    if (!tree) {
      return ktc::make_error(Status::not_found,
                             "cache entry {} records no local source tree",
                             entry_dir);
    }
    *out = malloc_string(*tree);
    return {};
  });
}

} // extern "C"

/* ---------------------------------------------------------------------- */

int ktc_plugin_dir_add(ktc_cache* cache, const char* dir) {
  return guard(__func__, [&]() -> Result<void> {
    if (cache == nullptr) {
      return null_argument("cache");
    }
    if (dir == nullptr) {
      return null_argument("dir");
    }
    if (*dir == '\0') {
      return make_error(Status::invalid, "plugin directory is empty");
    }
    cache->plugins.add_dir(dir);
    return {};
  });
}

const char* ktc_plugin_default_dir(void) {
  return guard_value<const char*>(__func__, "", []() -> Result<const char*> {
    return ktc::plugin::default_dir().c_str();
  });
}

int ktc_plugins_list(ktc_plugin_list** out, ktc_cache* cache, uint32_t flags) {
  return guard(__func__, [&]() -> Result<void> {
    if (out == nullptr) {
      return null_argument("out");
    }
    if (cache == nullptr) {
      return null_argument("cache");
    }
    KTC_TRY(check_flags(flags, KTC_PLUGINS_ALL, "ktc_plugins_list flags"));
    auto records = cache->plugins.discover();
    if ((flags & KTC_PLUGINS_ALL) == 0) {
      std::erase_if(records, [](const ktc::plugin::Record& record) {
        return record.state != ktc::plugin::Record::State::loaded;
      });
    }
    *out = new ktc_plugin_list{std::move(records)};
    return {};
  });
}

size_t ktc_plugin_list_count(const ktc_plugin_list* list) {
  return guard_value<size_t>(__func__, 0, [&]() -> Result<size_t> {
    if (list == nullptr) {
      return null_argument("list");
    }
    return list->records.size();
  });
}

int ktc_plugin_list_get(const ktc_plugin_list* list,
                        size_t index,
                        ktc_plugin_record* record) {
  return guard(__func__, [&]() -> Result<void> {
    if (list == nullptr) {
      return null_argument("list");
    }
    if (record == nullptr) {
      return null_argument("record");
    }
    KTC_TRY(check_output(*record, KTC_FIRST_SIZE(ktc_plugin_record, reason),
                         "ktc_plugin_record"));
    KTC_TRY(check_index(list->records, index, "plugin list"));
    const ktc::plugin::Record& source = list->records[index];
    auto optional_c_str = [](const std::optional<std::string>& text) {
      return text ? text->c_str() : nullptr;
    };
    ktc_plugin_record full = KTC_PLUGIN_RECORD_INIT;
    switch (source.state) {
    case ktc::plugin::Record::State::loaded:
      full.state = KTC_PLUGIN_LOADED;
      break;
    case ktc::plugin::Record::State::rejected:
      full.state = KTC_PLUGIN_REJECTED;
      break;
    case ktc::plugin::Record::State::shadowed:
      full.state = KTC_PLUGIN_SHADOWED;
      break;
    }
    full.name = source.name.c_str();
    full.kind = source.kind.c_str();
    full.version = optional_c_str(source.version);
    full.file = source.file.c_str();
    full.abi_major = source.abi_major;
    full.abi_minor = source.abi_minor;
    full.description = optional_c_str(source.description);
    full.reason = optional_c_str(source.reason);
    write_output(*record, full);
    return {};
  });
}

void ktc_plugin_list_free(ktc_plugin_list* list) {
  guard(__func__, [&]() -> Result<void> {
    delete list;
    return {};
  });
}

int ktc_source_describe(char** out, ktc_cache* cache, const char* spec) {
  return guard(__func__, [&]() -> Result<void> {
    if (out == nullptr) {
      return null_argument("out");
    }
    if (cache == nullptr) {
      return null_argument("cache");
    }
    if (spec == nullptr) {
      return null_argument("spec");
    }
    KTC_TRY_ASSIGN(ktc::plugin::SourceDescription description,
                   ktc::plugin::describe_source(cache->plugins, spec));
    *out = malloc_string(boost::json::serialize(description.to_json()));
    return {};
  });
}

namespace ktc::capi {
namespace {

// An empty directory for a fetch: created when missing (true), or checked
// to be empty.
Result<bool> prepare_fetch_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0777) == 0) {
    return true;
  }
  if (errno != EEXIST) {
    return errno_error(errno, path);
  }
  KTC_TRY_ASSIGN(bool empty, fs::directory_is_empty(path));
  if (!empty) {
    return make_error(Status::invalid,
                      "{}: the destination directory is not empty", path);
  }
  return false;
}

} // namespace
} // namespace ktc::capi

int ktc_source_fetch(char** out,
                     ktc_cache* cache,
                     const char* spec,
                     const char* dest_dir,
                     const ktc_hooks* hooks) {
  return guard(__func__, [&]() -> Result<void> {
    if (out == nullptr) {
      return null_argument("out");
    }
    *out = nullptr;
    if (cache == nullptr) {
      return null_argument("cache");
    }
    if (spec == nullptr) {
      return null_argument("spec");
    }
    if (dest_dir == nullptr || *dest_dir == '\0') {
      return null_argument("dest_dir");
    }
    KTC_TRY_ASSIGN(ktc::plugin::CallHooks hook_set,
                   ktc::capi::call_hooks(hooks));
    KTC_TRY_ASSIGN(std::string dest, ktc::fs::absolute_path(dest_dir));
    KTC_TRY_ASSIGN(ktc::plugin::SourceDescription description,
                   ktc::plugin::describe_source(cache->plugins, spec));
    KTC_TRY_ASSIGN(bool created, ktc::capi::prepare_fetch_dir(dest));
    auto tree = ktc::plugin::acquire_source(description, dest, hook_set);
    if (!tree) {
      // Leave nothing of a failed fetch behind.
      if (created) {
        (void)ktc::fs::remove_tree(dest);
      } else {
        (void)ktc::fs::empty_directory(dest);
      }
      return tree.error();
    }
    if (created && *tree != dest &&
        !std::string_view(*tree).starts_with(dest + "/")) {
      // A tree used in place leaves the directory made for it unused.
      (void)::rmdir(dest.c_str());
    }
    boost::json::object result = description.to_json();
    result["tree"] = *tree;
    *out = malloc_string(boost::json::serialize(result));
    return {};
  });
}

namespace ktc::capi {

Result<build::BuildRequest> build_request(const ktc_build_options& options) {
  KTC_TRY(check_flags(options.flags,
                      KTC_BUILD_FORCE | KTC_BUILD_STORE_DIRTY |
                          KTC_BUILD_NO_STRIP | KTC_BUILD_KEEP_TREE,
                      "ktc_build_options.flags"));
  if (options.spec == nullptr) {
    return null_argument("ktc_build_options.spec");
  }
  build::BuildRequest request;
  request.spec = options.spec;
  if (options.arch != nullptr) {
    request.arch = options.arch;
  }
  if (options.base_config != nullptr) {
    request.base_config = options.base_config;
  }
  KTC_TRY_ASSIGN(request.kconfig_files,
                 string_array(options.kconfig_files, options.kconfig_file_count,
                              "ktc_build_options.kconfig_files"));
  KTC_TRY_ASSIGN(request.kconfig_settings,
                 string_array(options.kconfig_settings,
                              options.kconfig_setting_count,
                              "ktc_build_options.kconfig_settings"));
  KTC_TRY_ASSIGN(request.make_args,
                 string_array(options.make_args, options.make_arg_count,
                              "ktc_build_options.make_args"));
  request.jobs = options.jobs;
  request.cross_compile = optional_value(options.cross_compile);
  if (!request.cross_compile) {
    const char* inherited = std::getenv("CROSS_COMPILE");
    if (inherited != nullptr && *inherited != '\0') {
      request.cross_compile = inherited;
    }
  }
  request.cc = optional_value(options.cc);
  request.llvm = optional_value(options.llvm);
  request.strip_policy = optional_value(options.strip_policy);
  request.no_strip = (options.flags & KTC_BUILD_NO_STRIP) != 0;
  request.force = (options.flags & KTC_BUILD_FORCE) != 0;
  request.store_dirty = (options.flags & KTC_BUILD_STORE_DIRTY) != 0;
  request.keep_tree = (options.flags & KTC_BUILD_KEEP_TREE) != 0;
  if (options.wait_timeout_ms != 0) {
    request.wait_timeout = std::chrono::milliseconds(options.wait_timeout_ms);
  }
  KTC_TRY_ASSIGN(request.hooks, call_hooks(options.hooks));
  return request;
}

} // namespace ktc::capi

int ktc_ensure(ktc_entry** out,
               ktc_cache* cache,
               const ktc_build_options* options,
               char** report) {
  return guard(__func__, [&]() -> Result<void> {
    KTC_TRY(start_entry_call(out, report, cache, options));
    KTC_TRY_ASSIGN(ktc_build_options copy,
                   read_options(*options,
                                KTC_FIRST_SIZE(ktc_build_options, hooks),
                                "ktc_build_options"));
    KTC_TRY_ASSIGN(ktc::build::BuildRequest request,
                   ktc::capi::build_request(copy));
    KTC_TRY_ASSIGN(ktc::build::BuildReport built,
                   ktc::build::ensure(cache->cache, cache->plugins, request));
    hand_out(out, std::move(built.entry), report,
             boost::json::serialize(built.to_json()));
    return {};
  });
}

int ktc_strip(ktc_cache* cache,
              const char* input,
              const char* output,
              const ktc_strip_options* options,
              char** report) {
  return guard(__func__, [&]() -> Result<void> {
    if (report != nullptr) {
      *report = nullptr;
    }
    if (cache == nullptr) {
      return null_argument("cache");
    }
    if (input == nullptr) {
      return null_argument("input");
    }
    if (output == nullptr) {
      return null_argument("output");
    }
    ktc_strip_options copy = KTC_STRIP_OPTIONS_INIT;
    if (options != nullptr) {
      KTC_TRY_ASSIGN(copy,
                     read_options(*options,
                                  KTC_FIRST_SIZE(ktc_strip_options, policy),
                                  "ktc_strip_options"));
    }
    KTC_TRY(check_flags(copy.flags, 0, "ktc_strip_options.flags"));
    std::string policy = copy.policy != nullptr ? copy.policy : "btf";
    ktc::plugin::StripFileOptions strip_options;
    strip_options.sync = true;
    KTC_TRY_ASSIGN(ktc::plugin::StripOutcome outcome,
                   ktc::plugin::strip_file(cache->plugins, policy, input,
                                           output, strip_options));
    if (report != nullptr) {
      boost::json::object object;
      object["requested"] = outcome.requested;
      object["policy"] = outcome.policy;
      object["policy_version"] = outcome.policy_version;
      object["stripped"] = outcome.stripped;
      object["fallback"] = text_or_null(outcome.fallback);
      object["input_bytes"] = outcome.input_size;
      object["output_bytes"] = outcome.output_size;
      object["build_id"] = text_or_null(outcome.build_id);
      *report = malloc_string(boost::json::serialize(object));
    }
    return {};
  });
}

/* ---------------------------------------------------------------------- */
/* Kernel configuration                                                   */

namespace {

struct KconfigAnswer {
  std::string text;
  int source = KTC_KCONFIG_FROM_IKCONFIG;
  std::string path;
};

Result<std::optional<ktc::elf::EmbeddedConfig>>
embedded_config(const std::string& path) {
  KTC_TRY_ASSIGN(ktc::elf::ElfFile file, ktc::elf::ElfFile::open(path));
  return ktc::elf::read_ikconfig(file);
}

Result<KconfigAnswer> kconfig_of_file(const std::string& path) {
  KTC_TRY_ASSIGN(std::optional<ktc::elf::EmbeddedConfig> embedded,
                 embedded_config(path));
  if (!embedded) {
    return ktc::make_error(Status::not_found,
                           "{}: no embedded config (CONFIG_IKCONFIG)", path);
  }
  return KconfigAnswer{std::move(embedded->text), KTC_KCONFIG_FROM_IKCONFIG,
                       path};
}

Result<KconfigAnswer> kconfig_of_entry(ktc_cache& cache,
                                       const std::string& key) {
  KTC_TRY_ASSIGN(kc::Entry entry, cache.cache.lookup(key, false));
  std::string vmlinux = entry.vmlinux_path();
  std::string config = entry.config_path();
  if (!vmlinux.empty()) {
    auto embedded = embedded_config(vmlinux);
    if (embedded && *embedded) {
      return KconfigAnswer{std::move((*embedded)->text),
                           KTC_KCONFIG_FROM_IKCONFIG, vmlinux};
    }
    if (!embedded) {
      if (config.empty()) {
        return std::move(embedded).error();
      }
      KTC_LOG(warn,
              "Failed to read the embedded config of {}: {}; using the "
              "stored .config",
              vmlinux, embedded.error().message);
    }
  }
  if (config.empty()) {
    return ktc::make_error(
        Status::not_found, "entry \"{}\": {} and no stored .config", key,
        vmlinux.empty() ? "no vmlinux"
                        : "no embedded config (CONFIG_IKCONFIG)");
  }
  KTC_TRY_ASSIGN(std::string text, ktc::fs::read_file(AT_FDCWD, config));
  return KconfigAnswer{std::move(text), KTC_KCONFIG_FROM_CONFIG_FILE, config};
}

// Letters, digits and '_', with something after any "CONFIG_".
bool is_option_name(std::string_view name) {
  std::string_view bare =
      name.starts_with("CONFIG_") ? name.substr(sizeof "CONFIG_" - 1) : name;
  return !bare.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '_';
  });
}

} // namespace

int ktc_kconfig_read(char** out,
                     int* source,
                     char** path,
                     ktc_cache* cache,
                     const char* file_or_key) {
  return guard(__func__, [&]() -> Result<void> {
    if (out == nullptr) {
      return null_argument("out");
    }
    if (file_or_key == nullptr) {
      return null_argument("file_or_key");
    }
    if (*file_or_key == '\0') {
      return make_error(Status::invalid,
                        "the file or key to read the kernel config of is "
                        "empty");
    }
    KconfigAnswer answer;
    if (names_a_file(file_or_key)) {
      KTC_TRY_ASSIGN(answer, kconfig_of_file(file_or_key));
    } else if (cache == nullptr) {
      return make_error(Status::invalid,
                        "\"{}\" is not a file, and no cache was given to "
                        "look it up as a key",
                        file_or_key);
    } else {
      KTC_TRY_ASSIGN(answer, kconfig_of_entry(*cache, file_or_key));
    }
    // Both copies first, so that a failure leaves the outputs untouched.
    std::unique_ptr<char, decltype(&std::free)> text(malloc_string(answer.text),
                                                     &std::free);
    char* answered_by = path != nullptr ? malloc_string(answer.path) : nullptr;
    *out = text.release();
    if (path != nullptr) {
      *path = answered_by;
    }
    if (source != nullptr) {
      *source = answer.source;
    }
    return {};
  });
}

int ktc_kconfig_value(char** out, const char* config_text, const char* name) {
  return guard(__func__, [&]() -> Result<void> {
    if (out == nullptr) {
      return null_argument("out");
    }
    if (config_text == nullptr) {
      return null_argument("config_text");
    }
    if (name == nullptr) {
      return null_argument("name");
    }
    if (!is_option_name(name)) {
      return make_error(Status::invalid,
                        "\"{}\" is not a kconfig option name (letters, "
                        "digits and '_', as in CONFIG_HZ or HZ)",
                        name);
    }
    std::optional<std::string> value =
        ktc::elf::config_value(config_text, name);
    if (!value) {
      std::string_view text = config_text;
      std::string symbol = std::string_view(name).starts_with("CONFIG_")
                               ? std::string(name)
                               : "CONFIG_" + std::string(name);
      bool unset = text.find("# " + symbol + " is not set") != text.npos;
      return make_error(Status::not_found, "{} is {}", symbol,
                        unset ? "not set" : "absent from the config");
    }
    *out = malloc_string(*value);
    return {};
  });
}
