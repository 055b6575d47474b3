#pragma once

// The architectures ktcache builds and stores kernels for, and what each
// means to the kernel's build system and to ELF.

#include "util/result.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ktc::elf {

struct Arch {
  // ktstr's spelling, used in keys and metadata: "x86_64", "aarch64".
  std::string_view name;
  // The kernel's ARCH= value. Never plain "x86", which configures a
  // 32-bit kernel unless CONFIG_64BIT is set.
  std::string_view kernel_arch;
  // The boot image, relative to the tree, and its name in an entry.
  std::string_view image_path;
  std::string_view image_name;
  // ELFCLASS32/64 and e_machine of its vmlinux.
  int elf_class;
  uint16_t machine;
};

std::span<const Arch> known_arches();

// The arch called `name` (also accepting the kernel's spelling, "arm64").
// Status::invalid naming the known ones when there is none.
Result<Arch> find_arch(std::string_view name);

// Refuses an ELF `vmlinux` whose class or machine is not `arch`'s
// (Status::mismatch, naming both). A file that is not ELF is not judged
// here: the strip check and the store deal with it.
Result<void> check_vmlinux_arch(const std::string& vmlinux, const Arch& arch);

} // namespace ktc::elf
