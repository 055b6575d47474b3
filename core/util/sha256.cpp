#include "util/sha256.hpp"

#include <openssl/evp.h>

#include <unistd.h>

#include <cerrno>
#include <memory>
#include <new>
#include <string>

namespace ktc {

struct Sha256::Impl {
  EVP_MD_CTX* context = nullptr;
  Impl() {
    context = EVP_MD_CTX_new();
    if (context == nullptr ||
        EVP_DigestInit_ex(context, EVP_sha256(), nullptr) != 1) {
      throw std::bad_alloc();
    }
  }
  ~Impl() { EVP_MD_CTX_free(context); }
};

Sha256::Sha256() : m_impl(std::make_unique<Impl>()) {}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const void* data, size_t size) {
  EVP_DigestUpdate(m_impl->context, data, size);
}

std::string Sha256::finish_hex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(m_impl->context, digest, &length);
  EVP_DigestInit_ex(m_impl->context, EVP_sha256(), nullptr);
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string hex(length * 2, '0');
  for (unsigned int i = 0; i < length; ++i) {
    hex[2 * i] = k_hex[digest[i] >> 4];
    hex[2 * i + 1] = k_hex[digest[i] & 0xf];
  }
  return hex;
}

std::string sha256_hex(std::string_view data) {
  Sha256 hash;
  hash.update(data);
  return hash.finish_hex();
}

Result<std::string> sha256_fd(int fd, std::string_view name_for_errors) {
  // pread rather than a mapping: a file truncated under us must give an
  // error, not SIGBUS.
  constexpr size_t k_chunk = 1 << 20;
  auto buffer = std::make_unique<char[]>(k_chunk);
  Sha256 hash;
  off_t offset = 0;
  for (;;) {
    ssize_t got = pread(fd, buffer.get(), k_chunk, offset);
    if (got < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno_error(errno, "cannot read " + std::string(name_for_errors));
    }
    if (got == 0) {
      break;
    }
    hash.update(buffer.get(), static_cast<size_t>(got));
    offset += got;
  }
  return hash.finish_hex();
}

} // namespace ktc
