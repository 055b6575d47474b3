#include "cache/cache.hpp"
#include "elf/arch.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <string>

using ktc::Status;
using ktc::elf::check_vmlinux_arch;
using ktc::elf::find_arch;

TEST_SUITE("elf") {
  TEST_CASE("arches are found by ktstr's and the kernel's names") {
    auto x86 = find_arch("x86_64");
    REQUIRE(x86);
    CHECK(x86->kernel_arch == "x86_64");
    CHECK(x86->image_path == "arch/x86/boot/bzImage");
    auto arm = find_arch("arm64");
    REQUIRE(arm);
    CHECK(arm->name == "aarch64");
    CHECK(arm->image_name == "Image");
    CHECK(find_arch("aarch64")->kernel_arch == "arm64");
  }

  TEST_CASE("32-bit x86 and unknown arches are refused by name") {
    auto x86 = find_arch("x86");
    REQUIRE_FALSE(x86);
    CHECK(x86.error().status == Status::invalid);
    CHECK(x86.error().message.find("x86_64") != std::string::npos);
    auto other = find_arch("sparc");
    REQUIRE_FALSE(other);
    CHECK(other.error().message.find("'sparc'") != std::string::npos);
  }

  TEST_CASE("a vmlinux of another machine is a mismatch naming both") {
    // This test binary is an ELF file of the host's arch.
    std::string self = "/proc/self/exe";
    auto host = find_arch(ktc::cache::host_arch());
    REQUIRE(host);
    CHECK(check_vmlinux_arch(self, *host));
    auto other = find_arch(host->name == "x86_64" ? "aarch64" : "x86_64");
    REQUIRE(other);
    auto refused = check_vmlinux_arch(self, *other);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().status == Status::mismatch);
    CHECK(refused.error().message.find(std::string(other->name)) !=
          std::string::npos);
    CHECK(refused.error().message.find(std::string(host->name)) !=
          std::string::npos);
  }

  TEST_CASE("a file that is not ELF is left to the store to judge") {
    ktc::test::TempDir dir;
    ktc::test::write_file(dir / "vmlinux", "not an ELF file");
    CHECK(check_vmlinux_arch(dir / "vmlinux", *find_arch("x86_64")));
  }
}
