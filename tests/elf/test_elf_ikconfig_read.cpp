// read_ikconfig() and config_value() on the vmlinux-like fixtures (the
// unit binary's test_elf_ikconfig.cpp covers the reader's corner cases on
// its own small images).

#include "elf/elf_file.hpp"
#include "elf/ikconfig.hpp"
#include "elf/strip.hpp"
#include "elf_builder.hpp"
#include "elf_test_helpers.hpp"
#include "strip_checks.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <optional>
#include <string>

using ktc::Status;
using ktc::elf::config_value;
using ktc::elf::ElfFile;
using ktc::elf::read_ikconfig;
using namespace ktc::test;

TEST_SUITE_BEGIN("IkconfigFixtures");

TEST_CASE("read_ikconfig finds the config through kernel_config_data in "
          "every class and byte order") {
  TempDir dir;
  for (const Fixture& fixture : valid_fixtures()) {
    if (fixture.options.ikconfig != IkconfigMode::symbols) {
      continue;
    }
    CAPTURE(fixture.name);
    ElfFile file =
        open_elf(write_image(dir, fixture.name, fixture_image(fixture).bytes));
    auto config = read_ikconfig(file);
    REQUIRE_MESSAGE(config.ok(), config.error().message);
    REQUIRE(config->has_value());
    CHECK((*config)->text == default_config_text());
    CHECK((*config)->section == ".rodata");
    CHECK((*config)->found_by_symbols);
  }
}

TEST_CASE("read_ikconfig falls back to the markers without the symbols") {
  TempDir dir;
  const Fixture& fixture = fixture_named("x86_64-ikconfig-markers-only");
  const ElfImage& image = fixture_image(fixture);
  REQUIRE(image.find_symbol("kernel_config_data") == nullptr);
  ElfFile file = open_elf(write_image(dir, fixture.name, image.bytes));
  auto config = read_ikconfig(file);
  REQUIRE_MESSAGE(config.ok(), config.error().message);
  REQUIRE(config->has_value());
  CHECK((*config)->text == default_config_text());
  CHECK((*config)->section == ".rodata");
  CHECK_FALSE((*config)->found_by_symbols);
}

TEST_CASE("read_ikconfig returns nullopt for a kernel without IKCONFIG") {
  TempDir dir;
  const Fixture& fixture = fixture_named("x86_64-no-build-id-no-config");
  ElfFile file =
      open_elf(write_image(dir, fixture.name, fixture_image(fixture).bytes));
  auto config = read_ikconfig(file);
  REQUIRE_MESSAGE(config.ok(), config.error().message);
  CHECK_FALSE(config->has_value());
}

TEST_CASE("read_ikconfig fails on a blob that does not inflate") {
  TempDir dir;
  VmlinuxOptions options;
  options.ikconfig = IkconfigMode::corrupt_gzip;
  std::string path = write_image(dir, "corrupt", build_vmlinux(options).bytes);
  ElfFile file = open_elf(path);
  auto config = read_ikconfig(file);
  REQUIRE_FALSE(config.ok());
  CHECK(config.error().status == Status::corrupt);
  CHECK(config.error().message.find(path) != std::string::npos);
  CHECK(config.error().message.find('\n') == std::string::npos);
}

TEST_CASE("read_ikconfig still finds the config after either strip") {
  TempDir dir;
  for (const std::string name :
       {"x86_64-elf64-lsb", "ppc-elf32-msb", "x86_64-ikconfig-markers-only"}) {
    CAPTURE(name);
    const Fixture& fixture = fixture_named(name);
    ElfFile input =
        open_elf(write_image(dir, name, fixture_image(fixture).bytes));
    for (auto policy : {ktc::elf::btf_policy, ktc::elf::debug_policy}) {
      auto decide = [policy](const ktc::elf::Section& section, uint32_t roles)
          -> ktc::Result<ktc::elf::Decision> { return policy(section, roles); };
      StripResult result =
          strip_to(dir, input, decide,
                   std::string(name) +
                       (policy == ktc::elf::btf_policy ? ".btf" : ".debug"));
      ElfFile output = open_elf(result.path);
      auto config = read_ikconfig(output);
      REQUIRE_MESSAGE(config.ok(), config.error().message);
      REQUIRE(config->has_value());
      CHECK((*config)->text == default_config_text());
      CHECK((*config)->found_by_symbols ==
            (fixture.options.ikconfig == IkconfigMode::symbols));
    }
  }
}

TEST_CASE("config_value reads an option by either name") {
  std::string text = default_config_text();
  CHECK(config_value(text, "CONFIG_HZ") == std::optional<std::string>("1000"));
  CHECK(config_value(text, "HZ") == std::optional<std::string>("1000"));
  // A longer option sharing the prefix is a different option.
  CHECK(config_value(text, "HZ_1000") == std::optional<std::string>("y"));
  CHECK(config_value(text, "NR_CPUS") == std::optional<std::string>("64"));
  // Quotes stay as written.
  CHECK(config_value(text, "LOCALVERSION") ==
        std::optional<std::string>("\"-ktcache\""));
  CHECK(config_value(text, "CONFIG_NO_SUCH_OPTION") == std::nullopt);
  CHECK(config_value(text, "X") == std::nullopt);
  CHECK(config_value(text, "CONFIG_X") == std::nullopt);
  CHECK(config_value(text, "HZ_100") == std::nullopt);
  CHECK(config_value("", "HZ") == std::nullopt);
}

TEST_SUITE_END();
