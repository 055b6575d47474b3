#include "strip_checks.hpp"

#include "elf_builder.hpp"
#include "elf_test_helpers.hpp"

#include <doctest/doctest.h>

#include <elf.h>

#include <map>
#include <set>

namespace ktc::test {
namespace {

bool is_relocation(uint32_t type) {
  return type == SHT_REL || type == SHT_RELA;
}

// Sections the engine rewrites rather than copies: their bytes hold
// indices or names that move when other sections go.
bool rewritten_by_engine(uint32_t type) {
  return type == SHT_SYMTAB || type == SHT_SYMTAB_SHNDX || type == SHT_STRTAB ||
         is_relocation(type);
}

unsigned char symbol_type(const elf::Symbol& symbol) {
  return static_cast<unsigned char>(symbol.info & 0xf);
}

unsigned char symbol_bind(const elf::Symbol& symbol) {
  return static_cast<unsigned char>(symbol.info >> 4);
}

bool special_index(uint32_t raw_shndx) {
  return raw_shndx == SHN_UNDEF || raw_shndx == SHN_ABS ||
         raw_shndx == SHN_COMMON;
}

std::string section_name_at(const elf::ElfFile& file, uint64_t index) {
  if (index >= file.section_count()) {
    return "(index " + std::to_string(index) + " out of range)";
  }
  return std::string(file.sections()[index].name);
}

// What a relocation's symbol stands for, independent of indices: the
// symbol's name, or the section of a section symbol.
std::string symbol_identity(const elf::ElfFile& file,
                            const std::vector<elf::Symbol>& symbols,
                            uint32_t index) {
  if (index >= symbols.size()) {
    return "(symbol " + std::to_string(index) + " out of range)";
  }
  const elf::Symbol& symbol = symbols[index];
  if (symbol_type(symbol) == STT_SECTION) {
    return "section:" + section_name_at(file, symbol.shndx);
  }
  return std::string(symbol.name);
}

std::map<std::string, const elf::Symbol*>
named(const std::vector<elf::Symbol>& symbols) {
  std::map<std::string, const elf::Symbol*> by_name;
  for (const elf::Symbol& symbol : symbols) {
    if (!symbol.name.empty() && symbol_type(symbol) != STT_SECTION) {
      bool unique = by_name.emplace(std::string(symbol.name), &symbol).second;
      CHECK_MESSAGE(unique, "symbol " << symbol.name << " appears twice");
    }
  }
  return by_name;
}

std::string file_bytes(const elf::ElfFile& file) {
  return std::string(as_text(file.bytes()));
}

void check_sections(const SectionsByName& input_names,
                    const SectionsByName& output_names) {
  const elf::ElfFile& input = input_names.file();
  const elf::ElfFile& output = output_names.file();
  std::set<std::string_view> seen;
  for (const elf::Section& section : output.sections()) {
    if (section.index == 0) {
      continue;
    }
    CAPTURE(section.name);
    CHECK_MESSAGE(seen.insert(section.name).second,
                  "section appears twice in the output");
    CHECK_MESSAGE(input_names.find(section.name) != nullptr,
                  "output section not in the input");
  }

  for (const elf::Section& in : input.sections()) {
    if (in.index == 0) {
      continue;
    }
    CAPTURE(in.name);
    const elf::Section* out = output_names.find(in.name);
    if (out == nullptr) {
      CHECK_MESSAGE((in.flags & SHF_ALLOC) == 0,
                    "an allocated section was dropped");
      CHECK(in.type != SHT_SYMTAB);
      CHECK(in.index != input.shstrndx());
      continue;
    }
    if (out->type == SHT_NOBITS && in.type != SHT_NOBITS) {
      CHECK(out->addr == in.addr);
      CHECK(out->size == in.size);
      CHECK(out->flags == in.flags);
      CHECK(output.raw_data(*out).empty());
    } else {
      CHECK(out->type == in.type);
      CHECK(out->flags == in.flags);
      CHECK(out->addr == in.addr);
      CHECK(out->addralign == in.addralign);
      CHECK(out->entsize == in.entsize);
      // Rewritten tables shrink with what was dropped; their content is
      // checked symbol by symbol and relocation by relocation.
      if (!rewritten_by_engine(in.type)) {
        CHECK(out->size == in.size);
        CHECK_MESSAGE(as_text(output.raw_data(*out)) ==
                          as_text(input.raw_data(in)),
                      "kept section's bytes differ");
      }
    }
    // Links follow the section they name, whatever its new index.
    if (in.link != 0) {
      CHECK(section_name_at(output, out->link) ==
            section_name_at(input, in.link));
    }
    bool info_names_section =
        is_relocation(in.type) || (in.flags & SHF_INFO_LINK) != 0;
    if (info_names_section) {
      CHECK(section_name_at(output, out->info) ==
            section_name_at(input, in.info));
    }
  }
  CHECK(output_names.find(".symtab") != nullptr);
  CHECK(output_names.find(".strtab") != nullptr);
  CHECK(output.sections()[output.shstrndx()].name == ".shstrtab");
}

void check_relocations(const SectionsByName& input_names,
                       const std::vector<elf::Symbol>& input_symbols,
                       const SectionsByName& output_names,
                       const std::vector<elf::Symbol>& output_symbols) {
  const elf::ElfFile& input = input_names.file();
  const elf::ElfFile& output = output_names.file();
  ElfHeader in_header = parse_elf_layout(file_bytes(input)).header;
  ElfHeader out_header = parse_elf_layout(file_bytes(output)).header;
  for (const elf::Section& out : output.sections()) {
    if (!is_relocation(out.type)) {
      continue;
    }
    CAPTURE(out.name);
    REQUIRE(out.info < output.section_count());
    const elf::Section& target = output.sections()[out.info];
    const elf::Section* in_target = input_names.find(target.name);
    REQUIRE(in_target != nullptr);
    CHECK_MESSAGE(target.type != SHT_NOBITS,
                  "relocations kept for a header-only section");
    CHECK_MESSAGE(as_text(output.raw_data(target)) ==
                      as_text(input.raw_data(*in_target)),
                  "relocations kept for a section whose bytes changed");
    CHECK(out.link == output.symtab_index());

    const elf::Section* in = input_names.find(out.name);
    REQUIRE(in != nullptr);
    auto before =
        decode_relocations(in_header, in->type, as_text(input.raw_data(*in)));
    auto after =
        decode_relocations(out_header, out.type, as_text(output.raw_data(out)));
    REQUIRE(after.size() == before.size());
    for (size_t i = 0; i < before.size(); ++i) {
      CAPTURE(i);
      CHECK(after[i].offset == before[i].offset);
      CHECK(after[i].type == before[i].type);
      CHECK(after[i].addend == before[i].addend);
      CHECK(symbol_identity(output, output_symbols, after[i].symbol) ==
            symbol_identity(input, input_symbols, before[i].symbol));
    }
  }
}

void check_symbols(const SectionsByName& input_names,
                   const std::vector<elf::Symbol>& input_symbols,
                   const SectionsByName& output_names,
                   const std::vector<elf::Symbol>& output_symbols) {
  const elf::ElfFile& input = input_names.file();
  const elf::ElfFile& output = output_names.file();
  auto before = named(input_symbols);
  auto after = named(output_symbols);
  CHECK(before.size() == after.size());
  for (const auto& [name, in] : before) {
    CAPTURE(name);
    auto found = after.find(name);
    if (found == after.end()) {
      FAIL_CHECK("named symbol lost");
      continue;
    }
    const elf::Symbol& out = *found->second;
    CHECK(out.value == in->value);
    CHECK(out.size == in->size);
    CHECK(out.info == in->info);
    CHECK(out.other == in->other);
    if (special_index(in->raw_shndx)) {
      CHECK(out.raw_shndx == in->raw_shndx);
    } else {
      CHECK(section_name_at(output, out.shndx) ==
            section_name_at(input, in->shndx));
    }
  }

  // Section symbols of every section still there still point at it.
  std::set<std::string> output_section_symbols;
  for (const elf::Symbol& symbol : output_symbols) {
    if (symbol_type(symbol) == STT_SECTION) {
      CHECK(symbol.shndx > 0);
      CHECK(symbol.shndx < output.section_count());
      output_section_symbols.insert(section_name_at(output, symbol.shndx));
    }
  }
  for (const elf::Symbol& symbol : input_symbols) {
    if (symbol_type(symbol) != STT_SECTION) {
      continue;
    }
    std::string name = section_name_at(input, symbol.shndx);
    if (output_names.find(name) != nullptr) {
      CHECK_MESSAGE(output_section_symbols.count(name) == 1,
                    "section symbol of " << name << " lost");
    }
  }

  // gABI: locals first, sh_info is the first non-local.
  const elf::Section& symtab = output.sections()[*output.symtab_index()];
  for (size_t i = 1; i < output_symbols.size(); ++i) {
    CAPTURE(i);
    CHECK((symbol_bind(output_symbols[i]) == STB_LOCAL) == (i < symtab.info));
  }
}

void check_headers(const elf::ElfFile& input, const elf::ElfFile& output) {
  ElfLayout before = parse_elf_layout(file_bytes(input));
  ElfLayout after = parse_elf_layout(file_bytes(output));
  CHECK(after.header.elf_class == before.header.elf_class);
  CHECK(after.header.byte_order == before.header.byte_order);
  CHECK(after.header.type == before.header.type);
  CHECK(after.header.machine == before.header.machine);
  CHECK(after.header.entry == before.header.entry);
  CHECK(after.header.flags == before.header.flags);
  CHECK(after.header.shnum == output.section_count());
  // Extended numbering exactly when the count needs it.
  CHECK((after.header.raw_shnum == 0) ==
        (output.section_count() >= SHN_LORESERVE));
  REQUIRE(after.segments.size() == before.segments.size());
  for (size_t i = 0; i < before.segments.size(); ++i) {
    CAPTURE(i);
    CHECK(after.segments[i] == before.segments[i]);
  }
}

} // namespace

SectionsByName::SectionsByName(const elf::ElfFile& file) : m_file(file) {
  for (const elf::Section& section : file.sections()) {
    if (section.index != 0) {
      m_sections.emplace(section.name, &section);
    }
  }
}

const elf::Section* SectionsByName::find(std::string_view name) const {
  auto found = m_sections.find(name);
  return found == m_sections.end() ? nullptr : found->second;
}

Fate fate_of(const SectionsByName& input,
             const SectionsByName& output,
             std::string_view name) {
  const elf::Section* in = input.find(name);
  const elf::Section* out = output.find(name);
  REQUIRE_MESSAGE(in != nullptr, "the input has no " << name);
  if (out == nullptr) {
    return Fate::dropped;
  }
  if (out->type == SHT_NOBITS && in->type != SHT_NOBITS) {
    return Fate::header_only;
  }
  return Fate::kept;
}

StripResult strip_to(const TempDir& dir,
                     const elf::ElfFile& input,
                     const elf::Decider& decide,
                     std::string_view name) {
  StripResult result;
  result.path = dir / name;
  REQUIRE_FALSE(exists(result.path));
  auto stats = elf::strip(input, result.path, decide);
  REQUIRE_MESSAGE(stats.ok(), stats.error().message);
  result.stats = *stats;
  return result;
}

void check_strip_invariants(const elf::ElfFile& input,
                            const elf::ElfFile& output,
                            const elf::StripStats& stats) {
  SectionsByName input_names(input);
  SectionsByName output_names(output);
  std::vector<elf::Symbol> input_symbols = symbols_of(input);
  std::vector<elf::Symbol> output_symbols = symbols_of(output);
  check_sections(input_names, output_names);
  check_symbols(input_names, input_symbols, output_names, output_symbols);
  check_relocations(input_names, input_symbols, output_names, output_symbols);
  check_headers(input, output);

  CHECK(stats.input_size == input.file_size());
  CHECK(stats.output_size == output.file_size());
  size_t kept = 0;
  size_t header_only = 0;
  size_t dropped = 0;
  size_t nobits = 0;
  for (const elf::Section& section : input.sections()) {
    if (section.index == 0) {
      continue;
    }
    nobits += section.type == SHT_NOBITS ? 1 : 0;
    switch (fate_of(input_names, output_names, section.name)) {
    case Fate::kept:
      ++kept;
      break;
    case Fate::header_only:
      ++header_only;
      break;
    case Fate::dropped:
      ++dropped;
      break;
    }
  }
  // Whether the null section counts as kept, and a section that was NOBITS
  // already as kept or header-only, is the engine's business.
  size_t null_section = stats.kept + stats.header_only - (kept + header_only);
  CHECK((null_section == 0 || null_section == 1));
  CHECK(stats.header_only >= header_only);
  CHECK(stats.header_only <= header_only + nobits);
  CHECK(stats.dropped == dropped);
}

void check_harness_view_kept(const elf::ElfFile& input,
                             const elf::ElfFile& output) {
  SectionsByName input_names(input);
  SectionsByName output_names(output);
  const elf::Section* in_btf = input_names.find(".BTF");
  const elf::Section* out_btf = output_names.find(".BTF");
  REQUIRE(in_btf != nullptr);
  REQUIRE(out_btf != nullptr);
  CHECK(as_text(output.raw_data(*out_btf)) == as_text(input.raw_data(*in_btf)));

  auto in_id = elf::build_id(input);
  auto out_id = elf::build_id(output);
  REQUIRE(in_id.ok());
  REQUIRE_MESSAGE(out_id.ok(), out_id.error().message);
  CHECK(out_id->value_or("(none)") == in_id->value_or("(none)"));

  auto checked = elf::check_output(input, output);
  CHECK_MESSAGE(checked.ok(), checked.error().message);
}

void check_segments_intact(const elf::ElfFile& input,
                           const elf::ElfFile& output) {
  ElfLayout layout = parse_elf_layout(file_bytes(input));
  std::string_view before = as_text(input.bytes());
  std::string_view after = as_text(output.bytes());
  for (const BuiltSegment& segment : layout.segments) {
    if (segment.type != PT_LOAD && segment.type != PT_NOTE) {
      continue;
    }
    CAPTURE(segment.offset);
    REQUIRE(segment.offset + segment.filesz <= after.size());
    CHECK_MESSAGE(after.substr(segment.offset, segment.filesz) ==
                      before.substr(segment.offset, segment.filesz),
                  "the program headers no longer describe the file's bytes");
  }
}

} // namespace ktc::test
