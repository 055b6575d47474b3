// libFuzzer harness of the IKCONFIG reader: every input is opened as an
// ELF file and its embedded config read and queried; the raw bytes are
// also queried as .config text, since config_value() takes whatever a
// vmlinux decompresses to. Errors are expected; crashes and sanitizer
// reports are findings.

#include "elf/elf_file.hpp"
#include "elf/ikconfig.hpp"
#include "fuzz_support.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

using namespace ktc;

void query(std::string_view text) {
  // The names ktcache asks about, with and without the prefix, and one
  // that is a prefix of the others.
  for (std::string_view name : {"CONFIG_HZ", "HZ", "CONFIG_H", "CONFIG_"}) {
    (void)elf::config_value(text, name);
  }
  // A name taken from the input itself (its first line), so that the
  // fuzzer can line names and text up.
  size_t newline = text.find('\n');
  if (newline != std::string_view::npos && newline <= 64) {
    (void)elf::config_value(text.substr(newline + 1), text.substr(0, newline));
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::InputFile input;
  std::string_view raw(reinterpret_cast<const char*>(data), size);
  query(raw);

  input.assign(data, size);
  auto file = elf::ElfFile::open(input.path());
  if (!file) {
    return 0;
  }
  auto config = elf::read_ikconfig(*file);
  if (config && *config) {
    query((*config)->text);
  }
  return 0;
}
