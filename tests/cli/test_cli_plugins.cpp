// The plugin commands end to end: `plugins`, `source describe`,
// `store --source` and `strip`, with the build tree's shipped plugins and
// one broken fixture in a private plugin directory.

#include "test_cli_fixture.hpp"

#include <filesystem>

using namespace ktc::test;
using namespace ktc::test::cli;
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

constexpr int k_exit_usage = 2;
constexpr int k_exit_plugin = 7;

// A cache fixture whose CLI runs see one plugin directory: the shipped
// plugins plus the fixture whose entry point refuses to load.
class PluginCli {
public:
  PluginCli() : m_plugins(fs::canonical(m_dir.path()).string() + "/plugins") {
    fs::create_directory(m_plugins);
    fs::permissions(m_plugins, fs::perms::owner_all | fs::perms::group_read |
                                   fs::perms::group_exec);
    std::string shipped = env_path("KTCACHE_SHIPPED_PLUGINS_DIR");
    std::string fixtures = env_path("KTCACHE_FIXTURE_PLUGINS_DIR");
    fs::copy_file(shipped + "/source_local.so", m_plugins + "/source_local.so");
    for (const char* name :
         {"strip_none.so", "strip_btf.so", "strip_debug.so"}) {
      fs::copy_file(shipped + "/" + name, m_plugins + "/" + name);
    }
    fs::copy_file(fixtures + "/source_refuses.so",
                  m_plugins + "/source_refuses.so");
  }

  ProcessResult run(std::vector<std::string> args) const {
    args.insert(args.begin(), {"--plugin-dir", m_plugins});
    return m_cache.run(args);
  }

  const CliFixture& cache() const { return m_cache; }
  const std::string& plugins() const { return m_plugins; }
  std::string path(const std::string& name) const { return m_dir / name; }

  // A directory the local plugin accepts as a kernel tree (not in git).
  std::string kernel_tree() const {
    std::string tree = fs::weakly_canonical(path("linux")).string();
    fs::create_directories(tree + "/init");
    write_file(tree + "/Makefile", "VERSION = 6\nPATCHLEVEL = 12\n"
                                   "SUBLEVEL = 3\nEXTRAVERSION =\n");
    write_file(tree + "/Kconfig", "");
    write_file(tree + "/init/main.c", "");
    return tree;
  }

private:
  ScopedEnv m_no_path{"KTCACHE_PLUGIN_PATH", std::nullopt};
  TempDir m_dir;
  CliFixture m_cache;
  std::string m_plugins;
};

const json::object& row_named(const json::array& rows,
                              const std::string& name) {
  for (const json::value& row : rows) {
    if (row.as_object().at("name") == name.c_str()) {
      return row.as_object();
    }
  }
  FAIL("no plugin row named ", name, " in ", json::serialize(rows));
  return rows.front().as_object();
}

} // namespace

TEST_SUITE("Cli") {
  TEST_CASE("plugins lists what loaded, and with --all what was refused") {
    PluginCli cli;
    ProcessResult plain = cli.run({"plugins"});
    REQUIRE_MESSAGE(plain.exit_code == 0, plain.err);
    CHECK(contains(plain.out, "local"));
    CHECK(contains(plain.out, "none"));
    CHECK_FALSE(contains(plain.out, "refuses"));

    ProcessResult all = cli.run({"plugins", "--all"});
    REQUIRE_MESSAGE(all.exit_code == 0, all.err);
    CHECK(
        contains(all.out, "rejected " + cli.plugins() + "/source_refuses.so"));
    CHECK(contains(all.out, "fixture refuses to load"));

    ProcessResult listed = cli.run({"plugins", "--all", "--json"});
    REQUIRE_MESSAGE(listed.exit_code == 0, listed.err);
    json::array rows = parse_json(listed.out).as_array();
    CHECK(rows.size() == 5);
    const json::object& local = row_named(rows, "local");
    CHECK(local.at("state") == "loaded");
    CHECK(local.at("kind") == "source");
    CHECK(local.at("abi_major") == 1);
    CHECK(local.at("file") == (cli.plugins() + "/source_local.so").c_str());
    CHECK(local.at("reason").is_null());
    const json::object& none = row_named(rows, "none");
    CHECK(none.at("state") == "loaded");
    CHECK(none.at("kind") == "strip");
    const json::object& refused = row_named(rows, "refuses");
    CHECK(refused.at("state") == "rejected");
    CHECK(refused.at("version").is_null());
    CHECK(contains(json::value_to<std::string>(refused.at("reason")),
                   "fixture refuses to load"));
  }

  TEST_CASE("source describe prints what the local plugin resolves") {
    PluginCli cli;
    std::string tree = cli.kernel_tree();
    ProcessResult described =
        cli.run({"source", "describe", "local:" + tree, "--json"});
    REQUIRE_MESSAGE(described.exit_code == 0, described.err);
    json::object result = parse_json(described.out).as_object();
    CHECK(result.at("spec") == ("local:" + tree).c_str());
    CHECK(result.at("plugin").at("name") == "local");
    CHECK(result.at("identity").at("version") == "6.12.3");
    CHECK(result.at("source").at("type") == "local");
    CHECK(result.at("source").at("source_tree_path") == tree.c_str());
    REQUIRE(result.at("key_parts").as_array().size() >= 1);
    CHECK(result.at("key_parts").as_array().front() == "local");

    ProcessResult text = cli.run({"source", "describe", "local:" + tree});
    REQUIRE_MESSAGE(text.exit_code == 0, text.err);
    CHECK(contains(text.out, "plugin:    local"));
    CHECK(contains(text.out, "source_tree_path: " + tree));
  }

  TEST_CASE("source describe without a plugin for the scheme exits 7") {
    PluginCli cli;
    ProcessResult missing = cli.run({"source", "describe", "nosuch:1.0"});
    CHECK(missing.exit_code == k_exit_plugin);
    CHECK(split_lines(missing.err).size() == 1);
    CHECK(contains(missing.err, "'nosuch'"));

    ProcessResult refused = cli.run({"source", "describe", "refuses:1.0"});
    CHECK(refused.exit_code == k_exit_plugin);
    CHECK(contains(refused.err, "fixture refuses to load"));

    ProcessResult bare = cli.run({"source", "describe", "no-scheme"});
    CHECK(bare.exit_code == k_exit_usage);
  }

  TEST_CASE("store --source records the plugin's description") {
    PluginCli cli;
    std::string tree = cli.kernel_tree();
    std::string image = cli.path("bzImage");
    write_file(image, "boot image");
    ProcessResult stored = cli.run(
        {"store", "local-k", "--image", image, "--source", "local:" + tree});
    REQUIRE_MESSAGE(stored.exit_code == 0, stored.err);

    ProcessResult listed = cli.run({"list", "--json"});
    REQUIRE_MESSAGE(listed.exit_code == 0, listed.err);
    json::array entries = parse_json(listed.out).as_array();
    REQUIRE(entries.size() == 1);
    const json::object& entry = entries.front().as_object();
    CHECK(entry.at("status") == "valid");
    const json::object& metadata = entry.at("metadata").as_object();
    CHECK(metadata.at("source").at("type") == "local");
    CHECK(metadata.at("source").at("source_tree_path") == tree.c_str());
    CHECK(metadata.at("version") == "6.12.3");

    // A spec the plugin refuses stores nothing, and says why in one line.
    std::string missing = cli.path("not-a-tree");
    ProcessResult refused = cli.run({"store", "local-bad", "--image", image,
                                     "--source", "local:" + missing});
    CHECK(refused.exit_code != 0);
    CHECK(split_lines(refused.err).size() == 1);
    CHECK(contains(refused.err, missing));
    CHECK_FALSE(exists(cli.cache().entry_dir("local-bad")));
  }

  TEST_CASE("strip --policy none copies, and a failure leaves no output") {
    PluginCli cli;
    std::string input = cli.path("vmlinux");
    fs::copy_file(env_path("KTCACHE_SHIPPED_PLUGINS_DIR") + "/source_local.so",
                  input);
    std::string data = read_file(input);

    std::string output = cli.path("vmlinux.none");
    ProcessResult copied =
        cli.run({"strip", input, "-o", output, "--policy", "none", "--json"});
    REQUIRE_MESSAGE(copied.exit_code == 0, copied.err);
    CHECK(read_file(output) == data);
    json::object report = parse_json(copied.out).as_object();
    CHECK(report.at("policy") == "none");
    CHECK(report.at("input_bytes") == data.size());
    CHECK(report.at("output_bytes") == data.size());

    std::string nothing = cli.path("never-written");
    ProcessResult no_policy =
        cli.run({"strip", input, "-o", nothing, "--policy", "nosuch"});
    CHECK(no_policy.exit_code == k_exit_plugin);
    CHECK(contains(no_policy.err, "nosuch"));
    CHECK_FALSE(exists(nothing));

    ProcessResult no_input = cli.run(
        {"strip", cli.path("absent"), "-o", nothing, "--policy", "none"});
    CHECK(no_input.exit_code == k_exit_usage);
    CHECK(contains(no_input.err, cli.path("absent")));
    CHECK_FALSE(exists(nothing));
    CHECK(cli.cache().run({"list", "--json"}).out == "[]\n");
  }

  TEST_CASE("store --strip strips the vmlinux with the named policy") {
    PluginCli cli;
    std::string vmlinux = cli.path("vmlinux");
    fs::copy_file(env_path("KTCACHE_SHIPPED_PLUGINS_DIR") + "/source_local.so",
                  vmlinux);
    std::string image = cli.path("bzImage");
    write_file(image, "boot image");

    auto stored_vmlinux = [&](const std::string& key) {
      ProcessResult listed = cli.run({"lookup", key, "--json"});
      REQUIRE_MESSAGE(listed.exit_code == 0, listed.err);
      json::object entry = parse_json(listed.out).as_object();
      return std::make_pair(
          entry.at("metadata").at("artifacts").at("vmlinux").as_object(),
          entry.at("metadata").at("vmlinux_stripped").as_bool());
    };

    ProcessResult by_default =
        cli.run({"store", "k-default", "--image", image, "--vmlinux", vmlinux});
    REQUIRE_MESSAGE(by_default.exit_code == 0, by_default.err);
    auto [btf, btf_stripped] = stored_vmlinux("k-default");
    CHECK(btf.at("strip_policy") == "btf");
    CHECK(btf_stripped);
    CHECK(btf.at("size").to_number<uint64_t>() < fs::file_size(vmlinux));
    CHECK(btf.at("original_size").to_number<uint64_t>() ==
          fs::file_size(vmlinux));

    ProcessResult debug = cli.run({"store", "k-debug", "--image", image,
                                   "--vmlinux", vmlinux, "--strip", "debug"});
    REQUIRE_MESSAGE(debug.exit_code == 0, debug.err);
    CHECK(stored_vmlinux("k-debug").first.at("strip_policy") == "debug");

    ProcessResult whole = cli.run({"store", "k-whole", "--image", image,
                                   "--vmlinux", vmlinux, "--no-strip"});
    REQUIRE_MESSAGE(whole.exit_code == 0, whole.err);
    auto [kept, kept_stripped] = stored_vmlinux("k-whole");
    CHECK(kept.at("strip_policy") == "none");
    CHECK_FALSE(kept_stripped);
    CHECK(kept.at("size").to_number<uint64_t>() == fs::file_size(vmlinux));

    ProcessResult missing =
        cli.run({"store", "k-missing", "--image", image, "--vmlinux", vmlinux,
                 "--strip", "nosuch"});
    CHECK(missing.exit_code == k_exit_plugin);
    CHECK(split_lines(missing.err).size() == 1);
    CHECK(contains(missing.err, "nosuch"));
    CHECK_FALSE(exists(cli.cache().entry_dir("k-missing")));

    ProcessResult both =
        cli.run({"store", "k-both", "--image", image, "--vmlinux", vmlinux,
                 "--strip", "btf", "--no-strip"});
    CHECK(both.exit_code == k_exit_usage);
    CHECK_FALSE(exists(cli.cache().entry_dir("k-both")));
  }

} // TEST_SUITE
