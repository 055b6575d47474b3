// ktc_ensure and ktc_source_fetch through the public header: argument and
// struct checks, and a small local tree built, stored and found again.

#include "test_capi_helpers.hpp"

#include <boost/json/parse.hpp>

#include <sys/stat.h>

#include <atomic>
#include <string>
#include <vector>

using ktc::capi_test::EntryPtr;
using ktc::capi_test::error_message;
using ktc::capi_test::StringPtr;
using ktc::capi_test::TestCache;
using ktc::test::env_path;
using ktc::test::exists;
using ktc::test::read_file;
using ktc::test::run_process;
using ktc::test::TempDir;
using ktc::test::write_file;

namespace {

// A tree with just enough of a kernel's Makefile for the pipeline: config
// targets, and a default goal that links a small ELF vmlinux (with a
// build-id) and writes a bzImage. Each build appends to .builds.
const char* const k_makefile = R"(VERSION = 6
PATCHLEVEL = 1
SUBLEVEL = 7
EXTRAVERSION = -capi
all:
	printf 'int start_kernel(void) { return 0; }\n' > vmlinux.c
	printf 'int main(void) { return start_kernel(); }\n' >> vmlinux.c
	$(CC) -Wl,--build-id -o vmlinux vmlinux.c
	mkdir -p arch/x86/boot
	printf 'ARCH=%s\n' '$(ARCH)' > arch/x86/boot/bzImage
	echo '$(KBUILD_BUILD_USER)' >> .builds
defconfig:
	printf 'CONFIG_KNOWN=y\n' > .config
olddefconfig:
	grep -v UNKNOWN .config > .config.new; mv .config.new .config
broken:
	@echo 'error: this target always fails'; exit 2
)";

std::string make_tree(const TempDir& dir) {
  std::string tree = dir / "tree";
  REQUIRE(::mkdir(tree.c_str(), 0777) == 0);
  write_file(tree + "/Makefile", k_makefile);
  write_file(tree + "/Kconfig", "");
  write_file(tree + "/.gitignore", ".config*\nvmlinux*\narch/\n.builds\n");
  ktc::test::ProcessOptions git_env;
  git_env.env = {{"GIT_AUTHOR_NAME", "t"},
                 {"GIT_AUTHOR_EMAIL", "t@t"},
                 {"GIT_COMMITTER_NAME", "t"},
                 {"GIT_COMMITTER_EMAIL", "t@t"},
                 {"GIT_CONFIG_NOSYSTEM", "1"}};
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {"git", "-C", tree, "init", "-q"},
           {"git", "-C", tree, "add", "."},
           {"git", "-C", tree, "commit", "-qm", "tree"}}) {
    auto result = run_process(argv, git_env);
    REQUIRE_MESSAGE(result.exit_code == 0, result.err);
  }
  return tree;
}

// A cache that finds the shipped plugins.
class PluginCache : public TestCache {
public:
  PluginCache() {
    REQUIRE_MESSAGE(
        ktc_plugin_dir_add(
            get(), env_path("KTCACHE_SHIPPED_PLUGINS_DIR").c_str()) == KTC_OK,
        error_message());
  }
};

size_t count_lines(const std::string& path) {
  if (!exists(path)) {
    return 0;
  }
  std::string text = read_file(path);
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

} // namespace

TEST_SUITE("capi") {
  TEST_CASE("ktc_ensure refuses bad arguments with a message") {
    TestCache cache;
    ktc_entry* entry = nullptr;
    ktc_build_options options = KTC_BUILD_OPTIONS_INIT;
    CHECK(ktc_ensure(nullptr, cache.get(), &options, nullptr) == KTC_E_INVALID);
    CHECK(ktc_ensure(&entry, nullptr, &options, nullptr) == KTC_E_INVALID);
    CHECK(ktc_ensure(&entry, cache.get(), nullptr, nullptr) == KTC_E_INVALID);
    CHECK(ktc_ensure(&entry, cache.get(), &options, nullptr) == KTC_E_INVALID);
    CHECK(error_message().find("spec") != std::string::npos);

    options.spec = "local:/nonexistent";
    options.flags = 1u << 20;
    CHECK(ktc_ensure(&entry, cache.get(), &options, nullptr) == KTC_E_INVALID);
    CHECK(error_message().find("flags") != std::string::npos);

    options.flags = 0;
    options.kconfig_setting_count = 2;
    CHECK(ktc_ensure(&entry, cache.get(), &options, nullptr) == KTC_E_INVALID);
    CHECK(error_message().find("kconfig_settings") != std::string::npos);

    options.kconfig_setting_count = 0;
    options.arch = "x86";
    CHECK(ktc_ensure(&entry, cache.get(), &options, nullptr) == KTC_E_INVALID);
    CHECK(error_message().find("64-bit") != std::string::npos);

    options.arch = nullptr;
    options.base_config = "def config";
    CHECK(ktc_ensure(&entry, cache.get(), &options, nullptr) == KTC_E_INVALID);
    CHECK(error_message().find("base config") != std::string::npos);

    options.base_config = nullptr;
    const char* bad_setting[] = {"HZ"};
    options.kconfig_settings = bad_setting;
    options.kconfig_setting_count = 1;
    CHECK(ktc_ensure(&entry, cache.get(), &options, nullptr) == KTC_E_INVALID);
    CHECK(error_message().find("'HZ'") != std::string::npos);

    options.kconfig_setting_count = 0;
    options.struct_size = 8;
    CHECK(ktc_ensure(&entry, cache.get(), &options, nullptr) == KTC_E_INVALID);
    CHECK(error_message().find("struct_size") != std::string::npos);
    CHECK(entry == nullptr);
  }

  TEST_CASE("a spec whose scheme has no plugin is a plugin error") {
    TestCache cache;
    ktc_entry* entry = nullptr;
    ktc_build_options options = KTC_BUILD_OPTIONS_INIT;
    options.spec = "nosuchscheme:thing";
    CHECK(ktc_ensure(&entry, cache.get(), &options, nullptr) == KTC_E_PLUGIN);
    CHECK(error_message().find("nosuchscheme") != std::string::npos);
  }

  TEST_CASE("ktc_ensure builds a local tree once, then finds it") {
    TempDir dir;
    std::string tree = make_tree(dir);
    PluginCache cache;
    std::string spec = "local:" + tree;
    const char* settings[] = {"CONFIG_EXTRA=y", "UNKNOWN_THING=y"};
    std::vector<std::string> stages;
    ktc_hooks hooks = KTC_HOOKS_INIT;
    hooks.progress = [](void* seen, const char* stage, uint64_t, uint64_t) {
      auto& list = *static_cast<std::vector<std::string>*>(seen);
      if (list.empty() || list.back() != stage) {
        list.emplace_back(stage);
      }
    };
    hooks.progress_userdata = &stages;
    ktc_build_options options = KTC_BUILD_OPTIONS_INIT;
    options.spec = spec.c_str();
    options.kconfig_settings = settings;
    options.kconfig_setting_count = 2;
    options.jobs = 1;
    options.hooks = &hooks;

    ktc_entry* raw = nullptr;
    char* raw_report = nullptr;
    REQUIRE_MESSAGE(ktc_ensure(&raw, cache.get(), &options, &raw_report) ==
                        KTC_OK,
                    error_message());
    EntryPtr entry(raw);
    StringPtr report_text(raw_report);
    REQUIRE(entry);
    auto report = boost::json::parse(report_text.get()).as_object();
    CHECK(report.at("outcome").as_string() == "built");
    std::string key(report.at("key").as_string());
    CHECK(key.starts_with("local-"));
    CHECK(key.find("-x86_64-kc") != std::string::npos);
    auto dropped = report.at("dropped_kconfig").as_array();
    REQUIRE(dropped.size() == 1);
    CHECK(dropped[0].as_string() == "CONFIG_UNKNOWN_THING=y");
    CHECK(count_lines(tree + "/.builds") == 1);
    CHECK(read_file(tree + "/.builds") == "ktcache\n");
    for (const char* stage : {"resolve", "configure", "build", "store"}) {
      CAPTURE(stage);
      CHECK(std::find(stages.begin(), stages.end(), stage) != stages.end());
    }

    ktc_entry_info info = KTC_ENTRY_INFO_INIT;
    REQUIRE(ktc_entry_get_info(entry.get(), &info) == KTC_OK);
    CHECK(std::string(info.key) == key);
    CHECK(read_file(info.image_path) == "ARCH=x86_64\n");
    REQUIRE(info.config_path != nullptr);
    std::string config = read_file(info.config_path);
    CHECK(config.find("CONFIG_EXTRA=y") != std::string::npos);
    CHECK(config.find("UNKNOWN") == std::string::npos);
    auto metadata = boost::json::parse(info.metadata_json).as_object();
    CHECK(metadata.at("version").as_string() == "6.1.7-capi");
    CHECK(metadata.at("source").at("type").as_string() == "local");
    CHECK(metadata.at("inputs").at("arch").as_string() == "x86_64");
    CHECK(metadata.at("has_vmlinux").as_bool());

    // The same request again: a hit, and make does not run.
    EntryPtr again;
    {
      ktc_entry* second = nullptr;
      char* second_report = nullptr;
      REQUIRE(ktc_ensure(&second, cache.get(), &options, &second_report) ==
              KTC_OK);
      again.reset(second);
      StringPtr text(second_report);
      CHECK(boost::json::parse(text.get()).at("outcome").as_string() == "hit");
    }
    REQUIRE(again);
    CHECK(count_lines(tree + "/.builds") == 1);

    // Another setting is another key, and a build.
    const char* other[] = {"CONFIG_EXTRA=n"};
    options.kconfig_settings = other;
    options.kconfig_setting_count = 1;
    ktc_entry* third = nullptr;
    REQUIRE(ktc_ensure(&third, cache.get(), &options, nullptr) == KTC_OK);
    EntryPtr third_entry(third);
    ktc_entry_info third_info = KTC_ENTRY_INFO_INIT;
    REQUIRE(ktc_entry_get_info(third, &third_info) == KTC_OK);
    CHECK(std::string(third_info.key) != key);
    CHECK(count_lines(tree + "/.builds") == 2);
  }

  TEST_CASE("a failing build reports the step and keeps the log") {
    TempDir dir;
    std::string tree = make_tree(dir);
    PluginCache cache;
    std::string spec = "local:" + tree;
    ktc_build_options options = KTC_BUILD_OPTIONS_INIT;
    options.spec = spec.c_str();
    options.base_config = "broken";
    ktc_entry* entry = nullptr;
    CHECK(ktc_ensure(&entry, cache.get(), &options, nullptr) == KTC_E_BUILD);
    std::string message = error_message();
    CHECK(message.find("make ARCH=x86_64 broken") != std::string::npos);
    CHECK(message.find("status 2") != std::string::npos);
    auto log_at = message.find("the log is ");
    REQUIRE(log_at != std::string::npos);
    std::string log = message.substr(log_at + 11);
    CHECK(read_file(log).find("this target always fails") != std::string::npos);
    CHECK(entry == nullptr);
  }

  TEST_CASE("cancelling before the build starts stops it") {
    TempDir dir;
    std::string tree = make_tree(dir);
    PluginCache cache;
    std::string spec = "local:" + tree;
    ktc_hooks hooks = KTC_HOOKS_INIT;
    hooks.cancelled = [](void*) { return 1; };
    ktc_build_options options = KTC_BUILD_OPTIONS_INIT;
    options.spec = spec.c_str();
    options.hooks = &hooks;
    ktc_entry* entry = nullptr;
    CHECK(ktc_ensure(&entry, cache.get(), &options, nullptr) ==
          KTC_E_CANCELLED);
    CHECK(error_message().find("cancelled") != std::string::npos);
    CHECK(count_lines(tree + "/.builds") == 0);
  }

  TEST_CASE("ktc_source_fetch names a local tree in place") {
    TempDir dir;
    std::string tree = make_tree(dir);
    PluginCache cache;
    std::string spec = "local:" + tree;
    std::string dest = dir / "unused";
    char* raw = nullptr;
    REQUIRE_MESSAGE(ktc_source_fetch(&raw, cache.get(), spec.c_str(),
                                     dest.c_str(), nullptr) == KTC_OK,
                    error_message());
    StringPtr text(raw);
    auto result = boost::json::parse(text.get()).as_object();
    CHECK(result.at("tree").as_string() == tree);
    CHECK(result.at("source").at("type").as_string() == "local");
    CHECK_FALSE(exists(dest));
  }

  TEST_CASE("ktc_source_fetch refuses a destination that is not empty") {
    TempDir dir;
    std::string tree = make_tree(dir);
    PluginCache cache;
    std::string spec = "local:" + tree;
    std::string dest = dir / "full";
    REQUIRE(::mkdir(dest.c_str(), 0777) == 0);
    write_file(dest + "/something", "x");
    char* raw = nullptr;
    CHECK(ktc_source_fetch(&raw, cache.get(), spec.c_str(), dest.c_str(),
                           nullptr) == KTC_E_INVALID);
    CHECK(error_message().find("not empty") != std::string::npos);
    CHECK(raw == nullptr);
    CHECK(exists(dest + "/something"));
    CHECK(ktc_source_fetch(&raw, cache.get(), spec.c_str(), nullptr, nullptr) ==
          KTC_E_INVALID);
  }
}
