#include "elf/btf.hpp"

#include "util/fd.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/sys.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <random>

namespace ktc::elf {
namespace {

constexpr std::string_view k_elf_magic = "\x7f"
                                         "ELF";

// The first bytes of `fd`, up to `size`; fewer when the file is shorter.
std::string read_prefix(int fd, size_t size) {
  std::string prefix(size, '\0');
  size_t have = 0;
  while (have < size) {
    ssize_t got = ::pread(fd, prefix.data() + have, size - have,
                          static_cast<off_t>(have));
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got <= 0) {
      break;
    }
    have += static_cast<size_t>(got);
  }
  prefix.resize(have);
  return prefix;
}

bool starts_with_elf_magic(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  return fd && read_prefix(fd.get(), k_elf_magic.size()) == k_elf_magic;
}

int64_t mtime_ns(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000LL +
         st.st_mtim.tv_nsec;
}

// The byte order e_ident names, or ELFDATANONE when `fd` is not an ELF file
// of a known byte order.
int ident_byte_order(int fd) {
  std::string ident = read_prefix(fd, EI_NIDENT);
  if (ident.size() < EI_NIDENT || !ident.starts_with(k_elf_magic)) {
    return ELFDATANONE;
  }
  int order = static_cast<unsigned char>(ident[EI_DATA]);
  return order == ELFDATA2LSB || order == ELFDATA2MSB ? order : ELFDATANONE;
}

// The sidecar's bytes when they may stand for the vmlinux's .BTF: a
// regular file, not older than the vmlinux, with the magic in its order.
std::optional<std::string> reusable_sidecar(const std::string& sidecar,
                                            const struct stat& vmlinux,
                                            int byte_order) {
  Fd fd(
      ::open(sidecar.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) {
    if (errno != ENOENT) {
      KTC_LOG(debug, "Cannot open the BTF sidecar {}: {}", sidecar,
              std::strerror(errno));
    }
    return std::nullopt;
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    KTC_LOG(debug, "Ignored the BTF sidecar {}: not a regular file", sidecar);
    return std::nullopt;
  }
  if (mtime_ns(st) < mtime_ns(vmlinux)) {
    KTC_LOG(debug, "Ignored the BTF sidecar {}: older than its vmlinux",
            sidecar);
    return std::nullopt;
  }
  std::string bytes = read_prefix(fd.get(), static_cast<size_t>(st.st_size));
  if (bytes.size() != static_cast<size_t>(st.st_size) ||
      !has_btf_magic(bytes, byte_order)) {
    KTC_LOG(debug, "Ignored the BTF sidecar {}: no BTF magic", sidecar);
    return std::nullopt;
  }
  return bytes;
}

std::string random_nonce() {
  static thread_local std::mt19937_64 engine{std::random_device{}()};
  return fmt::format("{:016x}", engine());
}

// Writes `bytes` to `sidecar` through a temporary file in its directory,
// so that a reader sees the old file or the whole new one.
Result<void> write_sidecar(const std::string& sidecar, std::string_view bytes) {
  size_t slash = sidecar.rfind('/');
  std::string directory = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : sidecar.substr(0, slash);
  std::string name = fs::base_name(sidecar);
  KTC_TRY_ASSIGN(Fd dir, fs::open_dir(AT_FDCWD, directory, false));
  std::string temp =
      fmt::format(".{}.tmp-{}-{}", name, random_nonce(), ::getpid());
  Fd out(::openat(dir.get(), temp.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666));
  if (!out) {
    return errno_error(errno, "cannot create " + directory + "/" + temp);
  }
  auto discard = [&](int error, std::string_view what) {
    ::unlinkat(dir.get(), temp.c_str(), 0);
    return errno_error(error, fmt::format("cannot {} {}", what, sidecar));
  };
  if (int error = sys::write_all(out.get(), bytes.data(), bytes.size());
      error != 0) {
    return discard(error, "write");
  }
  if (sys::fsync(out.get()) != 0) {
    return discard(errno, "sync");
  }
  out.reset();
  if (sys::renameat(dir.get(), temp.c_str(), dir.get(), name.c_str()) != 0) {
    return discard(errno, "rename a temporary file to");
  }
  if (sys::fsync(dir.get()) != 0) {
    KTC_LOG(debug, "Cannot sync the directory {}: {}", directory,
            std::strerror(errno));
  }
  return {};
}

} // namespace

bool has_btf_magic(std::string_view bytes, int byte_order) {
  if (bytes.size() < 2) {
    return false;
  }
  auto first = static_cast<unsigned char>(bytes[0]);
  auto second = static_cast<unsigned char>(bytes[1]);
  uint16_t value = byte_order == ELFDATA2MSB
                       ? static_cast<uint16_t>((first << 8) | second)
                       : static_cast<uint16_t>((second << 8) | first);
  return (byte_order == ELFDATA2LSB || byte_order == ELFDATA2MSB) &&
         value == k_btf_magic;
}

Result<ElfFile> open_vmlinux(const std::string& path) {
  Result<ElfFile> file = ElfFile::open(path);
  if (!file && file.error().status == Status::invalid &&
      starts_with_elf_magic(path)) {
    // The magic is there, so it meant to be ELF: damaged, not foreign.
    return Error{Status::corrupt, file.error().message};
  }
  return file;
}

Result<std::string> read_btf_section(const ElfFile& file) {
  const Section* section = file.find(".BTF");
  if (section == nullptr) {
    return make_error(Status::not_found,
                      "{}: no .BTF section (the kernel was built without "
                      "CONFIG_DEBUG_INFO_BTF)",
                      file.path());
  }
  if (!section->has_file_data()) {
    return make_error(Status::corrupt, "{}: the .BTF section holds no bytes",
                      file.path());
  }
  std::span<const std::byte> data = file.raw_data(*section);
  std::string bytes(reinterpret_cast<const char*>(data.data()), data.size());
  if (!has_btf_magic(bytes, file.byte_order())) {
    return make_error(Status::corrupt,
                      "{}: the .BTF section does not start with the BTF magic "
                      "0xeB9F",
                      file.path());
  }
  return bytes;
}

std::string_view to_string(SidecarState state) {
  switch (state) {
  case SidecarState::none:
    return "none";
  case SidecarState::reused:
    return "reused";
  case SidecarState::written:
    return "written";
  case SidecarState::unwritable:
    return "unwritable";
  }
  return "none";
}

Result<BtfBytes> read_btf(const std::string& path, bool use_sidecar) {
  BtfBytes result;
  std::string sidecar = path + ".btf";
  struct stat vmlinux_st;
  if (use_sidecar) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (!fd) {
      return errno_error(errno, path);
    }
    if (::fstat(fd.get(), &vmlinux_st) != 0) {
      return errno_error(errno, path);
    }
    int order =
        S_ISREG(vmlinux_st.st_mode) ? ident_byte_order(fd.get()) : ELFDATANONE;
    if (order != ELFDATANONE) {
      if (auto bytes = reusable_sidecar(sidecar, vmlinux_st, order)) {
        KTC_LOG(debug, "Reused the BTF sidecar {}", sidecar);
        result.bytes = std::move(*bytes);
        result.sidecar = std::move(sidecar);
        result.state = SidecarState::reused;
        return result;
      }
    }
  }

  KTC_TRY_ASSIGN(ElfFile file, open_vmlinux(path));
  KTC_TRY_ASSIGN(result.bytes, read_btf_section(file));
  if (!use_sidecar) {
    return result;
  }
  if (auto written = write_sidecar(sidecar, result.bytes); !written) {
    KTC_LOG(warn, "Cannot write the BTF sidecar {}: {}", sidecar,
            written.error().message);
    result.state = SidecarState::unwritable;
    return result;
  }
  KTC_LOG(debug, "Wrote the BTF sidecar {}", sidecar);
  result.sidecar = std::move(sidecar);
  result.state = SidecarState::written;
  return result;
}

} // namespace ktc::elf
