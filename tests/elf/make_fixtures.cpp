// Writes every synthetic ELF fixture (valid and malformed) into a directory,
// one file each, for a fuzzer's seed corpus or a look with readelf:
//   make_fixtures DIR

#include "elf_builder.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

namespace {

bool write_fixture(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) {
    std::fprintf(stderr, "make_fixtures: cannot write %s\n", path.c_str());
    return false;
  }
  return true;
}

} // namespace

int main(int argc, char** argv) {
  using namespace ktc::test;
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_fixtures DIR\n");
    return 2;
  }
  std::string dir = argv[1];
  if (::mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST) {
    std::fprintf(stderr, "make_fixtures: cannot create %s: %s\n", dir.c_str(),
                 std::strerror(errno));
    return 1;
  }

  // Malformed copies of the two small images of opposite class and byte
  // order; of the 8 MB extended-numbering image only the damage specific to
  // it, as the rest would repeat the small ones at 8 MB a seed.
  const std::string malformed_bases[] = {"x86_64-elf64-lsb", "ppc-elf32-msb"};
  const std::string extended_base = "ppc-elf32-msb-many-sections";
  size_t written = 0;
  for (const Fixture& fixture : valid_fixtures()) {
    ElfImage image = build_vmlinux(fixture.options);
    if (!write_fixture(dir + "/valid-" + fixture.name + ".elf", image.bytes)) {
      return 1;
    }
    ++written;
    bool small_base =
        std::find(std::begin(malformed_bases), std::end(malformed_bases),
                  fixture.name) != std::end(malformed_bases);
    if (!small_base && fixture.name != extended_base) {
      continue;
    }
    for (const MalformedImage& variant : malformed_variants(image)) {
      if (!small_base && variant.name != "extended-count-past-end") {
        continue;
      }
      std::string name =
          "malformed-" + fixture.name + "-" + variant.name + ".elf";
      if (!write_fixture(dir + "/" + name, variant.bytes)) {
        return 1;
      }
      ++written;
    }
  }

  VmlinuxOptions corrupt;
  corrupt.build_id = default_build_id();
  corrupt.ikconfig = IkconfigMode::corrupt_gzip;
  if (!write_fixture(dir + "/ikconfig-corrupt-gzip.elf",
                     build_vmlinux(corrupt).bytes)) {
    return 1;
  }
  ++written;
  std::printf("%zu fixtures written to %s\n", written, dir.c_str());
  return 0;
}
