#include "build/kconfig_fragment.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

namespace ktc::build {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
    text.remove_prefix(1);
  }
  while (!text.empty() &&
         (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return text;
}

bool valid_symbol(std::string_view symbol) {
  if (symbol.empty()) {
    return false;
  }
  return std::all_of(symbol.begin(), symbol.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '_';
  });
}

std::string with_prefix(std::string_view symbol) {
  return symbol.starts_with("CONFIG_") ? std::string(symbol)
                                       : "CONFIG_" + std::string(symbol);
}

// The symbol a .config line sets or unsets, if any.
std::optional<std::string> symbol_of_line(std::string_view line) {
  line = trim(line);
  if (line.starts_with("# ") && line.ends_with(" is not set")) {
    std::string_view symbol = line.substr(
        2, line.size() - 2 - std::string_view(" is not set").size());
    if (symbol.starts_with("CONFIG_") && valid_symbol(symbol)) {
      return std::string(symbol);
    }
    return std::nullopt;
  }
  auto equals = line.find('=');
  if (equals == std::string_view::npos || !line.starts_with("CONFIG_")) {
    return std::nullopt;
  }
  std::string_view symbol = line.substr(0, equals);
  return valid_symbol(symbol) ? std::optional<std::string>(symbol)
                              : std::nullopt;
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    auto newline = text.find('\n');
    lines.push_back(text.substr(0, newline));
    if (newline == std::string_view::npos) {
      break;
    }
    text.remove_prefix(newline + 1);
  }
  return lines;
}

Result<KconfigSetting> parse_assignment(std::string_view text,
                                        std::string_view where) {
  auto equals = text.find('=');
  if (equals == std::string_view::npos) {
    return make_error(Status::invalid,
                      "{}: '{}' is not a setting (expected CONFIG_X=value or "
                      "# CONFIG_X is not set)",
                      where, text);
  }
  std::string_view name = trim(text.substr(0, equals));
  std::string_view value = trim(text.substr(equals + 1));
  if (!valid_symbol(name)) {
    return make_error(Status::invalid, "{}: '{}' is not a Kconfig symbol name",
                      where, name);
  }
  if (value.empty()) {
    return make_error(Status::invalid, "{}: {} has no value", where, name);
  }
  if (value.front() == '"' && (value.size() < 2 || value.back() != '"')) {
    return make_error(Status::invalid, "{}: {} has an unterminated string",
                      where, name);
  }
  std::string symbol = with_prefix(name);
  if (value == "n") {
    return KconfigSetting{symbol, fmt::format("# {} is not set", symbol)};
  }
  return KconfigSetting{symbol, fmt::format("{}={}", symbol, value)};
}

} // namespace

Result<KconfigSetting> parse_setting(std::string_view text) {
  return parse_assignment(trim(text), fmt::format("--kconfig-set '{}'", text));
}

Result<std::vector<KconfigSetting>> parse_fragment(std::string_view text,
                                                   std::string_view origin) {
  std::vector<KconfigSetting> settings;
  size_t number = 0;
  for (std::string_view raw : split_lines(text)) {
    ++number;
    std::string_view line = trim(raw);
    if (line.empty()) {
      continue;
    }
    if (line.front() == '#') {
      if (auto symbol = symbol_of_line(line)) {
        settings.push_back({*symbol, fmt::format("# {} is not set", *symbol)});
      }
      continue;
    }
    std::string where = fmt::format("{} line {}", origin, number);
    if (!line.starts_with("CONFIG_")) {
      return make_error(Status::invalid, "{}: '{}' does not start with CONFIG_",
                        where, line);
    }
    KTC_TRY_ASSIGN(KconfigSetting setting, parse_assignment(line, where));
    settings.push_back(std::move(setting));
  }
  return settings;
}

std::string merge_fragment(std::string_view config,
                           const std::vector<KconfigSetting>& settings) {
  // The last request for a symbol wins.
  std::map<std::string, std::string, std::less<>> wanted;
  for (const auto& setting : settings) {
    wanted[setting.symbol] = setting.line;
  }
  std::string merged;
  std::set<std::string, std::less<>> written;
  for (std::string_view line : split_lines(config)) {
    auto symbol = symbol_of_line(line);
    if (symbol) {
      auto found = wanted.find(*symbol);
      if (found != wanted.end()) {
        if (written.insert(*symbol).second) {
          merged += found->second;
          merged += '\n';
        }
        continue;
      }
    }
    merged += line;
    merged += '\n';
  }
  for (const auto& setting : settings) {
    if (written.insert(setting.symbol).second) {
      merged += wanted[setting.symbol];
      merged += '\n';
    }
  }
  return merged;
}

std::vector<std::string>
dropped_settings(std::string_view config,
                 const std::vector<KconfigSetting>& settings) {
  std::set<std::string, std::less<>> lines;
  std::set<std::string, std::less<>> symbols;
  for (std::string_view line : split_lines(config)) {
    lines.emplace(trim(line));
    if (auto symbol = symbol_of_line(line)) {
      symbols.insert(*symbol);
    }
  }
  std::map<std::string, std::string, std::less<>> wanted;
  for (const auto& setting : settings) {
    wanted[setting.symbol] = setting.line;
  }
  std::vector<std::string> dropped;
  std::set<std::string, std::less<>> reported;
  for (const auto& setting : settings) {
    const std::string& line = wanted[setting.symbol];
    if (!reported.insert(setting.symbol).second) {
      continue;
    }
    bool survived = lines.contains(line) || (line.starts_with('#') &&
                                             !symbols.contains(setting.symbol));
    if (!survived) {
      dropped.push_back(line);
    }
  }
  return dropped;
}

} // namespace ktc::build
