#include "plugin/host.hpp"

#include "plugin/elf_probe.hpp"
#include "plugin/operations.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/process.hpp"
#include "util/sha256.hpp"

#define BOOST_DLL_USE_STD_FS
#include <boost/dll/shared_library.hpp>

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <type_traits>

#ifndef KTC_VERSION_STRING
#define KTC_VERSION_STRING "unknown"
#endif

namespace ktc::plugin {

// The shared object itself. Separate from Plugin so that the unload hook
// runs while the code is still mapped.
class Library {
public:
  explicit Library(boost::dll::shared_library library)
      : m_library(std::move(library)) {}
  boost::dll::shared_library& get() { return m_library; }

private:
  boost::dll::shared_library m_library;
};

namespace {

using QuerySignature = std::remove_pointer_t<ktc_plugin_query_fn>;

constexpr size_t k_name_max = 32;
constexpr size_t k_read_limit_default = 64u << 20;
constexpr size_t k_run_output_max = 1u << 20;

#define KTC_FIRST_PLUGIN_SIZE(type, last_member)                               \
  (offsetof(type, last_member) + sizeof(type::last_member))

constexpr size_t k_info_first_size =
    KTC_FIRST_PLUGIN_SIZE(ktc_plugin_info, strip);
constexpr size_t k_source_ops_first_size =
    KTC_FIRST_PLUGIN_SIZE(ktc_source_ops, expand);
constexpr size_t k_strip_ops_first_size =
    KTC_FIRST_PLUGIN_SIZE(ktc_strip_ops, whole_file);

// Copies a plugin's size-prefixed struct: at least its first published
// size, zero-filled past what the plugin provided, and any part larger
// than this host knows must be zero.
template <typename T>
Result<T> copy_sized(const T* from, size_t first_size, std::string_view what) {
  static_assert(std::is_trivially_copyable_v<T>);
  if (from == nullptr) {
    return make_error(Status::invalid, "{} is NULL", what);
  }
  uint32_t size = from->struct_size;
  if (size < first_size) {
    return make_error(Status::invalid,
                      "{}.struct_size {} is smaller than its first published "
                      "size {}",
                      what, size, first_size);
  }
  const auto* bytes = reinterpret_cast<const unsigned char*>(from);
  for (size_t offset = sizeof(T); offset < size; ++offset) {
    if (bytes[offset] != 0) {
      return make_error(Status::invalid,
                        "{} has a non-zero byte at offset {}, past the {} "
                        "bytes this host knows (struct_size {}); it needs a "
                        "newer libktcache",
                        what, offset, sizeof(T), size);
    }
  }
  T copy;
  std::memset(&copy, 0, sizeof(T));
  std::memcpy(&copy, from, std::min<size_t>(size, sizeof(T)));
  return copy;
}

std::string entry_symbol() {
  return KTC_PLUGIN_QUERY_SYMBOL;
}

std::optional<std::string> text_or_null(const char* text) {
  if (text == nullptr) {
    return std::nullopt;
  }
  return std::string(text);
}

// --- the services ------------------------------------------------------

template <typename Body>
int service_guard(ktc_plugin_call* call, Body&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return KTC_PLUGIN_E_NOMEM;
  } catch (const std::exception& exception) {
    if (call != nullptr) {
      try {
        call->error = exception.what();
      } catch (...) {
      }
    }
    return KTC_PLUGIN_E_GENERIC;
  } catch (...) {
    return KTC_PLUGIN_E_GENERIC;
  }
}

int plugin_status_of(const Error& error) {
  switch (error.status) {
  case Status::not_found:
    return KTC_PLUGIN_E_NOTFOUND;
  case Status::invalid:
    return KTC_PLUGIN_E_INVALID;
  case Status::no_memory:
    return KTC_PLUGIN_E_NOMEM;
  default:
    return KTC_PLUGIN_E_IO;
  }
}

// Records a host-side failure of a service in the call, so the plugin's
// caller sees it even when the plugin passes the status on silently.
int service_failed(ktc_plugin_call* call, const Error& error) {
  if (call != nullptr) {
    call->error = error.message;
  }
  return plugin_status_of(error);
}

const char* name_of(const ktc_plugin_call* call) {
  return call != nullptr && !call->plugin_name.empty()
             ? call->plugin_name.c_str()
             : "?";
}

extern "C" void
service_log(ktc_plugin_call* call, int level, const char* message) {
  service_guard(call, [&]() -> int {
    if (message == nullptr) {
      return KTC_PLUGIN_E_INVALID;
    }
    int clamped = std::clamp(level, static_cast<int>(KTC_PLUGIN_LOG_ERROR),
                             static_cast<int>(KTC_PLUGIN_LOG_TRACE));
    auto as_level = static_cast<log::Level>(clamped);
    if (log::enabled(as_level)) {
      log::detail::emit(as_level,
                        fmt::format("Plugin {}: {}", name_of(call), message));
    }
    return KTC_PLUGIN_OK;
  });
}

extern "C" void service_progress(ktc_plugin_call* call,
                                 const char* stage,
                                 uint64_t done,
                                 uint64_t total) {
  service_guard(call, [&]() -> int {
    const char* what = stage != nullptr ? stage : "work";
    if (total != 0) {
      KTC_LOG(trace, "Plugin {}: {} {}/{}", name_of(call), what, done, total);
    } else {
      KTC_LOG(trace, "Plugin {}: {} {}", name_of(call), what, done);
    }
    if (call != nullptr && call->progress) {
      call->progress(what, done, total);
    }
    return KTC_PLUGIN_OK;
  });
}

extern "C" int service_cancelled(ktc_plugin_call* call) {
  return service_guard(call, [&]() -> int {
    return call != nullptr && call->cancelled && call->cancelled() ? 1 : 0;
  });
}

extern "C" void service_set_error(ktc_plugin_call* call, const char* message) {
  service_guard(call, [&]() -> int {
    if (call != nullptr && message != nullptr) {
      std::string text(message);
      // One line: a plugin's multi-line message is folded.
      std::replace(text.begin(), text.end(), '\n', ' ');
      call->error = std::move(text);
    }
    return KTC_PLUGIN_OK;
  });
}

// Reads a whole regular file of at most `limit` bytes.
Result<std::string> read_limited(const char* path, size_t limit) {
  Fd fd(::open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) {
    return errno_error(errno, path);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return errno_error(errno, path);
  }
  if (!S_ISREG(st.st_mode)) {
    return make_error(Status::invalid, "{}: not a regular file", path);
  }
  if (static_cast<uint64_t>(st.st_size) > limit) {
    return make_error(Status::io, "{}: {} bytes, more than the {} asked for",
                      path, st.st_size, limit);
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t filled = 0;
  while (filled < text.size()) {
    ssize_t count =
        ::read(fd.get(), text.data() + filled, text.size() - filled);
    if (count < 0 && errno == EINTR) {
      continue;
    }
    if (count < 0) {
      return errno_error(errno, path);
    }
    if (count == 0) {
      break;
    }
    filled += static_cast<size_t>(count);
  }
  text.resize(filled);
  return text;
}

extern "C" int service_read_file(ktc_plugin_call* call,
                                 const char* path,
                                 size_t max_bytes,
                                 char** data,
                                 size_t* length) {
  return service_guard(call, [&]() -> int {
    if (path == nullptr || data == nullptr || length == nullptr) {
      return KTC_PLUGIN_E_INVALID;
    }
    size_t limit = max_bytes != 0 ? max_bytes : k_read_limit_default;
    auto text = read_limited(path, limit);
    if (!text) {
      return service_failed(call, text.error());
    }
    char* buffer = static_cast<char*>(std::malloc(text->size() + 1));
    if (buffer == nullptr) {
      return KTC_PLUGIN_E_NOMEM;
    }
    std::memcpy(buffer, text->data(), text->size());
    buffer[text->size()] = '\0';
    *data = buffer;
    *length = text->size();
    return KTC_PLUGIN_OK;
  });
}

extern "C" void service_free_buffer(void* buffer) {
  std::free(buffer);
}

extern "C" int
service_copy_file(ktc_plugin_call* call, const char* from, const char* to) {
  return service_guard(call, [&]() -> int {
    if (from == nullptr || to == nullptr) {
      return KTC_PLUGIN_E_INVALID;
    }
    auto copied = fs::copy_file_to(from, to);
    if (!copied) {
      return service_failed(call, copied.error());
    }
    return KTC_PLUGIN_OK;
  });
}

extern "C" int
service_sha256_file(ktc_plugin_call* call, const char* path, char hex[65]) {
  return service_guard(call, [&]() -> int {
    if (path == nullptr || hex == nullptr) {
      return KTC_PLUGIN_E_INVALID;
    }
    Fd fd(::open(path, O_RDONLY | O_CLOEXEC));
    if (!fd) {
      return service_failed(call, errno_error(errno, path));
    }
    auto digest = sha256_fd(fd.get(), path);
    if (!digest) {
      return service_failed(call, digest.error());
    }
    std::memcpy(hex, digest->c_str(), 64);
    hex[64] = '\0';
    return KTC_PLUGIN_OK;
  });
}

extern "C" int service_run(ktc_plugin_call* call,
                           const char* const* argv,
                           const char* cwd,
                           char** output,
                           int* exit_status) {
  return service_guard(call, [&]() -> int {
    if (argv == nullptr || argv[0] == nullptr || output == nullptr ||
        exit_status == nullptr) {
      return KTC_PLUGIN_E_INVALID;
    }
    std::vector<std::string> arguments;
    for (const char* const* argument = argv; *argument != nullptr; ++argument) {
      arguments.emplace_back(*argument);
    }
    auto ran =
        process::run(arguments, cwd != nullptr ? cwd : "", k_run_output_max);
    if (!ran) {
      return service_failed(call, ran.error());
    }
    if (!ran->standard_error.empty()) {
      KTC_LOG(debug, "Plugin {}: {} printed: {}", name_of(call), arguments[0],
              ran->standard_error);
    }
    const std::string& text = ran->standard_output;
    char* buffer = static_cast<char*>(std::malloc(text.size() + 1));
    if (buffer == nullptr) {
      return KTC_PLUGIN_E_NOMEM;
    }
    std::memcpy(buffer, text.data(), text.size());
    buffer[text.size()] = '\0';
    *output = buffer;
    *exit_status = ran->exit_status;
    return KTC_PLUGIN_OK;
  });
}

int invalid_argument(ktc_plugin_call* call, std::string_view what) {
  if (call != nullptr) {
    call->error = std::string(what);
  }
  return KTC_PLUGIN_E_INVALID;
}

extern "C" int service_set_identity(ktc_plugin_call* call,
                                    const char* name,
                                    const char* value) {
  return service_guard(call, [&]() -> int {
    if (call == nullptr || name == nullptr || *name == '\0') {
      return invalid_argument(call, "set_identity: no field name");
    }
    auto existing =
        std::find_if(call->identity.begin(), call->identity.end(),
                     [&](const auto& field) { return field.first == name; });
    if (existing != call->identity.end()) {
      existing->second = text_or_null(value);
    } else {
      call->identity.emplace_back(name, text_or_null(value));
    }
    return KTC_PLUGIN_OK;
  });
}

template <typename Setter>
int set_payload(ktc_plugin_call* call, const char* name, Setter&& setter) {
  return service_guard(call, [&]() -> int {
    if (call == nullptr || name == nullptr || *name == '\0') {
      return invalid_argument(call, "payload: no field name");
    }
    if (std::strcmp(name, "type") == 0) {
      return invalid_argument(
          call, "payload: \"type\" is the plugin's name and cannot be set");
    }
    setter(call->payload[name]);
    return KTC_PLUGIN_OK;
  });
}

extern "C" int service_payload_string(ktc_plugin_call* call,
                                      const char* name,
                                      const char* value) {
  return set_payload(call, name, [&](boost::json::value& slot) {
    if (value == nullptr) {
      slot = nullptr;
    } else {
      slot = value;
    }
  });
}

extern "C" int
service_payload_bool(ktc_plugin_call* call, const char* name, int value) {
  return set_payload(call, name,
                     [&](boost::json::value& slot) { slot = value != 0; });
}

extern "C" int
service_payload_int(ktc_plugin_call* call, const char* name, int64_t value) {
  return set_payload(call, name,
                     [&](boost::json::value& slot) { slot = value; });
}

extern "C" int service_add_key_part(ktc_plugin_call* call, const char* part) {
  return service_guard(call, [&]() -> int {
    if (call == nullptr || part == nullptr || *part == '\0') {
      return invalid_argument(call, "add_key_part: empty part");
    }
    call->key_parts.emplace_back(part);
    return KTC_PLUGIN_OK;
  });
}

extern "C" int service_add_expansion(ktc_plugin_call* call, const char* spec) {
  return service_guard(call, [&]() -> int {
    if (call == nullptr || spec == nullptr || *spec == '\0') {
      return invalid_argument(call, "add_expansion: empty spec");
    }
    call->expansions.emplace_back(spec);
    return KTC_PLUGIN_OK;
  });
}

extern "C" const char* service_identity(ktc_plugin_call* call,
                                        const char* name) {
  if (call == nullptr || name == nullptr) {
    return nullptr;
  }
  for (const auto& [field, value] : call->identity) {
    if (field == name) {
      return value ? value->c_str() : nullptr;
    }
  }
  return nullptr;
}

extern "C" int service_set_tree(ktc_plugin_call* call, const char* path) {
  return service_guard(call, [&]() -> int {
    if (call == nullptr || path == nullptr || *path != '/') {
      return invalid_argument(call, "set_tree: the path must be absolute");
    }
    call->tree = path;
    return KTC_PLUGIN_OK;
  });
}

extern "C" int service_offline(ktc_plugin_call* call) {
  return call != nullptr && call->offline ? 1 : 0;
}

extern "C" int service_add_release(ktc_plugin_call* call,
                                   const char* moniker,
                                   const char* version) {
  return service_guard(call, [&]() -> int {
    if (call == nullptr || moniker == nullptr || version == nullptr ||
        *moniker == '\0' || *version == '\0') {
      return invalid_argument(call, "add_release: an empty moniker or version");
    }
    call->releases.emplace_back(moniker, version);
    return KTC_PLUGIN_OK;
  });
}

const ktc_host_services k_services = {
    sizeof(ktc_host_services), KTC_PLUGIN_ABI_MAJOR,
    KTC_PLUGIN_ABI_MINOR,      0,
    KTC_VERSION_STRING,        service_log,
    service_progress,          service_cancelled,
    service_set_error,         service_read_file,
    service_free_buffer,       service_copy_file,
    service_sha256_file,       service_run,
    service_set_identity,      service_payload_string,
    service_payload_bool,      service_payload_int,
    service_add_key_part,      service_add_expansion,
    service_set_tree,          &k_strip_engine,
    service_identity,          service_offline,
    service_add_release,
};

// --- loading ------------------------------------------------------------

// Plugins loaded in this process, by file identity, so every cache handle
// shares one load per file.
struct LoadedKey {
  std::string path;
  dev_t device;
  ino_t inode;
  auto operator<=>(const LoadedKey&) const = default;
};

std::mutex g_loaded_mutex;
std::map<LoadedKey, std::weak_ptr<const Plugin>>& loaded_plugins() {
  static auto* plugins = new std::map<LoadedKey, std::weak_ptr<const Plugin>>;
  return *plugins;
}

// Boost.DLL drops dlerror()'s text; a second dlopen of a file that just
// failed to load fails the same way, before any of its code runs, and says
// why (an undefined symbol, a missing dependency).
std::string dlopen_reason(const std::string& path) {
  ::dlerror();
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle != nullptr) {
    ::dlclose(handle);
    return "it could not be loaded";
  }
  const char* reason = ::dlerror();
  return reason != nullptr ? reason : "it could not be loaded";
}

Result<void> validate_ops(const ktc_plugin_info& info,
                          Kind kind,
                          ktc_source_ops* source_ops,
                          ktc_strip_ops* strip_ops) {
  if (kind == Kind::source) {
    if (info.strip != nullptr) {
      return make_error(Status::invalid,
                        "a source plugin must leave ktc_plugin_info.strip "
                        "NULL");
    }
    KTC_TRY_ASSIGN(*source_ops, copy_sized(info.source, k_source_ops_first_size,
                                           "ktc_source_ops"));
    const std::pair<const void*, std::string_view> required[] = {
        {reinterpret_cast<const void*>(source_ops->resolve), "resolve"},
        {reinterpret_cast<const void*>(source_ops->describe), "describe"},
        {reinterpret_cast<const void*>(source_ops->acquire), "acquire"},
    };
    for (const auto& [function, member] : required) {
      if (function == nullptr) {
        return make_error(Status::invalid,
                          "required operation ktc_source_ops.{} is NULL",
                          member);
      }
    }
    return {};
  }
  if (info.source != nullptr) {
    return make_error(Status::invalid,
                      "a strip plugin must leave ktc_plugin_info.source NULL");
  }
  KTC_TRY_ASSIGN(*strip_ops, copy_sized(info.strip, k_strip_ops_first_size,
                                        "ktc_strip_ops"));
  if (strip_ops->decide == nullptr) {
    return make_error(Status::invalid,
                      "required operation ktc_strip_ops.decide is NULL");
  }
  return {};
}

// Queries a loaded library and checks what it says about itself.
Result<PluginRef> query(std::shared_ptr<Library> library,
                        const std::string& path,
                        Kind kind,
                        std::string_view name) {
  auto& entry = library->get().get<QuerySignature>(entry_symbol());
  ktc_plugin_call call;
  call.plugin_name = std::string(name);
  const ktc_plugin_info* raw_info = nullptr;
  int status = entry(&k_services, &call, &raw_info);
  if (status != KTC_PLUGIN_OK) {
    return make_error(Status::invalid, "query failed with status {}: {}",
                      status, call.error.value_or("no message"));
  }
  if (raw_info == nullptr) {
    return make_error(Status::invalid, "query returned no ktc_plugin_info");
  }
  if (raw_info->struct_size >=
          KTC_FIRST_PLUGIN_SIZE(ktc_plugin_info, abi_major) &&
      raw_info->abi_major != KTC_PLUGIN_ABI_MAJOR) {
    return make_error(Status::invalid,
                      "built for plugin abi_major {}, this host speaks {}",
                      raw_info->abi_major, KTC_PLUGIN_ABI_MAJOR);
  }
  KTC_TRY_ASSIGN(ktc_plugin_info info,
                 copy_sized(raw_info, k_info_first_size, "ktc_plugin_info"));
  if (info.kind != static_cast<uint32_t>(Kind::source) &&
      info.kind != static_cast<uint32_t>(Kind::strip)) {
    return make_error(Status::invalid, "unknown plugin kind {}", info.kind);
  }
  if (info.kind != static_cast<uint32_t>(kind)) {
    return make_error(Status::invalid,
                      "declares kind {}, but its file name says {}",
                      kind_name(static_cast<Kind>(info.kind)), kind_name(kind));
  }
  if (info.name == nullptr || !valid_name(info.name)) {
    return make_error(
        Status::invalid, "plugin name {} is not well formed (expected {})",
        info.name == nullptr ? "NULL" : fmt::format("'{}'", info.name),
        KTC_PLUGIN_NAME_PATTERN);
  }
  if (name != info.name) {
    return make_error(Status::invalid,
                      "plugin name '{}' does not match the file name {}",
                      info.name, file_name(kind, name));
  }
  if (info.version == nullptr || *info.version == '\0') {
    return make_error(Status::invalid, "no version in ktc_plugin_info");
  }
  ktc_source_ops source_ops{};
  ktc_strip_ops strip_ops{};
  KTC_TRY(validate_ops(info, kind, &source_ops, &strip_ops));
  auto plugin = std::make_shared<Plugin>(std::move(library), info, path);
  return PluginRef(std::move(plugin));
}

Result<PluginRef>
load_unchecked(const std::string& path, Kind kind, std::string_view name) {
  KTC_TRY(check_trusted(path));
  KTC_TRY_ASSIGN(ElfProbe probe, probe_elf(path, entry_symbol()));
  if (!probe.has_entry) {
    if (!probe.other_majors.empty()) {
      return make_error(Status::invalid,
                        "no {}: it is built for plugin ABI major {} "
                        "(ktc_plugin_query_v{}), this host speaks {}",
                        entry_symbol(), probe.other_majors.front(),
                        probe.other_majors.front(), KTC_PLUGIN_ABI_MAJOR);
    }
    return make_error(Status::invalid, "no {} entry symbol", entry_symbol());
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return errno_error(errno, path);
  }
  LoadedKey key{path, st.st_dev, st.st_ino};
  std::lock_guard lock(g_loaded_mutex);
  auto& loaded = loaded_plugins();
  if (auto found = loaded.find(key); found != loaded.end()) {
    if (auto alive = found->second.lock()) {
      return alive;
    }
  }
  boost::dll::fs::error_code error;
  boost::dll::shared_library library;
  library.load(path, error,
               boost::dll::load_mode::rtld_now |
                   boost::dll::load_mode::rtld_local);
  if (error) {
    return make_error(Status::invalid, "cannot load it: {}",
                      dlopen_reason(path));
  }
  KTC_TRY_ASSIGN(
      PluginRef plugin,
      query(std::make_shared<Library>(std::move(library)), path, kind, name));
  loaded[key] = plugin;
  return plugin;
}

std::string directory_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

// "source_local.so" -> (source, "local"); nullopt for other names.
std::optional<std::pair<Kind, std::string>>
parse_file_name(std::string_view file) {
  if (!file.ends_with(".so")) {
    return std::nullopt;
  }
  file.remove_suffix(3);
  for (Kind kind : {Kind::source, Kind::strip}) {
    std::string prefix = fmt::format("{}_", kind_name(kind));
    if (file.starts_with(prefix) && valid_name(file.substr(prefix.size()))) {
      return std::pair{kind, std::string(file.substr(prefix.size()))};
    }
  }
  return std::nullopt;
}

std::vector<std::string> sorted_entries(const std::string& directory) {
  std::vector<std::string> names;
  DIR* handle = ::opendir(directory.c_str());
  if (handle == nullptr) {
    return names;
  }
  while (dirent* entry = ::readdir(handle)) {
    std::string_view name = entry->d_name;
    if (name.ends_with(".so") && !name.starts_with(".")) {
      names.emplace_back(name);
    }
  }
  ::closedir(handle);
  std::sort(names.begin(), names.end());
  return names;
}

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::string absolute(const std::string& directory) {
  if (directory.starts_with('/')) {
    return directory;
  }
  char* cwd = ::getcwd(nullptr, 0);
  if (cwd == nullptr) {
    return directory;
  }
  std::string result = fmt::format("{}/{}", cwd, directory);
  std::free(cwd);
  return result;
}

} // namespace

std::string_view kind_name(Kind kind) {
  return kind == Kind::source ? "source" : "strip";
}

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > k_name_max || name[0] < 'a' ||
      name[0] > 'z') {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

std::string file_name(Kind kind, std::string_view name) {
  return fmt::format("{}_{}.so", kind_name(kind), name);
}

const ktc_host_services& services() {
  return k_services;
}

Plugin::Plugin(std::shared_ptr<Library> library,
               const ktc_plugin_info& info,
               std::string path)
    : m_library(std::move(library)), m_kind(static_cast<Kind>(info.kind)),
      m_name(info.name), m_version(info.version),
      m_description(info.description != nullptr ? info.description : ""),
      m_path(std::move(path)), m_abi_major(info.abi_major),
      m_abi_minor(info.abi_minor), m_state(info.state), m_unload(info.unload) {
  ktc_source_ops source_ops{};
  ktc_strip_ops strip_ops{};
  // Validated by query(); this only keeps the host-owned copies.
  if (validate_ops(info, m_kind, &source_ops, &strip_ops)) {
    m_source_ops = source_ops;
    m_strip_ops = strip_ops;
  }
}

Plugin::~Plugin() {
  if (m_unload != nullptr) {
    m_unload(m_state);
  }
}

Result<void> check_trusted(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return errno_error(errno, path);
  }
  if ((st.st_mode & S_IWOTH) != 0) {
    return make_error(Status::invalid, "{} is world-writable (mode {:04o})",
                      path, st.st_mode & 07777);
  }
  uid_t caller = ::geteuid();
  if (st.st_uid != caller && st.st_uid != 0) {
    return make_error(Status::invalid,
                      "{} is owned by uid {}, neither the caller (uid {}) nor "
                      "root",
                      path, st.st_uid, caller);
  }
  return {};
}

Result<PluginRef>
load(const std::string& path, Kind kind, std::string_view name) {
  auto plugin = load_unchecked(path, kind, name);
  if (!plugin) {
    Error error = std::move(plugin).error();
    // Reasons that already start with the path keep it once.
    if (!error.message.starts_with(path)) {
      error.message = fmt::format("{}: {}", path, error.message);
    }
    return error;
  }
  return plugin;
}

const std::string& default_dir() {
  static const std::string directory = [] {
    Dl_info info{};
    if (::dladdr(reinterpret_cast<const void*>(&default_dir), &info) == 0 ||
        info.dli_fname == nullptr) {
      return std::string("/usr/local/lib/ktcache/plugins");
    }
    char* resolved = ::realpath(info.dli_fname, nullptr);
    std::string library = resolved != nullptr ? resolved : info.dli_fname;
    std::free(resolved);
    return directory_of(library) + "/ktcache/plugins";
  }();
  return directory;
}

void Registry::add_dir(std::string directory) {
  m_api_dirs.push_back(absolute(directory));
  m_found.clear();
}

std::vector<std::string> Registry::search_path() const {
  std::vector<std::string> directories = m_api_dirs;
  // secure_getenv: a setuid or setgid caller ignores the variable.
  if (const char* path = ::secure_getenv("KTCACHE_PLUGIN_PATH")) {
    std::string_view rest = path;
    while (!rest.empty()) {
      auto colon = rest.find(':');
      std::string_view item = rest.substr(0, colon);
      if (!item.empty()) {
        directories.push_back(absolute(std::string(item)));
      }
      if (colon == std::string_view::npos) {
        break;
      }
      rest.remove_prefix(colon + 1);
    }
  }
  const char* no_default = std::getenv("KTCACHE_TEST_NO_DEFAULT_PLUGIN_DIR");
  if (no_default == nullptr || std::string_view(no_default) != "1") {
    directories.push_back(default_dir());
  }
  // A directory named twice is searched once, where it first appears.
  std::vector<std::string> unique;
  for (auto& directory : directories) {
    if (std::find(unique.begin(), unique.end(), directory) == unique.end()) {
      unique.push_back(std::move(directory));
    }
  }
  return unique;
}

Result<PluginRef> Registry::find(Kind kind, std::string_view name) {
  std::string subject = kind == Kind::source
                            ? fmt::format("source scheme '{}'", name)
                            : fmt::format("strip policy '{}'", name);
  if (!valid_name(name)) {
    return make_error(Status::invalid, "{}: not a valid plugin name ({})",
                      subject, KTC_PLUGIN_NAME_PATTERN);
  }
  if (auto found = m_found.find(std::pair{kind, std::string(name)});
      found != m_found.end()) {
    return found->second;
  }
  std::string file = file_name(kind, name);
  auto directories = search_path();
  std::vector<std::string> rejections;
  for (size_t index = 0; index < directories.size(); ++index) {
    std::string path = directories[index] + "/" + file;
    if (!exists(path)) {
      continue;
    }
    auto trusted_dir = check_trusted(directories[index]);
    auto plugin = trusted_dir ? load(path, kind, name)
                              : Result<PluginRef>(trusted_dir.error());
    if (!plugin) {
      KTC_LOG(warn, "Plugin rejected: {}", plugin.error().message);
      rejections.push_back(plugin.error().message);
      continue;
    }
    for (size_t later = index + 1; later < directories.size(); ++later) {
      std::string shadowed = directories[later] + "/" + file;
      if (exists(shadowed)) {
        KTC_LOG(warn, "Plugin {} is also in {}; using {}", name, shadowed,
                path);
      }
    }
    m_found.emplace(std::pair{kind, std::string(name)}, *plugin);
    return plugin;
  }
  std::string searched;
  for (const auto& directory : directories) {
    searched += searched.empty() ? directory : ", " + directory;
  }
  if (rejections.empty()) {
    return make_error(Status::plugin,
                      "{}: no plugin installed (looked for {} in {})", subject,
                      file, searched.empty() ? "no directory" : searched);
  }
  std::string reasons;
  for (const auto& rejection : rejections) {
    reasons += reasons.empty() ? rejection : "; " + rejection;
  }
  return make_error(Status::plugin, "{}: no usable plugin ({})", subject,
                    reasons);
}

std::vector<Record> Registry::discover() {
  std::vector<Record> loaded;
  std::vector<Record> others;
  std::map<std::pair<Kind, std::string>, std::string> winners;
  for (const auto& directory : search_path()) {
    struct stat st;
    if (::stat(directory.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      continue;
    }
    if (auto trusted = check_trusted(directory); !trusted) {
      KTC_LOG(warn, "Plugin directory refused: {}", trusted.error().message);
      Record record;
      record.name = fs::base_name(directory);
      record.kind = "unknown";
      record.file = directory;
      record.reason = trusted.error().message;
      others.push_back(std::move(record));
      continue;
    }
    for (const auto& entry : sorted_entries(directory)) {
      std::string path = directory + "/" + entry;
      Record record;
      record.file = path;
      auto parsed = parse_file_name(entry);
      if (!parsed) {
        record.name = entry;
        record.kind = "unknown";
        record.reason = fmt::format(
            "{}: the file name is not source_<name>.so or strip_<name>.so "
            "with a name matching {}",
            path, KTC_PLUGIN_NAME_PATTERN);
        others.push_back(std::move(record));
        continue;
      }
      auto [kind, name] = *parsed;
      record.name = name;
      record.kind = std::string(kind_name(kind));
      auto plugin = load(path, kind, name);
      if (!plugin) {
        KTC_LOG(warn, "Plugin rejected: {}", plugin.error().message);
        record.reason = plugin.error().message;
        others.push_back(std::move(record));
        continue;
      }
      const Plugin& valid = **plugin;
      record.version = valid.version();
      record.abi_major = valid.abi_major();
      record.abi_minor = valid.abi_minor();
      if (!valid.description().empty()) {
        record.description = valid.description();
      }
      auto [winner, inserted] = winners.emplace(std::pair{kind, name}, path);
      if (!inserted) {
        KTC_LOG(warn, "Plugin {} {} in {} is shadowed by {}", record.kind, name,
                path, winner->second);
        record.state = Record::State::shadowed;
        record.reason =
            fmt::format("shadowed by {}, found earlier", winner->second);
        others.push_back(std::move(record));
        continue;
      }
      record.state = Record::State::loaded;
      m_found.emplace(std::pair{kind, name}, *plugin);
      loaded.push_back(std::move(record));
    }
  }
  loaded.insert(loaded.end(), std::make_move_iterator(others.begin()),
                std::make_move_iterator(others.end()));
  return loaded;
}

Error call_error(const Plugin& plugin,
                 const ktc_plugin_call& call,
                 int status,
                 std::string_view subject) {
  Status core_status = Status::plugin;
  std::string_view fallback = "failed";
  switch (status) {
  case KTC_PLUGIN_E_NOTFOUND:
    core_status = Status::not_found;
    fallback = "not found";
    break;
  case KTC_PLUGIN_E_INVALID:
    core_status = Status::invalid;
    fallback = "invalid";
    break;
  case KTC_PLUGIN_E_NOMEM:
    core_status = Status::no_memory;
    fallback = "out of memory";
    break;
  case KTC_PLUGIN_E_UNSUPPORTED:
    fallback = "not supported by this plugin";
    break;
  case KTC_PLUGIN_E_CHANGED:
    core_status = Status::mismatch;
    fallback = "changed";
    break;
  case KTC_PLUGIN_E_CANCELLED:
    core_status = Status::cancelled;
    fallback = "cancelled";
    break;
  case KTC_PLUGIN_E_NETWORK:
    core_status = Status::network;
    fallback = "network failure";
    break;
  case KTC_PLUGIN_E_IO:
    core_status = Status::io;
    fallback = "I/O error";
    break;
  default:
    break;
  }
  return make_error(core_status, "{}: {} (plugin {} {}, {})", subject,
                    call.error.value_or(std::string(fallback)),
                    kind_name(plugin.kind()), plugin.name(), plugin.path());
}

} // namespace ktc::plugin
