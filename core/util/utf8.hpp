#pragma once

#include <cstddef>
#include <string_view>

namespace ktc::utf8 {

// What starts at the front of a text: a valid sequence of `length` bytes,
// an invalid one, or a sequence valid so far that the text cuts short.
struct Sequence {
  enum class Kind { valid, invalid, cut } kind = Kind::invalid;
  size_t length = 0;
};

// Decodes the sequence at the start of a non-empty `text` by RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF.
Sequence sequence_at(std::string_view text);

} // namespace ktc::utf8
