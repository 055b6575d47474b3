#pragma once

// The BTF a vmlinux carries in its .BTF section (CONFIG_DEBUG_INFO_BTF),
// and the sidecar file "<vmlinux>.btf" that keeps a copy of those bytes
// beside a cached vmlinux so that later readers need not parse the ELF.

#include "elf/elf_file.hpp"
#include "util/result.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace ktc::elf {

// struct btf_header's magic, in the byte order of the file it describes.
inline constexpr uint16_t k_btf_magic = 0xeb9f;

// Whether `bytes` start with the BTF magic in `byte_order` (ELFDATA2LSB or
// ELFDATA2MSB).
bool has_btf_magic(std::string_view bytes, int byte_order);

// Opens `path` as a vmlinux: like ElfFile::open(), but a file that starts
// with the ELF magic and does not parse is corrupt, not invalid.
Result<ElfFile> open_vmlinux(const std::string& path);

// The bytes of `file`'s .BTF section. not_found (naming the file and
// CONFIG_DEBUG_INFO_BTF) when there is none; corrupt when the section holds
// no file bytes or does not start with the BTF magic.
Result<std::string> read_btf_section(const ElfFile& file);

// What happened to the sidecar during read_btf().
enum class SidecarState {
  none,       // not asked for
  reused,     // read from a sidecar not older than the vmlinux
  written,    // extracted and written to the sidecar
  unwritable, // extracted; writing the sidecar failed (logged)
};
std::string_view to_string(SidecarState state);

struct BtfBytes {
  std::string bytes;
  // "<vmlinux>.btf" when reused or written, else empty.
  std::string sidecar;
  SidecarState state = SidecarState::none;
};

// The .BTF bytes of the vmlinux at `path`. With `use_sidecar`, the file
// "<path>.btf" is read instead when its mtime is not older than the
// vmlinux's (to the nanosecond) and it starts with the BTF magic in the
// vmlinux's byte order; otherwise the bytes are extracted and the sidecar
// written atomically (a temporary ".<name>.btf.tmp-*" beside it, fsync,
// rename). A sidecar that cannot be written is logged as a warning only.
// Without `use_sidecar` no file other than `path` is opened or written.
Result<BtfBytes> read_btf(const std::string& path, bool use_sidecar);

} // namespace ktc::elf
