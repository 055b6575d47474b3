#pragma once

// Synthetic ELF images for the ELF reader and strip engine tests, written
// field by field from a description. Deliberately independent of the engine
// (no libelf, no code shared with core/elf): a fixture the engine's own
// reader produced could not catch the engine misreading the format.
//
// Both classes and byte orders, any e_machine, extended section numbering
// (more than 65,279 sections), symbol and relocation tables, notes and
// program headers. ElfImage records what was written so tests can compare
// a reader's view with the truth, and parse_elf_layout() reads headers back
// from any image (for program headers, and for outputs of the engine).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ktc::test {

enum class ElfClass { elf32, elf64 };
enum class ByteOrder { little, big };

// One section as the caller describes it. sh_link and sh_info may name a
// section (resolved to its index when the image is built) or give a raw
// number.
struct SectionSpec {
  std::string name;
  uint32_t type = 1; // SHT_PROGBITS
  uint64_t flags = 0;
  uint64_t addr = 0;
  uint64_t addralign = 1;
  uint64_t entsize = 0;
  std::string link_to;
  std::string info_to;
  uint32_t link = 0;
  uint32_t info = 0;
  // File bytes; ignored for SHT_NOBITS, whose size is nobits_size.
  std::string data;
  uint64_t nobits_size = 0;
};

// A named symbol. `section` names the defining section; when it is empty
// the symbol's st_shndx is `special` (SHN_UNDEF, SHN_ABS or SHN_COMMON).
struct SymbolSpec {
  std::string name;
  std::string section;
  uint16_t special = 0;
  uint64_t value = 0;
  uint64_t size = 0;
  unsigned char type = 0; // STT_NOTYPE
  unsigned char bind = 1; // STB_GLOBAL
  unsigned char other = 0;
};

// One relocation. `symbol` is a named symbol, or "section:<name>" for the
// STT_SECTION symbol of that section.
struct RelocationSpec {
  uint64_t offset = 0;
  std::string symbol;
  uint32_t type = 0;
  int64_t addend = 0;
};

// A program header covering `sections` (consecutive in the file and in
// memory); offset, addresses and sizes are derived from them.
struct SegmentSpec {
  uint32_t type = 1;  // PT_LOAD
  uint32_t flags = 4; // PF_R
  std::vector<std::string> sections;
  uint64_t align = 0x1000;
  // p_paddr when it differs from p_vaddr.
  std::optional<uint64_t> paddr;
};

struct BuiltSection {
  size_t index = 0;
  std::string name;
  uint32_t type = 0;
  uint64_t flags = 0;
  uint64_t addr = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
  uint32_t link = 0;
  uint32_t info = 0;
  uint64_t addralign = 0;
  uint64_t entsize = 0;
  // The bytes written at `offset` (empty for NOBITS); filled by
  // ElfBuilder::build(), left empty by parse_elf_layout().
  std::string data;
};

struct BuiltSymbol {
  size_t index = 0;
  std::string name;
  uint64_t value = 0;
  uint64_t size = 0;
  unsigned char info = 0;
  unsigned char other = 0;
  // What st_shndx holds (SHN_XINDEX for an index >= SHN_LORESERVE) and the
  // section index it stands for.
  uint16_t raw_shndx = 0;
  uint32_t shndx = 0;
  // Name of the defining section; empty for SHN_UNDEF/ABS/COMMON.
  std::string section;
};

struct BuiltSegment {
  uint32_t type = 0;
  uint32_t flags = 0;
  uint64_t offset = 0;
  uint64_t vaddr = 0;
  uint64_t paddr = 0;
  uint64_t filesz = 0;
  uint64_t memsz = 0;
  uint64_t align = 0;
  bool operator==(const BuiltSegment&) const = default;
};

// The file header fields a test compares, plus where the tables sit.
struct ElfHeader {
  ElfClass elf_class = ElfClass::elf64;
  ByteOrder byte_order = ByteOrder::little;
  uint16_t type = 0;
  uint16_t machine = 0;
  uint64_t entry = 0;
  uint64_t phoff = 0;
  uint64_t shoff = 0;
  uint32_t flags = 0;
  uint16_t phentsize = 0;
  uint16_t shentsize = 0;
  // As stored: 0 / SHN_XINDEX when extended numbering is in use.
  uint16_t raw_shnum = 0;
  uint16_t raw_shstrndx = 0;
  // The real values (from section 0 when extended).
  size_t shnum = 0;
  size_t shstrndx = 0;
};

struct ElfImage {
  std::string bytes;
  ElfHeader header;
  std::vector<BuiltSection> sections; // index 0 (null) included
  std::vector<BuiltSymbol> symbols;   // .symtab order, null symbol included
  std::vector<BuiltSegment> segments;

  // The first section with that name, or nullptr.
  const BuiltSection* find(std::string_view name) const;
  // The named symbol (not an STT_SECTION one), or nullptr.
  const BuiltSymbol* find_symbol(std::string_view name) const;
};

// Headers and section headers read back from an ELF image, with names
// resolved through the section-name table. Written for images this file
// made and for the engine's outputs: every read is bounds-checked and a
// violation throws ElfFormatError, so a broken output fails a test cleanly.
struct ElfLayout {
  ElfHeader header;
  std::vector<BuiltSection> sections;
  std::vector<BuiltSegment> segments;
};

class ElfFormatError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

ElfLayout parse_elf_layout(std::string_view bytes);

// One decoded relocation entry of a SHT_REL or SHT_RELA section.
struct RawRelocation {
  uint64_t offset = 0;
  uint32_t symbol = 0;
  uint32_t type = 0;
  int64_t addend = 0; // zero for SHT_REL
};

// Decodes a relocation section's bytes (throws ElfFormatError when the
// size is not a multiple of the entry size).
std::vector<RawRelocation> decode_relocations(const ElfHeader& header,
                                              uint32_t section_type,
                                              std::string_view data);

class ElfBuilder {
public:
  ElfBuilder(ElfClass elf_class,
             ByteOrder byte_order,
             uint16_t machine,
             uint16_t type = 2 /* ET_EXEC */);

  // Sections are numbered in the order they are added, from 1. The builder
  // appends .symtab, .symtab_shndx (only when a symbol needs it), .strtab
  // and .shstrtab after them.
  ElfBuilder& add_section(SectionSpec section);
  ElfBuilder& add_symbol(SymbolSpec symbol);
  // A SHT_RELA (or SHT_REL) section named `name` whose sh_info is `target`
  // and sh_link the symbol table.
  ElfBuilder& add_relocations(std::string name,
                              std::string target,
                              bool with_addends,
                              std::vector<RelocationSpec> relocations,
                              uint64_t flags = 0x40 /* SHF_INFO_LINK */);
  ElfBuilder& add_segment(SegmentSpec segment);
  ElfBuilder& set_entry(uint64_t entry);
  // STT_SECTION symbols for every section added with add_section() and
  // add_relocations() (on unless turned off).
  ElfBuilder& set_section_symbols(bool enabled);

  ElfClass elf_class() const { return m_class; }
  ByteOrder byte_order() const { return m_order; }

  // Lays the file out and writes it. Throws std::invalid_argument for a
  // description that names unknown sections or symbols.
  ElfImage build() const;

private:
  struct RelocationTable {
    size_t section; // position in m_sections
    bool with_addends;
    std::vector<RelocationSpec> entries;
  };

  ElfClass m_class;
  ByteOrder m_order;
  uint16_t m_machine;
  uint16_t m_type;
  uint64_t m_entry = 0;
  bool m_section_symbols = true;
  std::vector<SectionSpec> m_sections;
  std::vector<SymbolSpec> m_symbols;
  std::vector<RelocationTable> m_relocations;
  std::vector<SegmentSpec> m_segments;
};

// --- Section contents ---

// Integers in a file's byte order.
std::string encode_u16(ByteOrder order, uint16_t value);
std::string encode_u32(ByteOrder order, uint32_t value);
std::string encode_u64(ByteOrder order, uint64_t value);
// An address-sized word of the class.
std::string encode_word(ElfClass elf_class, ByteOrder order, uint64_t value);

// One ELF note (name NUL-terminated, name and descriptor padded to 4).
std::string encode_note(ByteOrder order,
                        std::string_view name,
                        uint32_t type,
                        std::string_view desc);
// The bytes of a lower-case hex string ("0a1b..." -> "\x0a\x1b...").
std::string hex_to_bytes(std::string_view hex);
// A BTF blob: a header with the 0xeB9F magic in `order`, then a type
// section of `payload` and a short string section.
std::string make_btf(ByteOrder order, std::string_view payload);
// A gzip stream of `text` (zlib, gzip wrapper).
std::string gzip(std::string_view text);
// Deterministic pseudo-random bytes.
std::string pattern_bytes(size_t size, unsigned seed);

// --- The vmlinux-like preset ---

enum class IkconfigMode {
  symbols,      // markers plus kernel_config_data / kernel_config_data_end
  markers_only, // markers, no symbols
  none,         // no embedded config at all
  corrupt_gzip, // markers and symbols around a stream that cannot inflate
};

struct VmlinuxOptions {
  ElfClass elf_class = ElfClass::elf64;
  ByteOrder byte_order = ByteOrder::little;
  uint16_t machine = 62; // EM_X86_64
  IkconfigMode ikconfig = IkconfigMode::symbols;
  std::string config_text;
  // Lower-case hex; nullopt leaves the build-id note out (the note section
  // then holds only a "Linux" note).
  std::optional<std::string> build_id;
  std::string note_section = ".notes";
  unsigned btf_seed = 1;
  // .text.fn_NNNNN sections (16 bytes of code and one function symbol
  // each); enough of them push the file into extended numbering.
  size_t function_sections = 0;
  // A SHN_COMMON symbol. eu-elflint allows those in ET_REL files only, so
  // its checks also run on fixtures without one.
  bool common_symbol = true;
  // A named symbol to leave out (check_output tests).
  std::string omit_symbol;
};

// The defaults every preset uses unless told otherwise.
std::string default_config_text();
std::string default_build_id();

ElfImage build_vmlinux(const VmlinuxOptions& options);

// The relocation section names the preset uses for this machine:
// ".rela.text" / ".rela.debug_info", or ".rel.*" where the psABI uses REL.
std::string text_relocation_name(uint16_t machine);
std::string debug_relocation_name(uint16_t machine);

// A named valid fixture.
struct Fixture {
  std::string name;
  VmlinuxOptions options;
};

// Every valid fixture the tests run over: each class and byte order,
// x86_64, aarch64, s390x, i386 and ppc32, extended numbering, a config
// found only by markers, and a file without build-id or config.
std::vector<Fixture> valid_fixtures();

// --- Malformed variants ---

// Where a reader is expected to notice the damage.
enum class FailsAt { open, symbols };

struct MalformedImage {
  std::string name;
  std::string bytes;
  FailsAt fails_at = FailsAt::open;
};

// Copies of `valid` (a build_vmlinux() image) damaged one way each:
// truncated headers, section headers past the end, a section past the end,
// overlapping sections, an unterminated section-name table, a huge
// sh_size, a symbol name outside .strtab, a wrong e_shentsize.
std::vector<MalformedImage> malformed_variants(const ElfImage& valid);

} // namespace ktc::test
