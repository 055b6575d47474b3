#include "elf/elf_file.hpp"
#include "elf_builder.hpp"
#include "elf_test_helpers.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <elf.h>

#include <map>
#include <string>
#include <vector>

using ktc::Status;
using ktc::elf::ElfFile;
using namespace ktc::test;

namespace {

// Words a message must contain (any one of them) to name the cause of each
// kind of damage.
const std::map<std::string, std::vector<std::string>>& expected_causes() {
  static const std::map<std::string, std::vector<std::string>> causes{
      {"empty-file", {"too short", "not an elf", "truncated"}},
      {"truncated-ident", {"too short", "not an elf", "truncated"}},
      {"truncated-header", {"truncated", "too short"}},
      {"truncated-file", {"past the end", "truncated"}},
      {"section-headers-past-end", {"past the end"}},
      {"program-headers-past-end", {"program header"}},
      {"section-offset-past-end", {"past the end"}},
      {"section-size-past-end", {"past the end"}},
      {"huge-section-size", {"past the end"}},
      {"overlapping-sections", {"overlap"}},
      {"unterminated-section-names", {"nul", "terminat"}},
      {"section-name-outside-table", {"name offset", "name table"}},
      {"wrong-shentsize", {"section header size", "shentsize"}},
      {"shstrndx-out-of-range", {"section-name table", "shstrndx"}},
      {"extended-count-past-end", {"past the end", "section headers"}},
      {"symbol-name-outside-strtab", {"name offset", "string table"}},
      {"symtab-size-not-multiple", {"multiple"}},
  };
  return causes;
}

void check_failure_message(const ktc::Error& error,
                           const std::string& path,
                           const std::string& variant) {
  CHECK(error.status == Status::invalid);
  CHECK(error.message.find(path) != std::string::npos);
  CHECK(error.message.find('\n') == std::string::npos);
  auto causes = expected_causes().find(variant);
  REQUIRE_MESSAGE(causes != expected_causes().end(),
                  "no expected cause listed for " << variant);
  std::string message = lower(error.message);
  bool named = false;
  for (const std::string& word : causes->second) {
    named = named || message.find(word) != std::string::npos;
  }
  CHECK_MESSAGE(named, "message does not name the cause: " << error.message);
}

} // namespace

TEST_SUITE_BEGIN("ElfFile");

TEST_CASE("ElfFile::open reads every valid fixture as the builder wrote it") {
  TempDir dir;
  for (const Fixture& fixture : valid_fixtures()) {
    CAPTURE(fixture.name);
    const ElfImage& image = fixture_image(fixture);
    std::string path = write_image(dir, fixture.name, image.bytes);
    ElfFile file = open_elf(path);

    CHECK(file.path() == path);
    CHECK(file.elf_class() == (fixture.options.elf_class == ElfClass::elf64
                                   ? ELFCLASS64
                                   : ELFCLASS32));
    CHECK(file.byte_order() == (fixture.options.byte_order == ByteOrder::little
                                    ? ELFDATA2LSB
                                    : ELFDATA2MSB));
    CHECK(file.machine() == fixture.options.machine);
    CHECK(file.file_size() == image.bytes.size());
    CHECK(as_text(file.bytes()) == image.bytes);
    CHECK(file.phdr_count() == image.segments.size());
    CHECK(file.shstrndx() == image.header.shstrndx);
    REQUIRE(file.section_count() == image.sections.size());
    REQUIRE(file.symtab_index().has_value());
    CHECK(*file.symtab_index() == image.find(".symtab")->index);

    for (const BuiltSection& expected : image.sections) {
      const ktc::elf::Section& section = file.sections()[expected.index];
      CAPTURE(expected.name);
      CHECK(section.index == expected.index);
      CHECK(section.name == expected.name);
      CHECK(section.type == expected.type);
      CHECK(section.flags == expected.flags);
      CHECK(section.addr == expected.addr);
      CHECK(section.offset == expected.offset);
      CHECK(section.size == expected.size);
      CHECK(section.link == expected.link);
      CHECK(section.info == expected.info);
      CHECK(section.addralign == expected.addralign);
      CHECK(section.entsize == expected.entsize);
      CHECK(as_text(file.raw_data(section)) == expected.data);
      // find() scans, so the 65,000-section files get a sample.
      bool look_up = image.sections.size() < 1000 || expected.index % 997 == 0;
      if (expected.index != 0 && look_up) {
        const ktc::elf::Section* found = file.find(expected.name);
        REQUIRE(found != nullptr);
        CHECK(found->index == expected.index);
      }
    }
    CHECK(file.find(".no-such-section") == nullptr);

    std::vector<ktc::elf::Symbol> symbols = symbols_of(file);
    REQUIRE(symbols.size() == image.symbols.size());
    for (const BuiltSymbol& expected : image.symbols) {
      const ktc::elf::Symbol& symbol = symbols[expected.index];
      CAPTURE(expected.index);
      CAPTURE(expected.name);
      CHECK(symbol.name == expected.name);
      CHECK(symbol.value == expected.value);
      CHECK(symbol.size == expected.size);
      CHECK(symbol.info == expected.info);
      CHECK(symbol.other == expected.other);
      CHECK(symbol.raw_shndx == expected.raw_shndx);
      CHECK(symbol.shndx == expected.shndx);
    }
  }
}

TEST_CASE("ElfFile::open follows extended numbering past 65,279 sections") {
  TempDir dir;
  for (const std::string name :
       {"x86_64-elf64-lsb-many-sections", "ppc-elf32-msb-many-sections"}) {
    CAPTURE(name);
    const ElfImage& image = fixture_image(fixture_named(name));
    // The fixture really uses the escape values, or this proves nothing.
    REQUIRE(image.header.raw_shnum == 0);
    REQUIRE(image.header.raw_shstrndx == SHN_XINDEX);
    REQUIRE(image.sections.size() > SHN_LORESERVE);

    ElfFile file = open_elf(write_image(dir, name, image.bytes));
    CHECK(file.section_count() == image.sections.size());
    CHECK(file.shstrndx() == image.header.shstrndx);
    CHECK(file.shstrndx() >= SHN_LORESERVE);
    CHECK(file.find(".shstrtab")->index == image.header.shstrndx);

    // A symbol in a section numbered above SHN_LORESERVE goes through
    // .symtab_shndx.
    std::vector<ktc::elf::Symbol> symbols = symbols_of(file);
    const BuiltSymbol* high = nullptr;
    for (const BuiltSymbol& symbol : image.symbols) {
      if (symbol.raw_shndx == SHN_XINDEX) {
        high = &symbol;
      }
    }
    REQUIRE(high != nullptr);
    CHECK(symbols[high->index].raw_shndx == SHN_XINDEX);
    CHECK(symbols[high->index].shndx == high->shndx);
    CHECK(file.sections()[symbols[high->index].shndx].name == high->section);
  }
}

TEST_CASE("build_id returns the hex of the NT_GNU_BUILD_ID note, nullopt "
          "without one") {
  TempDir dir;
  for (const Fixture& fixture : valid_fixtures()) {
    CAPTURE(fixture.name);
    ElfFile file =
        open_elf(write_image(dir, fixture.name, fixture_image(fixture).bytes));
    auto id = ktc::elf::build_id(file);
    REQUIRE_MESSAGE(id.ok(), id.error().message);
    CHECK(*id == fixture.options.build_id);
  }
  // The control: the bare fixture does have a note section, just no
  // build-id in it.
  const ElfImage& bare = fixture_image(fixture_named("x86_64-no-build-id-"
                                                     "no-config"));
  REQUIRE(bare.find(".notes") != nullptr);
  CHECK(bare.find(".notes")->size > 0);
}

TEST_CASE("ElfFile::open refuses each malformed variant with one line naming "
          "the file and the cause") {
  TempDir dir;
  std::vector<std::pair<std::string, MalformedImage>> cases;
  for (const std::string base : {"x86_64-elf64-lsb", "ppc-elf32-msb"}) {
    for (MalformedImage& variant :
         malformed_variants(fixture_image(fixture_named(base)))) {
      cases.emplace_back(std::string(base) + "-" + variant.name,
                         std::move(variant));
    }
  }
  // Of the extended-numbering image only what is specific to it: the other
  // variants are the same damage at 8 MB a copy.
  for (MalformedImage& variant : malformed_variants(
           fixture_image(fixture_named("ppc-elf32-msb-many-sections")))) {
    if (variant.name == "extended-count-past-end" ||
        variant.name == "unterminated-section-names" ||
        variant.name == "symbol-name-outside-strtab") {
      cases.emplace_back("ppc-elf32-msb-many-sections-" + variant.name,
                         std::move(variant));
    }
  }
  REQUIRE(cases.size() >= 30);

  for (const auto& [name, variant] : cases) {
    CAPTURE(name);
    std::string path = write_image(dir, name, variant.bytes);
    auto file = ElfFile::open(path);
    if (variant.fails_at == FailsAt::open) {
      // The message is only built when the check fails, i.e. when open()
      // returned a file.
      CHECK_FALSE_MESSAGE(file.ok(), "accepted with " << file->section_count()
                                                      << " sections");
      if (!file.ok()) {
        check_failure_message(file.error(), path, variant.name);
      }
      continue;
    }
    // Damage inside the symbol table may be noticed at open or when the
    // symbols are read, but not later.
    if (!file.ok()) {
      check_failure_message(file.error(), path, variant.name);
      continue;
    }
    auto symbols = file->symbols();
    CHECK_FALSE(symbols.ok());
    if (!symbols.ok()) {
      check_failure_message(symbols.error(), path, variant.name);
    }
  }
}

TEST_CASE("ElfFile::open reports a missing file and a directory by path") {
  TempDir dir;
  std::string missing = dir / "no-such-vmlinux";
  auto absent = ElfFile::open(missing);
  REQUIRE_FALSE(absent.ok());
  CHECK(absent.error().status == Status::not_found);
  CHECK(absent.error().message.find(missing) != std::string::npos);

  auto directory = ElfFile::open(dir.path());
  REQUIRE_FALSE(directory.ok());
  CHECK(directory.error().status == Status::invalid);
  CHECK(directory.error().message.find(dir.path()) != std::string::npos);
}

TEST_SUITE_END();
