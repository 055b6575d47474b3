#pragma once

// The plugin host: finds plugin files, checks them without running them,
// loads them with Boost.DLL, validates what their entry point returns, and
// hands out reference-counted handles. See abi/include/ktcache/plugin.h for
// the contract a plugin keeps.

#include "util/result.hpp"

#include <boost/json/object.hpp>
#include <ktcache/plugin.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ktc::plugin {

enum class Kind : uint32_t {
  source = KTC_PLUGIN_KIND_SOURCE,
  strip = KTC_PLUGIN_KIND_STRIP,
};

// "source" or "strip": the file-name prefix and the name shown to people.
std::string_view kind_name(Kind kind);

// True for names matching KTC_PLUGIN_NAME_PATTERN.
bool valid_name(std::string_view name);

// "source_<name>.so" / "strip_<name>.so".
std::string file_name(Kind kind, std::string_view name);

class Library;

// A loaded and validated plugin. The shared library stays mapped while any
// copy of the shared_ptr that holds this lives; the last one calls the
// plugin's unload hook and then unloads it.
class Plugin {
public:
  Plugin(std::shared_ptr<Library> library,
         const ktc_plugin_info& info,
         std::string path);
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;
  ~Plugin();

  Kind kind() const { return m_kind; }
  const std::string& name() const { return m_name; }
  const std::string& version() const { return m_version; }
  const std::string& description() const { return m_description; }
  const std::string& path() const { return m_path; }
  uint32_t abi_major() const { return m_abi_major; }
  uint32_t abi_minor() const { return m_abi_minor; }
  void* state() const { return m_state; }
  // Host-owned copies, zero past what the plugin provided: members a
  // plugin built against an older header lacks read as NULL.
  const ktc_source_ops& source_ops() const { return m_source_ops; }
  const ktc_strip_ops& strip_ops() const { return m_strip_ops; }

private:
  std::shared_ptr<Library> m_library;
  Kind m_kind;
  std::string m_name;
  std::string m_version;
  std::string m_description;
  std::string m_path;
  uint32_t m_abi_major;
  uint32_t m_abi_minor;
  void* m_state;
  void (*m_unload)(void*);
  ktc_source_ops m_source_ops{};
  ktc_strip_ops m_strip_ops{};
};

using PluginRef = std::shared_ptr<const Plugin>;

// Loads the plugin at `path` (absolute), which the file name says is the
// `kind` plugin called `name`: checks ownership and mode, the ELF header and
// the entry symbol, loads it RTLD_NOW | RTLD_LOCAL, queries and validates
// it. Loading the same file again returns the same plugin while it lives.
// Errors carry the file and the reason; status invalid for a broken plugin.
Result<PluginRef>
load(const std::string& path, Kind kind, std::string_view name);

// Refuses a file or directory that is world-writable or owned by someone
// other than the caller (effective uid) or root.
Result<void> check_trusted(const std::string& path);

// One file the discovery looked at, for `ktcache plugins --all`.
struct Record {
  enum class State { loaded, rejected, shadowed };
  State state = State::rejected;
  std::string name;
  std::string kind; // "source", "strip" or "unknown"
  std::optional<std::string> version;
  std::string file;
  uint32_t abi_major = 0;
  uint32_t abi_minor = 0;
  std::optional<std::string> description;
  std::optional<std::string> reason;
};

// The plugins one cache handle sees. Not thread-safe (like its handle);
// the libraries it loads are shared process-wide.
class Registry {
public:
  // Appends a directory given through the C API (made absolute by the
  // caller). Forgets what was found so far.
  void add_dir(std::string directory);

  // The directories searched, in order: API ones, KTCACHE_PLUGIN_PATH
  // (unless the process is setuid or setgid), the installed one.
  std::vector<std::string> search_path() const;

  // The plugin for `name`, loading only its file. The first directory with
  // a usable file wins; broken files before it are logged and skipped.
  Result<PluginRef> find(Kind kind, std::string_view name);

  // Loads every plugin file of every directory.
  std::vector<Record> discover();

  // Whether plugin operations started for this handle run offline.
  bool offline() const { return m_offline; }
  void set_offline(bool offline) { m_offline = offline; }

private:
  bool m_offline = false;
  std::vector<std::string> m_api_dirs;
  std::map<std::pair<Kind, std::string>, PluginRef, std::less<>> m_found;
};

// The installed plugin directory: <dir of libktcache.so>/ktcache/plugins.
const std::string& default_dir();

} // namespace ktc::plugin

// One operation in progress (the plugin.h opaque type). Plugins reach it
// only through the services; the host reads what they recorded.
struct ktc_plugin_call {
  std::string plugin_name;
  std::optional<std::string> error;
  std::vector<std::pair<std::string, std::optional<std::string>>> identity;
  boost::json::object payload;
  std::vector<std::string> key_parts;
  std::vector<std::string> expansions;
  // add_release(): (moniker, version), newest first.
  std::vector<std::pair<std::string, std::string>> releases;
  std::optional<std::string> tree;
  // What the offline() service answers; set by the operation's caller.
  bool offline = false;
  // Set by the operation's caller; either may be empty.
  std::function<bool()> cancelled;
  std::function<void(std::string_view stage, uint64_t done, uint64_t total)>
      progress;
};

namespace ktc::plugin {

// The services table every plugin receives.
const ktc_host_services& services();

// Maps a failed plugin status to the core's, with a message naming the
// subject, the plugin and the plugin's own words.
Error call_error(const Plugin& plugin,
                 const ktc_plugin_call& call,
                 int status,
                 std::string_view subject);

} // namespace ktc::plugin
