// Strip outputs judged by tools that share no code with the engine:
// eu-elflint, binutils readelf and nm. Run as the `elf_tools` test, which
// Meson registers only when the tools are installed (KTC_TEST_ELFLINT,
// KTC_TEST_READELF and KTC_TEST_NM hold their paths).

#include "elf/elf_file.hpp"
#include "elf/strip.hpp"
#include "elf_builder.hpp"
#include "elf_test_helpers.hpp"
#include "strip_checks.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <cctype>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using ktc::Result;
using ktc::elf::Decision;
using ktc::elf::ElfFile;
using ktc::elf::Section;
using namespace ktc::test;

namespace {

struct Policy {
  std::string name;
  ktc::elf::Decider decide;
  // A btf output keeps the program headers while the loadable bytes they
  // describe are gone (header-only) or moved: a separate debuginfo file in
  // eu-elflint's terms, which it checks with --debuginfo (plain mode then
  // reports every allocated section as "not in any loaded segment").
  bool debuginfo_like;
};

std::vector<Policy> policies() {
  return {
      {"btf",
       [](const Section& section, uint32_t roles) -> Result<Decision> {
         return ktc::elf::btf_policy(section, roles);
       },
       true},
      {"debug",
       [](const Section& section, uint32_t roles) -> Result<Decision> {
         return ktc::elf::debug_policy(section, roles);
       },
       false},
  };
}

// The valid fixtures, plus copies without the SHN_COMMON symbol that
// eu-elflint refuses in executables, so that most inputs lint clean and
// their outputs must too.
std::vector<Fixture> tool_fixtures() {
  std::vector<Fixture> fixtures = valid_fixtures();
  for (const Fixture& fixture : valid_fixtures()) {
    if (fixture.options.function_sections == 0) {
      Fixture clean = fixture;
      clean.name += "-no-common";
      clean.options.common_symbol = false;
      fixtures.push_back(clean);
    }
  }
  return fixtures;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream stream(text);
  std::string line;
  while (std::getline(stream, line)) {
    if (!line.empty()) {
      lines.push_back(line);
    }
  }
  return lines;
}

// A complaint with its numbers and spaces blanked: a strip renumbers
// sections and symbols, and the same complaint must compare equal.
std::string without_numbers(const std::string& line) {
  std::string out;
  bool in_number = false;
  for (char c : line) {
    bool digit = std::isdigit(static_cast<unsigned char>(c)) != 0;
    if (digit && !in_number) {
      out += '#';
    } else if (!digit && c != ' ') {
      out += c;
    }
    in_number = digit;
  }
  return out;
}

struct Lint {
  int exit_code = -1;
  std::string report;
  std::set<std::string> complaints;
};

Lint elflint(const std::string& path, bool debuginfo = false) {
  std::vector<std::string> argv{env_path("KTC_TEST_ELFLINT"), "--gnu-ld"};
  if (debuginfo) {
    argv.push_back("--debuginfo");
  }
  argv.push_back(path);
  ProcessResult run = run_process(argv);
  Lint lint;
  lint.exit_code = run.exit_code;
  lint.report = run.out + run.err;
  for (const std::string& line : lines_of(run.out)) {
    if (line.find("No errors") == std::string::npos) {
      lint.complaints.insert(without_numbers(line));
    }
  }
  return lint;
}

struct NmEntry {
  std::string address;
  char letter = '?';
};

std::map<std::string, NmEntry> nm_symbols(const std::string& path) {
  ProcessResult run = run_process({env_path("KTC_TEST_NM"), path});
  REQUIRE_MESSAGE(run.exit_code == 0, run.err);
  CHECK_MESSAGE(run.err.empty(), run.err);
  std::map<std::string, NmEntry> symbols;
  for (const std::string& line : lines_of(run.out)) {
    // "ADDRESS L name", or "         U name" without an address.
    std::istringstream fields(line);
    std::vector<std::string> parts;
    std::string part;
    while (fields >> part) {
      parts.push_back(part);
    }
    REQUIRE_MESSAGE((parts.size() == 3 || parts.size() == 2), line);
    NmEntry entry;
    if (parts.size() == 3) {
      entry.address = parts[0];
    }
    entry.letter = parts[parts.size() - 2][0];
    symbols[parts.back()] = entry;
  }
  return symbols;
}

// nm's letter for a symbol in a section that became header-only: NOBITS
// reads as .bss to binutils, so data letters turn into 'b'; code keeps
// 't' (SHF_EXECINSTR). Case (binding) never changes.
bool same_letter_modulo_nobits(char before, char after) {
  if (before == after) {
    return true;
  }
  char lower_before =
      static_cast<char>(std::tolower(static_cast<unsigned char>(before)));
  char lower_after =
      static_cast<char>(std::tolower(static_cast<unsigned char>(after)));
  bool same_case = (before == lower_before) == (after == lower_after);
  return same_case && lower_after == 'b' &&
         (lower_before == 'r' || lower_before == 'd' || lower_before == 'g');
}

void check_readelf(const std::string& path) {
  for (const std::string option : {"-S", "-s", "-h", "-l"}) {
    CAPTURE(option);
    ProcessResult run =
        run_process({env_path("KTC_TEST_READELF"), option, "-W", path});
    CHECK(run.exit_code == 0);
    for (const std::string& line : lines_of(run.out + run.err)) {
      std::string text = lower(line);
      CHECK_MESSAGE(text.find("error") == std::string::npos, line);
      CHECK_MESSAGE(text.find("warning") == std::string::npos, line);
    }
    CHECK(!run.out.empty());
  }
}

} // namespace

TEST_SUITE_BEGIN("ElfTools");

TEST_CASE("eu-elflint finds nothing in a stripped output that it does not "
          "find in the input") {
  TempDir dir;
  size_t clean_inputs = 0;
  for (const Fixture& fixture : tool_fixtures()) {
    CAPTURE(fixture.name);
    std::string input_path =
        write_image(dir, fixture.name, build_vmlinux(fixture.options).bytes);
    ElfFile input = open_elf(input_path);
    Lint before = elflint(input_path);
    if (before.exit_code == 0) {
      ++clean_inputs;
    }
    for (const Policy& policy : policies()) {
      CAPTURE(policy.name);
      StripResult result =
          strip_to(dir, input, policy.decide, fixture.name + "." + policy.name);
      Lint after = elflint(result.path, policy.debuginfo_like);
      if (before.exit_code == 0) {
        CHECK_MESSAGE(after.exit_code == 0, after.report);
        continue;
      }
      for (const std::string& complaint : after.complaints) {
        CHECK_MESSAGE(before.complaints.count(complaint) == 1,
                      "new complaint: " << complaint << "\nfull report:\n"
                                        << after.report);
      }
    }
  }
  // The comparison means little if every input already fails.
  CHECK(clean_inputs >= 5);
}

TEST_CASE("readelf reads stripped outputs without errors or warnings") {
  TempDir dir;
  for (const Fixture& fixture : valid_fixtures()) {
    CAPTURE(fixture.name);
    std::string input_path =
        write_image(dir, fixture.name, fixture_image(fixture).bytes);
    check_readelf(input_path);
    ElfFile input = open_elf(input_path);
    for (const Policy& policy : policies()) {
      CAPTURE(policy.name);
      StripResult result =
          strip_to(dir, input, policy.decide, fixture.name + "." + policy.name);
      check_readelf(result.path);
    }
  }
}

TEST_CASE("nm lists the same symbols at the same addresses before and after "
          "a strip") {
  TempDir dir;
  for (const Fixture& fixture : valid_fixtures()) {
    CAPTURE(fixture.name);
    const ElfImage& image = fixture_image(fixture);
    std::string input_path = write_image(dir, fixture.name, image.bytes);
    ElfFile input = open_elf(input_path);
    auto before = nm_symbols(input_path);
    // nm must see the builder's symbols, or the comparison is empty.
    REQUIRE(before.count("schedule") == 1);
    REQUIRE(before.count("jiffies") == 1);
    REQUIRE(before.count("__crc_schedule") == 1);

    for (const Policy& policy : policies()) {
      CAPTURE(policy.name);
      StripResult result =
          strip_to(dir, input, policy.decide, fixture.name + "." + policy.name);
      auto after = nm_symbols(result.path);
      CHECK(after.size() == before.size());
      for (const auto& [name, entry] : before) {
        CAPTURE(name);
        auto found = after.find(name);
        if (found == after.end()) {
          FAIL_CHECK("nm no longer lists the symbol");
          continue;
        }
        CHECK(found->second.address == entry.address);
        if (policy.name == "debug") {
          CHECK(found->second.letter == entry.letter);
        } else {
          CHECK_MESSAGE(
              same_letter_modulo_nobits(entry.letter, found->second.letter),
              entry.letter << " became " << found->second.letter);
        }
      }
    }
  }
}

TEST_SUITE_END();
