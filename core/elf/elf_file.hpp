#pragma once

// A read-only view of an ELF file, mapped (ELF_C_READ_MMAP) and checked
// once at open: headers inside the file, every section's bytes inside the
// file and apart from the others, a terminated section-name table. Section
// data is never copied or translated by this class: raw_data() points into
// the mapping, so sections nobody asks about are never touched.

#include "util/fd.hpp"
#include "util/result.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

typedef struct Elf Elf;

namespace ktc::elf {

// One section header, widened from either ELF class. `name` points into the
// mapping and lives as long as the ElfFile.
struct Section {
  size_t index = 0;
  std::string_view name;
  uint32_t type = 0;
  uint64_t flags = 0;
  uint64_t addr = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
  uint32_t link = 0;
  uint32_t info = 0;
  uint64_t addralign = 0;
  uint64_t entsize = 0;

  // True when the section occupies bytes of the file (not SHT_NOBITS, not
  // the null section, size non-zero).
  bool has_file_data() const;
};

// One symbol of .symtab, with its section index resolved through
// SHT_SYMTAB_SHNDX when it is SHN_XINDEX.
struct Symbol {
  std::string_view name;
  uint64_t value = 0;
  uint64_t size = 0;
  unsigned char info = 0;
  unsigned char other = 0;
  // The raw st_shndx (SHN_UNDEF, SHN_ABS, SHN_COMMON, SHN_XINDEX or an
  // index) and the index it stands for (equal unless SHN_XINDEX).
  uint32_t raw_shndx = 0;
  uint32_t shndx = 0;
};

class ElfFile {
public:
  // Opens and checks `path`. Errors (status invalid for a malformed file,
  // io for a system failure) name the file and the cause in one line.
  static Result<ElfFile> open(const std::string& path);

  ElfFile(ElfFile&& other) noexcept = default;
  ElfFile& operator=(ElfFile&& other) noexcept = default;
  ElfFile(const ElfFile&) = delete;
  ElfFile& operator=(const ElfFile&) = delete;
  ~ElfFile();

  const std::string& path() const { return m_path; }
  Elf* handle() const { return m_elf.get(); }
  // ELFCLASS32 or ELFCLASS64.
  int elf_class() const { return m_class; }
  // ELFDATA2LSB or ELFDATA2MSB.
  int byte_order() const { return m_byte_order; }
  uint16_t machine() const { return m_machine; }
  uint64_t file_size() const { return m_file_size; }
  // The whole file as mapped.
  std::span<const std::byte> bytes() const { return {m_base, m_file_size}; }

  // Every section, index 0 (the null section) included.
  const std::vector<Section>& sections() const { return m_sections; }
  size_t section_count() const { return m_sections.size(); }
  size_t shstrndx() const { return m_shstrndx; }
  size_t phdr_count() const { return m_phdr_count; }
  // The first section with that name.
  const Section* find(std::string_view name) const;
  // The section's bytes as they are in the file; empty for NOBITS.
  std::span<const std::byte> raw_data(const Section& section) const;

  // The .symtab's symbols (SHT_SYMTAB), index 0 included; empty when the
  // file has no symbol table. Checked: names inside the string table,
  // entry size and count consistent.
  Result<std::vector<Symbol>> symbols() const;
  // The index of the SHT_SYMTAB section, if any.
  std::optional<size_t> symtab_index() const { return m_symtab; }

  // Whether `section`'s bytes contain `needle`. Reads them with pread()
  // rather than through the mapping, so a search of large sections adds
  // nothing to the process's resident memory.
  Result<bool> section_contains(const Section& section,
                                std::string_view needle) const;

  // A slot for ikconfig_section_index(), which the strip engine and its
  // check both ask for: computed once per open file.
  std::optional<std::optional<size_t>>& ikconfig_cache() const {
    return m_ikconfig_cache;
  }

private:
  ElfFile() = default;
  Result<void> load();
  Result<void> check_sections();

  struct ElfEnd {
    void operator()(Elf* elf) const;
  };

  std::string m_path;
  Fd m_fd;
  // Declared after m_fd so that it is released first.
  std::unique_ptr<Elf, ElfEnd> m_elf;
  const std::byte* m_base = nullptr;
  uint64_t m_file_size = 0;
  int m_class = 0;
  int m_byte_order = 0;
  uint16_t m_machine = 0;
  size_t m_shstrndx = 0;
  size_t m_phdr_count = 0;
  std::optional<size_t> m_symtab;
  // The ELF header's size and the (offset, size) of the header tables.
  uint64_t m_header_size = 0;
  std::pair<uint64_t, uint64_t> m_phdr_range;
  std::pair<uint64_t, uint64_t> m_shdr_range;
  std::vector<Section> m_sections;
  mutable std::optional<std::optional<size_t>> m_ikconfig_cache;
};

// The GNU build-id (NT_GNU_BUILD_ID) of the file as lower-case hex, from
// the first SHT_NOTE section that holds one; nullopt when there is none.
Result<std::optional<std::string>> build_id(const ElfFile& file);

} // namespace ktc::elf
