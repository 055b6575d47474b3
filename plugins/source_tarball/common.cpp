#include "common.hpp"

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdio>
#include <cstdlib>

namespace tarball {

const ktc_host_services* g_host = nullptr;

const char* Call::identity(const char* name) const {
  // identity() arrived with ABI minor 2; an older host's table ends before.
  if (g_host->struct_size <
          offsetof(ktc_host_services, identity) + sizeof g_host->identity ||
      g_host->identity == nullptr) {
    return nullptr;
  }
  return g_host->identity(m_call, name);
}

bool Call::offline() const {
  if (g_host->struct_size <
          offsetof(ktc_host_services, offline) + sizeof g_host->offline ||
      g_host->offline == nullptr) {
    const char* value = std::getenv("KTCACHE_OFFLINE");
    return value != nullptr && std::string_view(value) == "1";
  }
  return g_host->offline(m_call) != 0;
}

std::string env_or(const char* name, std::string_view fallback) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    return std::string(fallback);
  }
  return value;
}

std::string without_trailing_slash(std::string text) {
  while (text.size() > 1 && text.back() == '/') {
    text.pop_back();
  }
  return text;
}

bool is_hex_digest(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string to_lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  });
  return text;
}

std::string human_size(uint64_t bytes) {
  char text[32];
  if (bytes < 1000000) {
    std::snprintf(text, sizeof text, "%.1f kB",
                  static_cast<double>(bytes) / 1000.0);
  } else {
    std::snprintf(text, sizeof text, "%.1f MB",
                  static_cast<double>(bytes) / 1e6);
  }
  return text;
}

} // namespace tarball
