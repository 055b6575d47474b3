#include "elf/elf_file.hpp"
#include "elf/ikconfig.hpp"
#include "elf/strip.hpp"
#include "elf_builder.hpp"
#include "elf_test_helpers.hpp"
#include "strip_checks.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <elf.h>

#include <algorithm>
#include <string>
#include <vector>

using ktc::Result;
using ktc::Status;
using ktc::elf::Decision;
using ktc::elf::ElfFile;
using ktc::elf::Section;
using namespace ktc::test;

namespace {

Result<Decision> btf(const Section& section, uint32_t roles) {
  return ktc::elf::btf_policy(section, roles);
}

Result<Decision> debug(const Section& section, uint32_t roles) {
  return ktc::elf::debug_policy(section, roles);
}

bool is_debug_section(std::string_view name) {
  return name.starts_with(".debug_");
}

// Every input section, named, for the per-policy expectations.
std::vector<std::string> section_names(const ElfFile& file) {
  std::vector<std::string> names;
  for (const Section& section : file.sections()) {
    if (section.index != 0) {
      names.emplace_back(section.name);
    }
  }
  return names;
}

} // namespace

TEST_SUITE_BEGIN("ElfStrip");

TEST_CASE("strip with btf_policy keeps symbols, BTF, notes and the config, "
          "allocated sections as headers, and drops the rest") {
  TempDir dir;
  for (const Fixture& fixture : valid_fixtures()) {
    CAPTURE(fixture.name);
    ElfFile input =
        open_elf(write_image(dir, fixture.name, fixture_image(fixture).bytes));
    StripResult result = strip_to(dir, input, btf, fixture.name + ".btf");
    ElfFile output = open_elf(result.path);
    check_strip_invariants(input, output, result.stats);
    check_harness_view_kept(input, output);

    SectionsByName input_names(input);
    SectionsByName output_names(output);
    for (const Section& section : input.sections()) {
      std::string_view name = section.name;
      if (section.index == 0) {
        continue;
      }
      CAPTURE(name);
      Fate fate = fate_of(input_names, output_names, name);
      bool holds_config =
          name == ".rodata" && fixture.options.ikconfig != IkconfigMode::none;
      if (name == ".BTF" || name == fixture.options.note_section ||
          name == ".symtab" || name == ".strtab" || name == ".shstrtab" ||
          holds_config) {
        CHECK(fate == Fate::kept);
      } else if (section.type == SHT_NOBITS) {
        CHECK(fate == Fate::kept);
      } else if ((section.flags & SHF_ALLOC) != 0) {
        CHECK(fate == Fate::header_only);
      } else if (section.type == SHT_SYMTAB_SHNDX) {
        CHECK(fate == Fate::kept);
      } else {
        // DWARF, .comment, .BTF.ext and every relocation section.
        CHECK(fate == Fate::dropped);
      }
    }
    CHECK(result.stats.output_size < result.stats.input_size);
  }
}

TEST_CASE("strip with debug_policy removes DWARF, .comment and their "
          "relocations and keeps everything else byte for byte") {
  TempDir dir;
  for (const Fixture& fixture : valid_fixtures()) {
    CAPTURE(fixture.name);
    ElfFile input =
        open_elf(write_image(dir, fixture.name, fixture_image(fixture).bytes));
    StripResult result = strip_to(dir, input, debug, fixture.name + ".debug");
    ElfFile output = open_elf(result.path);
    check_strip_invariants(input, output, result.stats);
    check_harness_view_kept(input, output);
    // Everything loadable is kept, so the program headers, copied as they
    // are, must still describe the file.
    check_segments_intact(input, output);

    std::string text_relocations = text_relocation_name(input.machine());
    std::string debug_relocations = debug_relocation_name(input.machine());
    SectionsByName input_names(input);
    SectionsByName output_names(output);
    for (const std::string& name : section_names(input)) {
      CAPTURE(name);
      Fate fate = fate_of(input_names, output_names, name);
      if (is_debug_section(name) || name == ".comment" ||
          name == debug_relocations) {
        CHECK(fate == Fate::dropped);
      } else {
        CHECK(fate == Fate::kept);
      }
    }
    CHECK(output_names.find(text_relocations) != nullptr);
    CHECK(output_names.find(".BTF.ext") != nullptr);
  }
}

TEST_CASE("strip keeps allocated sections, symbols and names whatever the "
          "policy says") {
  TempDir dir;
  auto drop_everything = [](const Section&, uint32_t) -> Result<Decision> {
    return Decision::drop;
  };
  auto keep_everything = [](const Section&, uint32_t) -> Result<Decision> {
    return Decision::keep;
  };
  auto headers_only = [](const Section&, uint32_t) -> Result<Decision> {
    return Decision::header_only;
  };
  for (const std::string name :
       {"x86_64-elf64-lsb", "ppc-elf32-msb", "i386-elf32-lsb",
        "ppc-elf32-msb-many-sections"}) {
    CAPTURE(name);
    const Fixture& fixture = fixture_named(name);
    ElfFile input =
        open_elf(write_image(dir, name, fixture_image(fixture).bytes));

    SUBCASE("a policy that drops everything") {
      StripResult result =
          strip_to(dir, input, drop_everything, fixture.name + ".drop");
      ElfFile output = open_elf(result.path);
      check_strip_invariants(input, output, result.stats);
      for (const Section& section : output.sections()) {
        CHECK(section.type != SHT_RELA);
        CHECK(section.type != SHT_REL);
        CHECK_FALSE(is_debug_section(section.name));
      }
    }
    SUBCASE("a policy that keeps everything") {
      StripResult result =
          strip_to(dir, input, keep_everything, fixture.name + ".keep");
      ElfFile output = open_elf(result.path);
      check_strip_invariants(input, output, result.stats);
      check_segments_intact(input, output);
      CHECK(output.section_count() == input.section_count());
      SectionsByName input_names(input);
      SectionsByName output_names(output);
      for (const std::string& section : section_names(input)) {
        CAPTURE(section);
        CHECK(fate_of(input_names, output_names, section) == Fate::kept);
      }
      check_harness_view_kept(input, output);
    }
    SUBCASE("a policy that wants only headers") {
      StripResult result =
          strip_to(dir, input, headers_only, fixture.name + ".headers");
      ElfFile output = open_elf(result.path);
      check_strip_invariants(input, output, result.stats);
      // The symbol table and the names stay readable.
      SectionsByName input_names(input);
      SectionsByName output_names(output);
      CHECK(fate_of(input_names, output_names, ".symtab") == Fate::kept);
      CHECK(fate_of(input_names, output_names, ".strtab") == Fate::kept);
      CHECK(fate_of(input_names, output_names, ".shstrtab") == Fate::kept);
    }
  }
}

TEST_CASE("classify gives each section of a vmlinux its roles") {
  using namespace ktc::elf;
  TempDir dir;
  for (const std::string name :
       {"x86_64-elf64-lsb", "x86_64-ikconfig-markers-only", "i386-elf32-lsb"}) {
    CAPTURE(name);
    ElfFile file = open_elf(
        write_image(dir, name, fixture_image(fixture_named(name)).bytes));
    std::vector<uint32_t> roles = classify(file);
    REQUIRE(roles.size() == file.section_count());
    auto role = [&](std::string_view section) {
      const Section* found = file.find(section);
      REQUIRE_MESSAGE(found != nullptr, section);
      return roles[found->index];
    };
    auto has = [](uint32_t roles_of, uint32_t wanted) {
      return (roles_of & wanted) == wanted;
    };
    CHECK(has(roles[0], role_structural));
    CHECK(has(role(".shstrtab"), role_structural));
    CHECK(has(role(".symtab"), role_symbols));
    CHECK(has(role(".strtab"), role_symbols));
    CHECK(has(role(".BTF"), role_btf | role_alloc));
    CHECK_FALSE(has(role(".BTF"), role_btf_ext));
    CHECK(has(role(".BTF.ext"), role_btf_ext));
    CHECK_FALSE(has(role(".BTF.ext"), role_btf));
    CHECK(has(role(".rodata"), role_ikconfig | role_alloc));
    CHECK_FALSE(has(role(".data"), role_ikconfig));
    CHECK(has(role(".notes"), role_note | role_alloc));
    CHECK(has(role(".debug_info"), role_debug));
    CHECK(has(role(".debug_str"), role_debug));
    CHECK(has(role(".comment"), role_comment));
    CHECK(has(role(text_relocation_name(file.machine())), role_reloc));
    CHECK(has(role(debug_relocation_name(file.machine())), role_reloc));
    CHECK(has(role(".text"), role_alloc | role_code));
    CHECK(has(role(".init.text"), role_alloc | role_code));
    CHECK(has(role(".data"), role_alloc));
    CHECK_FALSE(has(role(".data"), role_code));
    CHECK(has(role(".bss"), role_alloc));
    CHECK_FALSE(has(role(".debug_info"), role_alloc));
  }
}

TEST_CASE("check_output passes a good strip and reports a mismatch when the "
          "output lost what a test harness reads") {
  TempDir dir;
  VmlinuxOptions options;
  options.build_id = default_build_id();
  ElfFile input =
      open_elf(write_image(dir, "input", build_vmlinux(options).bytes));
  auto expect_mismatch = [&](const VmlinuxOptions& changed,
                             std::string_view name,
                             std::string_view named_in_message) {
    ElfFile output =
        open_elf(write_image(dir, name, build_vmlinux(changed).bytes));
    auto checked = ktc::elf::check_output(input, output);
    REQUIRE_FALSE(checked.ok());
    CHECK(checked.error().status == Status::mismatch);
    CHECK(checked.error().message.find(output.path()) != std::string::npos);
    CHECK_MESSAGE(lower(checked.error().message).find(named_in_message) !=
                      std::string::npos,
                  checked.error().message);
  };

  SUBCASE("a good strip") {
    StripResult result = strip_to(dir, input, btf, "good");
    ElfFile output = open_elf(result.path);
    auto checked = ktc::elf::check_output(input, output);
    CHECK_MESSAGE(checked.ok(), checked.error().message);
  }
  SUBCASE("an identical copy") {
    VmlinuxOptions same = options;
    ElfFile output =
        open_elf(write_image(dir, "same", build_vmlinux(same).bytes));
    auto checked = ktc::elf::check_output(input, output);
    CHECK_MESSAGE(checked.ok(), checked.error().message);
  }
  SUBCASE(".BTF differs") {
    VmlinuxOptions changed = options;
    changed.btf_seed = 2;
    expect_mismatch(changed, "other-btf", "btf");
  }
  SUBCASE("a named symbol is gone") {
    VmlinuxOptions changed = options;
    changed.omit_symbol = "jiffies";
    expect_mismatch(changed, "no-jiffies", "jiffies");
  }
  SUBCASE("the build-id differs") {
    VmlinuxOptions changed = options;
    changed.build_id = "ffffffffffffffffffffffffffffffffffffffff";
    expect_mismatch(changed, "other-build-id", "build-id");
  }
  SUBCASE("the build-id is gone") {
    VmlinuxOptions changed = options;
    changed.build_id.reset();
    expect_mismatch(changed, "no-build-id", "build-id");
  }
  SUBCASE("the embedded config and its symbols are gone") {
    VmlinuxOptions changed = options;
    changed.ikconfig = IkconfigMode::none;
    expect_mismatch(changed, "no-config", "config");
  }
  SUBCASE("the embedded config no longer inflates") {
    // Same layout and symbols: only the config check can tell.
    VmlinuxOptions changed = options;
    changed.ikconfig = IkconfigMode::corrupt_gzip;
    expect_mismatch(changed, "corrupt-config", "config");
  }
  SUBCASE("the embedded config says something else") {
    // A different config whose gzip stream has the same length, written
    // over the original: every symbol stays where it was.
    std::string original = gzip(default_config_text());
    std::string other;
    for (int cpus = 10; cpus < 100 && other.empty(); ++cpus) {
      std::string text = default_config_text();
      size_t at = text.find("CONFIG_NR_CPUS=64");
      REQUIRE(at != std::string::npos);
      text.replace(at, 17, "CONFIG_NR_CPUS=" + std::to_string(cpus));
      std::string stream = gzip(text);
      if (cpus != 64 && stream.size() == original.size()) {
        other = stream;
      }
    }
    REQUIRE_FALSE(other.empty());
    ElfImage image = build_vmlinux(options);
    size_t at = image.bytes.find(original);
    REQUIRE(at != std::string::npos);
    image.bytes.replace(at, other.size(), other);
    ElfFile output = open_elf(write_image(dir, "other-config", image.bytes));
    auto checked = ktc::elf::check_output(input, output);
    REQUIRE_FALSE(checked.ok());
    CHECK(checked.error().status == Status::mismatch);
    CHECK(lower(checked.error().message).find("config") != std::string::npos);
  }
  SUBCASE("a config that only the markers located is gone") {
    // read_ikconfig() recovers this input's config (by the markers), so an
    // output without it has lost something a harness reads.
    VmlinuxOptions markers = options;
    markers.ikconfig = IkconfigMode::markers_only;
    ElfImage image = build_vmlinux(markers);
    ElfFile markers_input = open_elf(write_image(dir, "markers", image.bytes));
    auto config = ktc::elf::read_ikconfig(markers_input);
    REQUIRE(config.ok());
    REQUIRE(config->has_value());
    // The same bytes with the start marker defaced: every symbol, BTF and
    // the build-id stay as they are, only the config cannot be found.
    size_t marker = image.bytes.find("IKCFG_ST");
    REQUIRE(marker != std::string::npos);
    image.bytes[marker] = 'X';
    ElfFile output = open_elf(write_image(dir, "defaced-marker", image.bytes));
    auto lost = ktc::elf::read_ikconfig(output);
    REQUIRE(lost.ok());
    REQUIRE_FALSE(lost->has_value());
    auto checked = ktc::elf::check_output(markers_input, output);
    REQUIRE_FALSE(checked.ok());
    CHECK(checked.error().status == Status::mismatch);
    CHECK(lower(checked.error().message).find("config") != std::string::npos);
  }
  SUBCASE("a strip that made .BTF header-only") {
    auto btf_as_header = [](const Section& section,
                            uint32_t roles) -> Result<Decision> {
      if (section.name == ".BTF") {
        return Decision::header_only;
      }
      return ktc::elf::btf_policy(section, roles);
    };
    StripResult result = strip_to(dir, input, btf_as_header, "btf-header");
    ElfFile output = open_elf(result.path);
    REQUIRE(fate_of(SectionsByName(input), SectionsByName(output), ".BTF") ==
            Fate::header_only);
    auto checked = ktc::elf::check_output(input, output);
    REQUIRE_FALSE(checked.ok());
    CHECK(checked.error().status == Status::mismatch);
  }
}

TEST_CASE("a failed strip leaves nothing at the output path") {
  TempDir dir;
  const Fixture& fixture = fixture_named("x86_64-elf64-lsb");
  ElfFile input =
      open_elf(write_image(dir, "input", fixture_image(fixture).bytes));
  // What the subcases put in `dir` on purpose; a strip adds nothing.
  std::vector<std::string> written{"input"};

  SUBCASE("the policy fails on the first section it is asked about") {
    std::string out = dir / "out";
    auto refuse = [](const Section& section, uint32_t) -> Result<Decision> {
      return ktc::make_error(Status::plugin, "policy refuses {}", section.name);
    };
    auto stats = ktc::elf::strip(input, out, refuse);
    REQUIRE_FALSE(stats.ok());
    CHECK(stats.error().status == Status::plugin);
    CHECK(stats.error().message.find("policy refuses") != std::string::npos);
    CHECK_FALSE(exists(out));
  }
  SUBCASE("the policy fails late, on DWARF") {
    std::string out = dir / "out";
    size_t asked = 0;
    size_t first_debug = input.find(".debug_info")->index;
    auto refuse_debug = [&](const Section& section,
                            uint32_t roles) -> Result<Decision> {
      ++asked;
      if (section.index >= first_debug) {
        return ktc::make_error(Status::plugin, "policy refuses {}",
                               section.name);
      }
      return ktc::elf::btf_policy(section, roles);
    };
    auto stats = ktc::elf::strip(input, out, refuse_debug);
    REQUIRE_FALSE(stats.ok());
    CHECK(stats.error().status == Status::plugin);
    CHECK(asked > 1);
    CHECK_FALSE(exists(out));
  }
  SUBCASE("the output directory does not exist") {
    std::string out = dir / "missing/out";
    auto stats = ktc::elf::strip(input, out, btf);
    REQUIRE_FALSE(stats.ok());
    CHECK(stats.error().message.find(out) != std::string::npos);
    CHECK_FALSE(exists(out));
    CHECK_FALSE(exists(dir / "missing"));
  }
  SUBCASE("something is at the output path already") {
    std::string out = dir / "taken";
    write_file(out, "precious");
    written.push_back("taken");
    auto stats = ktc::elf::strip(input, out, btf);
    REQUIRE_FALSE(stats.ok());
    CHECK(read_file(out) == "precious");
  }
  SUBCASE("the input's symbol table is damaged") {
    for (const MalformedImage& variant :
         malformed_variants(fixture_image(fixture))) {
      if (variant.fails_at != FailsAt::symbols) {
        continue;
      }
      CAPTURE(variant.name);
      auto damaged =
          ElfFile::open(write_image(dir, variant.name, variant.bytes));
      written.push_back(variant.name);
      if (!damaged.ok()) {
        continue; // refused at open already: nothing to strip
      }
      std::string out = dir / (variant.name + ".out");
      auto stats = ktc::elf::strip(*damaged, out, btf);
      REQUIRE_FALSE(stats.ok());
      CHECK(stats.error().status == Status::invalid);
      CHECK_FALSE(exists(out));
    }
  }
  std::sort(written.begin(), written.end());
  CHECK(list_dir(dir.path()) == written);
}

TEST_SUITE_END();
