// The plugin host's refusals, through the public C API only. Each case lays
// out fresh plugin directories from the fixture modules (tests/plugins/
// fixtures, built under the names the host looks for) next to the valid
// "fixture" source, and checks that the broken file is rejected with its
// path and cause while discovery goes on and the valid plugin still works.

#include "test_util.hpp"

#include <doctest/doctest.h>
#include <ktcache/ktcache.h>
#include <ktcache/plugin.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace fs = std::filesystem;
using ktc::test::TempDir;

struct CacheFree {
  void operator()(ktc_cache* cache) const { ktc_cache_free(cache); }
};
struct PluginListFree {
  void operator()(ktc_plugin_list* list) const { ktc_plugin_list_free(list); }
};
struct StringFree {
  void operator()(char* text) const { ktc_free(text); }
};
using CachePtr = std::unique_ptr<ktc_cache, CacheFree>;
using PluginListPtr = std::unique_ptr<ktc_plugin_list, PluginListFree>;
using StringPtr = std::unique_ptr<char, StringFree>;

std::string fixture_path(const std::string& file) {
  return ktc::test::env_path("KTCACHE_FIXTURE_PLUGINS_DIR") + "/" + file;
}

// Paths as the host reports them: absolute, without symbolic links.
std::string canonical(const std::string& path) {
  return fs::canonical(path).string();
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A fresh plugin directory holding copies of the named fixtures. Its mode
// is set explicitly so a permissive umask cannot make it world-writable.
class PluginDir {
public:
  explicit PluginDir(const std::vector<std::string>& fixtures) {
    REQUIRE(chmod(m_dir.path().c_str(), 0755) == 0);
    for (const std::string& name : fixtures) {
      add(name);
    }
  }

  void add(const std::string& fixture) {
    std::string to = file(fixture);
    fs::copy_file(fixture_path(fixture), to);
    REQUIRE(chmod(to.c_str(), 0755) == 0);
  }

  // Where `name` is (or would be) inside this directory.
  std::string file(const std::string& name) const { return m_dir / name; }
  const std::string& path() const { return m_dir.path(); }

private:
  TempDir m_dir;
};

// The environment every case relies on: only the directories it adds.
class IsolatedSearchPath {
public:
  IsolatedSearchPath() {
    const char* flag = std::getenv("KTCACHE_TEST_NO_DEFAULT_PLUGIN_DIR");
    REQUIRE_MESSAGE(flag != nullptr,
                    "run through meson test: the installed plugin directory "
                    "must be disabled");
    REQUIRE(std::string(flag) == "1");
  }

private:
  ktc::test::ScopedEnv m_path{"KTCACHE_PLUGIN_PATH", std::nullopt};
};

CachePtr open_cache(const std::vector<const PluginDir*>& dirs) {
  TempDir root;
  ktc_open_options options = KTC_OPEN_OPTIONS_INIT;
  std::string cache_root = root / "cache";
  options.root = cache_root.c_str();
  ktc_cache* raw = nullptr;
  REQUIRE_MESSAGE(ktc_cache_open(&raw, &options) == KTC_OK,
                  ktc_error_message());
  CachePtr cache(raw);
  for (const PluginDir* dir : dirs) {
    REQUIRE_MESSAGE(ktc_plugin_dir_add(cache.get(), dir->path().c_str()) ==
                        KTC_OK,
                    ktc_error_message());
  }
  return cache;
}

struct Row {
  int state = -1;
  std::string name;
  std::string kind;
  std::optional<std::string> version;
  std::string file;
  uint32_t abi_major = 0;
  uint32_t abi_minor = 0;
  std::optional<std::string> reason;
};

std::optional<std::string> optional_string(const char* text) {
  if (text == nullptr) {
    return std::nullopt;
  }
  return std::string(text);
}

std::vector<Row> list_plugins(ktc_cache* cache, uint32_t flags) {
  ktc_plugin_list* raw = nullptr;
  REQUIRE_MESSAGE(ktc_plugins_list(&raw, cache, flags) == KTC_OK,
                  ktc_error_message());
  PluginListPtr list(raw);
  REQUIRE(list != nullptr);
  std::vector<Row> rows;
  size_t count = ktc_plugin_list_count(list.get());
  for (size_t i = 0; i < count; ++i) {
    ktc_plugin_record record = KTC_PLUGIN_RECORD_INIT;
    REQUIRE(ktc_plugin_list_get(list.get(), i, &record) == KTC_OK);
    REQUIRE(record.name != nullptr);
    REQUIRE(record.kind != nullptr);
    REQUIRE(record.file != nullptr);
    Row row;
    row.state = record.state;
    row.name = record.name;
    row.kind = record.kind;
    row.version = optional_string(record.version);
    row.file = record.file;
    row.abi_major = record.abi_major;
    row.abi_minor = record.abi_minor;
    row.reason = optional_string(record.reason);
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string describe_rows(const std::vector<Row>& rows) {
  std::string text;
  for (const Row& row : rows) {
    text += "\n  [" + std::to_string(row.state) + "] " + row.file + ": " +
            row.reason.value_or("(no reason)");
  }
  return text;
}

// The one row for `file`; fails the test when there is not exactly one.
Row row_for(const std::vector<Row>& rows, const std::string& file) {
  std::string wanted = canonical(file);
  std::vector<Row> found;
  for (const Row& row : rows) {
    if (row.file == wanted) {
      found.push_back(row);
    }
  }
  INFO("rows:" << describe_rows(rows));
  REQUIRE_MESSAGE(found.size() == 1, "expected one record for " << wanted);
  return found.front();
}

// Loaded records first, then the rejected and shadowed ones.
void check_loaded_first(const std::vector<Row>& rows) {
  auto first_other = std::find_if(rows.begin(), rows.end(), [](const Row& row) {
    return row.state != KTC_PLUGIN_LOADED;
  });
  bool loaded_after = std::any_of(first_other, rows.end(), [](const Row& row) {
    return row.state == KTC_PLUGIN_LOADED;
  });
  INFO("rows:" << describe_rows(rows));
  CHECK_FALSE(loaded_after);
}

void check_fixture_loaded(const std::vector<Row>& rows,
                          const std::string& file) {
  Row row = row_for(rows, file);
  CHECK(row.state == KTC_PLUGIN_LOADED);
  CHECK(row.name == "fixture");
  CHECK(row.kind == "source");
  CHECK(row.version == std::optional<std::string>("0.0.1"));
  CHECK(row.abi_major == 1);
  CHECK(row.abi_minor == KTC_PLUGIN_ABI_MINOR);
  CHECK_FALSE(row.reason.has_value());
}

// Describes "fixture:x" and checks what the valid fixture recorded.
void check_fixture_describes(ktc_cache* cache, const std::string& file) {
  char* raw = nullptr;
  int status = ktc_source_describe(&raw, cache, "fixture:x");
  REQUIRE_MESSAGE(status == KTC_OK, ktc_error_message());
  REQUIRE(raw != nullptr);
  StringPtr owned(raw);
  std::string json = raw;
  INFO("describe: " << json);
  CHECK(contains(json, "\"fixture:x\""));
  CHECK(contains(json, "\"1.2.3\""));
  CHECK(contains(json, "\"answer\":42"));
  CHECK(contains(json, "\"key_parts\":[\"fixture\"]"));
  CHECK(contains(json, "\"file\":\"" + canonical(file) + "\""));
}

// A spec whose only plugin is broken fails with the file and the cause.
void check_describe_fails(ktc_cache* cache,
                          const std::string& spec,
                          const std::string& file,
                          const std::vector<std::string>& causes) {
  char* raw = nullptr;
  int status = ktc_source_describe(&raw, cache, spec.c_str());
  StringPtr owned(raw);
  std::string message = ktc_error_message();
  INFO(spec << " -> " << status << ": " << message);
  CHECK(status == KTC_E_PLUGIN);
  CHECK(raw == nullptr);
  CHECK(contains(message, canonical(file)));
  for (const std::string& cause : causes) {
    CHECK(contains(message, cause));
  }
}

// Collects log lines while alive. The sink is process-wide, so one at a time.
class LogCapture {
public:
  LogCapture() { ktc_log_set_callback(KTC_LOG_TRACE, &LogCapture::sink, this); }
  ~LogCapture() { ktc_log_set_callback(0, nullptr, nullptr); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::vector<std::pair<int, std::string>> lines() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_lines;
  }

private:
  static void sink(int level, const char* message, void* userdata) {
    auto* self = static_cast<LogCapture*>(userdata);
    std::lock_guard<std::mutex> lock(self->m_mutex);
    self->m_lines.emplace_back(level, message);
  }

  mutable std::mutex m_mutex;
  std::vector<std::pair<int, std::string>> m_lines;
};

// One broken fixture: the file it is laid out as and what the host's reason
// must say.
struct BrokenCase {
  std::string file;
  // The source scheme to describe, or "" for a strip policy.
  std::string scheme;
  std::vector<std::string> causes;
};

std::vector<BrokenCase> broken_cases() {
  return {
      {"source_noentry.so", "noentry", {"no ktc_plugin_query_v1"}},
      {"source_undef.so",
       "undef",
       {"cannot load", "undefined symbol: ktc_fixture_nowhere"}},
      {"source_abiv2.so",
       "abiv2",
       {"no ktc_plugin_query_v1", "ABI major 2", "ktc_plugin_query_v2"}},
      {"source_abimajor.so", "abimajor", {"abi_major 2"}},
      {"source_smallinfo.so",
       "smallinfo",
       {"ktc_plugin_info.struct_size 16", "smaller"}},
      {"source_smallops.so",
       "smallops",
       {"ktc_source_ops.struct_size 16", "smaller"}},
      {"source_tail.so", "tail", {"ktc_plugin_info", "non-zero"}},
      {"source_noresolve.so", "noresolve", {"ktc_source_ops.resolve is NULL"}},
      {"strip_nodecide.so", "", {"ktc_strip_ops.decide is NULL"}},
      {"source_refuses.so",
       "refuses",
       {"query failed", "fixture refuses to load"}},
      {"source_alpha.so",
       "alpha",
       {"'beta'", "does not match the file name source_alpha.so"}},
  };
}

// "source_undef.so" -> {"source", "undef"}: what a record says about a file
// that could not be used, going by its name.
std::pair<std::string, std::string> kind_and_name(const std::string& file) {
  std::string stem = file.substr(0, file.size() - 3);
  size_t underscore = stem.find('_');
  return {stem.substr(0, underscore), stem.substr(underscore + 1)};
}

// Files made at test time rather than built: not ELF at all.
void write_not_elf(const PluginDir& dir) {
  ktc::test::write_file(dir.file("source_text.so"),
                        "this is a text file, not a plugin\n");
  ktc::test::write_file(dir.file("source_empty.so"), "");
  REQUIRE(chmod(dir.file("source_text.so").c_str(), 0755) == 0);
  REQUIRE(chmod(dir.file("source_empty.so").c_str(), 0755) == 0);
}

bool have_elf32() {
  const char* flag = std::getenv("KTCACHE_FIXTURE_HAVE_ELF32");
  REQUIRE(flag != nullptr);
  return std::string(flag) == "1";
}

} // namespace

TEST_CASE("the valid fixture loads, lists and describes") {
  IsolatedSearchPath isolated;
  PluginDir dir({"source_fixture.so", "source_zerotail.so"});
  CachePtr cache = open_cache({&dir});

  std::vector<Row> rows = list_plugins(cache.get(), KTC_PLUGINS_ALL);
  INFO("rows:" << describe_rows(rows));
  REQUIRE(rows.size() == 2);
  check_fixture_loaded(rows, dir.file("source_fixture.so"));
  // A larger struct is fine when the tail the host does not know is zero.
  Row zerotail = row_for(rows, dir.file("source_zerotail.so"));
  CHECK(zerotail.state == KTC_PLUGIN_LOADED);
  CHECK(zerotail.name == "zerotail");
  check_fixture_describes(cache.get(), dir.file("source_fixture.so"));
}

TEST_CASE("each broken plugin is rejected and discovery goes on") {
  IsolatedSearchPath isolated;
  for (const BrokenCase& broken : broken_cases()) {
    CAPTURE(broken.file);
    PluginDir dir({broken.file, "source_fixture.so"});
    CachePtr cache = open_cache({&dir});

    std::vector<Row> rows = list_plugins(cache.get(), KTC_PLUGINS_ALL);
    INFO("rows:" << describe_rows(rows));
    CHECK(rows.size() == 2);
    check_loaded_first(rows);
    check_fixture_loaded(rows, dir.file("source_fixture.so"));

    Row row = row_for(rows, dir.file(broken.file));
    CHECK(row.state == KTC_PLUGIN_REJECTED);
    auto [kind, name] = kind_and_name(broken.file);
    CHECK(row.kind == kind);
    CHECK(row.name == name);
    CHECK_FALSE(row.version.has_value());
    REQUIRE(row.reason.has_value());
    CHECK(row.reason->find('\n') == std::string::npos);
    for (const std::string& cause : broken.causes) {
      CHECK_MESSAGE(contains(*row.reason, cause), "reason \"" << *row.reason
                                                              << "\" lacks \""
                                                              << cause << "\"");
    }

    // Without KTC_PLUGINS_ALL only what is usable is listed.
    std::vector<Row> loaded = list_plugins(cache.get(), 0);
    REQUIRE(loaded.size() == 1);
    CHECK(loaded.front().file == canonical(dir.file("source_fixture.so")));

    check_fixture_describes(cache.get(), dir.file("source_fixture.so"));
    if (!broken.scheme.empty()) {
      check_describe_fails(cache.get(), broken.scheme + ":x",
                           dir.file(broken.file), broken.causes);
    }
  }
}

TEST_CASE("a strip policy whose plugin is broken fails with the cause") {
  IsolatedSearchPath isolated;
  PluginDir dir({"strip_nodecide.so", "source_fixture.so"});
  CachePtr cache = open_cache({&dir});
  TempDir work;
  // Any ELF file will do as input: the policy is refused before it is read.
  std::string input = fixture_path("source_fixture.so");
  std::string output = work / "out";

  ktc_strip_options options = KTC_STRIP_OPTIONS_INIT;
  options.policy = "nodecide";
  int status =
      ktc_strip(cache.get(), input.c_str(), output.c_str(), &options, nullptr);
  std::string message = ktc_error_message();
  INFO(status << ": " << message);
  CHECK(status == KTC_E_PLUGIN);
  CHECK(contains(message, canonical(dir.file("strip_nodecide.so"))));
  CHECK(contains(message, "decide"));
  CHECK_FALSE(ktc::test::exists(output));
}

TEST_CASE("files that are not loadable ELF shared objects are rejected") {
  IsolatedSearchPath isolated;
  PluginDir dir({"source_fixture.so"});
  write_not_elf(dir);
  CachePtr cache = open_cache({&dir});

  std::vector<Row> rows = list_plugins(cache.get(), KTC_PLUGINS_ALL);
  INFO("rows:" << describe_rows(rows));
  CHECK(rows.size() == 3);
  check_fixture_loaded(rows, dir.file("source_fixture.so"));
  for (const char* file : {"source_text.so", "source_empty.so"}) {
    CAPTURE(file);
    Row row = row_for(rows, dir.file(file));
    CHECK(row.state == KTC_PLUGIN_REJECTED);
    REQUIRE(row.reason.has_value());
    CHECK(contains(*row.reason, "not an ELF"));
  }
  check_fixture_describes(cache.get(), dir.file("source_fixture.so"));
  check_describe_fails(cache.get(), "text:x", dir.file("source_text.so"),
                       {"not an ELF"});
}

TEST_CASE("an ELF file of the wrong class is rejected") {
  IsolatedSearchPath isolated;
  if (!have_elf32()) {
    MESSAGE("skipped: the C compiler cannot link a 32-bit shared object");
    return;
  }
  PluginDir dir({"source_elf32.so", "source_fixture.so"});
  CachePtr cache = open_cache({&dir});

  std::vector<Row> rows = list_plugins(cache.get(), KTC_PLUGINS_ALL);
  INFO("rows:" << describe_rows(rows));
  CHECK(rows.size() == 2);
  check_fixture_loaded(rows, dir.file("source_fixture.so"));
  Row row = row_for(rows, dir.file("source_elf32.so"));
  CHECK(row.state == KTC_PLUGIN_REJECTED);
  REQUIRE(row.reason.has_value());
  CHECK(contains(*row.reason, "32-bit ELF"));
  CHECK(contains(*row.reason, "64-bit"));
  check_describe_fails(cache.get(), "elf32:x", dir.file("source_elf32.so"),
                       {"32-bit ELF"});
}

TEST_CASE("every broken plugin in one directory leaves the valid ones") {
  IsolatedSearchPath isolated;
  std::vector<std::string> files = {"source_fixture.so", "source_zerotail.so"};
  for (const BrokenCase& broken : broken_cases()) {
    files.push_back(broken.file);
  }
  if (have_elf32()) {
    files.push_back("source_elf32.so");
  }
  PluginDir dir(files);
  write_not_elf(dir);
  CachePtr cache = open_cache({&dir});

  std::vector<Row> rows = list_plugins(cache.get(), KTC_PLUGINS_ALL);
  INFO("rows:" << describe_rows(rows));
  CHECK(rows.size() == files.size() + 2);
  check_loaded_first(rows);
  size_t loaded = 0;
  for (const Row& row : rows) {
    if (row.state == KTC_PLUGIN_LOADED) {
      ++loaded;
    } else {
      CHECK(row.state == KTC_PLUGIN_REJECTED);
      CHECK(row.reason.has_value());
    }
  }
  CHECK(loaded == 2);
  check_fixture_loaded(rows, dir.file("source_fixture.so"));
  CHECK(row_for(rows, dir.file("source_zerotail.so")).state ==
        KTC_PLUGIN_LOADED);
  check_fixture_describes(cache.get(), dir.file("source_fixture.so"));
}

TEST_CASE("a duplicate name: the first directory wins, the second is "
          "shadowed") {
  IsolatedSearchPath isolated;
  PluginDir first({"source_fixture.so"});
  PluginDir second({"source_fixture.so"});
  std::string winner = canonical(first.file("source_fixture.so"));
  std::string loser = canonical(second.file("source_fixture.so"));

  LogCapture log;
  CachePtr cache = open_cache({&first, &second});
  std::vector<Row> rows = list_plugins(cache.get(), KTC_PLUGINS_ALL);
  INFO("rows:" << describe_rows(rows));
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].file == winner);
  check_fixture_loaded(rows, winner);
  Row shadowed = row_for(rows, loser);
  CHECK(shadowed.state == KTC_PLUGIN_SHADOWED);
  CHECK(shadowed.name == "fixture");
  REQUIRE(shadowed.reason.has_value());
  CHECK(contains(*shadowed.reason, winner));

  bool warned = false;
  for (const auto& [level, line] : log.lines()) {
    if (level == KTC_LOG_WARN && contains(line, winner) &&
        contains(line, loser)) {
      warned = true;
    }
  }
  if (!warned) {
    for (const auto& [level, line] : log.lines()) {
      MESSAGE("log [" << level << "] " << line);
    }
  }
  CHECK(warned);
  check_fixture_describes(cache.get(), winner);

  // The order of the directories decides, not anything about the files.
  CachePtr reversed = open_cache({&second, &first});
  std::vector<Row> reversed_rows =
      list_plugins(reversed.get(), KTC_PLUGINS_ALL);
  CHECK(row_for(reversed_rows, loser).state == KTC_PLUGIN_LOADED);
  CHECK(row_for(reversed_rows, winner).state == KTC_PLUGIN_SHADOWED);
  check_fixture_describes(reversed.get(), loser);
}

TEST_CASE("a world-writable plugin file is refused") {
  IsolatedSearchPath isolated;
  PluginDir dir({"source_fixture.so", "source_zerotail.so"});
  std::string file = dir.file("source_fixture.so");
  REQUIRE(chmod(file.c_str(), 0666) == 0);
  CachePtr cache = open_cache({&dir});

  std::vector<Row> rows = list_plugins(cache.get(), KTC_PLUGINS_ALL);
  INFO("rows:" << describe_rows(rows));
  CHECK(rows.size() == 2);
  Row row = row_for(rows, file);
  CHECK(row.state == KTC_PLUGIN_REJECTED);
  REQUIRE(row.reason.has_value());
  CHECK(contains(*row.reason, "world-writable (mode 0666)"));
  CHECK(row_for(rows, dir.file("source_zerotail.so")).state ==
        KTC_PLUGIN_LOADED);
  check_describe_fails(cache.get(), "fixture:x", file, {"world-writable"});

  // A later directory with a usable file provides the scheme instead.
  PluginDir good({"source_fixture.so"});
  REQUIRE(ktc_plugin_dir_add(cache.get(), good.path().c_str()) == KTC_OK);
  check_fixture_describes(cache.get(), good.file("source_fixture.so"));
}

TEST_CASE("a world-writable plugin directory is refused") {
  IsolatedSearchPath isolated;
  PluginDir open_dir({"source_fixture.so"});
  REQUIRE(chmod(open_dir.path().c_str(), 0777) == 0);
  PluginDir good({"source_zerotail.so"});
  CachePtr cache = open_cache({&open_dir, &good});

  std::vector<Row> rows = list_plugins(cache.get(), KTC_PLUGINS_ALL);
  INFO("rows:" << describe_rows(rows));
  // The directory is refused as a whole: one record for it, none for the
  // files inside, which are never opened.
  std::string dir_path = canonical(open_dir.path());
  CHECK(rows.size() == 2);
  Row dir_row = row_for(rows, dir_path);
  CHECK(dir_row.state == KTC_PLUGIN_REJECTED);
  CHECK(dir_row.kind == "unknown");
  REQUIRE(dir_row.reason.has_value());
  CHECK(contains(*dir_row.reason, "world-writable (mode 0777)"));
  for (const Row& row : rows) {
    CHECK(row.file.rfind(dir_path + "/", 0) != 0);
  }
  CHECK(row_for(rows, good.file("source_zerotail.so")).state ==
        KTC_PLUGIN_LOADED);

  char* raw = nullptr;
  int status = ktc_source_describe(&raw, cache.get(), "fixture:x");
  StringPtr owned(raw);
  std::string message = ktc_error_message();
  INFO(status << ": " << message);
  CHECK(status == KTC_E_PLUGIN);
  CHECK(contains(message, "world-writable"));
  CHECK(contains(message, dir_path));
}

TEST_CASE("a plugin owned by another user is refused") {
  IsolatedSearchPath isolated;
  if (geteuid() != 0) {
    MESSAGE("skipped: only root can give a file to another user");
    return;
  }
  PluginDir dir({"source_fixture.so", "source_zerotail.so"});
  std::string file = dir.file("source_fixture.so");
  // An id no account is likely to have; neither the caller nor root.
  REQUIRE(chown(file.c_str(), 54321, 54321) == 0);
  CachePtr cache = open_cache({&dir});

  std::vector<Row> rows = list_plugins(cache.get(), KTC_PLUGINS_ALL);
  INFO("rows:" << describe_rows(rows));
  Row row = row_for(rows, file);
  CHECK(row.state == KTC_PLUGIN_REJECTED);
  REQUIRE(row.reason.has_value());
  CHECK(contains(*row.reason, "owned by uid 54321"));
  CHECK(row_for(rows, dir.file("source_zerotail.so")).state ==
        KTC_PLUGIN_LOADED);
  check_describe_fails(cache.get(), "fixture:x", file, {"owned by uid 54321"});
}
