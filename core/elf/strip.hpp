#pragma once

// The ELF strip engine: writes a copy of an ELF file keeping some sections
// byte for byte, some as headers only (SHT_NOBITS with their address and
// size), and none of the rest, with section indices remapped everywhere
// they appear. A policy decides per section; the engine enforces what
// keeps the output usable whatever the policy says:
//  - allocated sections are kept at least as headers, so every symbol
//    keeps the section it points into;
//  - the null section, the section-name table, the symbol table with its
//    string table and SHT_SYMTAB_SHNDX are kept;
//  - a relocation section whose target is not kept byte for byte, or whose
//    symbol table is gone, is dropped;
//  - program headers are copied unchanged.
// The input is read mapped; dropped sections' bytes are never read, and kept
// ones are written straight from the mapping.

#include "elf/elf_file.hpp"
#include "util/result.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace ktc::elf {

enum class Decision { keep, header_only, drop };

// What a section is to the engine, for policies to decide by
// (KTC_STRIP_ROLE_* in plugin.h has the same values).
enum Role : uint32_t {
  role_structural = 1u << 0, // the null section, the section-name table
  role_symbols = 1u << 1,    // .symtab, its string table, SYMTAB_SHNDX
  role_btf = 1u << 2,        // .BTF (not .BTF.ext)
  role_ikconfig = 1u << 3,   // holds kernel_config_data or IKCFG_ST
  role_note = 1u << 4,       // SHT_NOTE (the build-id among them)
  role_debug = 1u << 5,      // .debug_*, .zdebug_*, .gnu.debuglto_*, .stab*
  role_comment = 1u << 6,    // .comment
  role_reloc = 1u << 7,      // SHT_REL, SHT_RELA, SHT_RELR, CREL
  role_alloc = 1u << 8,      // SHF_ALLOC
  role_code = 1u << 9,       // SHF_EXECINSTR
  role_btf_ext = 1u << 10,   // .BTF.ext
};

// The roles of every section of `file`, by index.
std::vector<uint32_t> classify(const ElfFile& file);

// A policy: the decision for one section given its roles. Errors abort the
// strip.
using Decider =
    std::function<Result<Decision>(const Section& section, uint32_t roles)>;

struct StripStats {
  uint64_t input_size = 0;
  uint64_t output_size = 0;
  size_t kept = 0;
  size_t header_only = 0;
  size_t dropped = 0;
};

// Writes the stripped copy of `input` to `output_path`, which must not
// exist (the caller picks a temporary name and renames it into place); on
// failure nothing is left at `output_path`. The file is fsynced when
// `sync` is set.
Result<StripStats> strip(const ElfFile& input,
                         const std::string& output_path,
                         const Decider& decide,
                         bool sync = false);

// The built-in policies the shipped plugins and the fallback use.
// btf: symbols, strings, BTF, IKCONFIG's section and notes kept; other
// allocated sections header-only; the rest dropped.
Decision btf_policy(const Section& section, uint32_t roles);
// debug: like strip --strip-debug: DWARF, .comment (and the relocations of
// what is dropped) removed, everything else kept.
Decision debug_policy(const Section& section, uint32_t roles);

// Checks that `output` keeps what a test harness reads from `input`: every
// named symbol (name, value, size, type and binding), the .BTF bytes, the
// build-id note and, when the input had one, a recoverable IKCONFIG.
// Status mismatch, with the first difference, when it does not.
Result<void> check_output(const ElfFile& input, const ElfFile& output);

} // namespace ktc::elf
