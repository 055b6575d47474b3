#pragma once

// Kconfig fragments: what a build asks of its .config, merged over a base
// config before olddefconfig, and checked against the result after it.

#include "util/result.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ktc::build {

// One requested setting, normalised: `line` is how .config spells it
// ("CONFIG_HZ=250", "# CONFIG_DEBUG_INFO is not set").
struct KconfigSetting {
  std::string symbol; // "CONFIG_HZ"
  std::string line;
  bool unset() const { return line.starts_with('#'); }
};

// Parses a fragment's text: assignments and "# CONFIG_X is not set"
// lines; blank lines and other comments are skipped. `origin` names the
// text in errors ("fragment /path/x.config"), with the line number.
Result<std::vector<KconfigSetting>> parse_fragment(std::string_view text,
                                                   std::string_view origin);

// "CONFIG_X=y", "X=y", "X=n" (unset), "X=\"text\"", "X=250".
Result<KconfigSetting> parse_setting(std::string_view text);

// `config` with every setting applied: an existing line for the symbol
// (set or "is not set") is replaced in place, later settings win, new
// ones are appended. The result ends with a newline.
std::string merge_fragment(std::string_view config,
                           const std::vector<KconfigSetting>& settings);

// The settings whose line is not in `config` (for an unset bool, also
// accepted: no line for the symbol at all), in request order, each once.
std::vector<std::string>
dropped_settings(std::string_view config,
                 const std::vector<KconfigSetting>& settings);

} // namespace ktc::build
