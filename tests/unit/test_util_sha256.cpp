#include "test_util.hpp"
#include "util/fd.hpp"
#include "util/sha256.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <utility>

using ktc::Sha256;
using ktc::sha256_fd;
using ktc::sha256_hex;
using ktc::test::TempDir;

namespace {

constexpr const char* k_empty_digest =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr const char* k_abc_digest =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

// Byte i is i % 251: a prime period, so no chunk boundary lines up with it.
std::string pattern(size_t size) {
  std::string data(size, '\0');
  for (size_t i = 0; i < size; ++i) {
    data[i] = static_cast<char>(i % 251);
  }
  return data;
}

ktc::Fd open_read(const std::string& path) {
  ktc::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd.valid());
  return fd;
}

} // namespace

TEST_SUITE_BEGIN("Sha256");

TEST_CASE("sha256_hex matches the published test vectors") {
  CHECK(sha256_hex("") == k_empty_digest);
  CHECK(sha256_hex("abc") == k_abc_digest);
  CHECK(
      sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha256_hex(std::string(1'000'000, 'a')) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("sha256_hex of a 1 MiB pattern matches an independent digest") {
  // Computed with Python's hashlib over bytes(i % 251 for i in range(2**20)).
  CHECK(sha256_hex(pattern(1 << 20)) ==
        "631b84027d6b9e52b539c4e8373622d23032dfadc64d60af87339c9037e4f769");
}

TEST_CASE("the digest is 64 lower-case hex digits") {
  std::string digest = sha256_hex("anything");
  CHECK(digest.size() == 64);
  CHECK(digest.find_first_not_of("0123456789abcdef") == std::string::npos);
}

TEST_CASE("incremental updates give the one-shot digest") {
  std::string data = pattern((1 << 20) + 12345);
  std::string expected = sha256_hex(data);

  SUBCASE("two halves") {
    Sha256 hash;
    hash.update(std::string_view(data).substr(0, data.size() / 2));
    hash.update(std::string_view(data).substr(data.size() / 2));
    CHECK(hash.finish_hex() == expected);
  }
  SUBCASE("uneven chunks through the pointer overload") {
    Sha256 hash;
    size_t offset = 0;
    size_t step = 1;
    while (offset < data.size()) {
      size_t size = std::min(step, data.size() - offset);
      hash.update(data.data() + offset, size);
      offset += size;
      step = step * 3 + 1;
    }
    CHECK(hash.finish_hex() == expected);
  }
  SUBCASE("one byte at a time") {
    std::string small = data.substr(0, 1000);
    Sha256 hash;
    for (char c : small) {
      hash.update(&c, 1);
    }
    CHECK(hash.finish_hex() == sha256_hex(small));
  }
  SUBCASE("empty updates change nothing") {
    Sha256 hash;
    hash.update("", 0);
    hash.update(std::string_view("abc"));
    hash.update(std::string_view());
    CHECK(hash.finish_hex() == k_abc_digest);
  }
}

TEST_CASE("finish_hex resets the hash for the next message") {
  Sha256 hash;
  hash.update(std::string_view("first message"));
  CHECK(hash.finish_hex() == sha256_hex("first message"));
  CHECK(hash.finish_hex() == k_empty_digest);
  hash.update(std::string_view("abc"));
  CHECK(hash.finish_hex() == k_abc_digest);
}

TEST_CASE("a moved-to hash continues the moved-from state") {
  Sha256 first;
  first.update(std::string_view("ab"));
  Sha256 second(std::move(first));
  second.update(std::string_view("c"));
  CHECK(second.finish_hex() == k_abc_digest);

  Sha256 third;
  third.update(std::string_view("unrelated"));
  third = std::move(second);
  third.update(std::string_view("abc"));
  CHECK(third.finish_hex() == k_abc_digest);
}

TEST_CASE("sha256_fd hashes a whole file") {
  TempDir dir;

  SUBCASE("a file larger than the read chunk") {
    // 3 MiB + 7: three full 1 MiB reads and a short tail.
    ktc::test::write_file(dir / "data", pattern(3 * (1 << 20) + 7));
    ktc::Fd fd = open_read(dir / "data");
    auto digest = sha256_fd(fd.get(), "data");
    REQUIRE(digest.ok());
    CHECK(*digest ==
          "f578a61853ca2f4272dba551bd868420e22302fbb6d6dfc0cc80da1d2c7b779f");
  }
  SUBCASE("an empty file") {
    ktc::test::write_file(dir / "empty", "");
    ktc::Fd fd = open_read(dir / "empty");
    auto digest = sha256_fd(fd.get(), "empty");
    REQUIRE(digest.ok());
    CHECK(*digest == k_empty_digest);
  }
  SUBCASE("from the start, wherever the file offset is") {
    ktc::test::write_file(dir / "abc", "abc");
    ktc::Fd fd = open_read(dir / "abc");
    REQUIRE(::lseek(fd.get(), 2, SEEK_SET) == 2);
    auto digest = sha256_fd(fd.get(), "abc");
    REQUIRE(digest.ok());
    CHECK(*digest == k_abc_digest);
    // pread leaves the offset alone.
    CHECK(::lseek(fd.get(), 0, SEEK_CUR) == 2);
  }
  SUBCASE("twice on the same descriptor") {
    ktc::test::write_file(dir / "abc", "abc");
    ktc::Fd fd = open_read(dir / "abc");
    auto first = sha256_fd(fd.get(), "abc");
    auto second = sha256_fd(fd.get(), "abc");
    REQUIRE(first.ok());
    REQUIRE(second.ok());
    CHECK(*first == *second);
  }
}

TEST_CASE("sha256_fd names the file when it cannot read") {
  TempDir dir;

  SUBCASE("a directory") {
    ktc::Fd fd(::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY));
    REQUIRE(fd.valid());
    auto digest = sha256_fd(fd.get(), "the-directory");
    REQUIRE_FALSE(digest.ok());
    CHECK(digest.error().status == ktc::Status::io);
    CHECK(digest.error().message.find("the-directory") != std::string::npos);
  }
  SUBCASE("a closed descriptor") {
    int fd = ::open((dir.path()).c_str(), O_RDONLY | O_DIRECTORY);
    REQUIRE(fd >= 0);
    ::close(fd);
    auto digest = sha256_fd(fd, "closed-file");
    REQUIRE_FALSE(digest.ok());
    CHECK(digest.error().message.find("closed-file") != std::string::npos);
  }
  SUBCASE("a write-only descriptor") {
    ktc::Fd fd(::open((dir / "wo").c_str(), O_WRONLY | O_CREAT, 0644));
    REQUIRE(fd.valid());
    auto digest = sha256_fd(fd.get(), "write-only");
    REQUIRE_FALSE(digest.ok());
    CHECK(digest.error().message.find("write-only") != std::string::npos);
  }
}

TEST_SUITE_END();
