#pragma once

// What every strip output must satisfy whatever the policy, checked
// against the input from outside the engine: sections by name, symbols by
// name, relocations decoded by tests/support/elf_builder, program headers
// read from the bytes.

#include "elf/elf_file.hpp"
#include "elf/strip.hpp"
#include "test_util.hpp"

#include <string>
#include <string_view>
#include <unordered_map>

namespace ktc::test {

// ElfFile::find() scans; with 65,000 sections, looking every section up
// that way takes minutes.
class SectionsByName {
public:
  explicit SectionsByName(const elf::ElfFile& file);
  const elf::ElfFile& file() const { return m_file; }
  const elf::Section* find(std::string_view name) const;

private:
  const elf::ElfFile& m_file;
  std::unordered_map<std::string_view, const elf::Section*> m_sections;
};

enum class Fate { kept, header_only, dropped };

// How the output treated the input section called `name`.
Fate fate_of(const SectionsByName& input,
             const SectionsByName& output,
             std::string_view name);

// Writes `input`'s stripped copy to a fresh path in `dir`, requires the
// strip to succeed and the output to open.
struct StripResult {
  std::string path;
  elf::StripStats stats;
};
StripResult strip_to(const TempDir& dir,
                     const elf::ElfFile& input,
                     const elf::Decider& decide,
                     std::string_view name);

// The checks listed in strip.hpp's contract, plus the tests' own:
// sections, symbols, relocations, links, program headers and the stats.
void check_strip_invariants(const elf::ElfFile& input,
                            const elf::ElfFile& output,
                            const elf::StripStats& stats);

// What a test harness reads is all there: the .BTF bytes, the build-id,
// and check_output() agrees (for policies that keep them).
void check_harness_view_kept(const elf::ElfFile& input,
                             const elf::ElfFile& output);

// Every PT_LOAD's file bytes are the same in both (for policies that keep
// every allocated section).
void check_segments_intact(const elf::ElfFile& input,
                           const elf::ElfFile& output);

} // namespace ktc::test
