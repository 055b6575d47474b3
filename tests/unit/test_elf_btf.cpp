#include "cache/root.hpp"
#include "elf/btf.hpp"
#include "elf/elf_file.hpp"
#include "elf_builder.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <string_view>

using ktc::Status;
using ktc::cache::path_inside_root;
using ktc::elf::BtfBytes;
using ktc::elf::has_btf_magic;
using ktc::elf::open_vmlinux;
using ktc::elf::read_btf;
using ktc::elf::read_btf_section;
using ktc::elf::SidecarState;
using ktc::test::TempDir;
namespace builder = ktc::test;

namespace {

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// A vmlinux-like image and the exact bytes of its .BTF section.
struct Vmlinux {
  std::string bytes;
  std::string btf;
};

Vmlinux make_vmlinux(builder::ByteOrder order = builder::ByteOrder::little,
                     unsigned seed = 1) {
  builder::VmlinuxOptions options;
  options.byte_order = order;
  if (order == builder::ByteOrder::big) {
    options.elf_class = builder::ElfClass::elf32;
    options.machine = EM_PPC;
  }
  options.btf_seed = seed;
  builder::ElfImage image = builder::build_vmlinux(options);
  const builder::BuiltSection* btf = image.find(".BTF");
  REQUIRE(btf != nullptr);
  REQUIRE(btf->data.size() > 24);
  return {image.bytes, btf->data};
}

// An ELF file with code and data but no .BTF (CONFIG_DEBUG_INFO_BTF off).
std::string elf_without_btf() {
  builder::ElfBuilder elf(builder::ElfClass::elf64, builder::ByteOrder::little,
                          EM_X86_64);
  builder::SectionSpec text;
  text.name = ".text";
  text.flags = SHF_ALLOC | SHF_EXECINSTR;
  text.data = std::string(64, '\x90');
  elf.add_section(text);
  builder::SectionSpec rodata;
  rodata.name = ".rodata";
  rodata.flags = SHF_ALLOC;
  rodata.data = "not BTF";
  elf.add_section(rodata);
  return elf.build().bytes;
}

std::string
write(const TempDir& dir, const std::string& name, const std::string& bytes) {
  std::string path = dir / name;
  ktc::test::write_file(path, bytes);
  return path;
}

struct stat stat_of(const std::string& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st;
}

// Moves the mtime of `path` by `seconds` from now.
void set_mtime(const std::string& path, int seconds) {
  timespec now;
  REQUIRE(::clock_gettime(CLOCK_REALTIME, &now) == 0);
  timespec times[2] = {now, now};
  times[1].tv_sec += seconds;
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
}

BtfBytes require_btf(const std::string& path, bool use_sidecar) {
  auto result = read_btf(path, use_sidecar);
  REQUIRE_MESSAGE(result.ok(), result.error().message);
  return std::move(result).value();
}

} // namespace

TEST_SUITE_BEGIN("ElfBtf");

TEST_CASE("read_btf_section returns exactly the bytes of .BTF") {
  TempDir dir;
  for (builder::ByteOrder order :
       {builder::ByteOrder::little, builder::ByteOrder::big}) {
    CAPTURE(static_cast<int>(order));
    Vmlinux vmlinux = make_vmlinux(order, 5);
    std::string path = write(dir, "vmlinux", vmlinux.bytes);
    auto file = open_vmlinux(path);
    REQUIRE_MESSAGE(file.ok(), file.error().message);
    auto bytes = read_btf_section(*file);
    REQUIRE_MESSAGE(bytes.ok(), bytes.error().message);
    CHECK(*bytes == vmlinux.btf);
    CHECK(has_btf_magic(*bytes, file->byte_order()));
    // The other byte order's magic is not the magic.
    CHECK_FALSE(has_btf_magic(
        *bytes, file->byte_order() == ELFDATA2LSB ? ELFDATA2MSB : ELFDATA2LSB));

    BtfBytes plain = require_btf(path, false);
    CHECK(plain.bytes == vmlinux.btf);
    CHECK(plain.state == SidecarState::none);
    CHECK(plain.sidecar.empty());
    CHECK_FALSE(ktc::test::exists(path + ".btf"));
  }
}

TEST_CASE("has_btf_magic reads the magic in the file's byte order") {
  CHECK(has_btf_magic(std::string("\x9f\xeb", 2), ELFDATA2LSB));
  CHECK(has_btf_magic(std::string("\xeb\x9f", 2), ELFDATA2MSB));
  CHECK_FALSE(has_btf_magic(std::string("\xeb\x9f", 2), ELFDATA2LSB));
  CHECK_FALSE(has_btf_magic(std::string("\x9f\xeb", 2), ELFDATA2MSB));
  CHECK_FALSE(has_btf_magic(std::string("\x9f", 1), ELFDATA2LSB));
  CHECK_FALSE(has_btf_magic(std::string("\x9f\xeb", 2), ELFDATANONE));
}

TEST_CASE("an ELF file without .BTF is not_found, naming the file and "
          "CONFIG_DEBUG_INFO_BTF") {
  TempDir dir;
  std::string path = write(dir, "vmlinux", elf_without_btf());
  auto result = read_btf(path, false);
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().status == Status::not_found);
  CHECK(contains(result.error().message, path));
  CHECK(contains(result.error().message, "no .BTF section"));
  CHECK(contains(result.error().message, "CONFIG_DEBUG_INFO_BTF"));
  CHECK(result.error().message.find('\n') == std::string::npos);
  // Nor does asking for the sidecar leave one.
  auto with_sidecar = read_btf(path, true);
  REQUIRE_FALSE(with_sidecar.ok());
  CHECK(with_sidecar.error().status == Status::not_found);
  CHECK(ktc::test::list_dir(dir.path()) == std::vector<std::string>{"vmlinux"});
}

TEST_CASE("a file that is not ELF is invalid; a damaged ELF is corrupt") {
  TempDir dir;
  std::string text = write(dir, "text", "this is not an ELF file at all\n");
  for (bool sidecar : {false, true}) {
    auto result = read_btf(text, sidecar);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().status == Status::invalid);
    CHECK(contains(result.error().message, text));
  }

  auto missing = read_btf(dir / "missing", false);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().status == Status::not_found);

  builder::ElfImage valid = builder::build_vmlinux({});
  size_t checked = 0;
  for (const builder::MalformedImage& broken :
       builder::malformed_variants(valid)) {
    // Cut before its magic, a file is no longer ELF at all.
    if (broken.fails_at != builder::FailsAt::open ||
        !broken.bytes.starts_with("\x7f"
                                  "ELF")) {
      continue;
    }
    CAPTURE(broken.name);
    std::string path = write(dir, broken.name, broken.bytes);
    auto result = read_btf(path, false);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().status == Status::corrupt);
    CHECK(contains(result.error().message, path));
    ++checked;
  }
  CHECK(checked > 3);
}

TEST_CASE("a .BTF section without the BTF magic is corrupt") {
  TempDir dir;
  builder::ElfBuilder elf(builder::ElfClass::elf64, builder::ByteOrder::little,
                          EM_X86_64);
  builder::SectionSpec btf;
  btf.name = ".BTF";
  btf.flags = SHF_ALLOC;
  btf.data = std::string(32, 'x');
  elf.add_section(btf);
  std::string path = write(dir, "vmlinux", elf.build().bytes);
  auto result = read_btf(path, true);
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().status == Status::corrupt);
  CHECK(contains(result.error().message, "magic"));
  CHECK_FALSE(ktc::test::exists(path + ".btf"));
}

TEST_CASE("read_btf writes the sidecar, reuses it, and rewrites it when it "
          "is stale or lacks the magic") {
  TempDir dir;
  Vmlinux vmlinux = make_vmlinux();
  std::string path = write(dir, "vmlinux", vmlinux.bytes);
  std::string sidecar = path + ".btf";

  BtfBytes first = require_btf(path, true);
  CHECK(first.bytes == vmlinux.btf);
  CHECK(first.state == SidecarState::written);
  CHECK(first.sidecar == sidecar);
  REQUIRE(ktc::test::exists(sidecar));
  CHECK(ktc::test::read_file(sidecar) == vmlinux.btf);
  // No temporary file is left beside it.
  CHECK(ktc::test::list_dir(dir.path()) ==
        std::vector<std::string>{"vmlinux", "vmlinux.btf"});
  struct stat written = stat_of(sidecar);
  CHECK((written.st_mode & 0777) == (0666 & ~[] {
          mode_t mask = ::umask(0);
          ::umask(mask);
          return mask;
        }()));

  SUBCASE("reused while it is not older than the vmlinux") {
    BtfBytes second = require_btf(path, true);
    CHECK(second.state == SidecarState::reused);
    CHECK(second.bytes == vmlinux.btf);
    CHECK(stat_of(sidecar).st_ino == written.st_ino);
    // What is reused is the sidecar's content, not a fresh extraction.
    std::string altered = vmlinux.btf;
    altered.back() ^= 0x55;
    ktc::test::write_file(sidecar, altered);
    set_mtime(sidecar, 10);
    CHECK(require_btf(path, true).bytes == altered);
  }
  SUBCASE("rewritten when the vmlinux is newer, by a nanosecond") {
    struct stat vmlinux_st = stat_of(path);
    timespec times[2] = {vmlinux_st.st_atim, vmlinux_st.st_mtim};
    times[1].tv_nsec = (times[1].tv_nsec + 1) % 1'000'000'000;
    if (times[1].tv_nsec == 0) {
      times[1].tv_sec += 1;
    }
    REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
    times[1] = vmlinux_st.st_mtim;
    REQUIRE(::utimensat(AT_FDCWD, sidecar.c_str(), times, 0) == 0);
    BtfBytes again = require_btf(path, true);
    CHECK(again.state == SidecarState::written);
    CHECK(again.bytes == vmlinux.btf);
    CHECK(stat_of(sidecar).st_ino != written.st_ino);
  }
  SUBCASE("an equal mtime still counts as fresh") {
    struct stat vmlinux_st = stat_of(path);
    timespec times[2] = {vmlinux_st.st_atim, vmlinux_st.st_mtim};
    REQUIRE(::utimensat(AT_FDCWD, sidecar.c_str(), times, 0) == 0);
    CHECK(require_btf(path, true).state == SidecarState::reused);
  }
  SUBCASE("rewritten when it does not start with the magic") {
    ktc::test::write_file(sidecar, "garbage that is not BTF");
    set_mtime(sidecar, 10);
    BtfBytes again = require_btf(path, true);
    CHECK(again.state == SidecarState::written);
    CHECK(again.bytes == vmlinux.btf);
    CHECK(ktc::test::read_file(sidecar) == vmlinux.btf);
  }
  SUBCASE("without use_sidecar it is neither read nor written") {
    ktc::test::write_file(sidecar, "garbage that is not BTF");
    set_mtime(sidecar, 10);
    BtfBytes plain = require_btf(path, false);
    CHECK(plain.state == SidecarState::none);
    CHECK(plain.bytes == vmlinux.btf);
    CHECK(ktc::test::read_file(sidecar) == "garbage that is not BTF");
  }
}

TEST_CASE("a big-endian vmlinux's sidecar needs the big-endian magic") {
  TempDir dir;
  Vmlinux vmlinux = make_vmlinux(builder::ByteOrder::big);
  REQUIRE(vmlinux.btf.substr(0, 2) == std::string("\xeb\x9f", 2));
  std::string path = write(dir, "vmlinux", vmlinux.bytes);
  CHECK(require_btf(path, true).state == SidecarState::written);
  CHECK(require_btf(path, true).state == SidecarState::reused);
  // The little-endian magic does not pass for it.
  std::string swapped = vmlinux.btf;
  swapped[0] = '\x9f';
  swapped[1] = '\xeb';
  ktc::test::write_file(path + ".btf", swapped);
  set_mtime(path + ".btf", 10);
  BtfBytes again = require_btf(path, true);
  CHECK(again.state == SidecarState::written);
  CHECK(ktc::test::read_file(path + ".btf") == vmlinux.btf);
}

TEST_CASE("a sidecar that cannot be written is a warning only") {
  if (::geteuid() == 0) {
    MESSAGE("skipped: root ignores directory modes");
    return;
  }
  TempDir dir;
  std::string entry = dir / "entry";
  REQUIRE(::mkdir(entry.c_str(), 0777) == 0);
  Vmlinux vmlinux = make_vmlinux();
  std::string path = write(dir, "entry/vmlinux", vmlinux.bytes);
  REQUIRE(::chmod(entry.c_str(), 0555) == 0);
  BtfBytes result = require_btf(path, true);
  REQUIRE(::chmod(entry.c_str(), 0777) == 0);
  CHECK(result.state == SidecarState::unwritable);
  CHECK(result.sidecar.empty());
  CHECK(result.bytes == vmlinux.btf);
  CHECK(ktc::test::list_dir(entry) == std::vector<std::string>{"vmlinux"});
}

TEST_CASE("a sidecar that cannot replace what is in its place is a "
          "warning only, even as root") {
  TempDir dir;
  Vmlinux vmlinux = make_vmlinux();
  std::string path = write(dir, "vmlinux", vmlinux.bytes);
  REQUIRE(::mkdir((path + ".btf").c_str(), 0777) == 0);
  BtfBytes result = require_btf(path, true);
  CHECK(result.state == SidecarState::unwritable);
  CHECK(result.sidecar.empty());
  CHECK(result.bytes == vmlinux.btf);
  CHECK(ktc::test::list_dir(dir.path()) ==
        std::vector<std::string>{"vmlinux", "vmlinux.btf"});
}

TEST_CASE("path_inside_root compares canonical parents by whole "
          "components") {
  TempDir dir;
  std::string root = dir / "root";
  REQUIRE(::mkdir(root.c_str(), 0777) == 0);
  std::string sub = root + "/sub";
  REQUIRE(::mkdir(sub.c_str(), 0777) == 0);
  std::string outside = dir / "outside";
  REQUIRE(::mkdir(outside.c_str(), 0777) == 0);

  // Inside: below the root, or the root's own child; the file itself need
  // not exist.
  CHECK(path_inside_root(root, sub + "/vmlinux"));
  CHECK(path_inside_root(root, root + "/vmlinux"));
  // A missing component before ".." cannot be resolved.
  CHECK_FALSE(path_inside_root(root, root + "/sub/nested/../vmlinux"));
  CHECK(path_inside_root(root, root + "/sub/./vmlinux"));
  CHECK(path_inside_root(root + "/", sub + "/vmlinux"));
  // Outside, including a sibling whose name extends the root's.
  CHECK_FALSE(path_inside_root(root, outside + "/vmlinux"));
  CHECK_FALSE(path_inside_root(root, dir / "vmlinux"));
  std::string sibling = dir / "rootx";
  REQUIRE(::mkdir(sibling.c_str(), 0777) == 0);
  CHECK_FALSE(path_inside_root(root, sibling + "/vmlinux"));
  // The root itself is not inside itself: its parent is outside.
  CHECK_FALSE(path_inside_root(root, root));
  // ".." escaping the root.
  CHECK_FALSE(path_inside_root(root, root + "/sub/../../x"));
  CHECK(path_inside_root(root, root + "/sub/../x"));

  // A root reached through a symbolic link is made canonical, on either
  // side.
  std::string link = dir / "root-link";
  REQUIRE(::symlink(root.c_str(), link.c_str()) == 0);
  CHECK(path_inside_root(link, sub + "/vmlinux"));
  CHECK(path_inside_root(root, link + "/sub/vmlinux"));
  CHECK(path_inside_root(link, link + "/vmlinux"));
  CHECK_FALSE(path_inside_root(link, outside + "/vmlinux"));

  // A link inside the root that leads out of it.
  std::string escape = root + "/escape";
  REQUIRE(::symlink(outside.c_str(), escape.c_str()) == 0);
  CHECK_FALSE(path_inside_root(root, escape + "/vmlinux"));
  // The path itself being a link does not matter: its parent decides.
  std::string file_link = sub + "/vmlinux-link";
  REQUIRE(::symlink((outside + "/vmlinux").c_str(), file_link.c_str()) == 0);
  CHECK(path_inside_root(root, file_link));

  // What cannot be resolved is outside.
  CHECK_FALSE(path_inside_root(root, root + "/missing/vmlinux"));
  CHECK_FALSE(path_inside_root(dir / "no-such-root", sub + "/vmlinux"));
  CHECK_FALSE(path_inside_root("", sub + "/vmlinux"));
  CHECK_FALSE(path_inside_root(root, "vmlinux"));
  CHECK_FALSE(path_inside_root(root, ""));
  CHECK_FALSE(path_inside_root(root, "/"));

  // Relative paths resolve against the working directory.
  char* old = ::getcwd(nullptr, 0);
  REQUIRE(old != nullptr);
  std::string previous = old;
  ::free(old);
  REQUIRE(::chdir(root.c_str()) == 0);
  bool relative_inside = path_inside_root(root, "./vmlinux");
  bool relative_sub = path_inside_root(".", "sub/vmlinux");
  bool bare = path_inside_root(".", "vmlinux");
  REQUIRE(::chdir(previous.c_str()) == 0);
  CHECK(relative_inside);
  CHECK(relative_sub);
  CHECK_FALSE(bare);
  // Everything is inside "/".
  CHECK(path_inside_root("/", outside + "/vmlinux"));
}

TEST_SUITE_END();
