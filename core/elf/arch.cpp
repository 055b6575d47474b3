#include "elf/arch.hpp"

#include "elf/elf_file.hpp"

#include <elf.h>

#include <array>

namespace ktc::elf {
namespace {

constexpr std::array k_arches{
    Arch{"x86_64", "x86_64", "arch/x86/boot/bzImage", "bzImage", ELFCLASS64,
         EM_X86_64},
    Arch{"aarch64", "arm64", "arch/arm64/boot/Image", "Image", ELFCLASS64,
         EM_AARCH64},
    Arch{"riscv64", "riscv", "arch/riscv/boot/Image", "Image", ELFCLASS64,
         EM_RISCV},
};

std::string_view machine_name(uint16_t machine) {
  for (const auto& arch : k_arches) {
    if (arch.machine == machine) {
      return arch.name;
    }
  }
  switch (machine) {
  case EM_386:
    return "i386";
  case EM_ARM:
    return "arm";
  case EM_PPC64:
    return "ppc64";
  case EM_S390:
    return "s390";
  default:
    return "another machine";
  }
}

} // namespace

std::span<const Arch> known_arches() {
  return k_arches;
}

Result<Arch> find_arch(std::string_view name) {
  for (const auto& arch : k_arches) {
    if (name == arch.name || name == arch.kernel_arch) {
      return arch;
    }
  }
  std::string known;
  for (const auto& arch : k_arches) {
    known += known.empty() ? "" : ", ";
    known += arch.name;
  }
  if (name == "x86" || name == "i386") {
    return make_error(Status::invalid,
                      "arch '{}': ktcache builds 64-bit kernels only (use "
                      "x86_64)",
                      name);
  }
  return make_error(Status::invalid, "arch '{}' is not one of {}", name, known);
}

Result<void> check_vmlinux_arch(const std::string& vmlinux, const Arch& arch) {
  auto file = ElfFile::open(vmlinux);
  if (!file) {
    return {};
  }
  if (file->elf_class() != arch.elf_class || file->machine() != arch.machine) {
    return make_error(Status::mismatch,
                      "{}: the vmlinux is a {}-bit {} ELF file, not {} as "
                      "requested",
                      vmlinux, file->elf_class() == ELFCLASS64 ? 64 : 32,
                      machine_name(file->machine()), arch.name);
  }
  return {};
}

} // namespace ktc::elf
