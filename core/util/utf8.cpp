#include "util/utf8.hpp"

namespace ktc::utf8 {

Sequence sequence_at(std::string_view text) {
  auto byte = [&](size_t index) {
    return static_cast<unsigned char>(text[index]);
  };
  unsigned char lead = byte(0);
  if (lead < 0x80) {
    return {Sequence::Kind::valid, 1};
  }
  size_t length = 0;
  unsigned char second_low = 0x80;
  unsigned char second_high = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    second_low = lead == 0xe0 ? 0xa0 : 0x80;  // overlong
    second_high = lead == 0xed ? 0x9f : 0xbf; // surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    second_low = lead == 0xf0 ? 0x90 : 0x80;  // overlong
    second_high = lead == 0xf4 ? 0x8f : 0xbf; // above U+10FFFF
  } else {
    return {Sequence::Kind::invalid, 0};
  }
  for (size_t index = 1; index < length; ++index) {
    if (index == text.size()) {
      return {Sequence::Kind::cut, index};
    }
    unsigned char low = index == 1 ? second_low : 0x80;
    unsigned char high = index == 1 ? second_high : 0xbf;
    if (byte(index) < low || byte(index) > high) {
      return {Sequence::Kind::invalid, 0};
    }
  }
  return {Sequence::Kind::valid, length};
}

} // namespace ktc::utf8
