// The strip policies through the public C API: the shipped btf, debug and
// none plugins on a real ELF file (a plugin of this build, compiled with
// -g, so it has DWARF, symbols and a build-id), the check and its fallback
// (a fixture policy whose output loses the build-id), and store's use of a
// policy, all judged by binutils' readelf and nm rather than ktcache's own
// reader.

#include "test_util.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>
#include <ktcache/ktcache.h>

#include <filesystem>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace json = boost::json;
using ktc::test::TempDir;

namespace {

struct CacheFree {
  void operator()(ktc_cache* cache) const { ktc_cache_free(cache); }
};
struct EntryFree {
  void operator()(ktc_entry* entry) const { ktc_entry_free(entry); }
};
using CachePtr = std::unique_ptr<ktc_cache, CacheFree>;
using EntryPtr = std::unique_ptr<ktc_entry, EntryFree>;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string tool(const std::vector<std::string>& argv) {
  ktc::test::ProcessResult result = ktc::test::run_process(argv);
  REQUIRE_MESSAGE(result.exit_code == 0, argv.front(), ": ", result.err);
  return result.out;
}

// Section names, as readelf lists them.
std::set<std::string> section_names(const std::string& path) {
  std::istringstream lines(tool({"readelf", "-S", "-W", path}));
  std::set<std::string> names;
  std::string line;
  while (std::getline(lines, line)) {
    auto open = line.find('[');
    auto close = line.find(']', open);
    if (open == std::string::npos || close == std::string::npos ||
        line.find("Nr]") != std::string::npos) {
      continue;
    }
    std::istringstream fields(line.substr(close + 1));
    std::string name;
    if (fields >> name && name != "NULL") {
      names.insert(name);
    }
  }
  return names;
}

// "address type name" for every named symbol nm lists; without the type
// letter unless `with_type`: nm calls a symbol in a section kept as a
// header only 'b' (as in .bss), whatever it was.
std::multiset<std::string> nm_symbols(const std::string& path,
                                      bool with_type = false) {
  std::istringstream lines(tool({"nm", path}));
  std::multiset<std::string> symbols;
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string address, type, name;
    if (!(fields >> address >> type)) {
      continue;
    }
    if (!(fields >> name)) {
      // Undefined symbols have no address.
      name = type;
      type = address;
      address.clear();
    }
    symbols.insert(address + (with_type ? " " + type + " " : " ") + name);
  }
  return symbols;
}

std::string build_id(const std::string& path) {
  std::string notes = tool({"readelf", "-n", "-W", path});
  auto at = notes.find("Build ID: ");
  REQUIRE_MESSAGE(at != std::string::npos, "no build-id in ", path);
  std::istringstream rest(notes.substr(at + 10));
  std::string id;
  rest >> id;
  return id;
}

bool has_debug_section(const std::set<std::string>& names) {
  for (const std::string& name : names) {
    if (name.starts_with(".debug_")) {
      return true;
    }
  }
  return false;
}

class PolicyCache {
public:
  PolicyCache() {
    const std::string plugins =
        fs::canonical(m_dir.path()).string() + "/plugins";
    fs::create_directory(plugins);
    fs::permissions(plugins, fs::perms::owner_all | fs::perms::group_read |
                                 fs::perms::group_exec);
    std::string shipped = ktc::test::env_path("KTCACHE_SHIPPED_PLUGINS_DIR");
    std::string fixtures = ktc::test::env_path("KTCACHE_FIXTURE_PLUGINS_DIR");
    for (const char* name : {"strip_btf.so", "strip_debug.so", "strip_none.so",
                             "source_local.so"}) {
      fs::copy_file(shipped + "/" + name, plugins + "/" + name);
    }
    for (const char* name : {"strip_lossy.so", "strip_viaengine.so"}) {
      fs::copy_file(fixtures + "/" + name, plugins + "/" + name);
    }
    // The input: an ELF file with DWARF, symbols and a build-id.
    m_input = m_dir / "input.so";
    fs::copy_file(shipped + "/source_local.so", m_input);

    std::string root = m_dir / "cache";
    ktc_open_options options = KTC_OPEN_OPTIONS_INIT;
    options.root = root.c_str();
    ktc_cache* raw = nullptr;
    REQUIRE_MESSAGE(ktc_cache_open(&raw, &options) == KTC_OK,
                    ktc_error_message());
    m_cache.reset(raw);
    REQUIRE(ktc_plugin_dir_add(raw, plugins.c_str()) == KTC_OK);
  }

  ktc_cache* get() const { return m_cache.get(); }
  const std::string& input() const { return m_input; }
  std::string path(const std::string& name) const { return m_dir / name; }

  // Strips input() with `policy`; the report, or the failure.
  int strip(const std::string& policy,
            const std::string& output,
            json::object* report,
            const std::string& input = {}) const {
    ktc_strip_options options = KTC_STRIP_OPTIONS_INIT;
    options.policy = policy.c_str();
    char* text = nullptr;
    const std::string& from = input.empty() ? m_input : input;
    int status =
        ktc_strip(get(), from.c_str(), output.c_str(), &options, &text);
    if (status == KTC_OK) {
      REQUIRE(text != nullptr);
      if (report != nullptr) {
        *report = json::parse(text).as_object();
      }
      ktc_free(text);
    } else {
      CHECK(text == nullptr);
    }
    return status;
  }

  // Stores input() as the vmlinux of `key`; the vmlinux artifact record.
  json::object store(const std::string& key,
                     const char* policy,
                     uint32_t flags = 0,
                     const std::string& vmlinux = {}) const {
    std::string image = path("bzImage-" + key);
    ktc::test::write_file(image, "boot image");
    ktc_store_options options = KTC_STORE_OPTIONS_INIT;
    options.image = image.c_str();
    const std::string& from = vmlinux.empty() ? m_input : vmlinux;
    options.vmlinux = from.c_str();
    options.strip_policy = policy;
    options.flags = flags;
    ktc_entry* raw = nullptr;
    REQUIRE_MESSAGE(ktc_store(&raw, get(), key.c_str(), &options) == KTC_OK,
                    ktc_error_message());
    EntryPtr entry(raw);
    ktc_entry_info info = KTC_ENTRY_INFO_INIT;
    REQUIRE(ktc_entry_get_info(entry.get(), &info) == KTC_OK);
    json::object metadata = json::parse(info.metadata_json).as_object();
    m_last_metadata = metadata;
    m_last_vmlinux = info.vmlinux_path != nullptr ? info.vmlinux_path : "";
    return metadata.at("artifacts").at("vmlinux").as_object();
  }

  const json::object& last_metadata() const { return m_last_metadata; }
  const std::string& last_vmlinux() const { return m_last_vmlinux; }

private:
  ktc::test::ScopedEnv m_no_path{"KTCACHE_PLUGIN_PATH", std::nullopt};
  TempDir m_dir;
  std::string m_input;
  CachePtr m_cache;
  mutable json::object m_last_metadata;
  mutable std::string m_last_vmlinux;
};

} // namespace

TEST_CASE("the btf policy keeps symbols and notes and drops DWARF") {
  PolicyCache cache;
  REQUIRE(has_debug_section(section_names(cache.input())));
  std::string output = cache.path("out.btf");
  json::object report;
  REQUIRE_MESSAGE(cache.strip("btf", output, &report) == KTC_OK,
                  ktc_error_message());
  CHECK(report.at("policy") == "btf");
  CHECK(report.at("requested") == "btf");
  CHECK(report.at("stripped") == true);
  CHECK(report.at("fallback").is_null());
  CHECK(report.at("output_bytes").to_number<uint64_t>() ==
        fs::file_size(output));
  CHECK(report.at("input_bytes").to_number<uint64_t>() ==
        fs::file_size(cache.input()));
  CHECK(fs::file_size(output) < fs::file_size(cache.input()));
  CHECK(report.at("build_id") == build_id(cache.input()).c_str());

  std::set<std::string> names = section_names(output);
  CHECK_FALSE(has_debug_section(names));
  CHECK(names.count(".symtab") == 1);
  CHECK(names.count(".strtab") == 1);
  CHECK(names.count(".comment") == 0);
  CHECK(build_id(output) == build_id(cache.input()));
  CHECK(nm_symbols(output) == nm_symbols(cache.input()));
  // .text survives as a header: readelf shows it, as NOBITS.
  CHECK(contains(tool({"readelf", "-S", "-W", output}), ".text"));
  CHECK(contains(tool({"readelf", "-S", "-W", output}), "NOBITS"));
}

TEST_CASE("the debug policy keeps code and data and drops DWARF") {
  PolicyCache cache;
  std::string output = cache.path("out.debug");
  json::object report;
  REQUIRE_MESSAGE(cache.strip("debug", output, &report) == KTC_OK,
                  ktc_error_message());
  CHECK(report.at("policy") == "debug");
  std::set<std::string> names = section_names(output);
  CHECK_FALSE(has_debug_section(names));
  CHECK(names.count(".comment") == 0);
  CHECK(build_id(output) == build_id(cache.input()));
  CHECK(nm_symbols(output, true) == nm_symbols(cache.input(), true));
  // Everything that is loaded is kept byte for byte, at the same offsets,
  // so the disassembly of the code is the same.
  auto code = [](const std::string& path) {
    std::string listing = tool({"objdump", "-d", path});
    auto start = listing.find("Disassembly of section");
    REQUIRE(start != std::string::npos);
    return listing.substr(start);
  };
  CHECK(code(output) == code(cache.input()));
  // eu-elflint accepts it as it accepts the input.
  ktc::test::ProcessResult lint =
      ktc::test::run_process({"eu-elflint", "--gnu-ld", output});
  CHECK_MESSAGE(lint.exit_code == 0, lint.out, lint.err);
}

TEST_CASE("a policy whose output fails the check falls back to debug") {
  PolicyCache cache;
  std::string output = cache.path("out.lossy");
  json::object report;
  REQUIRE_MESSAGE(cache.strip("lossy", output, &report) == KTC_OK,
                  ktc_error_message());
  CHECK(report.at("requested") == "lossy");
  CHECK(report.at("policy") == "debug");
  CHECK(report.at("stripped") == true);
  REQUIRE(report.at("fallback").is_string());
  CHECK(
      contains(json::value_to<std::string>(report.at("fallback")), "build-id"));
  CHECK(build_id(output) == build_id(cache.input()));
}

TEST_CASE("a whole_file hook can run the engine with its own decisions") {
  PolicyCache cache;
  std::string output = cache.path("out.viaengine");
  json::object report;
  REQUIRE_MESSAGE(cache.strip("viaengine", output, &report) == KTC_OK,
                  ktc_error_message());
  CHECK(report.at("policy") == "viaengine");
  CHECK(report.at("fallback").is_null());
  std::set<std::string> names = section_names(output);
  CHECK_FALSE(has_debug_section(names));
  // Its decisions, not debug's: .comment is not debug data, so it stays.
  CHECK(names.count(".comment") == 1);
  CHECK(nm_symbols(output, true) == nm_symbols(cache.input(), true));

  // The engine refuses what is not ELF, with the plugin's name added.
  std::string not_elf = cache.path("text");
  ktc::test::write_file(not_elf, "not ELF");
  CHECK(cache.strip("viaengine", cache.path("never"), nullptr, not_elf) ==
        KTC_E_INVALID);
  CHECK_FALSE(ktc::test::exists(cache.path("never")));
}

TEST_CASE("strip refuses what it cannot strip and leaves no output") {
  PolicyCache cache;
  std::string not_elf = cache.path("not-elf");
  ktc::test::write_file(not_elf, "plain text, not an ELF file\n");
  std::string output = cache.path("never");
  CHECK(cache.strip("btf", output, nullptr, not_elf) == KTC_E_INVALID);
  CHECK(contains(ktc_error_message(), not_elf));
  CHECK(contains(ktc_error_message(), "not an ELF file"));
  CHECK_FALSE(ktc::test::exists(output));

  CHECK(cache.strip("nosuch", output, nullptr) == KTC_E_PLUGIN);
  CHECK(contains(ktc_error_message(), "nosuch"));
  CHECK_FALSE(ktc::test::exists(output));

  // An existing output is replaced whole, never written in place.
  ktc::test::write_file(output, "old contents");
  REQUIRE(cache.strip("btf", output, nullptr) == KTC_OK);
  CHECK(build_id(output) == build_id(cache.input()));
  CHECK(ktc::test::list_dir(fs::path(output).parent_path()).size() ==
        ktc::test::list_dir(fs::path(output).parent_path()).size());
}

TEST_CASE("store strips with btf by default and records how") {
  PolicyCache cache;
  json::object vmlinux = cache.store("default", nullptr);
  CHECK(cache.last_metadata().at("vmlinux_stripped") == true);
  CHECK(cache.last_metadata().at("has_vmlinux") == true);
  CHECK(vmlinux.at("strip_policy") == "btf");
  CHECK(vmlinux.at("strip_policy_version") == "1.0.0");
  CHECK(vmlinux.at("strip_fallback").is_null());
  CHECK(vmlinux.at("original_size").to_number<uint64_t>() ==
        fs::file_size(cache.input()));
  CHECK(vmlinux.at("size").to_number<uint64_t>() ==
        fs::file_size(cache.last_vmlinux()));
  CHECK(vmlinux.at("build_id") == build_id(cache.input()).c_str());
  CHECK_FALSE(has_debug_section(section_names(cache.last_vmlinux())));
  CHECK(nm_symbols(cache.last_vmlinux()) == nm_symbols(cache.input()));
  // What verify checks is the stored, stripped file.
  CHECK(ktc_verify(cache.get(), "default") == KTC_OK);

  vmlinux = cache.store("debug", "debug");
  CHECK(vmlinux.at("strip_policy") == "debug");
  CHECK(cache.last_metadata().at("vmlinux_stripped") == true);

  vmlinux = cache.store("lossy", "lossy");
  CHECK(vmlinux.at("strip_policy") == "debug");
  CHECK(vmlinux.at("strip_requested") == "lossy");
  CHECK(vmlinux.at("strip_fallback").is_string());
}

TEST_CASE("store keeps the vmlinux whole when told or when it must") {
  PolicyCache cache;
  json::object vmlinux = cache.store("whole", nullptr, KTC_STORE_NO_STRIP);
  CHECK(cache.last_metadata().at("vmlinux_stripped") == false);
  CHECK(vmlinux.at("strip_policy") == "none");
  CHECK(vmlinux.at("size").to_number<uint64_t>() ==
        fs::file_size(cache.input()));
  CHECK(vmlinux.at("build_id") == build_id(cache.input()).c_str());

  vmlinux = cache.store("none", "none");
  CHECK(cache.last_metadata().at("vmlinux_stripped") == false);
  CHECK(vmlinux.at("strip_policy") == "none");
  CHECK(ktc::test::read_file(cache.last_vmlinux()) ==
        ktc::test::read_file(cache.input()));

  // Not ELF: stored as it is, with the reason, as the reference does.
  std::string not_elf = cache.path("vmlinux.txt");
  ktc::test::write_file(not_elf, "not an ELF file at all");
  vmlinux = cache.store("not-elf", nullptr, 0, not_elf);
  CHECK(cache.last_metadata().at("vmlinux_stripped") == false);
  CHECK(vmlinux.at("strip_policy") == "none");
  CHECK(vmlinux.at("strip_requested") == "btf");
  REQUIRE(vmlinux.at("strip_fallback").is_string());
  CHECK(contains(json::value_to<std::string>(vmlinux.at("strip_fallback")),
                 "not an ELF file"));
  CHECK(vmlinux.at("build_id").is_null());
  CHECK(ktc::test::read_file(cache.last_vmlinux()) ==
        ktc::test::read_file(not_elf));
}

TEST_CASE("store with a policy that has no plugin stores nothing") {
  PolicyCache cache;
  std::string image = cache.path("bzImage");
  ktc::test::write_file(image, "boot image");
  ktc_store_options options = KTC_STORE_OPTIONS_INIT;
  options.image = image.c_str();
  options.vmlinux = cache.input().c_str();
  options.strip_policy = "nosuch";
  CHECK(ktc_store(nullptr, cache.get(), "nothing", &options) == KTC_E_PLUGIN);
  CHECK(contains(ktc_error_message(), "nosuch"));
  ktc_entry* entry = nullptr;
  CHECK(ktc_lookup(&entry, cache.get(), "nothing", 0) == KTC_E_NOTFOUND);
}
