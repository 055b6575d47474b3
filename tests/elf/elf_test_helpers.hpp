#pragma once

// Shared by the ELF tests: fixture images built once per process, written
// into scratch directories, and compared with what the engine reads.

#include "elf/elf_file.hpp"
#include "elf_builder.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ktc::test {

// The image of a valid fixture; the 65,000-section ones take a moment, so
// each is built once.
inline const ElfImage& fixture_image(const Fixture& fixture) {
  static std::map<std::string, ElfImage> cache;
  auto found = cache.find(fixture.name);
  if (found == cache.end()) {
    found = cache.emplace(fixture.name, build_vmlinux(fixture.options)).first;
  }
  return found->second;
}

inline const Fixture& fixture_named(std::string_view name) {
  static const std::vector<Fixture> fixtures = valid_fixtures();
  for (const Fixture& fixture : fixtures) {
    if (fixture.name == name) {
      return fixture;
    }
  }
  FAIL("no fixture named " << name);
  throw std::logic_error("unreachable");
}

inline std::string
write_image(const TempDir& dir, std::string_view name, std::string_view bytes) {
  std::string path = dir / name;
  write_file(path, bytes);
  return path;
}

inline elf::ElfFile open_elf(const std::string& path) {
  auto file = elf::ElfFile::open(path);
  if (!file) {
    FAIL("cannot open " << path << ": " << file.error().message);
  }
  return std::move(file).value();
}

inline std::vector<elf::Symbol> symbols_of(const elf::ElfFile& file) {
  auto symbols = file.symbols();
  if (!symbols) {
    FAIL("cannot read the symbols of " << file.path() << ": "
                                       << symbols.error().message);
  }
  return std::move(symbols).value();
}

inline std::string_view as_text(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

inline std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
    return static_cast<char>(std::tolower(c));
  });
  return out;
}

} // namespace ktc::test
