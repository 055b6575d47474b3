#include "cache/key.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <string_view>
#include <vector>

using ktc::Status;
using ktc::cache::compose_key;
using ktc::cache::k_key_max;
using ktc::cache::validate_image_name;
using ktc::cache::validate_key;

namespace {

// Checks the rejection and returns its message.
std::string rejection(std::string_view key) {
  auto valid = validate_key(key);
  REQUIRE_FALSE(valid.ok());
  CHECK(valid.error().status == Status::invalid);
  const std::string& message = valid.error().message;
  CHECK(message.starts_with("invalid cache key \""));
  // One line that survives a trip through a C string.
  CHECK(message.find('\n') == std::string::npos);
  CHECK(message.find('\0') == std::string::npos);
  return message;
}

std::string image_rejection(std::string_view name) {
  auto valid = validate_image_name(name);
  REQUIRE_FALSE(valid.ok());
  CHECK(valid.error().status == Status::invalid);
  const std::string& message = valid.error().message;
  CHECK(message.starts_with("invalid image name \""));
  CHECK(message.find('\n') == std::string::npos);
  CHECK(message.find('\0') == std::string::npos);
  return message;
}

std::string composed(std::vector<std::string_view> parts) {
  auto key = compose_key(parts);
  REQUIRE_MESSAGE(key.ok(), key.error().message);
  CHECK(validate_key(*key).ok());
  CHECK(key->size() <= k_key_max);
  return *key;
}

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

} // namespace

TEST_SUITE_BEGIN("Key");

TEST_CASE("validate_key rejects each unsafe key naming the rule") {
  using namespace std::string_view_literals;
  SUBCASE("empty") {
    CHECK(contains(rejection(""), "must not be empty or whitespace-only"));
  }
  SUBCASE("whitespace only") {
    CHECK(contains(rejection(" \t "), "must not be empty or whitespace-only"));
    CHECK(contains(rejection("\n"), "must not be empty or whitespace-only"));
  }
  SUBCASE("a slash") {
    CHECK(contains(rejection("feature/x"), "path separators"));
  }
  SUBCASE("a backslash") {
    CHECK(contains(rejection("a\\b"), "path separators"));
  }
  SUBCASE("a traversal with slashes is a separator first") {
    CHECK(contains(rejection("../../etc/passwd"), "path separators"));
  }
  SUBCASE("dot") {
    CHECK(contains(rejection("."), "directory reference"));
  }
  SUBCASE("dot-dot") {
    CHECK(contains(rejection(".."), "directory reference"));
  }
  SUBCASE("an embedded dot-dot") {
    CHECK(contains(rejection("foo..bar"), "path traversal"));
    CHECK(contains(rejection("v6.1.."), "path traversal"));
  }
  SUBCASE("a NUL byte") {
    std::string message = rejection("abc\0def"sv);
    CHECK(contains(message, "null bytes"));
    CHECK(contains(message, "abc\\x00def"));
  }
  SUBCASE("the .tmp- prefix") {
    CHECK(contains(rejection(".tmp-x"), ".tmp- prefix is reserved"));
  }
  SUBCASE("any other leading dot") {
    CHECK(contains(rejection(".hidden"), "must not start with '.'"));
    CHECK(contains(rejection(".locks"), "must not start with '.'"));
  }
  SUBCASE("longer than the limit") {
    std::string message = rejection(std::string(k_key_max + 1, 'k'));
    CHECK(contains(message, "longer than 200 bytes (201)"));
    // A long key is shortened in the message.
    CHECK(contains(message, std::string(64, 'k') + "...\""));
    CHECK_FALSE(contains(message, std::string(65, 'k')));
  }
  SUBCASE("a colon") {
    CHECK(contains(rejection("git:linux"), "':'"));
  }
  SUBCASE("a control character") {
    std::string message = rejection("a\tb");
    CHECK(contains(message, "control characters"));
    CHECK(contains(message, "a\\x09b"));
    CHECK(contains(rejection("a\x7f"), "control characters"));
    CHECK(contains(rejection("line\nbreak"), "control characters"));
  }
  SUBCASE("the message quotes the key") {
    CHECK(contains(rejection("foo..bar"), "\"foo..bar\""));
  }
}

TEST_CASE("validate_key accepts realistic keys") {
  for (std::string_view key : {
           "6.14.2-tarball-x86_64-kc1a2b3c4d",
           "6.15-rc3-tarball-aarch64-kc1a2b3c4d",
           "for-next-git-abc1234-aarch64-kc00000000",
           "local-abc1234-x86_64-kc1a2b3c4d",
           "local-abc1234-x86_64-cfg0badf00d-kc1a2b3c4d",
           "local-unknown-deadbeef-x86_64-kc1a2b3c4d",
           "a",
           "old",
           "with space",
           "v6.1.2",
           "feature_x~0a1b2c3d",
           "a.tmp-b",
           "unicode-\xc3\xa9",
       }) {
    CAPTURE(key);
    CHECK(validate_key(key).ok());
  }
  CHECK(validate_key(std::string(k_key_max, 'k')).ok());
}

TEST_CASE("validate_image_name rejects each unsafe name") {
  using namespace std::string_view_literals;
  SUBCASE("empty") {
    CHECK(contains(image_rejection(""), "must not be empty"));
  }
  SUBCASE("separators") {
    CHECK(contains(image_rejection("boot/bzImage"), "path separators"));
    CHECK(contains(image_rejection("a\\b"), "path separators"));
  }
  SUBCASE("dot-dot") {
    CHECK(contains(image_rejection(".."), "\"..\""));
    CHECK(contains(image_rejection("bz..Image"), "\"..\""));
  }
  SUBCASE("NUL and control characters") {
    CHECK(contains(image_rejection("bz\0Image"sv), "control characters"));
    CHECK(contains(image_rejection("bz\nImage"), "control characters"));
  }
  SUBCASE("a leading dot") {
    CHECK(contains(image_rejection(".bzImage"), "must not start with '.'"));
    CHECK(contains(image_rejection("."), "must not start with '.'"));
  }
  SUBCASE("longer than 255 bytes") {
    CHECK(contains(image_rejection(std::string(256, 'i')), "255 bytes"));
  }
  SUBCASE("the names the entry reserves") {
    for (std::string_view name : {"metadata.json", "vmlinux", "config"}) {
      CAPTURE(name);
      CHECK(contains(image_rejection(name), "reserved"));
    }
  }
}

TEST_CASE("validate_image_name accepts boot image names") {
  for (std::string_view name :
       {"bzImage", "Image", "Image.gz", "vmlinuz-6.14.2", "zImage",
        "vmlinux.efi", "kernel:img"}) {
    CAPTURE(name);
    CHECK(validate_image_name(name).ok());
  }
  CHECK(validate_image_name(std::string(255, 'i')).ok());
}

TEST_CASE("compose_key joins safe parts with dashes") {
  CHECK(composed({"6.14.2", "tarball", "x86_64", "kc1a2b3c4d"}) ==
        "6.14.2-tarball-x86_64-kc1a2b3c4d");
  CHECK(composed({"local", "abc1234", "aarch64", "kc00000000"}) ==
        "local-abc1234-aarch64-kc00000000");
  CHECK(composed({"single"}) == "single");
}

TEST_CASE("compose_key is deterministic") {
  CHECK(composed({"feature/x", "git", "abc1234"}) ==
        composed({"feature/x", "git", "abc1234"}));
}

TEST_CASE("compose_key makes unsafe parts safe and keeps them distinct") {
  SUBCASE("a slash in a git ref") {
    std::string slashed = composed({"feature/x", "git", "abc1234", "x86_64"});
    std::string underscored =
        composed({"feature_x", "git", "abc1234", "x86_64"});
    CHECK(slashed.starts_with("feature_x"));
    CHECK(slashed.ends_with("-git-abc1234-x86_64"));
    CHECK(slashed != underscored);
    CHECK(underscored == "feature_x-git-abc1234-x86_64");
  }
  SUBCASE("dot-dot parts") {
    std::string dots = composed({"..", "git"});
    std::string range = composed({"v6.1..v6.2", "git"});
    std::string triple = composed({"...", "git"});
    CHECK(dots != range);
    CHECK(dots != triple);
    CHECK_FALSE(contains(range, ".."));
  }
  SUBCASE("a leading dot") {
    std::string hidden = composed({".hidden", "x"});
    CHECK(hidden.front() != '.');
    CHECK(hidden != composed({"_hidden", "x"}));
    std::string tmp = composed({".tmp-abc", "x"});
    CHECK_FALSE(tmp.starts_with(".tmp-"));
  }
  SUBCASE("colons, spaces, backslashes and control characters") {
    using namespace std::string_view_literals;
    std::set<std::string> keys;
    for (std::string_view part : {"git:linux"sv, "with space"sv, "a\\b"sv,
                                  "tab\there"sv, "nul\0x"sv, "caf\xc3\xa9"sv}) {
      CAPTURE(part);
      std::string key = composed({part, "git"});
      CHECK(key.find_first_of(": \\\t") == std::string::npos);
      keys.insert(key);
    }
    CHECK(keys.size() == 6);
  }
  SUBCASE("parts that differ only in the unsafe character") {
    CHECK(composed({"a/b"}) != composed({"a:b"}));
    CHECK(composed({"a/b"}) != composed({"a b"}));
  }
}

TEST_CASE("compose_key shortens very long keys and keeps them unique") {
  std::string long_a(300, 'a');
  std::string long_b = long_a;
  long_b.back() = 'b';
  std::string first = composed({long_a, "tarball", "x86_64"});
  std::string second = composed({long_b, "tarball", "x86_64"});
  CHECK(first.size() == k_key_max);
  CHECK(second.size() == k_key_max);
  CHECK(first != second);
  // Many parts that add up past the limit.
  std::vector<std::string> parts(50, "part");
  std::vector<std::string_view> views(parts.begin(), parts.end());
  std::string many = composed(views);
  CHECK(many.size() == k_key_max);
  views.back() = "other";
  CHECK(composed(views) != many);
  // Exactly at the limit nothing is shortened.
  std::string at_limit(k_key_max, 'k');
  CHECK(composed({at_limit}) == at_limit);
}

TEST_CASE("compose_key rejects missing parts") {
  SUBCASE("no parts") {
    auto key = compose_key({});
    REQUIRE_FALSE(key.ok());
    CHECK(key.error().status == Status::invalid);
  }
  SUBCASE("an empty part") {
    std::vector<std::string_view> parts = {"6.14.2", "", "x86_64"};
    auto key = compose_key(parts);
    REQUIRE_FALSE(key.ok());
    CHECK(key.error().status == Status::invalid);
    CHECK(contains(key.error().message, "empty"));
  }
}

TEST_SUITE_END();
