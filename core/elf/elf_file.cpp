#include "elf/elf_file.hpp"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

namespace ktc::elf {
namespace {

void init_libelf() {
  static std::once_flag once;
  std::call_once(once, [] { (void)elf_version(EV_CURRENT); });
}

std::string libelf_error() {
  const char* text = elf_errmsg(-1);
  return text != nullptr ? text : "unknown libelf error";
}

// a + b <= limit, without overflow.
bool fits(uint64_t offset, uint64_t size, uint64_t limit) {
  return offset <= limit && size <= limit - offset;
}

} // namespace

bool Section::has_file_data() const {
  return index != 0 && type != SHT_NOBITS && type != SHT_NULL && size != 0;
}

Result<ElfFile> ElfFile::open(const std::string& path) {
  init_libelf();
  ElfFile file;
  file.m_path = path;
  // O_NONBLOCK: a FIFO given as input is refused below, not waited on.
  file.m_fd = Fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!file.m_fd) {
    return errno_error(errno, path);
  }
  struct stat st;
  if (::fstat(file.m_fd.get(), &st) != 0) {
    return errno_error(errno, path);
  }
  if (!S_ISREG(st.st_mode)) {
    return make_error(Status::invalid, "{}: not a regular file", path);
  }
  file.m_file_size = static_cast<uint64_t>(st.st_size);
  KTC_TRY(file.load());
  return file;
}

void ElfFile::ElfEnd::operator()(Elf* elf) const {
  elf_end(elf);
}

ElfFile::~ElfFile() = default;

Result<void> ElfFile::load() {
  // libelf reads e_ident before anything else; a file too short for it, or
  // for its class's header, is refused here with a plain reason.
  if (m_file_size < EI_NIDENT) {
    return make_error(Status::invalid,
                      "{}: not an ELF file ({} bytes, too short for an ELF "
                      "header)",
                      m_path, m_file_size);
  }
  m_elf.reset(elf_begin(m_fd.get(), ELF_C_READ_MMAP, nullptr));
  if (m_elf == nullptr) {
    return make_error(Status::invalid, "{}: cannot read as ELF: {}", m_path,
                      libelf_error());
  }
  if (elf_kind(m_elf.get()) != ELF_K_ELF) {
    return make_error(Status::invalid, "{}: not an ELF file", m_path);
  }
  size_t raw_size = 0;
  char* raw = elf_rawfile(m_elf.get(), &raw_size);
  if (raw == nullptr || raw_size != m_file_size) {
    return make_error(Status::invalid, "{}: cannot map the file: {}", m_path,
                      libelf_error());
  }
  m_base = reinterpret_cast<const std::byte*>(raw);
  m_class = gelf_getclass(m_elf.get());
  const unsigned char* ident = reinterpret_cast<const unsigned char*>(
      elf_getident(m_elf.get(), nullptr));
  m_byte_order = ident != nullptr ? ident[EI_DATA] : ELFDATANONE;
  if (m_class != ELFCLASS32 && m_class != ELFCLASS64) {
    return make_error(Status::invalid, "{}: unknown ELF class {}", m_path,
                      ident != nullptr ? ident[EI_CLASS] : 0);
  }
  if (m_byte_order != ELFDATA2LSB && m_byte_order != ELFDATA2MSB) {
    return make_error(Status::invalid, "{}: unknown ELF byte order {}", m_path,
                      m_byte_order);
  }
  uint64_t ehdr_size =
      m_class == ELFCLASS32 ? sizeof(Elf32_Ehdr) : sizeof(Elf64_Ehdr);
  if (m_file_size < ehdr_size) {
    return make_error(Status::invalid,
                      "{}: truncated ELF header ({} of {} bytes)", m_path,
                      m_file_size, ehdr_size);
  }
  GElf_Ehdr ehdr;
  if (gelf_getehdr(m_elf.get(), &ehdr) == nullptr) {
    return make_error(Status::invalid, "{}: cannot read the ELF header: {}",
                      m_path, libelf_error());
  }
  m_machine = ehdr.e_machine;

  size_t shnum = 0;
  if (elf_getshdrnum(m_elf.get(), &shnum) != 0) {
    return make_error(Status::invalid, "{}: cannot count sections: {}", m_path,
                      libelf_error());
  }
  if (elf_getphdrnum(m_elf.get(), &m_phdr_count) != 0) {
    return make_error(Status::invalid, "{}: cannot count program headers: {}",
                      m_path, libelf_error());
  }
  uint64_t shdr_size =
      m_class == ELFCLASS32 ? sizeof(Elf32_Shdr) : sizeof(Elf64_Shdr);
  if (shnum > 0) {
    if (ehdr.e_shentsize != shdr_size) {
      return make_error(Status::invalid,
                        "{}: section header size {} is not {} for this class",
                        m_path, ehdr.e_shentsize, shdr_size);
    }
    if (shnum > m_file_size / shdr_size ||
        !fits(ehdr.e_shoff, shnum * shdr_size, m_file_size)) {
      return make_error(Status::invalid,
                        "{}: {} section headers at offset {} run past the end "
                        "of the file ({} bytes)",
                        m_path, shnum, ehdr.e_shoff, m_file_size);
    }
  }
  uint64_t phdr_size =
      m_class == ELFCLASS32 ? sizeof(Elf32_Phdr) : sizeof(Elf64_Phdr);
  if (m_phdr_count > 0 &&
      (m_phdr_count > m_file_size / phdr_size ||
       !fits(ehdr.e_phoff, m_phdr_count * phdr_size, m_file_size))) {
    return make_error(Status::invalid,
                      "{}: {} program headers at offset {} run past the end "
                      "of the file ({} bytes)",
                      m_path, m_phdr_count, ehdr.e_phoff, m_file_size);
  }
  // libelf answers "no sections" or "no program headers" when the tables
  // lie outside the file; the header says whether there should be some.
  if (shnum == 0 && ehdr.e_shoff != 0) {
    return make_error(Status::invalid,
                      "{}: section headers at offset {} run past the end of "
                      "the file ({} bytes) or cannot be counted",
                      m_path, ehdr.e_shoff, m_file_size);
  }
  if (m_phdr_count == 0 && ehdr.e_phnum != 0) {
    return make_error(Status::invalid,
                      "{}: {} program headers at offset {} run past the end "
                      "of the file ({} bytes)",
                      m_path, ehdr.e_phnum, ehdr.e_phoff, m_file_size);
  }
  // Tables inside the ELF header are malformed, and a rewrite would let
  // one overwrite the other.
  if (m_phdr_count > 0 && ehdr.e_phoff < ehdr_size) {
    return make_error(Status::invalid,
                      "{}: program headers at offset {} overlap the ELF "
                      "header",
                      m_path, ehdr.e_phoff);
  }
  if (shnum > 0 && ehdr.e_shoff < ehdr_size) {
    return make_error(Status::invalid,
                      "{}: section headers at offset {} overlap the ELF "
                      "header",
                      m_path, ehdr.e_shoff);
  }
  m_phdr_range = {ehdr.e_phoff, m_phdr_count * phdr_size};
  m_shdr_range = {ehdr.e_shoff, shnum * shdr_size};
  m_header_size = ehdr_size;
  if (shnum == 0) {
    return {};
  }
  if (elf_getshdrstrndx(m_elf.get(), &m_shstrndx) != 0) {
    return make_error(Status::invalid,
                      "{}: cannot find the section-name table: {}", m_path,
                      libelf_error());
  }
  if (m_shstrndx == SHN_UNDEF || m_shstrndx >= shnum) {
    return make_error(Status::invalid,
                      "{}: section-name table index {} is not a section "
                      "(the file has {})",
                      m_path, m_shstrndx, shnum);
  }

  m_sections.resize(shnum);
  for (size_t index = 0; index < shnum; ++index) {
    Elf_Scn* scn = elf_getscn(m_elf.get(), index);
    GElf_Shdr shdr;
    if (scn == nullptr || gelf_getshdr(scn, &shdr) == nullptr) {
      return make_error(Status::invalid,
                        "{}: cannot read section header {}: {}", m_path, index,
                        libelf_error());
    }
    Section& section = m_sections[index];
    section.index = index;
    section.type = shdr.sh_type;
    section.flags = shdr.sh_flags;
    section.addr = shdr.sh_addr;
    section.offset = shdr.sh_offset;
    section.size = shdr.sh_size;
    section.link = shdr.sh_link;
    section.info = shdr.sh_info;
    section.addralign = shdr.sh_addralign;
    section.entsize = shdr.sh_entsize;
    if (shdr.sh_type == SHT_SYMTAB && !m_symtab) {
      m_symtab = index;
    }
  }
  return check_sections();
}

Result<void> ElfFile::check_sections() {
  auto overlaps = [](const Section& section,
                     std::pair<uint64_t, uint64_t> range) {
    return range.second != 0 && section.offset < range.first + range.second &&
           range.first < section.offset + section.size;
  };
  for (const Section& section : m_sections) {
    if (!section.has_file_data()) {
      continue;
    }
    if (!fits(section.offset, section.size, m_file_size)) {
      return make_error(Status::invalid,
                        "{}: section {} has {} bytes at offset {}, past the "
                        "end of the file ({} bytes)",
                        m_path, section.index, section.size, section.offset,
                        m_file_size);
    }
    const char* table =
        section.offset < m_header_size    ? "the ELF header"
        : overlaps(section, m_phdr_range) ? "the program headers"
        : overlaps(section, m_shdr_range) ? "the section headers"
                                          : nullptr;
    if (table != nullptr) {
      return make_error(Status::invalid,
                        "{}: section {} (bytes {} to {}) overlaps {}", m_path,
                        section.index, section.offset,
                        section.offset + section.size, table);
    }
  }
  const Section& names = m_sections[m_shstrndx];
  if (names.type != SHT_STRTAB || !names.has_file_data()) {
    return make_error(Status::invalid,
                      "{}: section-name table (section {}) is not a string "
                      "table with data",
                      m_path, m_shstrndx);
  }
  auto table = raw_data(names);
  if (table.back() != std::byte{0}) {
    return make_error(Status::invalid,
                      "{}: section-name table (section {}) does not end with "
                      "a NUL byte",
                      m_path, m_shstrndx);
  }
  const char* text = reinterpret_cast<const char*>(table.data());
  for (Section& section : m_sections) {
    if (section.index == 0) {
      continue;
    }
    GElf_Shdr shdr;
    gelf_getshdr(elf_getscn(m_elf.get(), section.index), &shdr);
    if (shdr.sh_name >= table.size()) {
      return make_error(Status::invalid,
                        "{}: section {} has a name offset {} outside the "
                        "section-name table ({} bytes)",
                        m_path, section.index, shdr.sh_name, table.size());
    }
    section.name = std::string_view(text + shdr.sh_name);
  }

  // Two sections sharing file bytes make a rewrite ambiguous: refuse them.
  std::vector<const Section*> by_offset;
  by_offset.reserve(m_sections.size());
  for (const Section& section : m_sections) {
    if (section.has_file_data()) {
      by_offset.push_back(&section);
    }
  }
  std::sort(
      by_offset.begin(), by_offset.end(),
      [](const Section* a, const Section* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const Section& before = *by_offset[i - 1];
    const Section& after = *by_offset[i];
    if (before.offset + before.size > after.offset) {
      return make_error(Status::invalid,
                        "{}: sections {} ({}) and {} ({}) overlap in the file",
                        m_path, before.index, before.name, after.index,
                        after.name);
    }
  }
  return {};
}

const Section* ElfFile::find(std::string_view name) const {
  for (const Section& section : m_sections) {
    if (section.index != 0 && section.name == name) {
      return &section;
    }
  }
  return nullptr;
}

std::span<const std::byte> ElfFile::raw_data(const Section& section) const {
  if (!section.has_file_data()) {
    return {};
  }
  return {m_base + section.offset, section.size};
}

Result<bool> ElfFile::section_contains(const Section& section,
                                       std::string_view needle) const {
  if (!section.has_file_data() || needle.empty() ||
      section.size < needle.size()) {
    return false;
  }
  constexpr size_t k_chunk = 1 << 20;
  std::vector<char> buffer(k_chunk + needle.size());
  uint64_t done = 0;
  size_t carried = 0;
  while (done < section.size) {
    size_t want =
        static_cast<size_t>(std::min<uint64_t>(k_chunk, section.size - done));
    ssize_t got = ::pread(m_fd.get(), buffer.data() + carried, want,
                          static_cast<off_t>(section.offset + done));
    if (got < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno_error(errno, fmt::format("cannot read {}", m_path));
    }
    if (got == 0) {
      break;
    }
    size_t filled = carried + static_cast<size_t>(got);
    std::string_view window(buffer.data(), filled);
    if (window.find(needle) != std::string_view::npos) {
      return true;
    }
    // Keep the tail that could start a match across the boundary.
    carried = std::min(filled, needle.size() - 1);
    std::memmove(buffer.data(), buffer.data() + filled - carried, carried);
    done += static_cast<uint64_t>(got);
  }
  return false;
}

Result<std::vector<Symbol>> ElfFile::symbols() const {
  std::vector<Symbol> symbols;
  if (!m_symtab) {
    return symbols;
  }
  const Section& table = m_sections[*m_symtab];
  uint64_t entry_size =
      m_class == ELFCLASS32 ? sizeof(Elf32_Sym) : sizeof(Elf64_Sym);
  if (table.size % entry_size != 0) {
    return make_error(Status::invalid,
                      "{}: symbol table size {} is not a multiple of {}",
                      m_path, table.size, entry_size);
  }
  if (table.link == 0 || table.link >= m_sections.size() ||
      m_sections[table.link].type != SHT_STRTAB) {
    return make_error(Status::invalid,
                      "{}: symbol table links to section {}, not a string "
                      "table",
                      m_path, table.link);
  }
  auto strings = raw_data(m_sections[table.link]);
  if (!strings.empty() && strings.back() != std::byte{0}) {
    return make_error(Status::invalid,
                      "{}: symbol string table (section {}) does not end with "
                      "a NUL byte",
                      m_path, table.link);
  }
  size_t count = table.size / entry_size;
  if (count == 0) {
    return symbols;
  }
  Elf_Data* data = elf_getdata(elf_getscn(m_elf.get(), table.index), nullptr);
  if (data == nullptr) {
    return make_error(Status::invalid, "{}: cannot read the symbol table: {}",
                      m_path, libelf_error());
  }
  Elf_Data* xindex = nullptr;
  for (const Section& section : m_sections) {
    if (section.type == SHT_SYMTAB_SHNDX && section.link == table.index) {
      if (section.size / sizeof(Elf32_Word) < count) {
        return make_error(Status::invalid,
                          "{}: extended section index table (section {}) is "
                          "shorter than the symbol table",
                          m_path, section.index);
      }
      xindex = elf_getdata(elf_getscn(m_elf.get(), section.index), nullptr);
      break;
    }
  }
  const char* text = reinterpret_cast<const char*>(strings.data());
  symbols.resize(count);
  for (size_t i = 0; i < count; ++i) {
    GElf_Sym sym;
    Elf32_Word extended = 0;
    if (gelf_getsymshndx(data, xindex, static_cast<int>(i), &sym, &extended) ==
        nullptr) {
      return make_error(Status::invalid, "{}: cannot read symbol {}: {}",
                        m_path, i, libelf_error());
    }
    if (sym.st_name != 0 && sym.st_name >= strings.size()) {
      return make_error(Status::invalid,
                        "{}: symbol {} has a name offset {} outside its "
                        "string table",
                        m_path, i, sym.st_name);
    }
    Symbol& out = symbols[i];
    out.name = sym.st_name != 0 ? std::string_view(text + sym.st_name)
                                : std::string_view();
    out.value = sym.st_value;
    out.size = sym.st_size;
    out.info = sym.st_info;
    out.other = sym.st_other;
    out.raw_shndx = sym.st_shndx;
    out.shndx = sym.st_shndx == SHN_XINDEX ? extended : sym.st_shndx;
    if (sym.st_shndx == SHN_XINDEX && xindex == nullptr) {
      return make_error(Status::invalid,
                        "{}: symbol {} uses SHN_XINDEX but the file has no "
                        "extended section index table",
                        m_path, i);
    }
  }
  return symbols;
}

Result<std::optional<std::string>> build_id(const ElfFile& file) {
  for (const Section& section : file.sections()) {
    if (section.type != SHT_NOTE || !section.has_file_data()) {
      continue;
    }
    Elf_Data* data =
        elf_getdata(elf_getscn(file.handle(), section.index), nullptr);
    if (data == nullptr) {
      return make_error(Status::invalid, "{}: cannot read note section {}: {}",
                        file.path(), section.name, libelf_error());
    }
    size_t offset = 0;
    GElf_Nhdr header;
    size_t name_offset = 0;
    size_t desc_offset = 0;
    while (offset < data->d_size) {
      size_t next =
          gelf_getnote(data, offset, &header, &name_offset, &desc_offset);
      if (next == 0) {
        break;
      }
      offset = next;
      const char* base = static_cast<const char*>(data->d_buf);
      if (header.n_type == NT_GNU_BUILD_ID && header.n_namesz == 4 &&
          std::memcmp(base + name_offset, "GNU", 4) == 0) {
        static constexpr char k_hex[] = "0123456789abcdef";
        std::string hex;
        hex.reserve(header.n_descsz * 2);
        for (size_t i = 0; i < header.n_descsz; ++i) {
          auto byte = static_cast<unsigned char>(base[desc_offset + i]);
          hex += k_hex[byte >> 4];
          hex += k_hex[byte & 0xf];
        }
        return std::optional<std::string>(std::move(hex));
      }
    }
  }
  return std::optional<std::string>();
}

} // namespace ktc::elf
