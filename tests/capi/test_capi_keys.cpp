#include "test_capi_helpers.hpp"

#include <doctest/doctest.h>
#include <ktcache/ktcache.h>

#include <string>
#include <vector>

using namespace ktc::capi_test;

namespace {

std::string compose(const std::vector<const char*>& parts) {
  char* raw = nullptr;
  int status = ktc_key_compose(&raw, parts.data(), parts.size());
  REQUIRE_MESSAGE(status == KTC_OK, error_message());
  REQUIRE(raw != nullptr);
  StringPtr key(raw);
  return key.get();
}

} // namespace

TEST_SUITE_BEGIN("CApi");

TEST_CASE("ktc_key_compose joins safe parts unchanged") {
  CHECK(compose({"6.14.2", "tarball", "x86_64", "kcabc"}) ==
        "6.14.2-tarball-x86_64-kcabc");
}

TEST_CASE("ktc_key_compose makes a git ref safe and distinct") {
  std::string slashed = compose({"feature/x", "git", "abc1234"});
  std::string underscored = compose({"feature_x", "git", "abc1234"});
  CAPTURE(slashed);
  CHECK(slashed.find('/') == std::string::npos);
  CHECK(slashed.rfind("feature_x", 0) == 0);
  CHECK(slashed != underscored);
  CHECK(underscored == "feature_x-git-abc1234");
  CHECK(ktc_key_validate(slashed.c_str()) == KTC_OK);
}

TEST_CASE("ktc_key_compose neutralises dots and shortens long keys") {
  std::string dotted = compose({".hidden", "a..b"});
  CAPTURE(dotted);
  CHECK(dotted.front() != '.');
  CHECK(dotted.find("..") == std::string::npos);
  CHECK(ktc_key_validate(dotted.c_str()) == KTC_OK);

  std::string long_part(300, 'k');
  std::string shortened = compose({long_part.c_str(), "x"});
  CHECK(shortened.size() <= KTC_KEY_MAX);
  CHECK(ktc_key_validate(shortened.c_str()) == KTC_OK);
  std::string other_long(300, 'k');
  other_long.back() = 'j';
  CHECK(compose({other_long.c_str(), "x"}) != shortened);
}

TEST_CASE("ktc_key_compose refuses missing parts") {
  char* key = nullptr;
  const char* empty_part[] = {"a", ""};
  prime_error_message();

  SUBCASE("no parts") {
    const char* parts[] = {"a"};
    CHECK(ktc_key_compose(&key, parts, 0) == KTC_E_INVALID);
    CHECK(error_message().find("at least one part") != std::string::npos);
  }
  SUBCASE("an empty part") {
    CHECK(ktc_key_compose(&key, empty_part, 2) == KTC_E_INVALID);
    CHECK(error_message().find("empty") != std::string::npos);
  }
  CHECK(key == nullptr);
}

TEST_CASE("ktc_key_validate names the rule a key breaks") {
  struct Case {
    std::string key;
    const char* rule;
  };
  const Case cases[] = {
      {"", "empty"},        {"   ", "whitespace"},
      {"a/b", "separator"}, {"a..b", "traversal"},
      {".hidden", "'.'"},   {"a:b", "':'"},
      {"a\tb", "control"},  {std::string(KTC_KEY_MAX + 1, 'k'), "longer than"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.key);
    CHECK(ktc_key_validate(c.key.c_str()) == KTC_E_INVALID);
    CHECK(error_message().find(c.rule) != std::string::npos);
  }
  CHECK(ktc_key_validate(std::string(KTC_KEY_MAX, 'k').c_str()) == KTC_OK);
  CHECK(ktc_key_validate("6.14.2-tarball-x86_64-kc1a2b") == KTC_OK);
}

TEST_SUITE_END();
