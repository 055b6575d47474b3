#include "cache/key.hpp"

#include "util/sha256.hpp"

#include <algorithm>
#include <string>

namespace ktc::cache {
namespace {

bool is_control(char c) {
  auto byte = static_cast<unsigned char>(c);
  return byte < 0x20 || byte == 0x7f;
}

bool is_safe_key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '+' ||
         c == ',' || c == '=' || c == '~' || c == '-';
}

// The start of a rejected name for a message: control bytes (a NUL would
// cut the message short at the C ABI, a newline would split it) as \xNN.
std::string quoted_prefix(std::string_view name) {
  std::string shown;
  for (char c : name.substr(0, 64)) {
    if (is_control(c)) {
      shown += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    } else {
      shown += c;
    }
  }
  if (name.size() > 64) {
    shown += "...";
  }
  return shown;
}

// Makes one part of a key safe; see ktc_key_compose() for the rules.
std::string sanitize_part(std::string_view part) {
  std::string safe;
  safe.reserve(part.size());
  for (char c : part) {
    safe.push_back(is_safe_key_char(c) ? c : '_');
  }
  for (size_t at = safe.find(".."); at != std::string::npos;
       at = safe.find("..", at)) {
    safe[at] = '_';
  }
  if (!safe.empty() && safe.front() == '.') {
    safe.front() = '_';
  }
  if (safe != part) {
    safe += '~';
    safe += sha256_hex(part).substr(0, 8);
  }
  return safe;
}

} // namespace

Result<void> validate_key(std::string_view key) {
  auto invalid = [&](std::string_view rule) {
    return make_error(Status::invalid, "invalid cache key \"{}\": {}",
                      quoted_prefix(key), rule);
  };
  bool blank = std::all_of(key.begin(), key.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
  });
  if (blank) {
    return invalid("must not be empty or whitespace-only");
  }
  if (key.find('/') != std::string_view::npos ||
      key.find('\\') != std::string_view::npos) {
    return invalid("must not contain path separators");
  }
  if (key == "." || key == "..") {
    return invalid("must not be a directory reference");
  }
  if (key.find("..") != std::string_view::npos) {
    return invalid("must not contain path traversal (\"..\")");
  }
  if (key.find('\0') != std::string_view::npos) {
    return invalid("must not contain null bytes");
  }
  if (key.starts_with(".tmp-")) {
    return invalid("the .tmp- prefix is reserved for stores in progress");
  }
  if (key.front() == '.') {
    return invalid("must not start with '.' (reserved for bookkeeping)");
  }
  if (key.size() > k_key_max) {
    return invalid(
        fmt::format("longer than {} bytes ({})", k_key_max, key.size()));
  }
  if (key.find(':') != std::string_view::npos) {
    return invalid("must not contain ':' (reserved for source schemes)");
  }
  if (std::any_of(key.begin(), key.end(), is_control)) {
    return invalid("must not contain control characters");
  }
  return {};
}

Result<void> validate_image_name(std::string_view name) {
  auto invalid = [&](std::string_view rule) {
    return make_error(Status::invalid, "invalid image name \"{}\": {}",
                      quoted_prefix(name), rule);
  };
  if (name.empty()) {
    return invalid("must not be empty");
  }
  if (name.find('/') != std::string_view::npos ||
      name.find('\\') != std::string_view::npos) {
    return invalid("must not contain path separators");
  }
  if (name.find("..") != std::string_view::npos) {
    return invalid("must not contain \"..\"");
  }
  if (name.find('\0') != std::string_view::npos ||
      std::any_of(name.begin(), name.end(), is_control)) {
    return invalid("must not contain null bytes or control characters");
  }
  if (name.front() == '.') {
    return invalid("must not start with '.'");
  }
  if (name.size() > 255) {
    return invalid("longer than 255 bytes");
  }
  if (name == "metadata.json" || name == "vmlinux" || name == "config") {
    return invalid("the name is reserved for another file of the entry");
  }
  return {};
}

Result<std::string> compose_key(std::span<const std::string_view> parts) {
  if (parts.empty()) {
    return make_error(Status::invalid, "a key needs at least one part");
  }
  std::string key;
  for (std::string_view part : parts) {
    if (part.empty()) {
      return make_error(Status::invalid, "a key part must not be empty");
    }
    if (!key.empty()) {
      key += '-';
    }
    key += sanitize_part(part);
  }
  if (key.size() > k_key_max) {
    std::string digest = sha256_hex(key).substr(0, 16);
    key.resize(k_key_max - digest.size() - 1);
    key += '~';
    key += digest;
  }
  KTC_TRY(validate_key(key));
  return key;
}

} // namespace ktc::cache
