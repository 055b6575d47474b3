#pragma once

#include "util/result.hpp"

#include <span>
#include <string>
#include <string_view>

namespace ktc::cache {

inline constexpr size_t k_key_max = 200;

// The reference's rules (empty, separators, ".", "..", embedded "..", NUL,
// ".tmp-") plus: at most k_key_max bytes, no ':', no control characters,
// no leading '.'. The message names the key and the rule it breaks.
Result<void> validate_key(std::string_view key);

// A file name inside an entry: non-empty, no separators, no "..", no NUL or
// control characters, no leading '.', and not a name the entry reserves
// (metadata.json, vmlinux, config).
Result<void> validate_image_name(std::string_view name);

// Joins parts with '-' after making each safe (see ktc_key_compose).
Result<std::string> compose_key(std::span<const std::string_view> parts);

} // namespace ktc::cache
