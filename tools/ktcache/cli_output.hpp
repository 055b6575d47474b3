#pragma once

// Formatting shared by the commands: sizes, one-line messages, the JSON
// shape of an entry, and aligned tables.

#include <boost/json/value.hpp>
#include <ktcache/ktcache.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ktc::cli {

// Folds a message onto one line: newlines become "; ", and surrounding
// whitespace is trimmed.
std::string one_line(std::string_view text);

// "512 B", "4.1 kB", "12.3 MB" (decimal units).
std::string format_size(uint64_t bytes);

// The apparent size of the regular files directly inside `dir`; 0 when it
// cannot be read.
uint64_t directory_size(const std::string& dir);

// "1 entry", "2 entries".
std::string count_entries(size_t count);

// The JSON object describing an entry, as list, lookup and store print it.
// `kconfig_hash` is the caller's fragment hash, when given.
boost::json::value entry_json(const ktc_entry* entry,
                              const std::optional<std::string>& kconfig_hash);

// Prints a JSON document on one line of stdout.
void print_json(const boost::json::value& value);

// Columns separated by two spaces and padded to the widest cell; the last
// column is never padded, so lines carry no trailing blanks.
class Table {
public:
  explicit Table(std::vector<std::string> header);
  void add_row(std::vector<std::string> cells);
  // A row whose first cell is aligned and whose `rest` runs freely after it.
  void add_wide_row(std::string first, std::string rest);
  void print() const;

private:
  struct Row {
    std::vector<std::string> cells;
    bool wide = false;
  };
  std::vector<Row> m_rows;
};

} // namespace ktc::cli
