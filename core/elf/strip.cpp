#include "elf/strip.hpp"

#include "elf/ikconfig.hpp"
#include "util/log.hpp"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <map>
#include <tuple>

namespace ktc::elf {
namespace {

// Not in Debian 12's elf.h yet.
constexpr uint32_t k_sht_relr = 19;
constexpr uint32_t k_sht_crel = 0x40000014;

bool is_reloc(uint32_t type) {
  return type == SHT_REL || type == SHT_RELA || type == k_sht_relr ||
         type == k_sht_crel;
}

bool is_debug_name(std::string_view name) {
  return name.starts_with(".debug_") || name.starts_with(".zdebug_") ||
         name.starts_with(".gnu.debuglto_") || name.starts_with(".stab") ||
         name == ".line" || name == ".gnu_debuglink" ||
         name == ".gnu_debugaltlink";
}

std::string libelf_error() {
  const char* text = elf_errmsg(-1);
  return text != nullptr ? text : "unknown libelf error";
}

// sh_info names a section for relocations and when SHF_INFO_LINK says so;
// for symbol tables it is a symbol index.
bool info_is_section(const Section& section) {
  return section.type == SHT_REL || section.type == SHT_RELA ||
         (section.flags & SHF_INFO_LINK) != 0;
}

uint64_t align_up(uint64_t value, uint64_t alignment) {
  if (alignment <= 1 || (alignment & (alignment - 1)) != 0) {
    return value;
  }
  return (value + alignment - 1) & ~(alignment - 1);
}

// Removes a half-written output whatever the way out.
class OutputFile {
public:
  explicit OutputFile(std::string path) : m_path(std::move(path)) {}
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile() {
    if (m_elf != nullptr) {
      elf_end(m_elf);
    }
    if (m_fd.valid() && !m_done) {
      ::unlink(m_path.c_str());
    }
  }

  Result<void> create() {
    m_fd =
        Fd(::open(m_path.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666));
    if (!m_fd) {
      return errno_error(errno, fmt::format("cannot create {}", m_path));
    }
    m_elf = elf_begin(m_fd.get(), ELF_C_WRITE, nullptr);
    if (m_elf == nullptr) {
      return make_error(Status::internal, "{}: cannot start an ELF: {}", m_path,
                        libelf_error());
    }
    return {};
  }

  Elf* elf() const { return m_elf; }
  int fd() const { return m_fd.get(); }
  void keep() { m_done = true; }

private:
  std::string m_path;
  Fd m_fd;
  Elf* m_elf = nullptr;
  bool m_done = false;
};

struct Plan {
  std::vector<Decision> decisions;
  // Output index of each input section; 0 for dropped ones.
  std::vector<size_t> new_index;
  size_t output_count = 0;
  std::optional<size_t> shndx_table;
  // Every allocated section with file bytes is kept byte for byte.
  bool preserves_image = true;
  // Where the ELF header, program headers and allocated bytes end.
  uint64_t image_end = 0;
  // Old symbol index to new, k_removed for the section symbols of dropped
  // sections; empty when every symbol stays where it is.
  std::vector<uint32_t> symbol_map;
  size_t symbol_count = 0;
  // The output .symtab's sh_info: its first non-local symbol.
  uint32_t first_global = 0;
  // Kept relocation sections whose symbol indices change with symbol_map.
  std::vector<size_t> reloc_rewrites;
  // The section-name table is rebuilt with the surviving names only.
  bool rebuild_names = false;
};

constexpr uint32_t k_removed = UINT32_MAX;

bool special_index(const Symbol& symbol) {
  return symbol.raw_shndx != SHN_XINDEX &&
         (symbol.raw_shndx == SHN_UNDEF || symbol.raw_shndx >= SHN_LORESERVE);
}

// Whether relocation entries can be read and patched as raw bytes: the
// file is in the host's byte order, and r_info is one plain field (not
// MIPS64's split one).
bool host_order_relocations(const ElfFile& input) {
  constexpr int k_host_order =
      std::endian::native == std::endian::little ? ELFDATA2LSB : ELFDATA2MSB;
  return input.byte_order() == k_host_order && input.machine() != EM_MIPS;
}

// The symbol index of every entry of a REL or RELA section.
template <typename Visit>
Result<void> for_each_reloc_symbol(const ElfFile& input,
                                   const Section& section,
                                   Visit&& visit) {
  Elf_Data* data =
      elf_getdata(elf_getscn(input.handle(), section.index), nullptr);
  if (data == nullptr) {
    return make_error(
        Status::invalid, "{}: cannot read relocation section {} ({}): {}",
        input.path(), section.index, section.name, libelf_error());
  }
  bool rela = section.type == SHT_RELA;
  size_t entry =
      gelf_fsize(input.handle(), rela ? ELF_T_RELA : ELF_T_REL, 1, EV_CURRENT);
  size_t count = data->d_size / entry;
  // In the host's byte order, r_info is read straight from the entries.
  auto raw = input.raw_data(section);
  if (host_order_relocations(input) && raw.size() == data->d_size) {
    bool wide = input.elf_class() == ELFCLASS64;
    size_t info_at = wide ? sizeof(Elf64_Addr) : sizeof(Elf32_Addr);
    for (size_t at = 0; at + entry <= raw.size(); at += entry) {
      if (wide) {
        uint64_t info;
        std::memcpy(&info, raw.data() + at + info_at, sizeof info);
        visit(static_cast<uint64_t>(ELF64_R_SYM(info)));
      } else {
        uint32_t info;
        std::memcpy(&info, raw.data() + at + info_at, sizeof info);
        visit(static_cast<uint64_t>(ELF32_R_SYM(info)));
      }
    }
    return {};
  }
  for (size_t i = 0; i < count; ++i) {
    GElf_Rela rel{};
    bool read = rela
                    ? gelf_getrela(data, static_cast<int>(i), &rel) != nullptr
                    : gelf_getrel(data, static_cast<int>(i),
                                  reinterpret_cast<GElf_Rel*>(&rel)) != nullptr;
    if (!read) {
      return make_error(Status::invalid, "{}: cannot read relocation {} of {}",
                        input.path(), i, section.name);
    }
    visit(static_cast<uint64_t>(GELF_R_SYM(rel.r_info)));
  }
  return {};
}

// Section symbols of dropped sections only cost space (strip --strip-debug
// removes them too), unless a kept relocation still names one, or one that
// cannot be rewritten (CREL) names the table at all.
Result<void> plan_symbols(const ElfFile& input, Plan& plan) {
  std::optional<size_t> symtab = input.symtab_index();
  if (!symtab) {
    return {};
  }
  const auto& sections = input.sections();
  KTC_TRY_ASSIGN(std::vector<Symbol> symbols, input.symbols());
  plan.symbol_count = symbols.size();
  plan.first_global = sections[*symtab].info;
  std::vector<bool> remove(symbols.size(), false);
  bool any = false;
  for (size_t i = 1; i < symbols.size(); ++i) {
    const Symbol& symbol = symbols[i];
    // Named ones stay: check_output() compares every named symbol.
    if (GELF_ST_TYPE(symbol.info) == STT_SECTION && symbol.name.empty() &&
        !special_index(symbol) && symbol.shndx < sections.size() &&
        plan.new_index[symbol.shndx] == 0) {
      remove[i] = true;
      any = true;
    }
  }
  if (!any) {
    return {};
  }
  std::vector<size_t> rewrites;
  for (const Section& section : sections) {
    if (plan.decisions[section.index] != Decision::keep ||
        !is_reloc(section.type) || section.link != *symtab) {
      continue;
    }
    if (section.type != SHT_REL && section.type != SHT_RELA) {
      return {};
    }
    KTC_TRY(for_each_reloc_symbol(input, section, [&](uint64_t index) {
      if (index < remove.size()) {
        remove[index] = false;
      }
    }));
    rewrites.push_back(section.index);
  }
  std::vector<uint32_t> map(symbols.size(), k_removed);
  uint32_t next = 0;
  uint32_t first_global = 0;
  for (size_t i = 0; i < symbols.size(); ++i) {
    if (i == plan.first_global) {
      first_global = next;
    }
    if (!remove[i]) {
      map[i] = next++;
    }
  }
  if (plan.first_global >= symbols.size()) {
    first_global = next;
  }
  if (next == symbols.size()) {
    return {};
  }
  plan.symbol_map = std::move(map);
  plan.symbol_count = next;
  plan.first_global = first_global;
  plan.reloc_rewrites = std::move(rewrites);
  return {};
}

Result<Plan> make_plan(const ElfFile& input, const Decider& decide) {
  const auto& sections = input.sections();
  std::vector<uint32_t> roles = classify(input);
  Plan plan;
  plan.decisions.resize(sections.size(), Decision::drop);
  std::optional<size_t> symtab = input.symtab_index();
  for (const Section& section : sections) {
    uint32_t role = roles[section.index];
    Decision decision = Decision::keep;
    if ((role & (role_structural | role_symbols)) == 0) {
      KTC_TRY_ASSIGN(decision, decide(section, role));
    }
    if (decision == Decision::drop && (role & role_alloc) != 0) {
      decision = Decision::header_only;
    }
    if (section.type == SHT_NOBITS && decision == Decision::keep) {
      decision = Decision::header_only;
    }
    if (section.type == SHT_SYMTAB_SHNDX && symtab && section.link == *symtab) {
      plan.shndx_table = section.index;
    }
    plan.decisions[section.index] = decision;
  }
  // A relocation section is only worth keeping with its target's bytes and
  // its symbol table; its entries mean nothing otherwise.
  for (const Section& section : sections) {
    Decision& decision = plan.decisions[section.index];
    if (!is_reloc(section.type) || decision != Decision::keep) {
      continue;
    }
    bool target_kept = true;
    if (section.type != k_sht_relr && info_is_section(section) &&
        section.info != 0) {
      target_kept = section.info < sections.size() &&
                    plan.decisions[section.info] == Decision::keep;
    }
    bool symbols_kept =
        section.link == 0 || (section.link < sections.size() &&
                              plan.decisions[section.link] != Decision::drop);
    if (!target_kept || !symbols_kept) {
      decision = (section.flags & SHF_ALLOC) != 0 ? Decision::header_only
                                                  : Decision::drop;
    }
  }
  plan.new_index.assign(sections.size(), 0);
  size_t next = 1;
  for (const Section& section : sections) {
    if (section.index != 0 && plan.decisions[section.index] != Decision::drop) {
      plan.new_index[section.index] = next++;
    }
  }
  plan.output_count = next;
  KTC_TRY(plan_symbols(input, plan));
  // The name table is rebuilt unless something else reads strings from it
  // (a symbol table whose names live there, say).
  plan.rebuild_names = true;
  for (const Section& section : sections) {
    if (section.index != 0 && plan.decisions[section.index] != Decision::drop &&
        section.index != input.shstrndx() && section.link == input.shstrndx()) {
      plan.rebuild_names = false;
    }
  }

  GElf_Ehdr ehdr;
  if (gelf_getehdr(input.handle(), &ehdr) == nullptr) {
    return make_error(Status::invalid, "{}: cannot read the ELF header: {}",
                      input.path(), libelf_error());
  }
  plan.image_end = gelf_fsize(input.handle(), ELF_T_EHDR, 1, EV_CURRENT);
  if (input.phdr_count() > 0) {
    plan.image_end = std::max<uint64_t>(
        plan.image_end,
        ehdr.e_phoff + gelf_fsize(input.handle(), ELF_T_PHDR,
                                  input.phdr_count(), EV_CURRENT));
  }
  for (const Section& section : sections) {
    if ((section.flags & SHF_ALLOC) == 0 || !section.has_file_data()) {
      continue;
    }
    if (plan.decisions[section.index] != Decision::keep) {
      plan.preserves_image = false;
    }
    plan.image_end = std::max(plan.image_end, section.offset + section.size);
  }
  return plan;
}

// Maps an input index to the output's; dropped sections map to `dropped`.
uint32_t remap(const Plan& plan, uint64_t index, uint32_t dropped = 0) {
  if (index == 0 || index >= plan.new_index.size()) {
    return 0;
  }
  size_t mapped = plan.new_index[index];
  return mapped != 0 ? static_cast<uint32_t>(mapped) : dropped;
}

// Buffers the engine builds and libelf writes from; they must outlive
// elf_update().
struct RewrittenTables {
  std::vector<std::byte> symtab;
  std::vector<std::byte> shndx;
  std::string names;
  std::vector<std::vector<std::byte>> relocations;
};

// The surviving sections' names as a string table in which a name that
// ends another one (".text" in ".rela.text") shares its bytes, as linkers
// lay them out; the offset of each section's name, by input index.
std::vector<uint32_t> build_name_table(const std::vector<Section>& sections,
                                       const Plan& plan,
                                       std::string& table) {
  std::vector<std::string_view> names;
  for (const Section& section : sections) {
    if (section.index != 0 && plan.decisions[section.index] != Decision::drop &&
        !section.name.empty()) {
      names.push_back(section.name);
    }
  }
  // Ordered by their reversed text, longest last among names sharing an
  // ending, so each name meets the names it may end right after itself.
  auto reversed_less = [](std::string_view a, std::string_view b) {
    return std::lexicographical_compare(a.rbegin(), a.rend(), b.rbegin(),
                                        b.rend());
  };
  std::sort(names.begin(), names.end(), reversed_less);
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::map<std::string_view, uint32_t> offsets;
  table.assign(1, '\0');
  std::string_view host;
  uint32_t host_offset = 0;
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    std::string_view name = *it;
    if (!host.empty() && host.ends_with(name)) {
      offsets[name] =
          host_offset + static_cast<uint32_t>(host.size() - name.size());
      continue;
    }
    host = name;
    host_offset = static_cast<uint32_t>(table.size());
    offsets[name] = host_offset;
    table.append(name);
    table.push_back('\0');
  }
  std::vector<uint32_t> result(sections.size(), 0);
  for (const Section& section : sections) {
    if (section.index != 0 && plan.decisions[section.index] != Decision::drop &&
        !section.name.empty()) {
      result[section.index] = offsets.at(section.name);
    }
  }
  return result;
}

// Writes `section`'s relocations with their symbol indices remapped.
Result<void> rewrite_relocations(const ElfFile& input,
                                 const Plan& plan,
                                 const Section& section,
                                 Elf_Scn* out,
                                 RewrittenTables& tables) {
  Elf_Data* in =
      elf_getdata(elf_getscn(input.handle(), section.index), nullptr);
  if (in == nullptr) {
    return make_error(Status::invalid, "{}: cannot read {}: {}", input.path(),
                      section.name, libelf_error());
  }
  bool rela = section.type == SHT_RELA;
  auto& buffer = tables.relocations.emplace_back(in->d_size);
  Elf_Data* data = elf_newdata(out);
  if (data == nullptr) {
    return make_error(Status::internal, "cannot add relocation data: {}",
                      libelf_error());
  }
  data->d_buf = buffer.data();
  data->d_size = buffer.size();
  data->d_type = rela ? ELF_T_RELA : ELF_T_REL;
  data->d_align = in->d_align;
  data->d_version = EV_CURRENT;

  // In the host's byte order the entries are copied raw and only r_info is
  // patched: a vmlinux has millions of them, too many for libelf's
  // per-entry calls.
  auto raw = input.raw_data(section);
  bool wide = input.elf_class() == ELFCLASS64;
  size_t entry_size = wide ? (rela ? sizeof(Elf64_Rela) : sizeof(Elf64_Rel))
                           : (rela ? sizeof(Elf32_Rela) : sizeof(Elf32_Rel));
  if (host_order_relocations(input) && raw.size() == buffer.size()) {
    std::memcpy(buffer.data(), raw.data(), raw.size());
    data->d_type = ELF_T_BYTE;
    // r_info follows r_offset in every layout.
    size_t info_at = wide ? sizeof(Elf64_Addr) : sizeof(Elf32_Addr);
    for (size_t at = 0; at + entry_size <= buffer.size(); at += entry_size) {
      std::byte* field = buffer.data() + at + info_at;
      if (wide) {
        uint64_t info;
        std::memcpy(&info, field, sizeof info);
        uint64_t symbol = ELF64_R_SYM(info);
        if (symbol < plan.symbol_map.size()) {
          info = ELF64_R_INFO(plan.symbol_map[symbol], ELF64_R_TYPE(info));
          std::memcpy(field, &info, sizeof info);
        }
      } else {
        uint32_t info;
        std::memcpy(&info, field, sizeof info);
        uint32_t symbol = ELF32_R_SYM(info);
        if (symbol < plan.symbol_map.size()) {
          info = ELF32_R_INFO(plan.symbol_map[symbol], ELF32_R_TYPE(info));
          std::memcpy(field, &info, sizeof info);
        }
      }
    }
    return {};
  }
  size_t entry =
      gelf_fsize(input.handle(), rela ? ELF_T_RELA : ELF_T_REL, 1, EV_CURRENT);
  size_t count = in->d_size / entry;
  for (size_t i = 0; i < count; ++i) {
    int at = static_cast<int>(i);
    GElf_Rela rel{};
    if (rela ? gelf_getrela(in, at, &rel) == nullptr
             : gelf_getrel(in, at, reinterpret_cast<GElf_Rel*>(&rel)) ==
                   nullptr) {
      return make_error(Status::invalid, "{}: cannot read relocation {} of {}",
                        input.path(), i, section.name);
    }
    uint64_t symbol = GELF_R_SYM(rel.r_info);
    if (symbol < plan.symbol_map.size()) {
      symbol = plan.symbol_map[symbol];
    }
    rel.r_info = GELF_R_INFO(symbol, GELF_R_TYPE(rel.r_info));
    if (rela ? gelf_update_rela(data, at, &rel) == 0
             : gelf_update_rel(data, at, reinterpret_cast<GElf_Rel*>(&rel)) ==
                   0) {
      return make_error(Status::internal, "cannot write relocation {}: {}", i,
                        libelf_error());
    }
  }
  return {};
}

Result<void> rewrite_symbols(const ElfFile& input,
                             const Plan& plan,
                             Elf_Scn* out_symtab,
                             Elf_Scn* out_shndx,
                             RewrittenTables& tables) {
  const Section& table = input.sections()[*input.symtab_index()];
  Elf* in = input.handle();
  Elf_Data* in_data = elf_getdata(elf_getscn(in, table.index), nullptr);
  if (in_data == nullptr && table.size != 0) {
    return make_error(Status::invalid, "{}: cannot read the symbol table: {}",
                      input.path(), libelf_error());
  }
  Elf_Data* in_shndx =
      plan.shndx_table ? elf_getdata(elf_getscn(in, *plan.shndx_table), nullptr)
                       : nullptr;
  size_t entry_size =
      gelf_fsize(in, ELF_T_SYM, 1, EV_CURRENT); // same in memory
  size_t count = in_data != nullptr ? in_data->d_size / entry_size : 0;

  tables.symtab.resize(plan.symbol_count * entry_size);
  Elf_Data* out_data = elf_newdata(out_symtab);
  if (out_data == nullptr) {
    return make_error(Status::internal, "cannot add symbol data: {}",
                      libelf_error());
  }
  out_data->d_buf = tables.symtab.data();
  out_data->d_size = tables.symtab.size();
  out_data->d_type = ELF_T_SYM;
  out_data->d_align = in_data != nullptr ? in_data->d_align : 8;
  out_data->d_version = EV_CURRENT;

  Elf_Data* out_xindex = nullptr;
  if (out_shndx != nullptr) {
    tables.shndx.resize(plan.symbol_count * sizeof(Elf32_Word));
    out_xindex = elf_newdata(out_shndx);
    if (out_xindex == nullptr) {
      return make_error(Status::internal, "cannot add index data: {}",
                        libelf_error());
    }
    out_xindex->d_buf = tables.shndx.data();
    out_xindex->d_size = tables.shndx.size();
    out_xindex->d_type = ELF_T_WORD;
    out_xindex->d_align = 4;
    out_xindex->d_version = EV_CURRENT;
  }

  for (size_t i = 0; i < count; ++i) {
    size_t out_index = i;
    if (!plan.symbol_map.empty()) {
      if (plan.symbol_map[i] == k_removed) {
        continue;
      }
      out_index = plan.symbol_map[i];
    }
    GElf_Sym sym;
    Elf32_Word extended = 0;
    if (gelf_getsymshndx(in_data, in_shndx, static_cast<int>(i), &sym,
                         &extended) == nullptr) {
      return make_error(Status::invalid, "{}: cannot read symbol {}: {}",
                        input.path(), i, libelf_error());
    }
    uint64_t index = sym.st_shndx == SHN_XINDEX ? extended : sym.st_shndx;
    bool special = sym.st_shndx != SHN_XINDEX &&
                   (sym.st_shndx == SHN_UNDEF || sym.st_shndx >= SHN_LORESERVE);
    Elf32_Word out_extended = 0;
    if (!special) {
      uint32_t mapped = remap(plan, index);
      if (mapped == 0) {
        // Only non-allocated sections are ever dropped; their symbols
        // (section symbols of debug sections, mostly) lose their section.
        sym.st_shndx =
            GELF_ST_TYPE(sym.st_info) == STT_SECTION ? SHN_UNDEF : SHN_ABS;
      } else if (mapped >= SHN_LORESERVE) {
        sym.st_shndx = SHN_XINDEX;
        out_extended = mapped;
      } else {
        sym.st_shndx = static_cast<uint16_t>(mapped);
      }
    }
    if (gelf_update_symshndx(out_data, out_xindex, static_cast<int>(out_index),
                             &sym, out_extended) == 0) {
      return make_error(Status::internal, "cannot write symbol {}: {}", i,
                        libelf_error());
    }
  }
  return {};
}

} // namespace

std::vector<uint32_t> classify(const ElfFile& file) {
  const auto& sections = file.sections();
  std::vector<uint32_t> roles(sections.size(), 0);
  if (roles.empty()) {
    return roles;
  }
  roles[0] |= role_structural;
  roles[file.shstrndx()] |= role_structural;
  std::optional<size_t> symtab = file.symtab_index();
  if (symtab) {
    roles[*symtab] |= role_symbols;
    size_t strings = sections[*symtab].link;
    if (strings > 0 && strings < sections.size()) {
      roles[strings] |= role_symbols;
    }
  }
  for (const Section& section : sections) {
    uint32_t& role = roles[section.index];
    if (section.type == SHT_SYMTAB_SHNDX && symtab && section.link == *symtab) {
      role |= role_symbols;
    }
    if (section.name == ".BTF") {
      role |= role_btf;
    } else if (section.name == ".BTF.ext") {
      role |= role_btf_ext;
    }
    if (section.type == SHT_NOTE) {
      role |= role_note;
    }
    if (is_debug_name(section.name)) {
      role |= role_debug;
    }
    if (section.name == ".comment") {
      role |= role_comment;
    }
    if (is_reloc(section.type)) {
      role |= role_reloc;
    }
    if ((section.flags & SHF_ALLOC) != 0) {
      role |= role_alloc;
    }
    if ((section.flags & SHF_EXECINSTR) != 0) {
      role |= role_code;
    }
  }
  // The same locator as read_ikconfig(), so the section classified as
  // holding the config is the one the check reads it from.
  std::optional<size_t> config = ikconfig_section_index(file);
  if (config) {
    roles[*config] |= role_ikconfig;
  }
  return roles;
}

Decision btf_policy(const Section&, uint32_t roles) {
  if ((roles & (role_structural | role_symbols | role_btf | role_ikconfig |
                role_note)) != 0) {
    return Decision::keep;
  }
  return (roles & role_alloc) != 0 ? Decision::header_only : Decision::drop;
}

Decision debug_policy(const Section&, uint32_t roles) {
  if ((roles & (role_debug | role_comment)) != 0) {
    return Decision::drop;
  }
  return Decision::keep;
}

Result<StripStats> strip(const ElfFile& input,
                         const std::string& output_path,
                         const Decider& decide,
                         bool sync) {
  if (input.section_count() == 0) {
    return make_error(Status::invalid, "{}: has no section headers to strip",
                      input.path());
  }
  KTC_TRY_ASSIGN(Plan plan, make_plan(input, decide));
  const auto& sections = input.sections();
  Elf* in = input.handle();

  OutputFile output(output_path);
  KTC_TRY(output.create());
  Elf* out = output.elf();

  GElf_Ehdr ehdr;
  if (gelf_getehdr(in, &ehdr) == nullptr) {
    return make_error(Status::invalid, "{}: cannot read the ELF header: {}",
                      input.path(), libelf_error());
  }
  if (gelf_newehdr(out, input.elf_class()) == nullptr) {
    return make_error(Status::internal, "{}: cannot create an ELF header: {}",
                      output_path, libelf_error());
  }
  elf_flagelf(out, ELF_C_SET, ELF_F_LAYOUT);

  // When every allocated byte survives, the loaded image keeps its file
  // layout, so the program headers copied unchanged stay true and the
  // output remains usable as an executable (as strip --strip-debug leaves
  // it); only what follows is packed. Otherwise everything is packed.
  bool preserve = plan.preserves_image;
  uint64_t offset = gelf_fsize(in, ELF_T_EHDR, 1, EV_CURRENT);
  if (preserve) {
    offset = std::max(offset, plan.image_end);
  }
  size_t phnum = input.phdr_count();
  if (phnum > 0) {
    if (gelf_newphdr(out, phnum) == nullptr) {
      return make_error(Status::internal,
                        "{}: cannot create program headers: {}", output_path,
                        libelf_error());
    }
    for (size_t i = 0; i < phnum; ++i) {
      GElf_Phdr phdr;
      if (gelf_getphdr(in, static_cast<int>(i), &phdr) == nullptr ||
          gelf_update_phdr(out, static_cast<int>(i), &phdr) == 0) {
        return make_error(Status::invalid,
                          "{}: cannot copy program header {}: {}", input.path(),
                          i, libelf_error());
      }
    }
    if (!preserve) {
      ehdr.e_phoff = offset;
      offset += gelf_fsize(in, ELF_T_PHDR, phnum, EV_CURRENT);
    }
  } else {
    ehdr.e_phoff = 0;
  }

  const uint64_t address_size = input.elf_class() == ELFCLASS32 ? 4 : 8;
  // Where the ELF header and program headers end in the output: a section
  // without bytes placed before that would make libelf fill over them.
  const uint64_t headers_end =
      preserve ? std::max<uint64_t>(
                     gelf_fsize(in, ELF_T_EHDR, 1, EV_CURRENT),
                     phnum > 0 ? ehdr.e_phoff + gelf_fsize(in, ELF_T_PHDR,
                                                           phnum, EV_CURRENT)
                               : 0)
               : offset;
  RewrittenTables tables;
  Elf_Scn* out_symtab = nullptr;
  Elf_Scn* out_shndx = nullptr;
  StripStats stats;
  stats.input_size = input.file_size();
  std::vector<std::pair<Elf_Scn*, GElf_Shdr>> headers;
  headers.reserve(plan.output_count);

  std::vector<uint32_t> name_offset;
  if (plan.rebuild_names) {
    name_offset = build_name_table(sections, plan, tables.names);
  }
  std::vector<bool> rewrite_relocs(sections.size(), false);
  for (size_t index : plan.reloc_rewrites) {
    rewrite_relocs[index] = true;
  }
  const uint64_t symbol_entry = gelf_fsize(in, ELF_T_SYM, 1, EV_CURRENT);

  for (const Section& section : sections) {
    if (section.index == 0) {
      continue;
    }
    Decision decision = plan.decisions[section.index];
    if (decision == Decision::drop) {
      ++stats.dropped;
      continue;
    }
    Elf_Scn* scn = elf_newscn(out);
    if (scn == nullptr) {
      return make_error(Status::internal, "{}: cannot add a section: {}",
                        output_path, libelf_error());
    }
    GElf_Shdr shdr;
    if (gelf_getshdr(elf_getscn(in, section.index), &shdr) == nullptr) {
      return make_error(Status::invalid, "{}: cannot read section {}: {}",
                        input.path(), section.index, libelf_error());
    }
    shdr.sh_link = remap(plan, section.link);
    if (info_is_section(section)) {
      shdr.sh_info = remap(plan, section.info);
    }
    if (plan.rebuild_names) {
      shdr.sh_name = name_offset[section.index];
    }
    if (decision == Decision::header_only) {
      ++stats.header_only;
      shdr.sh_type = SHT_NOBITS;
      shdr.sh_offset = preserve && (section.flags & SHF_ALLOC) != 0 &&
                               section.offset >= headers_end
                           ? section.offset
                           : offset;
      // A NOBITS section's data only says how large it is.
      Elf_Data* data = elf_newdata(scn);
      if (data == nullptr) {
        return make_error(Status::internal, "{}: cannot add data: {}",
                          output_path, libelf_error());
      }
      data->d_buf = nullptr;
      data->d_size = section.size;
      data->d_type = ELF_T_BYTE;
      data->d_align = 1;
      data->d_version = EV_CURRENT;
      headers.emplace_back(scn, shdr);
      continue;
    }
    ++stats.kept;
    bool is_symtab =
        input.symtab_index() && section.index == *input.symtab_index();
    bool is_shndx = plan.shndx_table && section.index == *plan.shndx_table;
    // Tables libelf translates need their entries aligned in the file.
    uint64_t alignment = section.addralign;
    if (is_symtab || is_shndx) {
      alignment = std::max<uint64_t>(alignment, is_symtab ? address_size : 4);
    }
    bool is_names = plan.rebuild_names && section.index == input.shstrndx();
    if (is_symtab) {
      shdr.sh_size = plan.symbol_count * symbol_entry;
      shdr.sh_info = plan.first_global;
    } else if (is_shndx) {
      shdr.sh_size = plan.symbol_count * sizeof(Elf32_Word);
    } else if (is_names) {
      shdr.sh_size = tables.names.size();
    }
    if (preserve && (section.flags & SHF_ALLOC) != 0 &&
        (section.has_file_data() || section.offset >= headers_end)) {
      shdr.sh_offset = section.offset;
    } else {
      offset = align_up(offset, alignment);
      shdr.sh_offset = offset;
      if (shdr.sh_type != SHT_NOBITS) {
        offset += shdr.sh_size;
      }
    }
    if (is_symtab) {
      out_symtab = scn;
    } else if (is_shndx) {
      out_shndx = scn;
    } else if (is_names) {
      Elf_Data* data = elf_newdata(scn);
      if (data == nullptr) {
        return make_error(Status::internal, "{}: cannot add data: {}",
                          output_path, libelf_error());
      }
      data->d_buf = tables.names.data();
      data->d_size = tables.names.size();
      data->d_type = ELF_T_BYTE;
      data->d_align = 1;
      data->d_version = EV_CURRENT;
    } else if (rewrite_relocs[section.index]) {
      KTC_TRY(rewrite_relocations(input, plan, section, scn, tables));
    } else if (section.has_file_data()) {
      // Kept bytes go out exactly as they are in the input's mapping: raw,
      // never translated, never copied here.
      auto bytes = input.raw_data(section);
      Elf_Data* data = elf_newdata(scn);
      if (data == nullptr) {
        return make_error(Status::internal, "{}: cannot add data: {}",
                          output_path, libelf_error());
      }
      data->d_buf = const_cast<std::byte*>(bytes.data());
      data->d_size = bytes.size();
      data->d_type = ELF_T_BYTE;
      data->d_align = 1;
      data->d_version = EV_CURRENT;
    }
    headers.emplace_back(scn, shdr);
  }
  if (out_symtab != nullptr) {
    KTC_TRY(rewrite_symbols(input, plan, out_symtab, out_shndx, tables));
  }
  for (auto& [scn, shdr] : headers) {
    if (gelf_update_shdr(scn, &shdr) == 0) {
      return make_error(Status::internal, "{}: cannot write a section: {}",
                        output_path, libelf_error());
    }
  }

  offset = align_up(offset, address_size);
  ehdr.e_shoff = offset;
  // Nothing kept can make the output larger than the input but alignment
  // padding; absurd alignments in a crafted file would write gigabytes.
  constexpr uint64_t k_slack = 1 << 20;
  if (offset > input.file_size() + k_slack) {
    return make_error(Status::invalid,
                      "{}: the sections' alignments would make the output {} "
                      "bytes, far more than the input's {}",
                      input.path(), offset, input.file_size());
  }
  size_t shstrndx = remap(plan, input.shstrndx());
  Elf_Scn* zero = elf_getscn(out, 0);
  GElf_Shdr zero_shdr;
  if (zero == nullptr || gelf_getshdr(zero, &zero_shdr) == nullptr) {
    return make_error(Status::internal, "{}: no null section: {}", output_path,
                      libelf_error());
  }
  zero_shdr = GElf_Shdr{};
  if (plan.output_count >= SHN_LORESERVE) {
    zero_shdr.sh_size = plan.output_count;
    ehdr.e_shnum = 0;
  } else {
    ehdr.e_shnum = static_cast<uint16_t>(plan.output_count);
  }
  if (shstrndx >= SHN_LORESERVE) {
    zero_shdr.sh_link = static_cast<uint32_t>(shstrndx);
    ehdr.e_shstrndx = SHN_XINDEX;
  } else {
    ehdr.e_shstrndx = static_cast<uint16_t>(shstrndx);
  }
  if (gelf_update_shdr(zero, &zero_shdr) == 0 ||
      gelf_update_ehdr(out, &ehdr) == 0) {
    return make_error(Status::internal, "{}: cannot write the ELF header: {}",
                      output_path, libelf_error());
  }
  off_t written = elf_update(out, ELF_C_WRITE);
  if (written < 0) {
    return make_error(Status::io, "{}: cannot write: {}", output_path,
                      libelf_error());
  }
  if (sync && ::fsync(output.fd()) != 0) {
    return errno_error(errno, fmt::format("cannot sync {}", output_path));
  }
  stats.output_size = static_cast<uint64_t>(written);
  output.keep();
  return stats;
}

namespace {

// A named symbol as check_output compares it.
using SymbolKey = std::tuple<std::string_view, uint64_t, uint64_t, unsigned>;

Result<std::vector<SymbolKey>> named_symbols(const ElfFile& file) {
  KTC_TRY_ASSIGN(std::vector<Symbol> symbols, file.symbols());
  std::vector<SymbolKey> keys;
  keys.reserve(symbols.size());
  for (const Symbol& symbol : symbols) {
    if (!symbol.name.empty()) {
      keys.emplace_back(symbol.name, symbol.value, symbol.size, symbol.info);
    }
  }
  return keys;
}

} // namespace

Result<void> check_output(const ElfFile& input, const ElfFile& output) {
  KTC_TRY_ASSIGN(std::vector<SymbolKey> before, named_symbols(input));
  KTC_TRY_ASSIGN(std::vector<SymbolKey> after, named_symbols(output));
  // The engine keeps symbols in their order, so the tables usually match
  // as they stand; only a reordered one (a whole_file policy's) is sorted.
  if (before != after) {
    std::sort(before.begin(), before.end());
    std::sort(after.begin(), after.end());
  }
  if (before != after) {
    auto [in_end, out_end] =
        std::mismatch(before.begin(), before.end(), after.begin(), after.end());
    if (in_end != before.end()) {
      return make_error(Status::mismatch,
                        "{}: symbol {} of {} is missing or changed",
                        output.path(), std::get<0>(*in_end), input.path());
    }
    return make_error(Status::mismatch, "{}: has a symbol {} that {} lacks",
                      output.path(), std::get<0>(*out_end), input.path());
  }
  if (before.empty() && input.symtab_index()) {
    return make_error(Status::mismatch, "{}: has no named symbols",
                      output.path());
  }

  const Section* in_btf = input.find(".BTF");
  if (in_btf != nullptr && in_btf->has_file_data()) {
    const Section* out_btf = output.find(".BTF");
    auto want = input.raw_data(*in_btf);
    auto have = out_btf != nullptr ? output.raw_data(*out_btf)
                                   : std::span<const std::byte>{};
    if (have.size() != want.size() ||
        std::memcmp(have.data(), want.data(), want.size()) != 0) {
      return make_error(Status::mismatch, "{}: .BTF differs from {}'s",
                        output.path(), input.path());
    }
  }

  KTC_TRY_ASSIGN(std::optional<std::string> in_id, build_id(input));
  KTC_TRY_ASSIGN(std::optional<std::string> out_id, build_id(output));
  if (in_id != out_id) {
    return make_error(Status::mismatch, "{}: build-id {} differs from {}'s {}",
                      output.path(), out_id.value_or("(none)"), input.path(),
                      in_id.value_or("(none)"));
  }

  // Only what classify() would find is checked, with the same rule, so a
  // kernel without IKCONFIG costs no scan here.
  std::optional<EmbeddedConfig> in_config;
  if (ikconfig_section_index(input)) {
    KTC_TRY_ASSIGN(in_config, read_ikconfig(input));
  }
  if (in_config) {
    auto out_config = read_ikconfig(output);
    if (!out_config || !out_config.value() ||
        out_config.value()->text != in_config->text) {
      return make_error(Status::mismatch,
                        "{}: the embedded kernel config of {} is no longer "
                        "recoverable",
                        output.path(), input.path());
    }
  }
  return {};
}

} // namespace ktc::elf
