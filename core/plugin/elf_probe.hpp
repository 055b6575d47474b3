#pragma once

#include "util/result.hpp"

#include <string>
#include <vector>

namespace ktc::plugin {

// What the dynamic symbol table of a candidate plugin says, read without
// mapping it for execution or running any of its code.
struct ElfProbe {
  // Other ABI majors the file exports an entry point for
  // (ktc_plugin_query_v<N> with N != this host's major).
  std::vector<unsigned> other_majors;
  bool has_entry = false;
};

// Checks that `path` is a shared object this process could load (ELF class,
// byte order and machine of the host, ET_DYN) and looks for the entry
// symbol `entry_symbol` among its defined dynamic function symbols.
// Errors name the file and say what is wrong with it.
Result<ElfProbe> probe_elf(const std::string& path,
                           const std::string& entry_symbol);

} // namespace ktc::plugin
