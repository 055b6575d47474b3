// The plugins shipped with ktcache ("local" source, "none" strip policy),
// loaded by the real libktcache from the build tree and driven through the
// public C API, on synthetic kernel trees made into git repositories. The
// last cases load source_local.so directly with a minimal host table, for
// the operations the host does not reach through the C API yet (acquire,
// recheck).

#include "test_util.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>
#include <ktcache/ktcache.h>
#include <ktcache/plugin.h>

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace json = boost::json;
namespace fs = std::filesystem;
using ktc::test::TempDir;
using ktc::test::write_file;

namespace {

struct CacheFree {
  void operator()(ktc_cache* cache) const { ktc_cache_free(cache); }
};
struct EntryFree {
  void operator()(ktc_entry* entry) const { ktc_entry_free(entry); }
};
struct PluginListFree {
  void operator()(ktc_plugin_list* list) const { ktc_plugin_list_free(list); }
};
struct StringFree {
  void operator()(char* text) const { ktc_free(text); }
};
using CachePtr = std::unique_ptr<ktc_cache, CacheFree>;
using EntryPtr = std::unique_ptr<ktc_entry, EntryFree>;
using PluginListPtr = std::unique_ptr<ktc_plugin_list, PluginListFree>;
using StringPtr = std::unique_ptr<char, StringFree>;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string plugin_dir() {
  return ktc::test::env_path("KTCACHE_SHIPPED_PLUGINS_DIR");
}

// Only the build tree's plugins: the installed directory is off (meson sets
// KTCACHE_TEST_NO_DEFAULT_PLUGIN_DIR) and KTCACHE_PLUGIN_PATH is unset.
class ShippedCache {
public:
  ShippedCache() {
    const char* flag = std::getenv("KTCACHE_TEST_NO_DEFAULT_PLUGIN_DIR");
    REQUIRE_MESSAGE((flag != nullptr && std::string(flag) == "1"),
                    "run through meson test: the installed plugin directory "
                    "must be disabled");
    std::string root = m_dir / "cache";
    ktc_open_options options = KTC_OPEN_OPTIONS_INIT;
    options.root = root.c_str();
    ktc_cache* raw = nullptr;
    REQUIRE_MESSAGE(ktc_cache_open(&raw, &options) == KTC_OK,
                    ktc_error_message());
    m_cache.reset(raw);
    REQUIRE_MESSAGE(ktc_plugin_dir_add(raw, plugin_dir().c_str()) == KTC_OK,
                    ktc_error_message());
  }
  ktc_cache* get() const { return m_cache.get(); }

private:
  ktc::test::ScopedEnv m_path{"KTCACHE_PLUGIN_PATH", std::nullopt};
  TempDir m_dir;
  CachePtr m_cache;
};

// ---------------------------------------------------------------------------
// Synthetic kernel trees
// ---------------------------------------------------------------------------

std::string run_git(const std::string& tree,
                    const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"git",
                                   "-C",
                                   tree,
                                   "-c",
                                   "user.name=ktcache test",
                                   "-c",
                                   "user.email=test@ktcache.invalid",
                                   "-c",
                                   "commit.gpgsign=false",
                                   "-c",
                                   "init.defaultBranch=master"};
  argv.insert(argv.end(), args.begin(), args.end());
  ktc::test::ProcessOptions options;
  // The user's own git configuration (hooks, templates) stays out.
  options.env["GIT_CONFIG_NOSYSTEM"] = "1";
  options.env["GIT_CONFIG_GLOBAL"] = "/dev/null";
  ktc::test::ProcessResult result = ktc::test::run_process(argv, options);
  REQUIRE_MESSAGE(result.exit_code == 0, "git ", args.front(), ": ",
                  result.err);
  return result.out;
}

std::string kernel_makefile(const std::string& sublevel,
                            const std::string& extraversion) {
  return "# SPDX-License-Identifier: GPL-2.0\n"
         "VERSION = 6\n"
         "PATCHLEVEL = 9\n"
         "SUBLEVEL = " +
         sublevel +
         "\n"
         "EXTRAVERSION = " +
         extraversion +
         "\n"
         "NAME = Synthetic Tree\n"
         "\n"
         "# VERSION = 99 is only a comment\n"
         "KERNELVERSION = $(VERSION)$(if $(PATCHLEVEL),.$(PATCHLEVEL))\n"
         "all:\n"
         "\t@echo $(KERNELVERSION)\n";
}

// A directory holding what find_tree() requires, and one more tracked file.
void write_kernel_tree(const std::string& tree,
                       const std::string& makefile = kernel_makefile("2",
                                                                     "-rc1")) {
  fs::create_directories(tree + "/init");
  write_file(tree + "/Makefile", makefile);
  write_file(tree + "/Kconfig", "");
  write_file(tree + "/init/main.c", "int main(void) { return 0; }\n");
}

std::string head_of(const std::string& tree) {
  std::string head = run_git(tree, {"rev-parse", "HEAD"});
  while (!head.empty() && head.back() == '\n') {
    head.pop_back();
  }
  REQUIRE(head.size() == 40);
  return head;
}

void commit_all(const std::string& tree, const std::string& message) {
  run_git(tree, {"add", "-A"});
  run_git(tree, {"commit", "-q", "-m", message});
}

// A kernel tree committed to a fresh git repository; returns its HEAD.
std::string
make_git_tree(const std::string& tree,
              const std::string& makefile = kernel_makefile("2", "-rc1")) {
  write_kernel_tree(tree, makefile);
  run_git(tree, {"init", "-q"});
  commit_all(tree, "synthetic kernel");
  return head_of(tree);
}

// The label the plugin keys commit-less trees by: FNV-1a (32 bits) of the
// canonical path, as 8 lower-case hex digits.
std::string path_label(const std::string& path) {
  uint32_t hash = 2166136261u;
  for (unsigned char c : path) {
    hash ^= c;
    hash *= 16777619u;
  }
  char text[9];
  std::snprintf(text, sizeof text, "%08x", static_cast<unsigned>(hash));
  return text;
}

// ---------------------------------------------------------------------------
// The C API
// ---------------------------------------------------------------------------

struct Described {
  int status = KTC_OK;
  std::string message;
  json::object result;
};

Described describe(ktc_cache* cache, const std::string& spec) {
  Described described;
  char* raw = nullptr;
  described.status = ktc_source_describe(&raw, cache, spec.c_str());
  StringPtr text(raw);
  if (described.status != KTC_OK) {
    described.message = ktc_error_message();
    CHECK(raw == nullptr);
    return described;
  }
  REQUIRE(raw != nullptr);
  described.result = json::parse(raw).as_object();
  return described;
}

Described require_describe(ktc_cache* cache, const std::string& spec) {
  Described described = describe(cache, spec);
  REQUIRE_MESSAGE(described.status == KTC_OK, described.message);
  return described;
}

json::value identity(const Described& described, const char* name) {
  const json::object& fields = described.result.at("identity").as_object();
  auto found = fields.find(name);
  REQUIRE_MESSAGE(found != fields.end(), "no identity field ", name);
  return found->value();
}

json::array key_parts(std::initializer_list<std::string> parts) {
  json::array array;
  for (const std::string& part : parts) {
    array.emplace_back(part.c_str());
  }
  return array;
}

struct Row {
  int state = -1;
  std::string name;
  std::string kind;
  std::string version;
  std::string file;
  std::string description;
  uint32_t abi_major = 0;
  uint32_t abi_minor = 0;
};

std::vector<Row> list_plugins(ktc_cache* cache, uint32_t flags) {
  ktc_plugin_list* raw = nullptr;
  REQUIRE_MESSAGE(ktc_plugins_list(&raw, cache, flags) == KTC_OK,
                  ktc_error_message());
  PluginListPtr list(raw);
  std::vector<Row> rows;
  for (size_t i = 0; i < ktc_plugin_list_count(list.get()); ++i) {
    ktc_plugin_record record = KTC_PLUGIN_RECORD_INIT;
    REQUIRE(ktc_plugin_list_get(list.get(), i, &record) == KTC_OK);
    Row row;
    row.state = record.state;
    row.name = record.name != nullptr ? record.name : "";
    row.kind = record.kind != nullptr ? record.kind : "";
    row.version = record.version != nullptr ? record.version : "";
    row.file = record.file != nullptr ? record.file : "";
    row.description = record.description != nullptr ? record.description : "";
    row.abi_major = record.abi_major;
    row.abi_minor = record.abi_minor;
    rows.push_back(row);
  }
  return rows;
}

const Row& row_named(const std::vector<Row>& rows, const std::string& name) {
  for (const Row& row : rows) {
    if (row.name == name) {
      return row;
    }
  }
  FAIL("no plugin named ", name);
  return rows.front();
}

} // namespace

TEST_CASE("the shipped plugins load from the build tree") {
  ShippedCache cache;
  std::vector<Row> rows = list_plugins(cache.get(), KTC_PLUGINS_ALL);
  REQUIRE(rows.size() == 6);
  std::string dir = fs::canonical(plugin_dir()).string();

  const Row& local = row_named(rows, "local");
  CHECK(local.state == KTC_PLUGIN_LOADED);
  CHECK(local.kind == "source");
  CHECK(local.version == "1.0.0");
  CHECK(local.abi_major == 1);
  CHECK(local.abi_minor == KTC_PLUGIN_ABI_MINOR);
  CHECK(local.file == dir + "/source_local.so");
  CHECK(local.description == "a kernel tree on disk, built in place");

  const Row& none = row_named(rows, "none");
  CHECK(none.state == KTC_PLUGIN_LOADED);
  CHECK(none.kind == "strip");
  CHECK(none.version == "1.0.0");
  CHECK(none.abi_major == 1);
  CHECK(none.abi_minor == KTC_PLUGIN_ABI_MINOR);
  CHECK(none.file == dir + "/strip_none.so");
  CHECK(none.description == "keeps the vmlinux whole (DWARF included)");

  for (const char* name : {"git", "tarball"}) {
    const Row& source = row_named(rows, name);
    CHECK(source.state == KTC_PLUGIN_LOADED);
    CHECK(source.kind == "source");
    CHECK(source.abi_minor == KTC_PLUGIN_ABI_MINOR);
    CHECK(source.file == dir + "/source_" + name + ".so");
  }

  for (const char* name : {"btf", "debug"}) {
    const Row& policy = row_named(rows, name);
    CHECK(policy.state == KTC_PLUGIN_LOADED);
    CHECK(policy.kind == "strip");
    CHECK(policy.abi_minor == KTC_PLUGIN_ABI_MINOR);
    CHECK(policy.file == dir + "/strip_" + name + ".so");
  }
}

TEST_CASE("local: a clean git tree is keyed by its commit") {
  ShippedCache cache;
  TempDir dir;
  std::string tree = fs::canonical(dir.path()).string() + "/linux";
  std::string head = make_git_tree(tree);

  Described described = require_describe(cache.get(), "local:" + tree);
  CHECK(described.result.at("spec") == json::value(("local:" + tree).c_str()));
  CHECK(described.result.at("plugin").at("name") == "local");
  CHECK(described.result.at("plugin").at("version") == "1.0.0");
  CHECK(identity(described, "tree") == json::value(tree.c_str()));
  CHECK(identity(described, "version") == "6.9.2-rc1");
  CHECK(identity(described, "commit") == json::value(head.c_str()));
  CHECK(identity(described, "dirty") == "false");

  json::object expected_source;
  expected_source["type"] = "local";
  expected_source["source_tree_path"] = tree;
  expected_source["git_hash"] = head.substr(0, 7);
  CHECK(described.result.at("source") == expected_source);
  CHECK(described.result.at("key_parts") ==
        key_parts({"local", head.substr(0, 7)}));

  SUBCASE("a relative path or a symbolic link names the same tree") {
    std::string relative = fs::relative(tree, fs::current_path()).string();
    Described by_relative = require_describe(cache.get(), "local:" + relative);
    CHECK(identity(by_relative, "tree") == json::value(tree.c_str()));
    CHECK(by_relative.result.at("source") == expected_source);

    std::string link = dir / "link";
    REQUIRE(symlink(tree.c_str(), link.c_str()) == 0);
    Described by_link = require_describe(cache.get(), "local:" + link);
    CHECK(by_link.result.at("source") == expected_source);
    CHECK(by_link.result.at("key_parts") == described.result.at("key_parts"));
  }

  SUBCASE("an untracked file leaves it clean") {
    write_file(tree + "/scratch.txt", "not tracked\n");
    write_file(tree + "/init/.config", "CONFIG_X=y\n");
    Described after = require_describe(cache.get(), "local:" + tree);
    CHECK(identity(after, "dirty") == "false");
    CHECK(after.result.at("source") == expected_source);
  }

  SUBCASE("a new commit changes the key") {
    write_file(tree + "/init/main.c", "int main(void) { return 1; }\n");
    commit_all(tree, "second");
    std::string second = head_of(tree);
    REQUIRE(second != head);
    Described after = require_describe(cache.get(), "local:" + tree);
    CHECK(identity(after, "commit") == json::value(second.c_str()));
    CHECK(identity(after, "dirty") == "false");
    CHECK(after.result.at("key_parts") ==
          key_parts({"local", second.substr(0, 7)}));
  }
}

TEST_CASE("local: a tree with tracked changes is dirty and keyed by path") {
  ShippedCache cache;
  TempDir dir;
  std::string tree = fs::canonical(dir.path()).string() + "/linux";
  std::string head = make_git_tree(tree);

  SUBCASE("unstaged") {
    write_file(tree + "/init/main.c", "int main(void) { return 2; }\n");
  }
  SUBCASE("staged") {
    write_file(tree + "/init/main.c", "int main(void) { return 3; }\n");
    run_git(tree, {"add", "init/main.c"});
  }
  SUBCASE("deleted") {
    REQUIRE(fs::remove(tree + "/init/main.c"));
  }

  Described described = require_describe(cache.get(), "local:" + tree);
  CHECK(identity(described, "dirty") == "true");
  CHECK(identity(described, "commit") == json::value(head.c_str()));
  CHECK(identity(described, "version") == "6.9.2-rc1");
  json::object expected_source;
  expected_source["type"] = "local";
  expected_source["source_tree_path"] = tree;
  expected_source["git_hash"] = nullptr;
  CHECK(described.result.at("source") == expected_source);
  CHECK(described.result.at("key_parts") ==
        key_parts({"local", "unknown", path_label(tree)}));
}

TEST_CASE("local: a tree outside git is dirty, without a commit") {
  ShippedCache cache;
  TempDir dir;
  std::string base = fs::canonical(dir.path()).string();
  std::string tree;

  SUBCASE("a plain directory") {
    tree = base + "/linux";
    write_kernel_tree(tree);
  }
  SUBCASE("an untracked directory inside another repository") {
    // Keying it by the enclosing repository's HEAD would ignore every
    // change to its own files.
    make_git_tree(base + "/outer");
    tree = base + "/outer/linux";
    write_kernel_tree(tree);
  }
  SUBCASE("a repository without a commit") {
    tree = base + "/linux";
    write_kernel_tree(tree);
    run_git(tree, {"init", "-q"});
  }

  Described described = require_describe(cache.get(), "local:" + tree);
  CHECK(identity(described, "tree") == json::value(tree.c_str()));
  CHECK(identity(described, "dirty") == "true");
  CHECK(identity(described, "commit").is_null());
  CHECK(identity(described, "version") == "6.9.2-rc1");
  CHECK(described.result.at("source").at("git_hash").is_null());
  CHECK(described.result.at("source").at("source_tree_path") ==
        json::value(tree.c_str()));
  CHECK(described.result.at("key_parts") ==
        key_parts({"local", "unknown", path_label(tree)}));
}

TEST_CASE("local: the version as make kernelversion prints it") {
  struct Case {
    const char* what;
    std::string makefile;
    std::optional<std::string> version;
  };
  const std::vector<Case> cases = {
      {"sublevel 0 is kept", kernel_makefile("0", ""), "6.9.0"},
      {"trailing comments and blanks are dropped",
       kernel_makefile("15   # stable", "-rc3\t"), "6.9.15-rc3"},
      {"no sublevel", "VERSION = 5\nPATCHLEVEL = 4\nEXTRAVERSION =\n", "5.4"},
      {"no VERSION", "all:\n\t@true\n", std::nullopt},
  };
  ShippedCache cache;
  TempDir dir;
  std::string base = fs::canonical(dir.path()).string();
  int index = 0;
  for (const Case& one : cases) {
    CAPTURE(one.what);
    std::string tree = base + "/linux" + std::to_string(index++);
    write_kernel_tree(tree, one.makefile);
    Described described = require_describe(cache.get(), "local:" + tree);
    if (one.version) {
      CHECK(identity(described, "version") ==
            json::value(one.version->c_str()));
    } else {
      CHECK(identity(described, "version").is_null());
    }
  }
}

TEST_CASE("local: what is not a kernel tree is refused with its path") {
  ShippedCache cache;
  TempDir dir;
  std::string base = fs::canonical(dir.path()).string();

  SUBCASE("a missing path") {
    std::string missing = base + "/nonexistent";
    Described described = describe(cache.get(), "local:" + missing);
    CHECK((described.status == KTC_E_NOTFOUND ||
           described.status == KTC_E_PLUGIN));
    CHECK_MESSAGE(contains(described.message, missing), described.message);
    CHECK_MESSAGE(contains(described.message, "not a directory"),
                  described.message);
  }
  SUBCASE("a regular file") {
    std::string file = base + "/Makefile";
    write_file(file, kernel_makefile("1", ""));
    Described described = describe(cache.get(), "local:" + file);
    CHECK(described.status != KTC_OK);
    CHECK_MESSAGE(
        contains(described.message, "local:" + file + ": not a directory"),
        described.message);
  }
  SUBCASE("a directory without Makefile") {
    std::string tree = base + "/half";
    write_kernel_tree(tree);
    REQUIRE(fs::remove(tree + "/Makefile"));
    Described described = describe(cache.get(), "local:" + tree);
    CHECK(described.status != KTC_OK);
    CHECK_MESSAGE(contains(described.message, tree + ": not a kernel source "
                                                     "tree"),
                  described.message);
  }
  SUBCASE("a directory without Kconfig") {
    std::string tree = base + "/half";
    write_kernel_tree(tree);
    REQUIRE(fs::remove(tree + "/Kconfig"));
    Described described = describe(cache.get(), "local:" + tree);
    CHECK(described.status != KTC_OK);
    CHECK_MESSAGE(contains(described.message, "not a kernel source tree"),
                  described.message);
  }
  SUBCASE("no path at all") {
    Described described = describe(cache.get(), "local:");
    CHECK(described.status != KTC_OK);
    CHECK_MESSAGE(contains(described.message, "no path"), described.message);
  }
}

TEST_CASE("strip policy none copies the file whole") {
  ShippedCache cache;
  TempDir dir;
  std::string input = dir / "vmlinux";
  std::string output = dir / "vmlinux.kept";
  // Any ELF file does: a plugin of this build.
  fs::copy_file(plugin_dir() + "/source_local.so", input);
  std::string data = ktc::test::read_file(input);

  ktc_strip_options options = KTC_STRIP_OPTIONS_INIT;
  options.policy = "none";
  int status =
      ktc_strip(cache.get(), input.c_str(), output.c_str(), &options, nullptr);
  REQUIRE_MESSAGE(status == KTC_OK, ktc_error_message());
  CHECK(ktc::test::read_file(output) == data);
  // The temporary file beside the output was renamed, not left behind.
  CHECK(ktc::test::list_dir(dir.path()) ==
        std::vector<std::string>{"vmlinux", "vmlinux.kept"});

  SUBCASE("a missing input leaves no output") {
    std::string missing = dir / "absent";
    std::string out = dir / "absent.kept";
    status =
        ktc_strip(cache.get(), missing.c_str(), out.c_str(), &options, nullptr);
    CHECK(status == KTC_E_NOTFOUND);
    CHECK(!ktc::test::exists(out));
    CHECK(ktc::test::list_dir(dir.path()) ==
          std::vector<std::string>{"vmlinux", "vmlinux.kept"});
  }
}

TEST_CASE("store with a local: spec records the plugin's source") {
  ShippedCache cache;
  TempDir dir;
  std::string tree = fs::canonical(dir.path()).string() + "/linux";
  std::string head = make_git_tree(tree);
  std::string image = dir / "bzImage";
  write_file(image, ktc::test::random_bytes(4096, 5));
  std::string spec = "local:" + tree;

  ktc_store_options options = KTC_STORE_OPTIONS_INIT;
  options.image = image.c_str();
  options.source_spec = spec.c_str();
  ktc_entry* raw = nullptr;
  int status = ktc_store(&raw, cache.get(), "6.9.2-rc1-local", &options);
  REQUIRE_MESSAGE(status == KTC_OK, ktc_error_message());
  EntryPtr entry(raw);
  ktc_entry_info info = KTC_ENTRY_INFO_INIT;
  REQUIRE(ktc_entry_get_info(entry.get(), &info) == KTC_OK);
  REQUIRE(info.metadata_json != nullptr);
  json::object metadata = json::parse(info.metadata_json).as_object();

  json::object expected_source;
  expected_source["type"] = "local";
  expected_source["source_tree_path"] = tree;
  expected_source["git_hash"] = head.substr(0, 7);
  CHECK(metadata.at("source") == expected_source);
  CHECK(metadata.at("version") == "6.9.2-rc1");

  SUBCASE("a dirty tree records a null git_hash") {
    write_file(tree + "/Kconfig", "# changed\n");
    ktc_entry* dirty_raw = nullptr;
    status = ktc_store(&dirty_raw, cache.get(), "dirty", &options);
    REQUIRE_MESSAGE(status == KTC_OK, ktc_error_message());
    EntryPtr dirty(dirty_raw);
    ktc_entry_info dirty_info = KTC_ENTRY_INFO_INIT;
    REQUIRE(ktc_entry_get_info(dirty.get(), &dirty_info) == KTC_OK);
    json::object dirty_metadata =
        json::parse(dirty_info.metadata_json).as_object();
    expected_source["git_hash"] = nullptr;
    CHECK(dirty_metadata.at("source") == expected_source);
  }

  SUBCASE("a spec that fails stores nothing") {
    std::string bad = "local:" + (dir / "missing");
    options.source_spec = bad.c_str();
    status = ktc_store(nullptr, cache.get(), "failed", &options);
    CHECK(status != KTC_OK);
    CHECK(contains(ktc_error_message(), dir / "missing"));
    ktc_entry* none = nullptr;
    CHECK(ktc_lookup(&none, cache.get(), "failed", 0) == KTC_E_NOTFOUND);
  }
}

// ---------------------------------------------------------------------------
// source_local.so through plugin.h, with a minimal host
// ---------------------------------------------------------------------------

// The host's per-operation record. plugin.h leaves the type incomplete for
// the host to define.
struct ktc_plugin_call {
  std::string error;
  std::optional<std::string> tree;
  std::map<std::string, std::optional<std::string>> identity;
  std::vector<std::string> key_parts;
};

namespace {

// The callbacks below run inside the plugin's C frames: they report
// through status codes and never let a test assertion's exception escape.
char* copy_to_malloc(const std::string& text) {
  char* buffer = static_cast<char*>(std::malloc(text.size() + 1));
  if (buffer == nullptr) {
    return nullptr;
  }
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  return buffer;
}

ktc_host_services mock_host() {
  ktc_host_services host{};
  host.struct_size = sizeof host;
  host.abi_major = KTC_PLUGIN_ABI_MAJOR;
  host.abi_minor = KTC_PLUGIN_ABI_MINOR;
  host.host_version = "test";
  host.log = [](ktc_plugin_call*, int, const char*) {};
  host.progress = [](ktc_plugin_call*, const char*, uint64_t, uint64_t) {};
  host.cancelled = [](ktc_plugin_call*) { return 0; };
  host.set_error = [](ktc_plugin_call* call, const char* message) {
    call->error = message;
  };
  host.read_file = [](ktc_plugin_call*, const char* path, size_t, char** data,
                      size_t* length) -> int {
    if (!ktc::test::exists(path)) {
      return KTC_PLUGIN_E_NOTFOUND;
    }
    try {
      std::string text = ktc::test::read_file(path);
      *data = copy_to_malloc(text);
      *length = text.size();
      return *data != nullptr ? KTC_PLUGIN_OK : KTC_PLUGIN_E_NOMEM;
    } catch (...) {
      return KTC_PLUGIN_E_IO;
    }
  };
  host.free_buffer = [](void* buffer) { std::free(buffer); };
  host.copy_file = [](ktc_plugin_call*, const char*, const char*) -> int {
    return KTC_PLUGIN_E_UNSUPPORTED;
  };
  host.sha256_file = [](ktc_plugin_call*, const char*, char*) -> int {
    return KTC_PLUGIN_E_UNSUPPORTED;
  };
  host.run = [](ktc_plugin_call*, const char* const* argv, const char* cwd,
                char** output, int* exit_status) -> int {
    if (cwd != nullptr) {
      return KTC_PLUGIN_E_INVALID; // the plugin always passes NULL
    }
    try {
      std::vector<std::string> args;
      for (; *argv != nullptr; ++argv) {
        args.emplace_back(*argv);
      }
      ktc::test::ProcessResult result = ktc::test::run_process(args);
      *output = copy_to_malloc(result.out);
      *exit_status =
          result.exit_code >= 0 ? result.exit_code : 128 + result.signal;
      return *output != nullptr ? KTC_PLUGIN_OK : KTC_PLUGIN_E_NOMEM;
    } catch (...) {
      return KTC_PLUGIN_E_IO;
    }
  };
  host.set_identity = [](ktc_plugin_call* call, const char* name,
                         const char* value) -> int {
    call->identity[name] =
        value != nullptr ? std::optional<std::string>(value) : std::nullopt;
    return KTC_PLUGIN_OK;
  };
  host.payload_string = [](ktc_plugin_call*, const char*, const char*) {
    return 0;
  };
  host.payload_bool = [](ktc_plugin_call*, const char*, int) { return 0; };
  host.payload_int = [](ktc_plugin_call*, const char*, int64_t) { return 0; };
  host.add_key_part = [](ktc_plugin_call* call, const char* part) -> int {
    call->key_parts.emplace_back(part);
    return KTC_PLUGIN_OK;
  };
  host.add_expansion = [](ktc_plugin_call*, const char*) -> int {
    return KTC_PLUGIN_E_UNSUPPORTED;
  };
  host.set_tree = [](ktc_plugin_call* call, const char* path) -> int {
    call->tree = path;
    return KTC_PLUGIN_OK;
  };
  return host;
}

// A private copy of source_local.so, loaded apart from the one libktcache
// may hold, so that this host table never reaches libktcache's instance.
class DirectPlugin {
public:
  DirectPlugin() : m_host(mock_host()) {
    std::string copy = m_dir / "source_local.so";
    fs::copy_file(plugin_dir() + "/source_local.so", copy);
    m_handle = dlopen(copy.c_str(), RTLD_NOW | RTLD_LOCAL);
    REQUIRE_MESSAGE(m_handle != nullptr, dlerror());
    auto query = reinterpret_cast<ktc_plugin_query_fn>(
        dlsym(m_handle, KTC_PLUGIN_QUERY_SYMBOL));
    REQUIRE((query != nullptr));
    ktc_plugin_call call;
    REQUIRE(query(&m_host, &call, &m_info) == KTC_PLUGIN_OK);
    REQUIRE(m_info != nullptr);
    REQUIRE(m_info->source != nullptr);
  }
  ~DirectPlugin() {
    if (m_info != nullptr && m_info->unload != nullptr) {
      m_info->unload(m_info->state);
    }
    dlclose(m_handle);
  }
  DirectPlugin(const DirectPlugin&) = delete;
  DirectPlugin& operator=(const DirectPlugin&) = delete;

  const ktc_source_ops& ops() const { return *m_info->source; }
  void* state() const { return m_info->state; }

  int resolve(const std::string& spec, ktc_plugin_call& call) const {
    return ops().resolve(state(), &call, spec.c_str());
  }
  int recheck(const std::string& spec,
              const std::string& tree,
              ktc_plugin_call& call) const {
    return ops().recheck(state(), &call, spec.c_str(), tree.c_str());
  }

private:
  TempDir m_dir;
  ktc_host_services m_host;
  void* m_handle = nullptr;
  const ktc_plugin_info* m_info = nullptr;
};

} // namespace

TEST_CASE("local: operations the C API does not reach yet") {
  DirectPlugin plugin;
  TempDir dir;
  std::string tree = fs::canonical(dir.path()).string() + "/linux";
  std::string head = make_git_tree(tree);
  std::string spec = "local:" + tree;

  CHECK((plugin.ops().flags & KTC_SOURCE_IN_PLACE) != 0);
  CHECK((plugin.ops().expand == nullptr));
  REQUIRE((plugin.ops().recheck != nullptr));

  SUBCASE("acquire names the tree in place and writes nothing") {
    TempDir dest;
    ktc_plugin_call call;
    int status = plugin.ops().acquire(plugin.state(), &call, spec.c_str(),
                                      dest.path().c_str());
    REQUIRE_MESSAGE(status == KTC_PLUGIN_OK, call.error);
    CHECK(call.tree == tree);
    CHECK(ktc::test::list_dir(dest.path()).empty());
  }

  SUBCASE("recheck after resolve") {
    ktc_plugin_call resolved;
    REQUIRE_MESSAGE(plugin.resolve(spec, resolved) == KTC_PLUGIN_OK,
                    resolved.error);
    CHECK(resolved.identity.at("commit") == head);

    ktc_plugin_call unchanged;
    CHECK_MESSAGE(plugin.recheck(spec, tree, unchanged) == KTC_PLUGIN_OK,
                  unchanged.error);

    SUBCASE("build products (untracked) change nothing") {
      write_file(tree + "/vmlinux", "ELF");
      ktc_plugin_call call;
      CHECK_MESSAGE(plugin.recheck(spec, tree, call) == KTC_PLUGIN_OK,
                    call.error);
    }
    SUBCASE("a tracked edit") {
      write_file(tree + "/init/main.c", "int main(void) { return 4; }\n");
      ktc_plugin_call call;
      CHECK(plugin.recheck(spec, tree, call) == KTC_PLUGIN_E_CHANGED);
      CHECK_MESSAGE(contains(call.error, tree + ": the tree changed during "
                                                "the build"),
                    call.error);
      CHECK_MESSAGE(contains(call.error, "became dirty"), call.error);
    }
    SUBCASE("a new commit") {
      write_file(tree + "/init/main.c", "int main(void) { return 5; }\n");
      commit_all(tree, "during the build");
      std::string second = head_of(tree);
      ktc_plugin_call call;
      CHECK(plugin.recheck(spec, tree, call) == KTC_PLUGIN_E_CHANGED);
      CHECK_MESSAGE(contains(call.error, "HEAD " + head + " -> " + second),
                    call.error);
    }
  }

  SUBCASE("recheck of a tree that was dirty at resolve") {
    write_file(tree + "/init/main.c", "int main(void) { return 6; }\n");
    ktc_plugin_call resolved;
    REQUIRE(plugin.resolve(spec, resolved) == KTC_PLUGIN_OK);
    CHECK(resolved.identity.at("dirty") == "true");

    ktc_plugin_call same;
    CHECK_MESSAGE(plugin.recheck(spec, tree, same) == KTC_PLUGIN_OK,
                  same.error);

    write_file(tree + "/Makefile", kernel_makefile("3", ""));
    ktc_plugin_call bumped;
    CHECK(plugin.recheck(spec, tree, bumped) == KTC_PLUGIN_E_CHANGED);
    CHECK_MESSAGE(contains(bumped.error, "version 6.9.2-rc1 -> 6.9.3"),
                  bumped.error);
  }

  SUBCASE("recheck without a resolve only accepts a clean tree") {
    ktc_plugin_call clean;
    CHECK_MESSAGE(plugin.recheck(spec, tree, clean) == KTC_PLUGIN_OK,
                  clean.error);
    write_file(tree + "/Kconfig", "# edited\n");
    ktc_plugin_call dirty;
    CHECK(plugin.recheck(spec, tree, dirty) == KTC_PLUGIN_E_CHANGED);
    CHECK_MESSAGE(contains(dirty.error, tree), dirty.error);
  }
}
