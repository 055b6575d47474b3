#include "elf_builder.hpp"
#include "test_cli_fixture.hpp"

#include <doctest/doctest.h>

#include <elf.h>
#include <sys/stat.h>

#include <algorithm>
#include <string>
#include <vector>

using namespace ktc::test;
using namespace ktc::test::cli;

namespace {

const std::string k_key = "6.14.2-tarball-x86_64-kcbtf0001";

struct Vmlinux {
  std::string path;
  std::string btf;
};

// A vmlinux with a .BTF section, written outside the cache.
Vmlinux vmlinux_file(const CliFixture& cache,
                     const std::string& name = "vmlinux") {
  VmlinuxOptions options;
  options.btf_seed = 11;
  ElfImage image = build_vmlinux(options);
  const BuiltSection* btf = image.find(".BTF");
  REQUIRE(btf != nullptr);
  std::string path = cache.input(name);
  write_file(path, image.bytes);
  return {path, btf->data};
}

std::string last_line(const std::string& text) {
  std::vector<std::string> lines = split_lines(text);
  return lines.empty() ? std::string() : lines.back();
}

bool has_temporary(const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    if (contains(name, ".tmp-")) {
      return true;
    }
  }
  return false;
}

} // namespace

TEST_SUITE_BEGIN("Cli");

TEST_CASE("btf KEY -o OUT writes the entry's BTF and its sidecar") {
  CliFixture cache;
  Vmlinux vmlinux = vmlinux_file(cache);
  std::string entry =
      cache.store(k_key, {"--vmlinux", vmlinux.path, "--no-strip"});
  std::string out = cache.input("out.btf");
  std::string sidecar = entry + "/vmlinux.btf";

  ProcessResult first = cache.run({"btf", k_key, "-o", out});
  REQUIRE_MESSAGE(first.exit_code == 0, first.err);
  CHECK(read_file(out) == vmlinux.btf);
  CHECK(last_line(first.out) == out);
  CHECK(contains(first.err, "sidecar " + sidecar + " written"));
  CHECK(read_file(sidecar) == vmlinux.btf);

  ProcessResult json = cache.run({"btf", k_key, "-o", out, "--json"});
  REQUIRE_MESSAGE(json.exit_code == 0, json.err);
  boost::json::object report = parse_json(json.out).as_object();
  CHECK(report.at("input") == boost::json::value(k_key));
  CHECK(report.at("output") == boost::json::value(out));
  CHECK(report.at("bytes").to_number<uint64_t>() == vmlinux.btf.size());
  CHECK(report.at("sidecar") == boost::json::value(sidecar));
  CHECK(report.at("sidecar_state") == "reused");
  CHECK(read_file(out) == vmlinux.btf);

  ProcessResult plain =
      cache.run({"btf", k_key, "-o", out, "--no-sidecar", "--json"});
  REQUIRE_MESSAGE(plain.exit_code == 0, plain.err);
  boost::json::object none = parse_json(plain.out).as_object();
  CHECK(none.at("sidecar").is_null());
  CHECK(none.at("sidecar_state") == "none");

  // The sidecar is no artifact: verify and list accept the entry, clean
  // removes it with the entry.
  ProcessResult verify = cache.run({"verify", k_key});
  CHECK_MESSAGE(verify.exit_code == 0, verify.err);
  ProcessResult list = cache.run({"list", "--json"});
  REQUIRE(list.exit_code == 0);
  boost::json::array entries = parse_json(list.out).as_array();
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].at("status") == "valid");
  ProcessResult clean = cache.run({"clean", "--all"});
  CHECK_MESSAGE(clean.exit_code == 0, clean.err);
  CHECK_FALSE(exists(sidecar));
  CHECK_FALSE(exists(entry));
}

TEST_CASE("btf of a vmlinux outside the cache leaves no sidecar") {
  CliFixture cache;
  cache.store("other");
  Vmlinux vmlinux = vmlinux_file(cache, "outside-vmlinux");
  std::string dir = vmlinux.path.substr(0, vmlinux.path.rfind('/'));
  std::string out = cache.input("out.btf");
  std::vector<std::string> before = list_dir(dir);

  ProcessResult result = cache.run({"btf", vmlinux.path, "-o", out, "--json"});
  REQUIRE_MESSAGE(result.exit_code == 0, result.err);
  CHECK(read_file(out) == vmlinux.btf);
  boost::json::object report = parse_json(result.out).as_object();
  CHECK(report.at("sidecar").is_null());
  CHECK(report.at("sidecar_state") == "none");
  CHECK_FALSE(exists(vmlinux.path + ".btf"));
  std::vector<std::string> after = list_dir(dir);
  CHECK_FALSE(has_temporary(after));
  std::vector<std::string> expected = before;
  expected.push_back("out.btf");
  std::sort(expected.begin(), expected.end());
  CHECK(after == expected);

  ProcessResult text = cache.run({"btf", vmlinux.path, "-o", out});
  REQUIRE(text.exit_code == 0);
  CHECK(last_line(text.out) == out);
  CHECK(contains(text.err, "outside the cache"));
}

TEST_CASE("btf exits 1 for a missing key and 2 for a file that is not ELF") {
  CliFixture cache;
  std::string out = cache.input("out.btf");

  SUBCASE("a key without an entry") {
    ProcessResult result = cache.run({"btf", k_key, "-o", out});
    CHECK(result.exit_code == 1);
    CHECK(result.out.empty());
    CHECK(split_lines(result.err).size() == 1);
    CHECK(contains(result.err, k_key));
  }
  SUBCASE("an entry without a vmlinux") {
    cache.store(k_key);
    ProcessResult result = cache.run({"btf", k_key, "-o", out});
    CHECK(result.exit_code == 1);
    CHECK(result.err ==
          "ktcache: entry \"" + k_key + "\": no vmlinux, so no BTF\n");
  }
  SUBCASE("an ELF file without .BTF") {
    ElfBuilder elf(ElfClass::elf64, ByteOrder::little, EM_X86_64);
    SectionSpec text;
    text.name = ".text";
    text.data = std::string(16, '\x90');
    elf.add_section(text);
    std::string file = cache.input("no-btf");
    write_file(file, elf.build().bytes);
    ProcessResult result = cache.run({"btf", file, "-o", out});
    CHECK(result.exit_code == 1);
    CHECK(result.err == "ktcache: " + file +
                            ": no .BTF section (the kernel was built without "
                            "CONFIG_DEBUG_INFO_BTF)\n");
  }
  SUBCASE("a file that is not ELF") {
    std::string file = cache.input("not-elf");
    write_file(file, "just text\n");
    ProcessResult result = cache.run({"btf", file, "-o", out});
    CHECK(result.exit_code == 2);
    CHECK(split_lines(result.err).size() == 1);
    CHECK(contains(result.err, file));
  }
  SUBCASE("a file that does not exist") {
    ProcessResult result =
        cache.run({"btf", cache.input("missing"), "-o", out});
    CHECK(result.exit_code == 2);
    CHECK(split_lines(result.err).size() == 1);
  }
  CHECK_FALSE(exists(out));
}

TEST_SUITE_END();
