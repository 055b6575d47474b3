#include "elf_builder.hpp"

#include <elf.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <map>

namespace ktc::test {
namespace {

constexpr uint64_t k_page = 0x1000;

struct ClassSizes {
  size_t ehdr;
  size_t phdr;
  size_t shdr;
  size_t sym;
  size_t word;
};

ClassSizes sizes_of(ElfClass elf_class) {
  if (elf_class == ElfClass::elf64) {
    return {sizeof(Elf64_Ehdr), sizeof(Elf64_Phdr), sizeof(Elf64_Shdr),
            sizeof(Elf64_Sym), 8};
  }
  return {sizeof(Elf32_Ehdr), sizeof(Elf32_Phdr), sizeof(Elf32_Shdr),
          sizeof(Elf32_Sym), 4};
}

uint64_t align_up(uint64_t value, uint64_t alignment) {
  if (alignment <= 1) {
    return value;
  }
  return (value + alignment - 1) / alignment * alignment;
}

// Writes integers of either byte order into a pre-sized buffer at a
// cursor; the layout code has already decided where everything goes.
class Writer {
public:
  Writer(std::string& buffer, ElfClass elf_class, ByteOrder order)
      : m_buffer(buffer), m_class(elf_class), m_order(order) {}

  void seek(uint64_t position) { m_position = position; }
  void u8(uint8_t value) { put(value, 1); }
  void u16(uint16_t value) { put(value, 2); }
  void u32(uint32_t value) { put(value, 4); }
  void u64(uint64_t value) { put(value, 8); }
  void word(uint64_t value) {
    if (m_class == ElfClass::elf64) {
      u64(value);
      return;
    }
    if (value > UINT32_MAX) {
      throw std::invalid_argument("value " + std::to_string(value) +
                                  " does not fit an ELFCLASS32 word");
    }
    u32(static_cast<uint32_t>(value));
  }
  void bytes(std::string_view data) {
    check(data.size());
    std::copy(data.begin(), data.end(), m_buffer.begin() + m_position);
    m_position += data.size();
  }

private:
  void check(uint64_t count) const {
    if (m_position > m_buffer.size() || count > m_buffer.size() - m_position) {
      throw std::logic_error("elf_builder wrote past its own layout");
    }
  }
  void put(uint64_t value, int width) {
    check(static_cast<uint64_t>(width));
    for (int i = 0; i < width; ++i) {
      int shift = m_order == ByteOrder::little ? 8 * i : 8 * (width - 1 - i);
      m_buffer[m_position + static_cast<size_t>(i)] =
          static_cast<char>((value >> shift) & 0xff);
    }
    m_position += static_cast<uint64_t>(width);
  }

  std::string& m_buffer;
  ElfClass m_class;
  ByteOrder m_order;
  uint64_t m_position = 0;
};

// Bounds-checked reads of either byte order.
class Reader {
public:
  Reader(std::string_view bytes, ByteOrder order)
      : m_bytes(bytes), m_order(order) {}

  uint64_t get(uint64_t offset, int width) const {
    require(offset, static_cast<uint64_t>(width), "field");
    uint64_t value = 0;
    for (int i = 0; i < width; ++i) {
      auto byte = static_cast<unsigned char>(
          m_bytes[offset + static_cast<uint64_t>(i)]);
      int shift = m_order == ByteOrder::little ? 8 * i : 8 * (width - 1 - i);
      value |= static_cast<uint64_t>(byte) << shift;
    }
    return value;
  }
  uint8_t u8(uint64_t offset) const {
    return static_cast<uint8_t>(get(offset, 1));
  }
  uint16_t u16(uint64_t offset) const {
    return static_cast<uint16_t>(get(offset, 2));
  }
  uint32_t u32(uint64_t offset) const {
    return static_cast<uint32_t>(get(offset, 4));
  }
  uint64_t u64(uint64_t offset) const { return get(offset, 8); }
  uint64_t word(ElfClass elf_class, uint64_t offset) const {
    return elf_class == ElfClass::elf64 ? u64(offset) : u32(offset);
  }
  std::string_view
  slice(uint64_t offset, uint64_t size, const char* what) const {
    require(offset, size, what);
    return m_bytes.substr(offset, size);
  }
  void require(uint64_t offset, uint64_t size, const char* what) const {
    if (offset > m_bytes.size() || size > m_bytes.size() - offset) {
      throw ElfFormatError(
          std::string(what) + " at offset " + std::to_string(offset) + " (" +
          std::to_string(size) + " bytes) runs past the end of the file (" +
          std::to_string(m_bytes.size()) + " bytes)");
    }
  }

private:
  std::string_view m_bytes;
  ByteOrder m_order;
};

std::string encode(ByteOrder order, uint64_t value, int width) {
  std::string out(static_cast<size_t>(width), '\0');
  Writer writer(out, ElfClass::elf64, order);
  writer.seek(0);
  if (width == 2) {
    writer.u16(static_cast<uint16_t>(value));
  } else if (width == 4) {
    writer.u32(static_cast<uint32_t>(value));
  } else {
    writer.u64(value);
  }
  return out;
}

unsigned char st_info(unsigned char bind, unsigned char type) {
  return static_cast<unsigned char>((bind << 4) | (type & 0xf));
}

void write_section_header(Writer& writer,
                          const BuiltSection& section,
                          uint32_t name_offset) {
  writer.u32(name_offset);
  writer.u32(section.type);
  writer.word(section.flags);
  writer.word(section.addr);
  writer.word(section.offset);
  writer.word(section.size);
  writer.u32(section.link);
  writer.u32(section.info);
  writer.word(section.addralign);
  writer.word(section.entsize);
}

void write_segment(Writer& writer,
                   ElfClass elf_class,
                   const BuiltSegment& segment) {
  writer.u32(segment.type);
  if (elf_class == ElfClass::elf64) {
    writer.u32(segment.flags);
  }
  writer.word(segment.offset);
  writer.word(segment.vaddr);
  writer.word(segment.paddr);
  writer.word(segment.filesz);
  writer.word(segment.memsz);
  if (elf_class == ElfClass::elf32) {
    writer.u32(segment.flags);
  }
  writer.word(segment.align);
}

size_t relocation_entry_size(ElfClass elf_class, bool with_addends) {
  size_t word = sizes_of(elf_class).word;
  return (with_addends ? 3 : 2) * word;
}

std::string encode_relocations(ElfClass elf_class,
                               ByteOrder order,
                               bool with_addends,
                               const std::vector<RawRelocation>& entries) {
  std::string out(
      entries.size() * relocation_entry_size(elf_class, with_addends), '\0');
  Writer writer(out, elf_class, order);
  for (const RawRelocation& entry : entries) {
    writer.word(entry.offset);
    if (elf_class == ElfClass::elf64) {
      writer.u64((static_cast<uint64_t>(entry.symbol) << 32) | entry.type);
    } else {
      writer.u32((entry.symbol << 8) | (entry.type & 0xff));
    }
    if (with_addends) {
      writer.word(static_cast<uint64_t>(entry.addend) &
                  (elf_class == ElfClass::elf64 ? UINT64_MAX : UINT32_MAX));
    }
  }
  return out;
}

} // namespace

// --- ElfImage ---

const BuiltSection* ElfImage::find(std::string_view name) const {
  for (const BuiltSection& section : sections) {
    if (section.index != 0 && section.name == name) {
      return &section;
    }
  }
  return nullptr;
}

const BuiltSymbol* ElfImage::find_symbol(std::string_view name) const {
  for (const BuiltSymbol& symbol : symbols) {
    if (!symbol.name.empty() && symbol.name == name &&
        ELF64_ST_TYPE(symbol.info) != STT_SECTION) {
      return &symbol;
    }
  }
  return nullptr;
}

// --- Reading back ---

ElfLayout parse_elf_layout(std::string_view bytes) {
  if (bytes.size() < EI_NIDENT ||
      bytes.substr(0, SELFMAG) != std::string_view(ELFMAG, SELFMAG)) {
    throw ElfFormatError("not an ELF image");
  }
  ElfLayout layout;
  ElfHeader& header = layout.header;
  auto ident_class = static_cast<unsigned char>(bytes[EI_CLASS]);
  auto ident_data = static_cast<unsigned char>(bytes[EI_DATA]);
  if ((ident_class != ELFCLASS32 && ident_class != ELFCLASS64) ||
      (ident_data != ELFDATA2LSB && ident_data != ELFDATA2MSB)) {
    throw ElfFormatError("unknown ELF class or byte order");
  }
  header.elf_class =
      ident_class == ELFCLASS64 ? ElfClass::elf64 : ElfClass::elf32;
  header.byte_order =
      ident_data == ELFDATA2LSB ? ByteOrder::little : ByteOrder::big;
  ElfClass elf_class = header.elf_class;
  ClassSizes sizes = sizes_of(elf_class);
  Reader reader(bytes, header.byte_order);
  reader.require(0, sizes.ehdr, "ELF header");

  // e_entry, e_phoff and e_shoff are words; everything after them follows.
  uint64_t at = EI_NIDENT;
  header.type = reader.u16(at);
  header.machine = reader.u16(at + 2);
  at += 8; // e_type, e_machine, e_version
  header.entry = reader.word(elf_class, at);
  header.phoff = reader.word(elf_class, at + sizes.word);
  header.shoff = reader.word(elf_class, at + 2 * sizes.word);
  at += 3 * sizes.word;
  header.flags = reader.u32(at);
  header.phentsize = reader.u16(at + 6);
  uint16_t phnum = reader.u16(at + 8);
  header.shentsize = reader.u16(at + 10);
  header.raw_shnum = reader.u16(at + 12);
  header.raw_shstrndx = reader.u16(at + 14);

  if (phnum > 0) {
    if (header.phentsize != sizes.phdr) {
      throw ElfFormatError("e_phentsize " + std::to_string(header.phentsize));
    }
    reader.require(header.phoff, uint64_t{phnum} * sizes.phdr,
                   "program headers");
  }
  for (uint16_t i = 0; i < phnum; ++i) {
    uint64_t base = header.phoff + uint64_t{i} * sizes.phdr;
    BuiltSegment segment;
    segment.type = reader.u32(base);
    uint64_t fields = base + 4;
    if (elf_class == ElfClass::elf64) {
      segment.flags = reader.u32(base + 4);
      fields = base + 8;
    }
    segment.offset = reader.word(elf_class, fields);
    segment.vaddr = reader.word(elf_class, fields + sizes.word);
    segment.paddr = reader.word(elf_class, fields + 2 * sizes.word);
    segment.filesz = reader.word(elf_class, fields + 3 * sizes.word);
    segment.memsz = reader.word(elf_class, fields + 4 * sizes.word);
    uint64_t after = fields + 5 * sizes.word;
    if (elf_class == ElfClass::elf32) {
      segment.flags = reader.u32(after);
      after += 4;
    }
    segment.align = reader.word(elf_class, after);
    layout.segments.push_back(segment);
  }

  if (header.shoff == 0) {
    return layout;
  }
  if (header.shentsize != sizes.shdr) {
    throw ElfFormatError("e_shentsize " + std::to_string(header.shentsize));
  }
  // Section 0 carries the real count and name-table index when they do not
  // fit the 16-bit header fields.
  reader.require(header.shoff, sizes.shdr, "section header 0");
  uint64_t size_field = header.shoff + 8 + 3 * sizes.word;
  uint64_t link_field = size_field + sizes.word;
  header.shnum = header.raw_shnum != 0 ? header.raw_shnum
                                       : reader.word(elf_class, size_field);
  header.shstrndx = header.raw_shstrndx == SHN_XINDEX ? reader.u32(link_field)
                                                      : header.raw_shstrndx;
  if (header.shnum > bytes.size() / sizes.shdr) {
    throw ElfFormatError("section count " + std::to_string(header.shnum));
  }
  reader.require(header.shoff, header.shnum * sizes.shdr, "section headers");

  std::vector<uint32_t> name_offsets;
  for (size_t i = 0; i < header.shnum; ++i) {
    uint64_t base = header.shoff + i * sizes.shdr;
    BuiltSection section;
    section.index = i;
    name_offsets.push_back(reader.u32(base));
    section.type = reader.u32(base + 4);
    uint64_t word_at = base + 8;
    section.flags = reader.word(elf_class, word_at);
    section.addr = reader.word(elf_class, word_at + sizes.word);
    section.offset = reader.word(elf_class, word_at + 2 * sizes.word);
    section.size = reader.word(elf_class, word_at + 3 * sizes.word);
    uint64_t after = word_at + 4 * sizes.word;
    section.link = reader.u32(after);
    section.info = reader.u32(after + 4);
    section.addralign = reader.word(elf_class, after + 8);
    section.entsize = reader.word(elf_class, after + 8 + sizes.word);
    layout.sections.push_back(std::move(section));
  }
  if (header.shstrndx >= layout.sections.size()) {
    throw ElfFormatError("e_shstrndx " + std::to_string(header.shstrndx));
  }
  const BuiltSection& names = layout.sections[header.shstrndx];
  std::string_view table =
      reader.slice(names.offset, names.size, "section-name table");
  for (BuiltSection& section : layout.sections) {
    uint32_t offset = name_offsets[section.index];
    size_t end = table.find('\0', offset);
    if (offset >= table.size() || end == std::string_view::npos) {
      throw ElfFormatError("section " + std::to_string(section.index) +
                           " has a name outside the name table");
    }
    section.name = std::string(table.substr(offset, end - offset));
  }
  return layout;
}

std::vector<RawRelocation> decode_relocations(const ElfHeader& header,
                                              uint32_t section_type,
                                              std::string_view data) {
  bool with_addends = section_type == SHT_RELA;
  size_t entry_size = relocation_entry_size(header.elf_class, with_addends);
  if (data.size() % entry_size != 0) {
    throw ElfFormatError("relocation section size " +
                         std::to_string(data.size()) +
                         " is not a multiple of " + std::to_string(entry_size));
  }
  Reader reader(data, header.byte_order);
  size_t word = sizes_of(header.elf_class).word;
  std::vector<RawRelocation> entries;
  for (size_t at = 0; at < data.size(); at += entry_size) {
    RawRelocation entry;
    entry.offset = reader.word(header.elf_class, at);
    uint64_t info = reader.word(header.elf_class, at + word);
    if (header.elf_class == ElfClass::elf64) {
      entry.symbol = static_cast<uint32_t>(info >> 32);
      entry.type = static_cast<uint32_t>(info & 0xffffffff);
    } else {
      entry.symbol = static_cast<uint32_t>(info >> 8);
      entry.type = static_cast<uint32_t>(info & 0xff);
    }
    if (with_addends) {
      uint64_t raw = reader.word(header.elf_class, at + 2 * word);
      entry.addend = header.elf_class == ElfClass::elf64
                         ? static_cast<int64_t>(raw)
                         : static_cast<int32_t>(static_cast<uint32_t>(raw));
    }
    entries.push_back(entry);
  }
  return entries;
}

// --- ElfBuilder ---

ElfBuilder::ElfBuilder(ElfClass elf_class,
                       ByteOrder byte_order,
                       uint16_t machine,
                       uint16_t type)
    : m_class(elf_class), m_order(byte_order), m_machine(machine),
      m_type(type) {}

ElfBuilder& ElfBuilder::add_section(SectionSpec section) {
  m_sections.push_back(std::move(section));
  return *this;
}

ElfBuilder& ElfBuilder::add_symbol(SymbolSpec symbol) {
  m_symbols.push_back(std::move(symbol));
  return *this;
}

ElfBuilder& ElfBuilder::add_relocations(std::string name,
                                        std::string target,
                                        bool with_addends,
                                        std::vector<RelocationSpec> relocations,
                                        uint64_t flags) {
  SectionSpec section;
  section.name = std::move(name);
  section.type = with_addends ? SHT_RELA : SHT_REL;
  section.flags = flags;
  section.addralign = sizes_of(m_class).word;
  section.entsize = relocation_entry_size(m_class, with_addends);
  section.link_to = ".symtab";
  section.info_to = std::move(target);
  m_relocations.push_back(
      {m_sections.size(), with_addends, std::move(relocations)});
  m_sections.push_back(std::move(section));
  return *this;
}

ElfBuilder& ElfBuilder::add_segment(SegmentSpec segment) {
  m_segments.push_back(std::move(segment));
  return *this;
}

ElfBuilder& ElfBuilder::set_entry(uint64_t entry) {
  m_entry = entry;
  return *this;
}

ElfBuilder& ElfBuilder::set_section_symbols(bool enabled) {
  m_section_symbols = enabled;
  return *this;
}

ElfImage ElfBuilder::build() const {
  ClassSizes sizes = sizes_of(m_class);
  ElfImage image;

  // Number the sections: the caller's first, then the tables built here.
  std::map<std::string, size_t, std::less<>> index_of;
  auto number = [&](const std::string& name, size_t index) {
    index_of.emplace(name, index);
  };
  size_t user_count = m_sections.size();
  for (size_t i = 0; i < user_count; ++i) {
    number(m_sections[i].name, i + 1);
  }
  auto section_index = [&](std::string_view name) -> size_t {
    auto found = index_of.find(name);
    if (found == index_of.end()) {
      throw std::invalid_argument("no section named " + std::string(name));
    }
    return found->second;
  };

  // Only sections the caller added carry symbols, so whether any symbol
  // needs SHN_XINDEX is known before the trailing tables are numbered.
  bool has_symtab = m_section_symbols || !m_symbols.empty();
  bool needs_xindex = m_section_symbols && user_count >= SHN_LORESERVE;
  for (const SymbolSpec& symbol : m_symbols) {
    if (!symbol.section.empty() &&
        section_index(symbol.section) >= SHN_LORESERVE) {
      needs_xindex = true;
    }
  }
  size_t next = user_count + 1;
  size_t symtab_index = 0;
  size_t xindex_index = 0;
  size_t strtab_index = 0;
  if (has_symtab) {
    symtab_index = next++;
    number(".symtab", symtab_index);
    if (needs_xindex) {
      xindex_index = next++;
      number(".symtab_shndx", xindex_index);
    }
    strtab_index = next++;
    number(".strtab", strtab_index);
  }
  size_t shstrtab_index = next++;
  number(".shstrtab", shstrtab_index);
  size_t section_count = next;

  // Symbols: null, section symbols, named locals, then the rest, as the
  // gABI wants locals first (sh_info is the first non-local).
  std::vector<BuiltSymbol>& symbols = image.symbols;
  symbols.emplace_back();
  std::map<std::string, size_t, std::less<>> symbol_of;
  auto add_built = [&](BuiltSymbol symbol, const std::string& key) {
    symbol.index = symbols.size();
    symbol_of.emplace(key, symbol.index);
    symbols.push_back(std::move(symbol));
  };
  if (m_section_symbols) {
    for (size_t i = 0; i < user_count; ++i) {
      BuiltSymbol symbol;
      symbol.value = m_sections[i].addr;
      symbol.info = st_info(STB_LOCAL, STT_SECTION);
      symbol.shndx = static_cast<uint32_t>(i + 1);
      symbol.section = m_sections[i].name;
      add_built(std::move(symbol), "section:" + m_sections[i].name);
    }
  }
  size_t first_global = 0;
  for (bool locals : {true, false}) {
    if (!locals) {
      first_global = symbols.size();
    }
    for (const SymbolSpec& spec : m_symbols) {
      if ((spec.bind == STB_LOCAL) != locals) {
        continue;
      }
      BuiltSymbol symbol;
      symbol.name = spec.name;
      symbol.value = spec.value;
      symbol.size = spec.size;
      symbol.info = st_info(spec.bind, spec.type);
      symbol.other = spec.other;
      if (spec.section.empty()) {
        symbol.shndx = spec.special;
      } else {
        symbol.shndx = static_cast<uint32_t>(section_index(spec.section));
        symbol.section = spec.section;
      }
      add_built(std::move(symbol), spec.name);
    }
  }
  for (BuiltSymbol& symbol : symbols) {
    bool real_index = !symbol.section.empty();
    symbol.raw_shndx = real_index && symbol.shndx >= SHN_LORESERVE
                           ? static_cast<uint16_t>(SHN_XINDEX)
                           : static_cast<uint16_t>(symbol.shndx);
  }

  // Section headers and contents, addresses as described.
  std::vector<BuiltSection>& sections = image.sections;
  sections.resize(section_count);
  for (size_t i = 0; i < user_count; ++i) {
    const SectionSpec& spec = m_sections[i];
    BuiltSection& section = sections[i + 1];
    section.name = spec.name;
    section.type = spec.type;
    section.flags = spec.flags;
    section.addr = spec.addr;
    section.addralign = spec.addralign;
    section.entsize = spec.entsize;
    section.link = spec.link_to.empty()
                       ? spec.link
                       : static_cast<uint32_t>(section_index(spec.link_to));
    section.info = spec.info_to.empty()
                       ? spec.info
                       : static_cast<uint32_t>(section_index(spec.info_to));
    if (spec.type == SHT_NOBITS) {
      section.size = spec.nobits_size;
    } else {
      section.data = spec.data;
    }
  }
  for (const RelocationTable& table : m_relocations) {
    std::vector<RawRelocation> entries;
    for (const RelocationSpec& spec : table.entries) {
      auto found = symbol_of.find(spec.symbol);
      if (found == symbol_of.end()) {
        throw std::invalid_argument("relocation against unknown symbol " +
                                    spec.symbol);
      }
      entries.push_back({spec.offset, static_cast<uint32_t>(found->second),
                         spec.type, spec.addend});
    }
    sections[table.section + 1].data =
        encode_relocations(m_class, m_order, table.with_addends, entries);
  }

  std::string strings(1, '\0');
  std::vector<uint32_t> symbol_names(symbols.size(), 0);
  for (size_t i = 0; i < symbols.size(); ++i) {
    if (!symbols[i].name.empty()) {
      symbol_names[i] = static_cast<uint32_t>(strings.size());
      strings += symbols[i].name;
      strings += '\0';
    }
  }
  if (has_symtab) {
    BuiltSection& symtab = sections[symtab_index];
    symtab.name = ".symtab";
    symtab.type = SHT_SYMTAB;
    symtab.link = static_cast<uint32_t>(strtab_index);
    symtab.info = static_cast<uint32_t>(first_global);
    symtab.addralign = sizes.word;
    symtab.entsize = sizes.sym;
    symtab.data.assign(symbols.size() * sizes.sym, '\0');
    Writer writer(symtab.data, m_class, m_order);
    for (size_t i = 0; i < symbols.size(); ++i) {
      const BuiltSymbol& symbol = symbols[i];
      writer.u32(symbol_names[i]);
      if (m_class == ElfClass::elf64) {
        writer.u8(symbol.info);
        writer.u8(symbol.other);
        writer.u16(symbol.raw_shndx);
        writer.u64(symbol.value);
        writer.u64(symbol.size);
      } else {
        writer.word(symbol.value);
        writer.word(symbol.size);
        writer.u8(symbol.info);
        writer.u8(symbol.other);
        writer.u16(symbol.raw_shndx);
      }
    }
    if (needs_xindex) {
      BuiltSection& xindex = sections[xindex_index];
      xindex.name = ".symtab_shndx";
      xindex.type = SHT_SYMTAB_SHNDX;
      xindex.link = static_cast<uint32_t>(symtab_index);
      xindex.addralign = 4;
      xindex.entsize = 4;
      xindex.data.assign(symbols.size() * 4, '\0');
      Writer shndx_writer(xindex.data, m_class, m_order);
      for (const BuiltSymbol& symbol : symbols) {
        shndx_writer.u32(symbol.raw_shndx == SHN_XINDEX ? symbol.shndx : 0);
      }
    }
    BuiltSection& strtab = sections[strtab_index];
    strtab.name = ".strtab";
    strtab.type = SHT_STRTAB;
    strtab.addralign = 1;
    strtab.data = strings;
  }
  BuiltSection& shstrtab = sections[shstrtab_index];
  shstrtab.name = ".shstrtab";
  shstrtab.type = SHT_STRTAB;
  shstrtab.addralign = 1;
  std::vector<uint32_t> section_names(section_count, 0);
  std::string& names = shstrtab.data;
  names.assign(1, '\0');
  for (size_t i = 1; i < section_count; ++i) {
    section_names[i] = static_cast<uint32_t>(names.size());
    names += sections[i].name;
    names += '\0';
  }

  // File layout: header, program headers, section contents in index
  // order, section headers. An allocated section's offset is congruent to
  // its address modulo the page size, so sections laid out back to back in
  // memory are back to back in the file too and a PT_LOAD can cover them.
  uint64_t cursor = sizes.ehdr;
  uint64_t phoff = m_segments.empty() ? 0 : cursor;
  cursor += m_segments.size() * sizes.phdr;
  for (size_t i = 1; i < section_count; ++i) {
    BuiltSection& section = sections[i];
    section.index = i;
    if (section.type != SHT_NOBITS) {
      section.size = section.data.size();
    }
    uint64_t offset = align_up(cursor, section.addralign);
    if (section.type == SHT_NOBITS) {
      // Where its bytes would start, as GNU ld puts it: the end of the file
      // data before it, inside the segment that maps it.
      offset = cursor;
    } else if ((section.flags & SHF_ALLOC) != 0) {
      if (section.addralign > k_page) {
        throw std::invalid_argument("alignment above a page: " + section.name);
      }
      offset = cursor + ((section.addr - cursor) % k_page);
    }
    section.offset = offset;
    if (section.type != SHT_NOBITS) {
      cursor = offset + section.size;
    }
  }
  uint64_t shoff = align_up(cursor, sizes.word);
  uint64_t file_size = shoff + section_count * sizes.shdr;

  for (const SegmentSpec& spec : m_segments) {
    if (spec.sections.empty()) {
      throw std::invalid_argument("segment without sections");
    }
    const BuiltSection& first = sections[section_index(spec.sections[0])];
    BuiltSegment segment;
    segment.type = spec.type;
    segment.flags = spec.flags;
    segment.offset = first.offset;
    segment.vaddr = first.addr;
    segment.paddr = spec.paddr.value_or(first.addr);
    segment.align = spec.align;
    for (const std::string& name : spec.sections) {
      const BuiltSection& section = sections[section_index(name)];
      if (section.type != SHT_NOBITS) {
        if (section.offset - segment.offset != section.addr - segment.vaddr) {
          throw std::invalid_argument("segment not contiguous at " + name);
        }
        segment.filesz = std::max(
            segment.filesz, section.offset + section.size - segment.offset);
      }
      segment.memsz =
          std::max(segment.memsz, section.addr + section.size - segment.vaddr);
    }
    if (spec.type != PT_LOAD) {
      segment.memsz = segment.filesz;
    }
    image.segments.push_back(segment);
  }

  // Extended numbering (gABI): e_shnum 0 and e_shstrndx SHN_XINDEX, the
  // real values in section 0's sh_size and sh_link.
  bool extended_count = section_count >= SHN_LORESERVE;
  bool extended_names = shstrtab_index >= SHN_LORESERVE;
  if (extended_count) {
    sections[0].size = section_count;
  }
  if (extended_names) {
    sections[0].link = static_cast<uint32_t>(shstrtab_index);
  }

  ElfHeader& header = image.header;
  header.elf_class = m_class;
  header.byte_order = m_order;
  header.type = m_type;
  header.machine = m_machine;
  header.entry = m_entry;
  header.phoff = phoff;
  header.shoff = shoff;
  header.phentsize = static_cast<uint16_t>(sizes.phdr);
  header.shentsize = static_cast<uint16_t>(sizes.shdr);
  header.raw_shnum = extended_count ? 0 : static_cast<uint16_t>(section_count);
  header.raw_shstrndx = extended_names ? static_cast<uint16_t>(SHN_XINDEX)
                                       : static_cast<uint16_t>(shstrtab_index);
  header.shnum = section_count;
  header.shstrndx = shstrtab_index;

  std::string& bytes = image.bytes;
  bytes.assign(file_size, '\0');
  Writer writer(bytes, m_class, m_order);
  writer.bytes(std::string_view(ELFMAG, SELFMAG));
  writer.u8(m_class == ElfClass::elf64 ? ELFCLASS64 : ELFCLASS32);
  writer.u8(m_order == ByteOrder::little ? ELFDATA2LSB : ELFDATA2MSB);
  writer.u8(EV_CURRENT);
  writer.u8(ELFOSABI_NONE);
  writer.seek(EI_NIDENT);
  writer.u16(header.type);
  writer.u16(header.machine);
  writer.u32(EV_CURRENT);
  writer.word(header.entry);
  writer.word(header.phoff);
  writer.word(header.shoff);
  writer.u32(header.flags);
  writer.u16(static_cast<uint16_t>(sizes.ehdr));
  writer.u16(header.phentsize);
  writer.u16(static_cast<uint16_t>(image.segments.size()));
  writer.u16(header.shentsize);
  writer.u16(header.raw_shnum);
  writer.u16(header.raw_shstrndx);

  writer.seek(phoff);
  for (const BuiltSegment& segment : image.segments) {
    write_segment(writer, m_class, segment);
  }
  for (const BuiltSection& section : sections) {
    if (section.type != SHT_NOBITS && !section.data.empty()) {
      writer.seek(section.offset);
      writer.bytes(section.data);
    }
  }
  writer.seek(shoff);
  for (size_t i = 0; i < section_count; ++i) {
    write_section_header(writer, sections[i], section_names[i]);
  }
  return image;
}

// --- Section contents ---

std::string encode_u16(ByteOrder order, uint16_t value) {
  return encode(order, value, 2);
}

std::string encode_u32(ByteOrder order, uint32_t value) {
  return encode(order, value, 4);
}

std::string encode_u64(ByteOrder order, uint64_t value) {
  return encode(order, value, 8);
}

std::string encode_word(ElfClass elf_class, ByteOrder order, uint64_t value) {
  return elf_class == ElfClass::elf64
             ? encode_u64(order, value)
             : encode_u32(order, static_cast<uint32_t>(value));
}

std::string encode_note(ByteOrder order,
                        std::string_view name,
                        uint32_t type,
                        std::string_view desc) {
  std::string note;
  note += encode_u32(order, static_cast<uint32_t>(name.size() + 1));
  note += encode_u32(order, static_cast<uint32_t>(desc.size()));
  note += encode_u32(order, type);
  note += name;
  note += '\0';
  note.resize(align_up(note.size(), 4), '\0');
  note += desc;
  note.resize(align_up(note.size(), 4), '\0');
  return note;
}

std::string hex_to_bytes(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') {
      return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
      return c - 'a' + 10;
    }
    throw std::invalid_argument("not lower-case hex: " + std::string(1, c));
  };
  if (hex.size() % 2 != 0) {
    throw std::invalid_argument("odd-length hex string");
  }
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    out += static_cast<char>(nibble(hex[i]) * 16 + nibble(hex[i + 1]));
  }
  return out;
}

std::string make_btf(ByteOrder order, std::string_view payload) {
  // struct btf_header: magic, version, flags, hdr_len, then the type and
  // string sections' offsets and lengths, relative to the header's end.
  static constexpr std::string_view k_strings("\0int\0long\0", 10);
  std::string blob;
  blob += encode_u16(order, 0xeb9f);
  blob += '\x01';
  blob += '\0';
  blob += encode_u32(order, 24);
  blob += encode_u32(order, 0);
  blob += encode_u32(order, static_cast<uint32_t>(payload.size()));
  blob += encode_u32(order, static_cast<uint32_t>(payload.size()));
  blob += encode_u32(order, static_cast<uint32_t>(k_strings.size()));
  blob += payload;
  blob += k_strings;
  return blob;
}

std::string gzip(std::string_view text) {
  z_stream stream{};
  // 15 window bits plus 16 asks zlib for the gzip wrapper the kernel's
  // build writes (a zero mtime, so the output is deterministic).
  if (deflateInit2(&stream, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::string out(deflateBound(&stream, text.size()) + 32, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  stream.avail_in = static_cast<uInt>(text.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  int status = deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  if (status != Z_STREAM_END) {
    throw std::runtime_error("deflate did not finish");
  }
  return out;
}

std::string pattern_bytes(size_t size, unsigned seed) {
  std::string out(size, '\0');
  uint32_t state = seed * 2654435761u + 0x9e3779b9u;
  for (char& byte : out) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    byte = static_cast<char>(state & 0xff);
  }
  return out;
}

// --- The vmlinux-like preset ---

namespace {

struct MachineRelocations {
  bool with_addends;
  uint32_t word; // an absolute relocation of the class's address size
  uint32_t abs32;
};

MachineRelocations relocations_for(uint16_t machine, ElfClass elf_class) {
  switch (machine) {
  case EM_X86_64:
    return {true, R_X86_64_64, R_X86_64_32};
  case EM_AARCH64:
    return {true, R_AARCH64_ABS64, R_AARCH64_ABS32};
  case EM_S390:
    return elf_class == ElfClass::elf64
               ? MachineRelocations{true, R_390_64, R_390_32}
               : MachineRelocations{true, R_390_32, R_390_32};
  case EM_386:
    return {false, R_386_32, R_386_32};
  case EM_PPC:
    return {true, R_PPC_ADDR32, R_PPC_ADDR32};
  case EM_PPC64:
    return {true, R_PPC64_ADDR64, R_PPC64_ADDR32};
  case EM_ARM:
    return {false, R_ARM_ABS32, R_ARM_ABS32};
  default:
    throw std::invalid_argument("no relocation types for machine " +
                                std::to_string(machine));
  }
}

SectionSpec data_section(std::string name,
                         uint32_t type,
                         uint64_t flags,
                         uint64_t addr,
                         uint64_t addralign,
                         std::string data,
                         uint64_t entsize = 0) {
  SectionSpec spec;
  spec.name = std::move(name);
  spec.type = type;
  spec.flags = flags;
  spec.addr = addr;
  spec.addralign = addralign;
  spec.entsize = entsize;
  spec.data = std::move(data);
  return spec;
}

SectionSpec nobits_section(std::string name,
                           uint64_t flags,
                           uint64_t addr,
                           uint64_t addralign,
                           uint64_t size) {
  SectionSpec spec = data_section(std::move(name), SHT_NOBITS, flags, addr,
                                  addralign, std::string());
  spec.nobits_size = size;
  return spec;
}

SymbolSpec defined_symbol(std::string name,
                          std::string section,
                          uint64_t value,
                          uint64_t size = 0,
                          unsigned char type = STT_NOTYPE,
                          unsigned char bind = STB_GLOBAL,
                          unsigned char other = STV_DEFAULT) {
  SymbolSpec spec;
  spec.name = std::move(name);
  spec.section = std::move(section);
  spec.value = value;
  spec.size = size;
  spec.type = type;
  spec.bind = bind;
  spec.other = other;
  return spec;
}

SymbolSpec special_symbol(std::string name,
                          uint16_t shndx,
                          uint64_t value,
                          uint64_t size,
                          unsigned char type,
                          unsigned char bind = STB_GLOBAL) {
  SymbolSpec spec =
      defined_symbol(std::move(name), std::string(), value, size, type, bind);
  spec.special = shndx;
  return spec;
}

SegmentSpec segment_spec(uint32_t type,
                         uint32_t flags,
                         std::vector<std::string> sections,
                         uint64_t align = k_page,
                         std::optional<uint64_t> paddr = std::nullopt) {
  SegmentSpec spec;
  spec.type = type;
  spec.flags = flags;
  spec.sections = std::move(sections);
  spec.align = align;
  spec.paddr = paddr;
  return spec;
}

std::string relocation_prefix(uint16_t machine) {
  return relocations_for(machine, ElfClass::elf64).with_addends ? ".rela"
                                                                : ".rel";
}

} // namespace

std::string text_relocation_name(uint16_t machine) {
  return relocation_prefix(machine) + ".text";
}

std::string debug_relocation_name(uint16_t machine) {
  return relocation_prefix(machine) + ".debug_info";
}

std::string default_config_text() {
  return "#\n"
         "# Automatically generated file; DO NOT EDIT.\n"
         "# Linux/x86 6.1.0 Kernel Configuration\n"
         "#\n"
         "CONFIG_CC_VERSION_TEXT=\"gcc (Debian 12.2.0-14) 12.2.0\"\n"
         "CONFIG_LOCALVERSION=\"-ktcache\"\n"
         "# CONFIG_HZ_100 is not set\n"
         "CONFIG_HZ_1000=y\n"
         "CONFIG_HZ=1000\n"
         "CONFIG_IKCONFIG=y\n"
         "CONFIG_IKCONFIG_PROC=y\n"
         "CONFIG_DEBUG_INFO_BTF=y\n"
         "# CONFIG_X is not set\n"
         "CONFIG_NR_CPUS=64\n";
}

std::string default_build_id() {
  return "0123456789abcdef00112233445566778899aabb";
}

ElfImage build_vmlinux(const VmlinuxOptions& options) {
  ElfClass elf_class = options.elf_class;
  ByteOrder order = options.byte_order;
  bool is64 = elf_class == ElfClass::elf64;
  uint64_t word_size = is64 ? 8 : 4;
  MachineRelocations relocs = relocations_for(options.machine, elf_class);
  ElfBuilder builder(elf_class, order, options.machine);
  auto symbol = [&](SymbolSpec spec) {
    if (spec.name != options.omit_symbol) {
      builder.add_symbol(std::move(spec));
    }
  };

  // Text segment: .text, then as many one-function sections as asked for.
  uint64_t base = is64 ? 0xffffffff81000000 : 0xc1000000;
  uint64_t text_addr = base;
  std::string text = pattern_bytes(0x400, 11);
  // Zeroed slots the .rela.text entries patch (REL keeps addends here).
  std::fill_n(text.begin() + 0x100, 16, '\0');
  builder.add_section(data_section(
      ".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, text_addr, 16, text));
  symbol(defined_symbol("_stext", ".text", text_addr));
  symbol(defined_symbol("schedule", ".text", text_addr + 0x40, 0x80, STT_FUNC));
  symbol(defined_symbol("local_helper", ".text", text_addr + 0x200, 0x20,
                        STT_FUNC, STB_LOCAL));
  symbol(defined_symbol("arch_weak_hook", ".text", text_addr + 0x300, 0x10,
                        STT_FUNC, STB_WEAK));
  std::vector<std::string> text_segment{".text"};
  uint64_t cursor = text_addr + text.size();
  for (size_t i = 0; i < options.function_sections; ++i) {
    char suffix[32];
    std::snprintf(suffix, sizeof suffix, "fn_%05zu", i);
    std::string name = std::string(".text.") + suffix;
    builder.add_section(
        data_section(name, SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, cursor, 16,
                     pattern_bytes(16, static_cast<unsigned>(i))));
    symbol(defined_symbol(suffix, name, cursor, 16, STT_FUNC));
    text_segment.push_back(name);
    cursor += 16;
  }

  // Read-only segment: .rodata with the embedded config, BTF, the export
  // table and the notes.
  uint64_t rodata_addr = align_up(cursor, k_page);
  std::string banner = "Linux version 6.1.0-ktcache (fixture@builder) #1 SMP";
  std::string rodata = banner;
  rodata += '\0';
  rodata.resize(64, '\0');
  if (options.ikconfig != IkconfigMode::none) {
    std::string config = options.config_text.empty() ? default_config_text()
                                                     : options.config_text;
    std::string stream = gzip(config);
    if (options.ikconfig == IkconfigMode::corrupt_gzip) {
      // Past the 10-byte gzip header, 0xff bytes start a deflate block of
      // the reserved type 3: inflate fails at once, not at the CRC.
      std::fill(stream.begin() + 10, stream.end() - 8, '\xff');
    }
    uint64_t config_start = rodata_addr + rodata.size() + 8;
    rodata += "IKCFG_ST";
    rodata += stream;
    rodata += "IKCFG_ED";
    if (options.ikconfig != IkconfigMode::markers_only) {
      symbol(defined_symbol("kernel_config_data", ".rodata", config_start));
      symbol(defined_symbol("kernel_config_data_end", ".rodata",
                            config_start + stream.size()));
    }
  }
  rodata += pattern_bytes(0x40, 12);
  rodata.resize(align_up(rodata.size(), 16), '\0');
  builder.add_section(data_section(".rodata", SHT_PROGBITS, SHF_ALLOC,
                                   rodata_addr, 64, rodata));
  symbol(defined_symbol("linux_banner", ".rodata", rodata_addr,
                        banner.size() + 1, STT_OBJECT));
  cursor = rodata_addr + rodata.size();

  std::string btf = make_btf(order, pattern_bytes(0x180, options.btf_seed));
  uint64_t btf_addr = align_up(cursor, 4);
  builder.add_section(
      data_section(".BTF", SHT_PROGBITS, SHF_ALLOC, btf_addr, 4, btf));
  cursor = btf_addr + btf.size();

  uint64_t ksymtab_addr = align_up(cursor, 4);
  builder.add_section(data_section("__ksymtab", SHT_PROGBITS, SHF_ALLOC,
                                   ksymtab_addr, 4, pattern_bytes(36, 13)));
  symbol(defined_symbol("__ksymtab_schedule", "__ksymtab", ksymtab_addr, 12,
                        STT_OBJECT));
  cursor = ksymtab_addr + 36;

  std::string notes;
  if (options.build_id) {
    notes += encode_note(order, "GNU", NT_GNU_BUILD_ID,
                         hex_to_bytes(*options.build_id));
  }
  // An ABI tag (Linux 6.1.0) too, so a file without build-id still has a
  // note section; Linux's own "Linux" notes would make eu-elflint complain.
  std::string abi_tag = encode_u32(order, 0);
  abi_tag += encode_u32(order, 6);
  abi_tag += encode_u32(order, 1);
  abi_tag += encode_u32(order, 0);
  notes += encode_note(order, "GNU", NT_GNU_ABI_TAG, abi_tag);
  uint64_t notes_addr = align_up(cursor, 4);
  builder.add_section(data_section(options.note_section, SHT_NOTE, SHF_ALLOC,
                                   notes_addr, 4, notes));
  cursor = notes_addr + notes.size();

  // Data segment, then the per-CPU template linked at address 0 in a
  // segment of its own (as x86_64 SMP kernels do).
  uint64_t data_addr = align_up(cursor, k_page);
  std::string data = pattern_bytes(0x200, 14);
  std::fill_n(data.begin() + 0x40, 8, '\0');
  builder.add_section(data_section(".data", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE,
                                   data_addr, 64, data));
  symbol(defined_symbol("jiffies", ".data", data_addr + 0x40, 8, STT_OBJECT));
  symbol(defined_symbol("hidden_object", ".data", data_addr + 0x80, 8,
                        STT_OBJECT, STB_GLOBAL, STV_HIDDEN));
  uint64_t percpu_load = align_up(data_addr + data.size(), k_page);
  builder.add_section(data_section(".data..percpu", SHT_PROGBITS,
                                   SHF_ALLOC | SHF_WRITE, 0, 64,
                                   pattern_bytes(0x100, 15)));
  symbol(defined_symbol("runqueues", ".data..percpu", 0x40, 0x40, STT_OBJECT));

  uint64_t init_addr = align_up(percpu_load + 0x100, k_page);
  builder.add_section(data_section(".init.text", SHT_PROGBITS,
                                   SHF_ALLOC | SHF_EXECINSTR, init_addr, 16,
                                   pattern_bytes(0x100, 16)));
  symbol(defined_symbol("start_kernel", ".init.text", init_addr + 0x10, 0x40,
                        STT_FUNC));
  uint64_t init_data_addr = init_addr + 0x100;
  builder.add_section(data_section(".init.data", SHT_PROGBITS,
                                   SHF_ALLOC | SHF_WRITE, init_data_addr, 64,
                                   pattern_bytes(0x80, 20)));
  symbol(defined_symbol("boot_command_line", ".init.data", init_data_addr, 0x80,
                        STT_OBJECT));
  uint64_t bss_addr = init_data_addr + 0x80;
  builder.add_section(
      nobits_section(".bss", SHF_ALLOC | SHF_WRITE, bss_addr, 64, 0x2000));
  symbol(
      defined_symbol("empty_zero_page", ".bss", bss_addr, 0x1000, STT_OBJECT));

  // Symbols outside any section.
  symbol(
      special_symbol("vmlinux.fixture.c", SHN_ABS, 0, 0, STT_FILE, STB_LOCAL));
  symbol(special_symbol("__crc_schedule", SHN_ABS, 0x1234abcd, 0, STT_NOTYPE));
  if (options.common_symbol) {
    symbol(special_symbol("common_buffer", SHN_COMMON, 16, 64, STT_OBJECT));
  }

  // What a strip removes: comment, BTF.ext, DWARF and relocations.
  builder.add_section(
      data_section(".comment", SHT_PROGBITS, SHF_MERGE | SHF_STRINGS, 0, 1,
                   std::string("GCC: (Debian 12.2.0-14) 12.2.0\0", 31), 1));
  builder.add_section(data_section(".BTF.ext", SHT_PROGBITS, 0, 0, 4,
                                   make_btf(order, pattern_bytes(0x40, 17))));

  // A DWARF 4 unit header, then three attributes the relocations below
  // fill: DW_AT_producer (strp), DW_AT_low_pc (address), DW_AT_stmt_list.
  uint64_t producer_at = 11;
  uint64_t low_pc_at = producer_at + 4;
  uint64_t stmt_list_at = low_pc_at + word_size;
  // unit_length, version, debug_abbrev_offset (0), address_size, then the
  // attribute slots (one more for a relocation against a named symbol).
  std::string info = encode_u32(order, 0);
  info += encode_u16(order, 4);
  info += encode_u32(order, 0);
  info += static_cast<char>(word_size);
  info.resize(stmt_list_at + 8, '\0');
  info += pattern_bytes(0x40, 18);
  std::string unit_length =
      encode_u32(order, static_cast<uint32_t>(info.size() - 4));
  std::copy(unit_length.begin(), unit_length.end(), info.begin());
  builder.add_section(data_section(".debug_info", SHT_PROGBITS, 0, 0, 1, info));
  builder.add_section(data_section(
      ".debug_abbrev", SHT_PROGBITS, 0, 0, 1,
      std::string("\x01\x11\x01\x25\x0e\x11\x01\x10\x17\0\0\0", 12)));
  builder.add_section(
      data_section(".debug_str", SHT_PROGBITS, SHF_MERGE | SHF_STRINGS, 0, 1,
                   std::string("GNU C17 12.2.0\0schedule\0jiffies\0", 32), 1));
  std::string line = encode_u32(order, 0x3e);
  line += encode_u16(order, 4);
  line += pattern_bytes(0x3c, 19);
  builder.add_section(data_section(".debug_line", SHT_PROGBITS, 0, 0, 1, line));

  builder.add_relocations(
      text_relocation_name(options.machine), ".text", relocs.with_addends,
      {{text_addr + 0x100, "section:.rodata", relocs.word, 0x20},
       {text_addr + 0x100 + word_size, "section:.data", relocs.word, 0x40}});
  std::vector<RelocationSpec> debug_relocations{
      {producer_at, "section:.debug_str", relocs.abs32, 0},
      {low_pc_at, "section:.text", relocs.word, 0x40},
      {stmt_list_at, "section:.debug_line", relocs.abs32, 0}};
  if (options.omit_symbol != "schedule") {
    debug_relocations.push_back(
        {stmt_list_at + 4, "schedule", relocs.abs32, 0});
  }
  builder.add_relocations(debug_relocation_name(options.machine), ".debug_info",
                          relocs.with_addends, std::move(debug_relocations));

  builder.add_segment(segment_spec(PT_LOAD, PF_R | PF_X, text_segment));
  builder.add_segment(segment_spec(
      PT_LOAD, PF_R, {".rodata", ".BTF", "__ksymtab", options.note_section}));
  builder.add_segment(segment_spec(PT_LOAD, PF_R | PF_W, {".data"}));
  builder.add_segment(segment_spec(PT_LOAD, PF_R | PF_W, {".data..percpu"},
                                   0x1000, percpu_load));
  builder.add_segment(segment_spec(PT_LOAD, PF_R | PF_W | PF_X,
                                   {".init.text", ".init.data", ".bss"}));
  builder.add_segment(segment_spec(PT_NOTE, PF_R, {options.note_section}, 4));
  builder.set_entry(text_addr);
  return builder.build();
}

std::vector<Fixture> valid_fixtures() {
  std::vector<Fixture> fixtures;
  auto add = [&](std::string name, VmlinuxOptions options) {
    fixtures.push_back({std::move(name), std::move(options)});
  };
  VmlinuxOptions x86_64;
  x86_64.build_id = default_build_id();
  add("x86_64-elf64-lsb", x86_64);

  VmlinuxOptions aarch64 = x86_64;
  aarch64.machine = EM_AARCH64;
  aarch64.note_section = ".note.gnu.build-id";
  aarch64.build_id = "aa64aa64aa64aa64aa64aa64aa64aa64aa64aa64";
  add("aarch64-elf64-lsb", aarch64);

  VmlinuxOptions s390x = x86_64;
  s390x.machine = EM_S390;
  s390x.byte_order = ByteOrder::big;
  s390x.build_id = "5390539053905390539053905390539053905390";
  add("s390x-elf64-msb", s390x);

  VmlinuxOptions i386 = x86_64;
  i386.machine = EM_386;
  i386.elf_class = ElfClass::elf32;
  i386.build_id = "38633863386338633863";
  add("i386-elf32-lsb", i386);

  VmlinuxOptions ppc = x86_64;
  ppc.machine = EM_PPC;
  ppc.elf_class = ElfClass::elf32;
  ppc.byte_order = ByteOrder::big;
  ppc.build_id = "0ec00ec00ec00ec00ec00ec00ec00ec00ec00ec0";
  add("ppc-elf32-msb", ppc);

  // 65,400 function sections keep even a stripped copy above SHN_LORESERVE
  // sections; 65,263 put the input just above it (65,285 sections) and
  // either policy's output just below, so the writer must switch back to
  // plain numbering.
  VmlinuxOptions many = x86_64;
  many.function_sections = 65'400;
  add("x86_64-elf64-lsb-many-sections", many);

  VmlinuxOptions crossing = ppc;
  crossing.function_sections = 65'263;
  add("ppc-elf32-msb-many-sections", crossing);

  VmlinuxOptions markers = x86_64;
  markers.ikconfig = IkconfigMode::markers_only;
  add("x86_64-ikconfig-markers-only", markers);

  VmlinuxOptions bare = x86_64;
  bare.build_id.reset();
  bare.ikconfig = IkconfigMode::none;
  add("x86_64-no-build-id-no-config", bare);
  return fixtures;
}

// --- Malformed variants ---

namespace {

// Field offsets of the headers, per class.
struct HeaderFields {
  uint64_t phoff;
  uint64_t shoff;
  uint64_t shentsize;
  uint64_t shstrndx;
  // Within a section header.
  uint64_t sh_name;
  uint64_t sh_offset;
  uint64_t sh_size;
};

HeaderFields fields_of(ElfClass elf_class) {
  if (elf_class == ElfClass::elf64) {
    return {offsetof(Elf64_Ehdr, e_phoff),     offsetof(Elf64_Ehdr, e_shoff),
            offsetof(Elf64_Ehdr, e_shentsize), offsetof(Elf64_Ehdr, e_shstrndx),
            offsetof(Elf64_Shdr, sh_name),     offsetof(Elf64_Shdr, sh_offset),
            offsetof(Elf64_Shdr, sh_size)};
  }
  return {offsetof(Elf32_Ehdr, e_phoff),     offsetof(Elf32_Ehdr, e_shoff),
          offsetof(Elf32_Ehdr, e_shentsize), offsetof(Elf32_Ehdr, e_shstrndx),
          offsetof(Elf32_Shdr, sh_name),     offsetof(Elf32_Shdr, sh_offset),
          offsetof(Elf32_Shdr, sh_size)};
}

class Patcher {
public:
  explicit Patcher(const ElfImage& image)
      : m_image(image), m_fields(fields_of(image.header.elf_class)) {}

  std::string copy() const { return m_image.bytes; }

  void word(std::string& bytes, uint64_t at, uint64_t value) const {
    Writer writer(bytes, m_image.header.elf_class, m_image.header.byte_order);
    writer.seek(at);
    writer.word(value);
  }
  void u16(std::string& bytes, uint64_t at, uint16_t value) const {
    Writer writer(bytes, m_image.header.elf_class, m_image.header.byte_order);
    writer.seek(at);
    writer.u16(value);
  }
  void u32(std::string& bytes, uint64_t at, uint32_t value) const {
    Writer writer(bytes, m_image.header.elf_class, m_image.header.byte_order);
    writer.seek(at);
    writer.u32(value);
  }
  uint64_t header_of(std::string_view section) const {
    const BuiltSection* found = m_image.find(section);
    if (found == nullptr) {
      throw std::invalid_argument("no section " + std::string(section));
    }
    return header_at(found->index);
  }
  uint64_t header_at(size_t index) const {
    return m_image.header.shoff + index * m_image.header.shentsize;
  }
  const HeaderFields& fields() const { return m_fields; }
  uint64_t max_word() const {
    return m_image.header.elf_class == ElfClass::elf64 ? uint64_t{1} << 62
                                                       : 0xfffffff0;
  }

private:
  const ElfImage& m_image;
  HeaderFields m_fields;
};

} // namespace

std::vector<MalformedImage> malformed_variants(const ElfImage& valid) {
  std::vector<MalformedImage> variants;
  Patcher patch(valid);
  const HeaderFields& f = patch.fields();
  uint64_t file_size = valid.bytes.size();
  size_t ehdr_size = sizes_of(valid.header.elf_class).ehdr;
  auto add = [&](std::string name, std::string bytes,
                 FailsAt fails_at = FailsAt::open) {
    variants.push_back({std::move(name), std::move(bytes), fails_at});
  };

  add("empty-file", std::string());
  add("truncated-ident", valid.bytes.substr(0, 10));
  add("truncated-header", valid.bytes.substr(0, ehdr_size - 12));
  add("truncated-file", valid.bytes.substr(0, file_size / 2));

  std::string bytes = patch.copy();
  patch.word(bytes, f.shoff, file_size - valid.header.shentsize);
  add("section-headers-past-end", std::move(bytes));

  bytes = patch.copy();
  patch.word(bytes, f.phoff, file_size - 8);
  add("program-headers-past-end", std::move(bytes));

  bytes = patch.copy();
  patch.word(bytes, patch.header_of(".data") + f.sh_offset, file_size + 0x100);
  add("section-offset-past-end", std::move(bytes));

  bytes = patch.copy();
  patch.word(bytes, patch.header_of(".debug_info") + f.sh_size, file_size);
  add("section-size-past-end", std::move(bytes));

  bytes = patch.copy();
  patch.word(bytes, patch.header_of(".text") + f.sh_size, patch.max_word());
  add("huge-section-size", std::move(bytes));

  // .data moved onto the bytes of .rodata (both stay inside the file).
  bytes = patch.copy();
  patch.word(bytes, patch.header_of(".data") + f.sh_offset,
             valid.find(".rodata")->offset + 8);
  add("overlapping-sections", std::move(bytes));

  bytes = patch.copy();
  const BuiltSection& names = valid.sections[valid.header.shstrndx];
  bytes[names.offset + names.size - 1] = 'x';
  add("unterminated-section-names", std::move(bytes));

  bytes = patch.copy();
  patch.u32(bytes, patch.header_of(".text") + f.sh_name,
            static_cast<uint32_t>(names.size + 0x100));
  add("section-name-outside-table", std::move(bytes));

  bytes = patch.copy();
  patch.u16(bytes, f.shentsize,
            static_cast<uint16_t>(valid.header.shentsize - 1));
  add("wrong-shentsize", std::move(bytes));

  if (valid.header.raw_shnum != 0) {
    bytes = patch.copy();
    patch.u16(bytes, f.shstrndx, static_cast<uint16_t>(valid.header.shnum + 5));
    add("shstrndx-out-of-range", std::move(bytes));
  } else {
    // Extended numbering: the count in section 0 claims more headers than
    // the file holds.
    bytes = patch.copy();
    patch.word(bytes, patch.header_at(0) + f.sh_size, 0x7fffffff);
    add("extended-count-past-end", std::move(bytes));
  }

  const BuiltSymbol* schedule = valid.find_symbol("schedule");
  const BuiltSection* symtab = valid.find(".symtab");
  const BuiltSection* strtab = valid.find(".strtab");
  if (schedule != nullptr && symtab != nullptr && strtab != nullptr) {
    bytes = patch.copy();
    patch.u32(bytes, symtab->offset + schedule->index * symtab->entsize,
              static_cast<uint32_t>(strtab->size + 0x1000));
    add("symbol-name-outside-strtab", std::move(bytes), FailsAt::symbols);

    bytes = patch.copy();
    patch.word(bytes, patch.header_of(".symtab") + f.sh_size, symtab->size - 1);
    add("symtab-size-not-multiple", std::move(bytes), FailsAt::symbols);
  }
  return variants;
}

} // namespace ktc::test
