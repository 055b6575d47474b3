#pragma once

#include "util/result.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace ktc {

// Incremental SHA-256 (OpenSSL EVP underneath).
class Sha256 {
public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void update(const void* data, size_t size);
  void update(std::string_view text) { update(text.data(), text.size()); }
  // Lower-case hex of the digest; the object is reset afterwards.
  std::string finish_hex();

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

std::string sha256_hex(std::string_view data);

// Hashes a whole open file from its start (reads through a mapping when it
// can, else with read(2)). Returns the hex digest.
Result<std::string> sha256_fd(int fd, std::string_view name_for_errors);

} // namespace ktc
