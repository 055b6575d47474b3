#pragma once

// A minimal ELF64 little-endian writer for the IKCONFIG tests: a handful of
// sections, an optional symbol table, no program headers. It builds what
// kernel/configs.c leaves in a vmlinux: "IKCFG_ST" <gzip> "IKCFG_ED" in
// .rodata, bounded by kernel_config_data and kernel_config_data_end.
// Header-only; the test binaries that include it link zlib.

#include <elf.h>
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ktc::test::elf {

struct SectionSpec {
  std::string name;
  uint32_t type = SHT_PROGBITS;
  uint64_t flags = 0;
  uint64_t addr = 0;
  std::string data;
};

struct SymbolSpec {
  std::string name;
  uint64_t value = 0;
  // An index into the section list given to build() plus one (0 is the
  // null section), or SHN_ABS, SHN_UNDEF.
  uint16_t shndx = 0;
  unsigned char info = ELF64_ST_INFO(STB_GLOBAL, STT_OBJECT);
};

template <typename T>
void append_struct(std::string& out, const T& value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

inline void pad_to(std::string& out, size_t alignment) {
  while (out.size() % alignment != 0) {
    out.push_back('\0');
  }
}

// The sections, then .symtab and .strtab when there are symbols, then
// .shstrtab; section headers at the end.
inline std::string build(const std::vector<SectionSpec>& sections,
                         const std::vector<SymbolSpec>& symbols = {}) {
  std::vector<SectionSpec> all = sections;
  size_t symtab_index = 0;
  if (!symbols.empty()) {
    std::string strtab(1, '\0');
    std::string symtab(sizeof(Elf64_Sym), '\0');
    for (const SymbolSpec& symbol : symbols) {
      Elf64_Sym sym{};
      sym.st_name = static_cast<Elf64_Word>(strtab.size());
      sym.st_info = symbol.info;
      sym.st_shndx = symbol.shndx;
      sym.st_value = symbol.value;
      strtab += symbol.name;
      strtab.push_back('\0');
      append_struct(symtab, sym);
    }
    symtab_index = all.size() + 1;
    all.push_back({".symtab", SHT_SYMTAB, 0, 0, symtab});
    all.push_back({".strtab", SHT_STRTAB, 0, 0, strtab});
  }
  std::string shstrtab(1, '\0');
  std::vector<Elf64_Word> name_offsets;
  all.push_back({".shstrtab", SHT_STRTAB, 0, 0, {}});
  for (const SectionSpec& section : all) {
    name_offsets.push_back(static_cast<Elf64_Word>(shstrtab.size()));
    shstrtab += section.name;
    shstrtab.push_back('\0');
  }
  all.back().data = shstrtab;

  std::string out(sizeof(Elf64_Ehdr), '\0');
  std::vector<Elf64_Shdr> headers(all.size() + 1);
  for (size_t i = 0; i < all.size(); ++i) {
    pad_to(out, 8);
    Elf64_Shdr& shdr = headers[i + 1];
    shdr.sh_name = name_offsets[i];
    shdr.sh_type = all[i].type;
    shdr.sh_flags = all[i].flags;
    shdr.sh_addr = all[i].addr;
    shdr.sh_offset = out.size();
    shdr.sh_size = all[i].data.size();
    shdr.sh_addralign = all[i].type == SHT_STRTAB ? 1 : 8;
    if (all[i].type == SHT_SYMTAB) {
      shdr.sh_entsize = sizeof(Elf64_Sym);
      shdr.sh_link = static_cast<Elf64_Word>(symtab_index + 1);
      shdr.sh_info = 1; // every symbol but the null one is global
    }
    if (all[i].type != SHT_NOBITS) {
      out += all[i].data;
    }
  }
  pad_to(out, 8);
  uint64_t shoff = out.size();
  for (const Elf64_Shdr& shdr : headers) {
    append_struct(out, shdr);
  }

  Elf64_Ehdr ehdr{};
  std::memcpy(ehdr.e_ident, ELFMAG, SELFMAG);
  ehdr.e_ident[EI_CLASS] = ELFCLASS64;
  ehdr.e_ident[EI_DATA] = ELFDATA2LSB;
  ehdr.e_ident[EI_VERSION] = EV_CURRENT;
  ehdr.e_type = ET_EXEC;
  ehdr.e_machine = EM_X86_64;
  ehdr.e_version = EV_CURRENT;
  ehdr.e_ehsize = sizeof(Elf64_Ehdr);
  ehdr.e_shoff = shoff;
  ehdr.e_shentsize = sizeof(Elf64_Shdr);
  ehdr.e_shnum = static_cast<Elf64_Half>(headers.size());
  ehdr.e_shstrndx = static_cast<Elf64_Half>(headers.size() - 1);
  std::memcpy(out.data(), &ehdr, sizeof ehdr);
  return out;
}

// A gzip member (RFC 1952) holding `text`.
inline std::string gzip(std::string_view text) {
  z_stream stream{};
  if (deflateInit2(&stream, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::string out(deflateBound(&stream, static_cast<uLong>(text.size())), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  stream.avail_in = static_cast<uInt>(text.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  if (rc != Z_STREAM_END) {
    throw std::runtime_error("deflate did not finish");
  }
  return out;
}

inline constexpr uint64_t k_rodata_addr = 0xffffffff82000000ull;
inline constexpr uint64_t k_text_addr = 0xffffffff81000000ull;

// A small .config as the kernel writes it.
inline std::string sample_config() {
  return "#\n"
         "# Automatically generated file; DO NOT EDIT.\n"
         "# Linux/x86 6.14.2 Kernel Configuration\n"
         "#\n"
         "CONFIG_CC_VERSION_TEXT=\"gcc (Debian 12.2.0-14) 12.2.0\"\n"
         "CONFIG_LOCALVERSION=\"\"\n"
         "# CONFIG_LOCALVERSION_AUTO is not set\n"
         "CONFIG_HZ_1000=y\n"
         "CONFIG_HZ=1000\n"
         "CONFIG_IKCONFIG=y\n"
         "CONFIG_IKCONFIG_PROC=y\n"
         "CONFIG_SCHED_CLASS_EXT=y\n"
         "# CONFIG_DEBUG_INFO_NONE is not set\n";
}

struct VmlinuxSpec {
  // The bytes between the markers: gzip(config) unless replaced.
  std::string blob;
  bool with_markers = true;
  bool with_symbols = true;
  // Bytes of .rodata before "IKCFG_ST".
  std::string rodata_prefix = std::string(64, 'r');
  // Extra symbols (the kernel has many); kept when with_symbols is false.
  std::vector<SymbolSpec> extra_symbols;
};

// A vmlinux-like file: .text, .rodata with the blob, .data, and a symbol
// table (kernel_config_data and kernel_config_data_end when asked, plus
// `extra_symbols`).
inline std::string vmlinux(const VmlinuxSpec& spec) {
  std::string rodata = spec.rodata_prefix;
  uint64_t start = 0;
  uint64_t end = 0;
  if (spec.with_markers) {
    rodata += "IKCFG_ST";
    start = rodata.size();
    rodata += spec.blob;
    end = rodata.size();
    rodata += "IKCFG_ED";
  } else {
    rodata += spec.blob;
  }
  rodata += std::string(32, 's');
  std::vector<SectionSpec> sections = {
      {".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, k_text_addr,
       std::string(256, '\x90')},
      {".rodata", SHT_PROGBITS, SHF_ALLOC, k_rodata_addr, rodata},
      {".data", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, k_rodata_addr + 0x100000,
       std::string(128, 'd')},
  };
  std::vector<SymbolSpec> symbols = {
      {"_text", k_text_addr, 1, ELF64_ST_INFO(STB_GLOBAL, STT_FUNC)}};
  if (spec.with_symbols) {
    symbols.push_back({"kernel_config_data", k_rodata_addr + start, 2});
    symbols.push_back({"kernel_config_data_end", k_rodata_addr + end, 2});
  }
  symbols.insert(symbols.end(), spec.extra_symbols.begin(),
                 spec.extra_symbols.end());
  return build(sections, symbols);
}

// The common case: `config` embedded, located by symbols or by markers.
inline std::string vmlinux_with_config(std::string_view config,
                                       bool with_symbols = true) {
  VmlinuxSpec spec;
  spec.blob = gzip(config);
  spec.with_symbols = with_symbols;
  return vmlinux(spec);
}

// A vmlinux-like file built without CONFIG_IKCONFIG.
inline std::string vmlinux_without_config() {
  VmlinuxSpec spec;
  spec.with_markers = false;
  spec.with_symbols = false;
  return vmlinux(spec);
}

} // namespace ktc::test::elf
