#include "cli_output.hpp"

#include "cli_capi.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <system_error>

namespace ktc::cli {

std::string one_line(std::string_view text) {
  std::string folded;
  folded.reserve(text.size());
  for (char c : text) {
    if (c == '\n') {
      folded += "; ";
    } else if (c != '\r') {
      folded += c;
    }
  }
  auto first = folded.find_first_not_of(" \t;");
  if (first == std::string::npos) {
    return {};
  }
  auto last = folded.find_last_not_of(" \t;");
  return folded.substr(first, last - first + 1);
}

std::string format_size(uint64_t bytes) {
  static constexpr std::array<const char*, 5> k_units = {"kB", "MB", "GB", "TB",
                                                         "PB"};
  if (bytes < 1000) {
    return fmt::format("{} B", bytes);
  }
  double value = static_cast<double>(bytes) / 1000.0;
  size_t unit = 0;
  // 999.95 would print as "1000.0": step up before rounding gets there.
  while (value >= 999.95 && unit + 1 < k_units.size()) {
    value /= 1000.0;
    ++unit;
  }
  return fmt::format("{:.1f} {}", value, k_units[unit]);
}

uint64_t directory_size(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  uint64_t total = 0;
  fs::directory_iterator it(dir, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::error_code file_ec;
    if (it->symlink_status(file_ec).type() != fs::file_type::regular) {
      continue;
    }
    auto size = it->file_size(file_ec);
    if (!file_ec) {
      total += size;
    }
  }
  return total;
}

std::string count_entries(size_t count) {
  return fmt::format("{} {}", count, count == 1 ? "entry" : "entries");
}

namespace {

boost::json::value nullable(const char* text) {
  if (text == nullptr) {
    return nullptr;
  }
  return boost::json::string(text);
}

bool records_kconfig_hash(const boost::json::value& metadata) {
  const auto* object = metadata.if_object();
  if (object == nullptr) {
    return false;
  }
  for (const char* field : {"kconfig_hash", "ktstr_kconfig_hash"}) {
    auto it = object->find(field);
    if (it != object->end() && it->value().is_string()) {
      return true;
    }
  }
  return false;
}

std::string kconfig_status_name(const ktc_entry* entry,
                                const boost::json::value& metadata,
                                const std::optional<std::string>& hash) {
  if (!hash) {
    return records_kconfig_hash(metadata) ? "unchecked" : "untracked";
  }
  int status = 0;
  check(ktc_entry_kconfig_status(&status, entry, hash->c_str()));
  switch (status) {
  case KTC_KCONFIG_MATCHES:
    return "matches";
  case KTC_KCONFIG_STALE:
    return "stale";
  default:
    return "untracked";
  }
}

} // namespace

boost::json::value entry_json(const ktc_entry* entry,
                              const std::optional<std::string>& kconfig_hash) {
  ktc_entry_info info = entry_info(entry);
  boost::json::object object;
  object["key"] = info.key;
  object["path"] = info.path;
  if (info.state != KTC_ENTRY_VALID) {
    object["status"] = "corrupt";
    object["error_kind"] = nullable(info.error_kind);
    object["reason"] = nullable(info.reason);
    return object;
  }
  object["status"] = "valid";
  boost::json::value metadata;
  if (info.metadata_json != nullptr) {
    std::error_code ec;
    metadata = boost::json::parse(info.metadata_json, ec);
    if (ec) {
      // Note: the library hands out JSON it parsed itself, so this is a
      // library bug; show the text rather than lose it.
      metadata = boost::json::string(info.metadata_json);
    }
  }
  object["metadata"] = metadata;
  object["image_path"] = nullable(info.image_path);
  object["vmlinux_path"] = nullable(info.vmlinux_path);
  object["config_path"] = nullable(info.config_path);
  if (info.last_used < 0) {
    object["last_used"] = nullptr;
  } else {
    object["last_used"] = info.last_used;
  }
  object["kconfig_status"] = kconfig_status_name(entry, metadata, kconfig_hash);
  return object;
}

void print_json(const boost::json::value& value) {
  fmt::print("{}\n", boost::json::serialize(value));
}

Table::Table(std::vector<std::string> header) {
  m_rows.push_back({std::move(header), false});
}

void Table::add_row(std::vector<std::string> cells) {
  m_rows.push_back({std::move(cells), false});
}

void Table::add_wide_row(std::string first, std::string rest) {
  m_rows.push_back({{std::move(first), std::move(rest)}, true});
}

void Table::print() const {
  std::vector<size_t> widths;
  for (const auto& row : m_rows) {
    size_t aligned = row.wide ? 1 : row.cells.size();
    widths.resize(std::max(widths.size(), aligned), 0);
    for (size_t i = 0; i < aligned; ++i) {
      widths[i] = std::max(widths[i], row.cells[i].size());
    }
  }
  for (const auto& row : m_rows) {
    std::string line;
    for (size_t i = 0; i < row.cells.size(); ++i) {
      bool last = i + 1 == row.cells.size();
      bool pad = !last && !(row.wide && i > 0);
      line += row.cells[i];
      if (pad) {
        line.append(widths[i] - row.cells[i].size() + 2, ' ');
      }
    }
    auto end = line.find_last_not_of(' ');
    line.erase(end == std::string::npos ? 0 : end + 1);
    fmt::print("{}\n", line);
  }
}

} // namespace ktc::cli
