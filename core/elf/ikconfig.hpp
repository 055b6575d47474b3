#pragma once

// The kernel configuration embedded in a vmlinux by CONFIG_IKCONFIG: a gzip
// stream between the "IKCFG_ST" and "IKCFG_ED" markers, which the symbols
// kernel_config_data and kernel_config_data_end bound.

#include "elf/elf_file.hpp"
#include "util/result.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace ktc::elf {

struct EmbeddedConfig {
  // The decompressed .config text.
  std::string text;
  // Which section held it.
  std::string section;
  // True when the symbols located it, false when the marker scan did.
  bool found_by_symbols = false;
};

// The embedded config of `file`; nullopt when it has none (no symbols and
// no markers), which is not an error. A blob that is found but does not
// decompress is an error (status corrupt) naming the file.
Result<std::optional<EmbeddedConfig>> read_ikconfig(const ElfFile& file);

// The index of the section read_ikconfig() reads the config from, found the
// same way but without decompressing it; nullopt when there is none (or
// the file has no section headers).
std::optional<size_t> ikconfig_section_index(const ElfFile& file);

// The value of option `name` ("CONFIG_HZ" or "HZ") in .config text: the
// text after '=' with surrounding quotes kept as written. nullopt when the
// option is absent or "is not set".
std::optional<std::string> config_value(std::string_view config_text,
                                        std::string_view name);

} // namespace ktc::elf
