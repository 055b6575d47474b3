#include "sums.hpp"

#include "common.hpp"

#include <vector>

namespace tarball {
namespace {

constexpr std::string_view k_begin_signed =
    "-----BEGIN PGP SIGNED MESSAGE-----";
constexpr std::string_view k_begin_signature = "-----BEGIN PGP SIGNATURE-----";

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    lines.push_back(line);
    if (end == std::string_view::npos) {
      break;
    }
    text.remove_prefix(end + 1);
  }
  return lines;
}

std::string_view trim_right(std::string_view text) {
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
    text.remove_suffix(1);
  }
  return text;
}

void read_sum(std::string_view line, Sums& sums) {
  line = trim_right(line);
  if (line.size() < 66 ||
      !is_hex_digest(to_lower(std::string(line.substr(0, 64)))) ||
      (line[64] != ' ' && line[64] != '\t')) {
    return;
  }
  std::string_view name = line.substr(65);
  if (!name.empty() && (name[0] == ' ' || name[0] == '*')) {
    name.remove_prefix(1);
  }
  if (name.empty()) {
    return;
  }
  sums.digests.insert_or_assign(std::string(name),
                                to_lower(std::string(line.substr(0, 64))));
}

} // namespace

Sums parse_sums(std::string_view text) {
  Sums sums;
  std::vector<std::string_view> lines = split_lines(text);
  size_t begin = 0;
  while (begin < lines.size() && trim_right(lines[begin]) != k_begin_signed) {
    ++begin;
  }
  if (begin == lines.size()) {
    for (auto line : lines) {
      read_sum(line, sums);
    }
    return sums;
  }
  // The armor headers ("Hash: SHA256") end at the first blank line.
  size_t index = begin + 1;
  while (index < lines.size() && !trim_right(lines[index]).empty()) {
    ++index;
  }
  for (++index; index < lines.size(); ++index) {
    std::string_view line = lines[index];
    if (line.starts_with(k_begin_signature)) {
      // Without this line the text is a truncated armor, signed by no one.
      sums.clear_signed = true;
      break;
    }
    if (line.starts_with("- ")) {
      line.remove_prefix(2);
    } else if (line.starts_with("-")) {
      // Not allowed unescaped in a signed body: not a line gpg signed.
      continue;
    }
    read_sum(line, sums);
  }
  return sums;
}

} // namespace tarball
