#include "elf/elf_file.hpp"
#include "elf/ikconfig.hpp"
#include "ikconfig_elf.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <elf.h>

#include <cstring>
#include <optional>
#include <string>
#include <string_view>

using ktc::Status;
using ktc::elf::config_value;
using ktc::elf::ElfFile;
using ktc::elf::EmbeddedConfig;
using ktc::elf::read_ikconfig;
namespace fixture = ktc::test::elf;

namespace {

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// Writes `bytes` to a fresh file and opens it as ELF.
ElfFile open_elf(const ktc::test::TempDir& dir,
                 const std::string& name,
                 const std::string& bytes) {
  std::string path = dir / name;
  ktc::test::write_file(path, bytes);
  auto file = ElfFile::open(path);
  REQUIRE_MESSAGE(file.ok(), file.error().message);
  return std::move(file).value();
}

EmbeddedConfig require_config(const ElfFile& file) {
  auto config = read_ikconfig(file);
  REQUIRE_MESSAGE(config.ok(), config.error().message);
  REQUIRE(config->has_value());
  return **config;
}

// Checks the failure is a corrupt blob named by file, and returns its
// message.
std::string corruption(const ElfFile& file) {
  auto config = read_ikconfig(file);
  REQUIRE_FALSE(config.ok());
  CHECK(config.error().status == Status::corrupt);
  const std::string& message = config.error().message;
  CHECK(message.starts_with(file.path() + ": "));
  CHECK(contains(message, "IKCONFIG"));
  CHECK(message.find('\n') == std::string::npos);
  return message;
}

// An ELF header followed by `payload`, with no section or program headers.
std::string sectionless_elf(std::string_view payload) {
  Elf64_Ehdr ehdr{};
  std::memcpy(ehdr.e_ident, ELFMAG, SELFMAG);
  ehdr.e_ident[EI_CLASS] = ELFCLASS64;
  ehdr.e_ident[EI_DATA] = ELFDATA2LSB;
  ehdr.e_ident[EI_VERSION] = EV_CURRENT;
  ehdr.e_type = ET_EXEC;
  ehdr.e_machine = EM_X86_64;
  ehdr.e_version = EV_CURRENT;
  ehdr.e_ehsize = sizeof(Elf64_Ehdr);
  std::string out(reinterpret_cast<const char*>(&ehdr), sizeof ehdr);
  out += payload;
  return out;
}

} // namespace

TEST_SUITE_BEGIN("Ikconfig");

TEST_CASE("read_ikconfig finds the config through kernel_config_data") {
  ktc::test::TempDir dir;
  std::string config = fixture::sample_config();
  ElfFile file =
      open_elf(dir, "vmlinux", fixture::vmlinux_with_config(config, true));
  EmbeddedConfig embedded = require_config(file);
  CHECK(embedded.text == config);
  CHECK(embedded.found_by_symbols);
  CHECK(embedded.section == ".rodata");
}

TEST_CASE("read_ikconfig scans for the markers when the file has no "
          "symbols for them") {
  ktc::test::TempDir dir;
  std::string config = fixture::sample_config();
  ElfFile file =
      open_elf(dir, "vmlinux", fixture::vmlinux_with_config(config, false));
  EmbeddedConfig embedded = require_config(file);
  CHECK(embedded.text == config);
  CHECK_FALSE(embedded.found_by_symbols);
  CHECK(embedded.section == ".rodata");
}

TEST_CASE("read_ikconfig uses the symbols even without the markers") {
  ktc::test::TempDir dir;
  fixture::VmlinuxSpec spec;
  spec.blob = fixture::gzip("CONFIG_HZ=300\n");
  spec.with_markers = false;
  // The blob starts right after the prefix; point the symbols at it.
  uint64_t start = fixture::k_rodata_addr + spec.rodata_prefix.size();
  spec.with_symbols = false;
  spec.extra_symbols = {
      {"kernel_config_data", start, 2},
      {"kernel_config_data_end", start + spec.blob.size(), 2},
  };
  ElfFile file = open_elf(dir, "vmlinux", fixture::vmlinux(spec));
  EmbeddedConfig embedded = require_config(file);
  CHECK(embedded.text == "CONFIG_HZ=300\n");
  CHECK(embedded.found_by_symbols);
}

TEST_CASE("read_ikconfig falls back to the markers when the symbols point "
          "outside their section") {
  ktc::test::TempDir dir;
  std::string config = fixture::sample_config();
  fixture::VmlinuxSpec spec;
  spec.blob = fixture::gzip(config);
  spec.with_symbols = false;

  SUBCASE("past the end of the section") {
    spec.extra_symbols = {
        {"kernel_config_data", fixture::k_rodata_addr + 0x10000000, 2},
        {"kernel_config_data_end", fixture::k_rodata_addr + 0x10001000, 2},
    };
  }
  SUBCASE("in another section than the end") {
    spec.extra_symbols = {
        {"kernel_config_data", fixture::k_text_addr, 1},
        {"kernel_config_data_end", fixture::k_rodata_addr + 8, 2},
    };
  }
  SUBCASE("end before start") {
    spec.extra_symbols = {
        {"kernel_config_data", fixture::k_rodata_addr + 16, 2},
        {"kernel_config_data_end", fixture::k_rodata_addr + 8, 2},
    };
  }
  SUBCASE("absolute symbols") {
    spec.extra_symbols = {
        {"kernel_config_data", fixture::k_rodata_addr, SHN_ABS},
        {"kernel_config_data_end", fixture::k_rodata_addr + 8, SHN_ABS},
    };
  }
  SUBCASE("only one of the two") {
    spec.extra_symbols = {
        {"kernel_config_data", fixture::k_rodata_addr + 72, 2},
    };
  }
  ElfFile file = open_elf(dir, "vmlinux", fixture::vmlinux(spec));
  EmbeddedConfig embedded = require_config(file);
  CHECK(embedded.text == config);
  CHECK_FALSE(embedded.found_by_symbols);
}

TEST_CASE("read_ikconfig skips stray markers that no gzip stream follows") {
  ktc::test::TempDir dir;
  std::string config = fixture::sample_config();
  fixture::VmlinuxSpec spec;
  spec.blob = fixture::gzip(config);
  spec.with_symbols = false;
  spec.rodata_prefix = "a string IKCFG_ST that is not the blob; ";
  ElfFile file = open_elf(dir, "vmlinux", fixture::vmlinux(spec));
  CHECK(require_config(file).text == config);
}

TEST_CASE("read_ikconfig finds a blob in an allocated section other than "
          "read-only data") {
  ktc::test::TempDir dir;
  std::string blob = "IKCFG_ST" + fixture::gzip("CONFIG_HZ=250\n") + "IKCFG_ED";
  std::string bytes = fixture::build({
      {".rodata", SHT_PROGBITS, SHF_ALLOC, fixture::k_rodata_addr,
       std::string(64, 'r')},
      {".data", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, 0xffffffff83000000ull,
       "dddd" + blob},
  });
  ElfFile file = open_elf(dir, "vmlinux", bytes);
  EmbeddedConfig embedded = require_config(file);
  CHECK(embedded.text == "CONFIG_HZ=250\n");
  CHECK(embedded.section == ".data");
}

TEST_CASE("read_ikconfig never scans sections the kernel does not load") {
  // Debug info, symbol and string tables are most of a vmlinux: a marker in
  // them is not the kernel's config.
  ktc::test::TempDir dir;
  std::string blob = "IKCFG_ST" + fixture::gzip("CONFIG_HZ=250\n") + "IKCFG_ED";
  std::string bytes = fixture::build({
      {".rodata", SHT_PROGBITS, SHF_ALLOC, fixture::k_rodata_addr,
       std::string(64, 'r')},
      {".debug_str", SHT_PROGBITS, 0, 0, "debug" + blob},
  });
  ElfFile file = open_elf(dir, "vmlinux", bytes);
  auto config = read_ikconfig(file);
  REQUIRE_MESSAGE(config.ok(), config.error().message);
  CHECK_FALSE(config->has_value());
}

TEST_CASE("read_ikconfig scans a file without section headers whole") {
  ktc::test::TempDir dir;
  std::string payload =
      "padding IKCFG_ST" + fixture::gzip("CONFIG_HZ=100\n") + "IKCFG_ED";
  ElfFile file = open_elf(dir, "vmlinux", sectionless_elf(payload));
  REQUIRE(file.section_count() == 0);
  EmbeddedConfig embedded = require_config(file);
  CHECK(embedded.text == "CONFIG_HZ=100\n");
  CHECK(embedded.section.empty());
  CHECK_FALSE(embedded.found_by_symbols);
}

TEST_CASE("read_ikconfig reports no config for a kernel built without "
          "IKCONFIG") {
  ktc::test::TempDir dir;

  SUBCASE("a vmlinux with a symbol table") {
    ElfFile file = open_elf(dir, "vmlinux", fixture::vmlinux_without_config());
    auto config = read_ikconfig(file);
    REQUIRE_MESSAGE(config.ok(), config.error().message);
    CHECK_FALSE(config->has_value());
  }
  SUBCASE("a start marker at the very end of the data") {
    std::string bytes = fixture::build({
        {".rodata", SHT_PROGBITS, SHF_ALLOC, fixture::k_rodata_addr,
         "rodata IKCFG_ST"},
    });
    ElfFile file = open_elf(dir, "vmlinux", bytes);
    auto config = read_ikconfig(file);
    REQUIRE_MESSAGE(config.ok(), config.error().message);
    CHECK_FALSE(config->has_value());
  }
  SUBCASE("a file without sections or markers") {
    ElfFile file = open_elf(dir, "vmlinux", sectionless_elf("nothing here"));
    auto config = read_ikconfig(file);
    REQUIRE_MESSAGE(config.ok(), config.error().message);
    CHECK_FALSE(config->has_value());
  }
}

TEST_CASE("read_ikconfig reports a blob that does not decompress as corrupt, "
          "naming the file") {
  ktc::test::TempDir dir;
  std::string config = fixture::sample_config();
  std::string good = fixture::gzip(config);
  fixture::VmlinuxSpec spec;
  std::string expected;

  SUBCASE("damaged deflate data") {
    spec.blob = good;
    for (size_t i = 10; i < spec.blob.size() - 8; ++i) {
      spec.blob[i] = static_cast<char>(0xff);
    }
    expected = "does not decompress";
  }
  SUBCASE("a wrong CRC in the trailer") {
    spec.blob = good;
    spec.blob[spec.blob.size() - 8] ^= 0x55;
    expected = "does not decompress";
  }
  SUBCASE("a truncated stream") {
    spec.blob = good.substr(0, good.size() / 2);
    expected = "truncated";
  }
  SUBCASE("no gzip stream between the markers") {
    spec.blob = "this is not gzip";
    spec.with_symbols = false;
    expected = "not a gzip stream";
  }
  SUBCASE("symbols bounding something else") {
    spec.blob = "this is not gzip either";
    expected = "not a gzip stream";
  }
  SUBCASE("text that is not UTF-8") {
    spec.blob = fixture::gzip("CONFIG_HZ=1000\nCONFIG_X=\"\xff\xfe\"\n");
    expected = "not UTF-8";
  }
  CAPTURE(expected);
  ElfFile file = open_elf(dir, "vmlinux", fixture::vmlinux(spec));
  std::string message = corruption(file);
  CHECK_MESSAGE(contains(message, expected), message);
}

TEST_CASE("read_ikconfig refuses a blob that inflates past 16 MiB") {
  ktc::test::TempDir dir;
  fixture::VmlinuxSpec spec;
  spec.blob = fixture::gzip(std::string((16u << 20) + 1, 'y'));
  ElfFile file = open_elf(dir, "vmlinux", fixture::vmlinux(spec));
  std::string message = corruption(file);
  CHECK_MESSAGE(contains(message, "more than 16 MiB"), message);
}

TEST_CASE("read_ikconfig accepts a config of exactly 16 MiB") {
  ktc::test::TempDir dir;
  std::string config((16u << 20) - 1, 'y');
  config += '\n';
  ElfFile file =
      open_elf(dir, "vmlinux", fixture::vmlinux_with_config(config, true));
  CHECK(require_config(file).text.size() == (16u << 20));
}

TEST_SUITE_END();

TEST_SUITE_BEGIN("ConfigValue");

TEST_CASE("config_value accepts the name with or without CONFIG_") {
  std::string config = fixture::sample_config();
  CHECK(config_value(config, "CONFIG_HZ") ==
        std::optional<std::string>("1000"));
  CHECK(config_value(config, "HZ") == std::optional<std::string>("1000"));
  CHECK(config_value(config, "HZ_1000") == std::optional<std::string>("y"));
  CHECK(config_value(config, "CONFIG_IKCONFIG") ==
        std::optional<std::string>("y"));
}

TEST_CASE("config_value keeps quotes as written") {
  std::string config = fixture::sample_config();
  CHECK(config_value(config, "LOCALVERSION") ==
        std::optional<std::string>("\"\""));
  CHECK(config_value(config, "CC_VERSION_TEXT") ==
        std::optional<std::string>("\"gcc (Debian 12.2.0-14) 12.2.0\""));
}

TEST_CASE("config_value gives nothing for an option that is absent or not "
          "set") {
  std::string config = fixture::sample_config();
  CHECK_FALSE(config_value(config, "LOCALVERSION_AUTO"));
  CHECK_FALSE(config_value(config, "CONFIG_DEBUG_INFO_NONE"));
  CHECK_FALSE(config_value(config, "CONFIG_NOT_THERE"));
  // A prefix of a set option is a different option.
  CHECK_FALSE(config_value(config, "CONFIG_H"));
  CHECK_FALSE(config_value(config, "CONFIG_SCHED_CLASS"));
  CHECK_FALSE(config_value(config, ""));
  CHECK_FALSE(config_value(config, "CONFIG_"));
  CHECK_FALSE(config_value("", "HZ"));
}

TEST_CASE("config_value reads lines as Kconfig does") {
  SUBCASE("the last assignment wins") {
    CHECK(config_value("CONFIG_HZ=250\nCONFIG_HZ=1000\n", "HZ") ==
          std::optional<std::string>("1000"));
    CHECK_FALSE(config_value("CONFIG_HZ=250\n# CONFIG_HZ is not set\n", "HZ"));
    CHECK(config_value("# CONFIG_HZ is not set\nCONFIG_HZ=300", "HZ") ==
          std::optional<std::string>("300"));
  }
  SUBCASE("CRLF line ends and surrounding blanks") {
    CHECK(config_value("CONFIG_A=y\r\n  CONFIG_HZ=100 \r\n", "HZ") ==
          std::optional<std::string>("100"));
  }
  SUBCASE("an empty value") {
    CHECK(config_value("CONFIG_CMDLINE=\n", "CMDLINE") ==
          std::optional<std::string>(""));
  }
  SUBCASE("comments that mention the option") {
    CHECK_FALSE(config_value("# CONFIG_HZ=1000 was here\n", "HZ"));
  }
}

TEST_SUITE_END();
