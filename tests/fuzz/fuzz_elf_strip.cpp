// libFuzzer harness of the ELF reader and the strip engine: every input is
// opened as an ELF file, read the ways ktcache reads a vmlinux (symbols,
// build-id, roles), stripped with the btf policy, and when that succeeds
// the output is opened again and checked against the input. A malformed
// input must come back as an error; a crash, a sanitizer report, a failed
// strip that leaves its output behind, or an output that does not reopen
// or loses what check_output() checks is a finding.

#include "elf/elf_file.hpp"
#include "elf/strip.hpp"
#include "fuzz_support.hpp"

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace {

using namespace ktc;

void exercise(const std::string& input_path, const std::string& output_path) {
  auto input = elf::ElfFile::open(input_path);
  if (!input) {
    return;
  }
  // Their results do not matter, only that they come back: the strip
  // below reads the same structures its own way.
  (void)input->symbols();
  (void)elf::build_id(*input);
  (void)elf::classify(*input);

  auto stripped = elf::strip(*input, output_path, elf::btf_policy);
  if (fuzz::take_file_size_exceeded()) {
    fuzz::fail("strip of a " + std::to_string(input->file_size()) +
               "-byte input tried to write more than " +
               std::to_string(fuzz::k_max_file_size) + " bytes");
  }
  if (!stripped) {
    if (::access(output_path.c_str(), F_OK) == 0) {
      fuzz::fail("strip failed (" + stripped.error().message + ") but left " +
                 output_path);
    }
    return;
  }
  auto output = elf::ElfFile::open(output_path);
  if (!output) {
    fuzz::fail("strip wrote an output that does not open: " +
               output.error().message);
  }
  // check_output() also refuses inputs it cannot vouch for (a symbol
  // table without named symbols, an IKCONFIG that does not inflate), and
  // ktcache then refuses the output, as it should. Only a refusal of the
  // output of an input that passes against itself is the engine's fault.
  auto checked = elf::check_output(*input, *output);
  if (!checked && elf::check_output(*input, *input)) {
    fuzz::fail("strip wrote an output that check_output refuses: " +
               checked.error().message);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::InputFile input;
  static const std::string output = fuzz::scratch_dir() + "/stripped.elf";
  input.assign(data, size);
  exercise(input.path(), output);
  ::unlink(output.c_str());
  return 0;
}
