#include "ikconfig_elf.hpp"
#include "test_cli_fixture.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace ktc::test;
using namespace ktc::test::cli;
namespace fixture = ktc::test::elf;

namespace {

const std::string k_key = "6.14.2-tarball-x86_64-kc1a2b3c4d";

// A vmlinux embedding the sample config, written outside the cache.
std::string vmlinux_file(const CliFixture& cache,
                         const std::string& name = "vmlinux") {
  std::string path = cache.input(name);
  write_file(path, fixture::vmlinux_with_config(fixture::sample_config()));
  return path;
}

} // namespace

TEST_SUITE_BEGIN("Cli");

TEST_CASE("kconfig FILE --get prints the option's value alone") {
  CliFixture cache;
  std::string file = vmlinux_file(cache);

  for (const std::string name : {"CONFIG_HZ", "HZ"}) {
    CAPTURE(name);
    ProcessResult result = cache.run({"kconfig", file, "--get", name});
    CHECK_MESSAGE(result.exit_code == 0, result.err);
    CHECK(result.out == "1000\n");
    CHECK(result.err.empty());
  }
  ProcessResult quoted = cache.run({"kconfig", file, "--get", "LOCALVERSION"});
  CHECK(quoted.exit_code == 0);
  CHECK(quoted.out == "\"\"\n");
}

TEST_CASE("kconfig FILE prints the whole embedded config") {
  CliFixture cache;
  ProcessResult result = cache.run({"kconfig", vmlinux_file(cache)});
  CHECK_MESSAGE(result.exit_code == 0, result.err);
  CHECK(result.out == fixture::sample_config());
}

TEST_CASE("kconfig exits 1 for an option that is absent or not set") {
  CliFixture cache;
  std::string file = vmlinux_file(cache);

  SUBCASE("absent") {
    ProcessResult result = cache.run({"kconfig", file, "--get", "NOPE"});
    CHECK(result.exit_code == 1);
    CHECK(result.out.empty());
    CHECK(result.err ==
          "ktcache: " + file + ": CONFIG_NOPE is absent from the config\n");
  }
  SUBCASE("not set") {
    ProcessResult result =
        cache.run({"kconfig", file, "--get", "CONFIG_LOCALVERSION_AUTO"});
    CHECK(result.exit_code == 1);
    CHECK(result.out.empty());
    CHECK(contains(result.err, "CONFIG_LOCALVERSION_AUTO is not set"));
  }
  SUBCASE("not an option name") {
    ProcessResult result = cache.run({"kconfig", file, "--get", "HZ=1"});
    CHECK(result.exit_code == 2);
    CHECK(contains(result.err, "not a kconfig option name"));
  }
}

TEST_CASE("kconfig KEY reads the entry's vmlinux, else its stored .config") {
  CliFixture cache;
  std::string config = cache.input("dot-config");
  write_file(config, "CONFIG_HZ=250\n");

  SUBCASE("from the vmlinux") {
    cache.store(k_key, {"--vmlinux", vmlinux_file(cache), "--config", config,
                        "--no-strip"});
    ProcessResult result = cache.run({"kconfig", k_key, "--get", "HZ"});
    CHECK_MESSAGE(result.exit_code == 0, result.err);
    CHECK(result.out == "1000\n");
    ProcessResult whole = cache.run({"kconfig", k_key});
    CHECK(whole.exit_code == 0);
    CHECK(whole.out == fixture::sample_config());
  }
  SUBCASE("from the stored .config") {
    std::string plain = cache.input("vmlinux-plain");
    write_file(plain, fixture::vmlinux_without_config());
    cache.store(k_key, {"--vmlinux", plain, "--config", config, "--no-strip"});
    ProcessResult result = cache.run({"kconfig", k_key, "--get", "HZ"});
    CHECK_MESSAGE(result.exit_code == 0, result.err);
    CHECK(result.out == "250\n");
  }
}

TEST_CASE("kconfig exits 1 when there is no configuration to read") {
  CliFixture cache;

  SUBCASE("an entry with neither") {
    cache.store(k_key);
    ProcessResult result = cache.run({"kconfig", k_key});
    CHECK(result.exit_code == 1);
    CHECK(result.out.empty());
    CHECK(result.err == "ktcache: entry \"" + k_key +
                            "\": no vmlinux and no stored .config\n");
  }
  SUBCASE("a file without IKCONFIG") {
    std::string plain = cache.input("vmlinux-plain");
    write_file(plain, fixture::vmlinux_without_config());
    ProcessResult result = cache.run({"kconfig", plain, "--get", "HZ"});
    CHECK(result.exit_code == 1);
    CHECK(result.err ==
          "ktcache: " + plain + ": no embedded config (CONFIG_IKCONFIG)\n");
  }
  SUBCASE("a key without an entry") {
    ProcessResult result = cache.run({"kconfig", k_key});
    CHECK(result.exit_code == 1);
    CHECK(contains(result.err, k_key));
  }
}

TEST_CASE("kconfig --json prints the source, the path and the value") {
  CliFixture cache;
  std::string file = vmlinux_file(cache);

  SUBCASE("--get from a file") {
    ProcessResult result =
        cache.run({"kconfig", file, "--get", "HZ", "--json"});
    REQUIRE_MESSAGE(result.exit_code == 0, result.err);
    boost::json::object object = parse_json(result.out).as_object();
    CHECK(object.size() == 4);
    CHECK(object.at("source") == "ikconfig");
    CHECK(object.at("path") == boost::json::value(file));
    CHECK(object.at("name") == "CONFIG_HZ");
    CHECK(object.at("value") == "1000");
  }
  SUBCASE("--get of an absent option") {
    ProcessResult result =
        cache.run({"kconfig", file, "--get", "NOPE", "--json"});
    CHECK(result.exit_code == 1);
    boost::json::object object = parse_json(result.out).as_object();
    CHECK(object.at("name") == "CONFIG_NOPE");
    CHECK(object.at("value").is_null());
  }
  SUBCASE("the whole config of an entry's stored .config") {
    std::string config = cache.input("dot-config");
    write_file(config, "CONFIG_HZ=250\n");
    std::string entry = cache.store(k_key, {"--config", config});
    ProcessResult result = cache.run({"kconfig", k_key, "--json"});
    REQUIRE_MESSAGE(result.exit_code == 0, result.err);
    boost::json::object object = parse_json(result.out).as_object();
    CHECK(object.size() == 3);
    CHECK(object.at("source") == "config");
    CHECK(object.at("path") == boost::json::value(entry + "/config"));
    CHECK(object.at("text") == "CONFIG_HZ=250\n");
  }
}

TEST_CASE("kconfig exits 2 for a missing or non-ELF file, naming it") {
  CliFixture cache;

  SUBCASE("missing") {
    std::string missing = cache.input("no-such-vmlinux");
    ProcessResult result = cache.run({"kconfig", missing, "--get", "HZ"});
    CHECK(result.exit_code == 2);
    CHECK(result.out.empty());
    CHECK_MESSAGE(contains(result.err, missing), result.err);
  }
  SUBCASE("not ELF") {
    std::string text = cache.input("dot-config");
    write_file(text, "CONFIG_HZ=250\n");
    ProcessResult result = cache.run({"kconfig", text});
    CHECK(result.exit_code == 2);
    CHECK_MESSAGE(contains(result.err, text), result.err);
  }
  SUBCASE("an invalid key") {
    ProcessResult result = cache.run({"kconfig", "bad:key"});
    CHECK(result.exit_code == 2);
    CHECK(contains(result.err, "bad:key"));
  }
}

TEST_CASE("kconfig exits 3 when the embedded config is corrupt") {
  CliFixture cache;
  fixture::VmlinuxSpec spec;
  spec.blob = "not gzip at all";
  std::string file = cache.input("vmlinux-corrupt");
  write_file(file, fixture::vmlinux(spec));
  ProcessResult result = cache.run({"kconfig", file});
  CHECK(result.exit_code == 3);
  CHECK(result.out.empty());
  CHECK_MESSAGE(contains(result.err, file + ": embedded config (IKCONFIG)"),
                result.err);
}

TEST_CASE("kconfig --help describes the JSON shape") {
  CliFixture cache;
  ProcessResult result = cache.run({"kconfig", "--help"});
  CHECK(result.exit_code == 0);
  CHECK(contains(result.out, "--get"));
  CHECK(contains(result.out, "{source, path, name (CONFIG_...), value"));
}

TEST_SUITE_END();
