#include "build/kconfig_fragment.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using ktc::Status;
using ktc::build::dropped_settings;
using ktc::build::KconfigSetting;
using ktc::build::merge_fragment;
using ktc::build::parse_fragment;
using ktc::build::parse_setting;

namespace {

std::vector<std::string> lines_of(const std::vector<KconfigSetting>& settings) {
  std::vector<std::string> lines;
  for (const auto& setting : settings) {
    lines.push_back(setting.line);
  }
  return lines;
}

} // namespace

TEST_SUITE("build") {
  TEST_CASE("settings are normalised to how .config spells them") {
    CHECK(parse_setting("CONFIG_HZ=250")->line == "CONFIG_HZ=250");
    CHECK(parse_setting("HZ=250")->line == "CONFIG_HZ=250");
    CHECK(parse_setting("  IKCONFIG=y ")->line == "CONFIG_IKCONFIG=y");
    auto unset = parse_setting("DEBUG_INFO=n");
    REQUIRE(unset);
    CHECK(unset->line == "# CONFIG_DEBUG_INFO is not set");
    CHECK(unset->unset());
    CHECK(unset->symbol == "CONFIG_DEBUG_INFO");
    CHECK(parse_setting("LOCALVERSION=\"-kt\"")->line ==
          "CONFIG_LOCALVERSION=\"-kt\"");
  }

  TEST_CASE("malformed settings are refused with the setting named") {
    for (const char* bad :
         {"HZ", "=y", "HZ=", "H Z=1", "HZ-1=y", "LOCALVERSION=\"open", ""}) {
      CAPTURE(bad);
      auto parsed = parse_setting(bad);
      REQUIRE_FALSE(parsed);
      CHECK(parsed.error().status == Status::invalid);
      CHECK(parsed.error().message.find("--kconfig-set") != std::string::npos);
    }
  }

  TEST_CASE("fragments keep assignments and 'is not set' lines only") {
    auto parsed = parse_fragment("# a comment\n\nCONFIG_A=y\r\n"
                                 "# CONFIG_B is not set\nCONFIG_C=\"x y\"\n",
                                 "fragment f");
    REQUIRE(parsed);
    CHECK(lines_of(*parsed) == std::vector<std::string>{"CONFIG_A=y",
                                                        "# CONFIG_B is not set",
                                                        "CONFIG_C=\"x y\""});
  }

  TEST_CASE("a bad fragment line is named with its file and number") {
    auto parsed = parse_fragment("CONFIG_A=y\nHZ=250\n", "fragment /f.cfg");
    REQUIRE_FALSE(parsed);
    CHECK(parsed.error().message.find("/f.cfg line 2") != std::string::npos);
    auto novalue = parse_fragment("CONFIG_A=\n", "fragment g");
    REQUIRE_FALSE(novalue);
    CHECK(novalue.error().message.find("line 1") != std::string::npos);
  }

  TEST_CASE("merging replaces in place, appends new symbols, last wins") {
    std::string config = "# header\nCONFIG_A=y\n# CONFIG_B is not set\n"
                         "CONFIG_HZ=100\n";
    std::vector<KconfigSetting> settings{
        *parse_setting("B=y"), *parse_setting("HZ=250"),
        *parse_setting("NEW=m"), *parse_setting("HZ=1000"),
        *parse_setting("A=n")};
    CHECK(merge_fragment(config, settings) ==
          "# header\n# CONFIG_A is not set\nCONFIG_B=y\nCONFIG_HZ=1000\n"
          "CONFIG_NEW=m\n");
    CHECK(merge_fragment("", {}) == "");
    CHECK(merge_fragment("CONFIG_A=y", {}) == "CONFIG_A=y\n");
  }

  TEST_CASE("merging never matches a symbol by prefix") {
    std::string config = "CONFIG_HZ_250=y\nCONFIG_HZ=250\n";
    auto merged = merge_fragment(config, {*parse_setting("HZ=1000")});
    CHECK(merged == "CONFIG_HZ_250=y\nCONFIG_HZ=1000\n");
  }

  TEST_CASE("dropped settings are those the final config does not carry") {
    std::string final_config = "CONFIG_A=y\nCONFIG_HZ=250\n"
                               "# CONFIG_B is not set\nCONFIG_NR=128\n";
    std::vector<KconfigSetting> settings{
        *parse_setting("A=y"),       // kept
        *parse_setting("HZ=1000"),   // changed by olddefconfig
        *parse_setting("B=n"),       // kept as "is not set"
        *parse_setting("GONE=n"),    // absent counts as unset
        *parse_setting("NR=1"),      // =1 must not match =128
        *parse_setting("UNKNOWN=y"), // dropped
    };
    CHECK(dropped_settings(final_config, settings) ==
          std::vector<std::string>{"CONFIG_HZ=1000", "CONFIG_NR=1",
                                   "CONFIG_UNKNOWN=y"});
  }

  TEST_CASE("a symbol asked for twice is judged by its last request") {
    std::vector<KconfigSetting> settings{*parse_setting("HZ=100"),
                                         *parse_setting("HZ=250")};
    CHECK(dropped_settings("CONFIG_HZ=250\n", settings).empty());
    CHECK(dropped_settings("CONFIG_HZ=100\n", settings) ==
          std::vector<std::string>{"CONFIG_HZ=250"});
  }
}
