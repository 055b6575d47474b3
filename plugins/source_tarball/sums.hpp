// kernel.org's sha256sums.asc: `sha256sum` output, PGP clear-signed.
#ifndef KTC_SOURCE_TARBALL_SUMS_HPP
#define KTC_SOURCE_TARBALL_SUMS_HPP

#include <map>
#include <string>
#include <string_view>

namespace tarball {

struct Sums {
  // The text had the clear-signed armor; only its signed body was read.
  bool clear_signed = false;
  // File name -> lower-case hex SHA-256.
  std::map<std::string, std::string, std::less<>> digests;
};

// Reads "HASH  NAME" lines (also "HASH *NAME", sha256sum's binary mark).
// In a clear-signed text (RFC 4880 section 7) only the signed body counts:
// the lines after the armor headers' blank line and before "-----BEGIN PGP
// SIGNATURE-----", with dash-escaping ("- " before a line starting with a
// dash) undone; anything outside the armor, which the signature does not
// cover, is ignored. A text without the armor is read whole.
Sums parse_sums(std::string_view text);

} // namespace tarball

#endif
