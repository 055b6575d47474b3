// The fixture writer checked on its own, without the engine: if both read
// a field the same wrong way, the engine tests alone would not notice.

#include "elf_builder.hpp"
#include "elf_test_helpers.hpp"

#include <doctest/doctest.h>

#include <elf.h>
#include <zlib.h>

#include <string>

using namespace ktc::test;

namespace {

std::string gunzip(std::string_view stream) {
  z_stream inflater{};
  REQUIRE(inflateInit2(&inflater, 15 + 16) == Z_OK);
  std::string out(64 * 1024, '\0');
  inflater.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(stream.data()));
  inflater.avail_in = static_cast<uInt>(stream.size());
  inflater.next_out = reinterpret_cast<Bytef*>(out.data());
  inflater.avail_out = static_cast<uInt>(out.size());
  int status = inflate(&inflater, Z_FINISH);
  out.resize(inflater.total_out);
  inflateEnd(&inflater);
  CHECK(status == Z_STREAM_END);
  return out;
}

} // namespace

TEST_SUITE_BEGIN("ElfBuilder");

TEST_CASE("parse_elf_layout reads back the headers build() wrote") {
  for (const Fixture& fixture : valid_fixtures()) {
    CAPTURE(fixture.name);
    const ElfImage& image = fixture_image(fixture);
    ElfLayout layout = parse_elf_layout(image.bytes);
    CHECK(layout.header.elf_class == fixture.options.elf_class);
    CHECK(layout.header.byte_order == fixture.options.byte_order);
    CHECK(layout.header.machine == fixture.options.machine);
    CHECK(layout.header.type == ET_EXEC);
    CHECK(layout.header.entry == image.find(".text")->addr);
    CHECK(layout.header.shnum == image.sections.size());
    CHECK(layout.header.shstrndx == image.header.shstrndx);
    CHECK(layout.header.raw_shnum == image.header.raw_shnum);
    REQUIRE(layout.sections.size() == image.sections.size());
    for (size_t i = 0; i < image.sections.size(); ++i) {
      const BuiltSection& want = image.sections[i];
      const BuiltSection& got = layout.sections[i];
      CAPTURE(want.name);
      CHECK(got.name == want.name);
      CHECK(got.type == want.type);
      CHECK(got.flags == want.flags);
      CHECK(got.addr == want.addr);
      CHECK(got.offset == want.offset);
      CHECK(got.size == want.size);
      CHECK(got.link == want.link);
      CHECK(got.info == want.info);
      CHECK(got.addralign == want.addralign);
      CHECK(got.entsize == want.entsize);
    }
    REQUIRE(layout.segments.size() == image.segments.size());
    for (size_t i = 0; i < image.segments.size(); ++i) {
      CHECK(layout.segments[i] == image.segments[i]);
    }
  }
}

TEST_CASE("the preset's contents are laid out as the formats say") {
  for (const std::string name : {"x86_64-elf64-lsb", "ppc-elf32-msb"}) {
    const Fixture& fixture = fixture_named(name);
    CAPTURE(fixture.name);
    const ElfImage& image = fixture_image(fixture);
    bool big = fixture.options.byte_order == ByteOrder::big;

    // The BTF magic 0xeB9F in the file's byte order.
    const std::string& btf = image.find(".BTF")->data;
    REQUIRE(btf.size() > 24);
    CHECK(btf.substr(0, 2) == (big ? "\xeb\x9f" : "\x9f\xeb"));

    // IKCFG_ST, a gzip stream of the config between the symbols, IKCFG_ED.
    const BuiltSection& rodata = *image.find(".rodata");
    const BuiltSymbol* start = image.find_symbol("kernel_config_data");
    const BuiltSymbol* end = image.find_symbol("kernel_config_data_end");
    REQUIRE(start != nullptr);
    REQUIRE(end != nullptr);
    size_t from = start->value - rodata.addr;
    size_t to = end->value - rodata.addr;
    CHECK(rodata.data.substr(from - 8, 8) == "IKCFG_ST");
    CHECK(rodata.data.substr(to, 8) == "IKCFG_ED");
    CHECK(gunzip(std::string_view(rodata.data).substr(from, to - from)) ==
          default_config_text());

    // The build-id note: namesz 4, descsz, NT_GNU_BUILD_ID, "GNU\0", id.
    const std::string& notes = image.find(".notes")->data;
    std::string id = hex_to_bytes(*fixture.options.build_id);
    std::string header = encode_u32(fixture.options.byte_order, 4) +
                         encode_u32(fixture.options.byte_order,
                                    static_cast<uint32_t>(id.size())) +
                         encode_u32(fixture.options.byte_order, 3);
    CHECK(notes.substr(0, 12) == header);
    CHECK(notes.substr(12, 4) == std::string("GNU\0", 4));
    CHECK(notes.substr(16, id.size()) == id);

    // The relocations name the symbols they were given.
    const BuiltSection& relocations =
        *image.find(text_relocation_name(fixture.options.machine));
    auto entries =
        decode_relocations(image.header, relocations.type, relocations.data);
    REQUIRE(entries.size() == 2);
    CHECK(entries[0].offset == image.find(".text")->addr + 0x100);
    const BuiltSymbol& target = image.symbols[entries[0].symbol];
    CHECK(target.section == ".rodata");
    CHECK(ELF64_ST_TYPE(target.info) == STT_SECTION);
    CHECK(entries[0].addend == (relocations.type == SHT_RELA ? 0x20 : 0));
  }
}

TEST_CASE("each malformed variant differs from the valid image") {
  const ElfImage& image = fixture_image(fixture_named("x86_64-elf64-lsb"));
  auto variants = malformed_variants(image);
  CHECK(variants.size() >= 15);
  for (const MalformedImage& variant : variants) {
    CAPTURE(variant.name);
    CHECK(variant.bytes != image.bytes);
  }
}

TEST_SUITE_END();
