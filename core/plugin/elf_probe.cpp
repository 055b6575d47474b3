#include "plugin/elf_probe.hpp"

#include "util/fd.hpp"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <memory>
#include <string_view>

namespace ktc::plugin {
namespace {

constexpr std::string_view k_entry_prefix = "ktc_plugin_query_v";

#if defined(__x86_64__)
constexpr int k_host_machine = EM_X86_64;
#elif defined(__aarch64__)
constexpr int k_host_machine = EM_AARCH64;
#elif defined(__i386__)
constexpr int k_host_machine = EM_386;
#elif defined(__riscv)
constexpr int k_host_machine = EM_RISCV;
#elif defined(__powerpc64__)
constexpr int k_host_machine = EM_PPC64;
#elif defined(__s390x__)
constexpr int k_host_machine = EM_S390;
#else
#error "unknown host machine: add its EM_* value"
#endif

constexpr int k_host_class = sizeof(void*) == 8 ? ELFCLASS64 : ELFCLASS32;
constexpr int k_host_data =
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB;

struct ElfCloser {
  void operator()(Elf* elf) const { elf_end(elf); }
};

std::string_view class_name(int elf_class) {
  return elf_class == ELFCLASS64 ? "64-bit" : "32-bit";
}

} // namespace

Result<ElfProbe> probe_elf(const std::string& path,
                           const std::string& entry_symbol) {
  if (elf_version(EV_CURRENT) == EV_NONE) {
    return make_error(Status::internal, "libelf is unusable: {}",
                      elf_errmsg(-1));
  }
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    return errno_error(errno, path);
  }
  std::unique_ptr<Elf, ElfCloser> elf(
      elf_begin(fd.get(), ELF_C_READ_MMAP, nullptr));
  if (!elf || elf_kind(elf.get()) != ELF_K_ELF) {
    return make_error(Status::invalid, "{}: not an ELF file", path);
  }
  GElf_Ehdr header;
  if (gelf_getehdr(elf.get(), &header) == nullptr) {
    return make_error(Status::invalid, "{}: unreadable ELF header: {}", path,
                      elf_errmsg(-1));
  }
  int elf_class = header.e_ident[EI_CLASS];
  if (elf_class != k_host_class) {
    return make_error(Status::invalid,
                      "{}: a {} ELF file, but this host loads {} plugins", path,
                      class_name(elf_class), class_name(k_host_class));
  }
  if (header.e_ident[EI_DATA] != k_host_data) {
    return make_error(Status::invalid,
                      "{}: ELF byte order differs from this host's", path);
  }
  if (header.e_machine != k_host_machine) {
    return make_error(Status::invalid,
                      "{}: built for ELF machine {}, this host is machine {}",
                      path, header.e_machine, k_host_machine);
  }
  if (header.e_type != ET_DYN) {
    return make_error(Status::invalid, "{}: not a shared object (e_type {})",
                      path, header.e_type);
  }

  ElfProbe probe;
  bool saw_dynsym = false;
  for (Elf_Scn* section = elf_nextscn(elf.get(), nullptr); section != nullptr;
       section = elf_nextscn(elf.get(), section)) {
    GElf_Shdr section_header;
    if (gelf_getshdr(section, &section_header) == nullptr ||
        section_header.sh_type != SHT_DYNSYM) {
      continue;
    }
    saw_dynsym = true;
    Elf_Data* data = elf_getdata(section, nullptr);
    if (data == nullptr || section_header.sh_entsize == 0) {
      return make_error(Status::invalid, "{}: unreadable dynamic symbols: {}",
                        path, elf_errmsg(-1));
    }
    size_t count = section_header.sh_size / section_header.sh_entsize;
    for (size_t index = 1; index < count; ++index) {
      GElf_Sym symbol;
      if (gelf_getsym(data, static_cast<int>(index), &symbol) == nullptr) {
        return make_error(Status::invalid, "{}: unreadable symbol {}: {}", path,
                          index, elf_errmsg(-1));
      }
      const char* raw_name =
          elf_strptr(elf.get(), section_header.sh_link, symbol.st_name);
      if (raw_name == nullptr || symbol.st_shndx == SHN_UNDEF ||
          GELF_ST_TYPE(symbol.st_info) != STT_FUNC) {
        continue;
      }
      std::string_view name(raw_name);
      if (!name.starts_with(k_entry_prefix)) {
        continue;
      }
      if (name == entry_symbol) {
        probe.has_entry = true;
        continue;
      }
      unsigned major = 0;
      std::string_view digits = name.substr(k_entry_prefix.size());
      auto [end, error] =
          std::from_chars(digits.data(), digits.data() + digits.size(), major);
      if (error == std::errc() && end == digits.data() + digits.size()) {
        probe.other_majors.push_back(major);
      }
    }
  }
  if (!saw_dynsym) {
    return make_error(Status::invalid, "{}: no dynamic symbol table", path);
  }
  return probe;
}

} // namespace ktc::plugin
