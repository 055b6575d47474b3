#include "cache/root.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>

using ktc::Status;
using ktc::cache::resolve_root;
using ktc::test::ScopedEnv;

namespace {

// The three variables of the cascade, each set or unset for one scope.
struct RootEnv {
  RootEnv(std::optional<std::string> ktcache_dir,
          std::optional<std::string> xdg,
          std::optional<std::string> home)
      : m_dir("KTCACHE_DIR", std::move(ktcache_dir)),
        m_xdg("XDG_CACHE_HOME", std::move(xdg)),
        m_home("HOME", std::move(home)) {}

private:
  ScopedEnv m_dir;
  ScopedEnv m_xdg;
  ScopedEnv m_home;
};

std::string resolved(std::string_view suffix = "kernels") {
  auto root = resolve_root(suffix);
  REQUIRE_MESSAGE(root.ok(), root.error().message);
  return *root;
}

ktc::Error failure(std::string_view suffix = "kernels") {
  auto root = resolve_root(suffix);
  REQUIRE_FALSE(root.ok());
  return root.error();
}

} // namespace

TEST_SUITE_BEGIN("Root");

TEST_CASE("KTCACHE_DIR is used verbatim") {
  SUBCASE("an absolute path, no suffix appended") {
    RootEnv env("/srv/kernels-cache", "/xdg", "/home/u");
    CHECK(resolved() == "/srv/kernels-cache");
  }
  SUBCASE("whatever the suffix") {
    RootEnv env("/srv/shared", "/xdg", "/home/u");
    CHECK(resolved("models") == "/srv/shared");
  }
  SUBCASE("a relative path, not validated") {
    RootEnv env("relative/cache", std::nullopt, std::nullopt);
    CHECK(resolved() == "relative/cache");
  }
  SUBCASE("a trailing slash and dots kept as written") {
    RootEnv env("/a/./b//", "/xdg", "/home/u");
    CHECK(resolved() == "/a/./b//");
  }
  SUBCASE("even when HOME would be rejected") {
    RootEnv env("/cache", std::nullopt, "/");
    CHECK(resolved() == "/cache");
  }
}

TEST_CASE("an empty KTCACHE_DIR falls through to the next variable") {
  SUBCASE("to XDG_CACHE_HOME") {
    RootEnv env("", "/xdg", "/home/u");
    CHECK(resolved() == "/xdg/ktcache/kernels");
  }
  SUBCASE("to HOME") {
    RootEnv env("", std::nullopt, "/home/u");
    CHECK(resolved() == "/home/u/.cache/ktcache/kernels");
  }
}

TEST_CASE("XDG_CACHE_HOME gets ktcache/<suffix> appended") {
  SUBCASE("kernels") {
    RootEnv env(std::nullopt, "/home/u/.xdg-cache", "/home/u");
    CHECK(resolved() == "/home/u/.xdg-cache/ktcache/kernels");
  }
  SUBCASE("another suffix") {
    RootEnv env(std::nullopt, "/xdg", "/home/u");
    CHECK(resolved("models") == "/xdg/ktcache/models");
  }
  SUBCASE("not normalised") {
    RootEnv env(std::nullopt, "//xdg/./", "/home/u");
    CHECK(resolved() == "//xdg/.//ktcache/kernels");
  }
  SUBCASE("a relative value, not validated") {
    RootEnv env(std::nullopt, "rel", std::nullopt);
    CHECK(resolved() == "rel/ktcache/kernels");
  }
  SUBCASE("used even when HOME is unset") {
    RootEnv env(std::nullopt, "/xdg", std::nullopt);
    CHECK(resolved() == "/xdg/ktcache/kernels");
  }
}

TEST_CASE("an empty XDG_CACHE_HOME falls through to HOME") {
  RootEnv env(std::nullopt, "", "/home/user");
  CHECK(resolved() == "/home/user/.cache/ktcache/kernels");
}

TEST_CASE("an absolute HOME gives HOME/.cache/ktcache/<suffix>") {
  SUBCASE("kernels") {
    RootEnv env(std::nullopt, std::nullopt, "/home/user");
    CHECK(resolved() == "/home/user/.cache/ktcache/kernels");
  }
  SUBCASE("another suffix") {
    RootEnv env(std::nullopt, std::nullopt, "/home/user");
    CHECK(resolved("models") == "/home/user/.cache/ktcache/models");
  }
  SUBCASE("a path that does not exist is not checked") {
    RootEnv env(std::nullopt, std::nullopt, "/nonexistent/home");
    CHECK(resolved() == "/nonexistent/home/.cache/ktcache/kernels");
  }
  SUBCASE("/dev/null is left to fail at use") {
    RootEnv env(std::nullopt, std::nullopt, "/dev/null");
    CHECK(resolved() == "/dev/null/.cache/ktcache/kernels");
  }
  SUBCASE("a double slash is not normalised") {
    RootEnv env(std::nullopt, std::nullopt, "//");
    CHECK(resolved() == "///.cache/ktcache/kernels");
  }
  SUBCASE("a dot component is not normalised") {
    RootEnv env(std::nullopt, std::nullopt, "/.");
    CHECK(resolved() == "/./.cache/ktcache/kernels");
  }
  SUBCASE("a trailing dot-slash is not normalised") {
    RootEnv env(std::nullopt, std::nullopt, "/./");
    CHECK(resolved() == "/.//.cache/ktcache/kernels");
  }
}

TEST_CASE("HOME that cannot hold a cache is rejected") {
  ktc::Error error;
  SUBCASE("unset") {
    RootEnv env(std::nullopt, std::nullopt, std::nullopt);
    error = failure();
    CHECK(error.message.find("HOME is unset") != std::string::npos);
  }
  SUBCASE("empty") {
    RootEnv env(std::nullopt, std::nullopt, "");
    error = failure();
    CHECK(error.message.find("empty") != std::string::npos);
    CHECK(error.message.find("Dockerfile") != std::string::npos);
  }
  SUBCASE("the filesystem root") {
    RootEnv env(std::nullopt, std::nullopt, "/");
    error = failure();
    CHECK(error.message.find("\"/\"") != std::string::npos);
  }
  SUBCASE("relative") {
    RootEnv env(std::nullopt, std::nullopt, "home/user");
    error = failure();
    CHECK(error.message.find("relative") != std::string::npos);
    CHECK(error.message.find("home/user") != std::string::npos);
  }
  SUBCASE("a bare name") {
    RootEnv env(std::nullopt, std::nullopt, "tmp");
    error = failure();
    CHECK(error.message.find("\"tmp\"") != std::string::npos);
  }
  SUBCASE("a dot") {
    RootEnv env(std::nullopt, std::nullopt, ".");
    error = failure();
    CHECK(error.message.find("relative") != std::string::npos);
  }
  CHECK(error.status == Status::environment);
  CHECK(error.message.find("HOME") != std::string::npos);
  // The remedy is named in every variant.
  CHECK(error.message.find("KTCACHE_DIR") != std::string::npos);
  CHECK(error.message.find('\n') == std::string::npos);
}

TEST_CASE("each rejected HOME shape has its own message") {
  std::set<std::string> messages;
  for (std::optional<std::string> home :
       {std::optional<std::string>(), std::optional<std::string>(""),
        std::optional<std::string>("/"),
        std::optional<std::string>("relative")}) {
    RootEnv env(std::nullopt, std::nullopt, home);
    messages.insert(failure().message);
  }
  CHECK(messages.size() == 4);
}

TEST_CASE("an invalid suffix is rejected before the environment is read") {
  RootEnv env("/cache", "/xdg", "/home/u");
  for (std::string_view suffix : {"", "a/b", "/kernels", ".", ".."}) {
    CAPTURE(suffix);
    ktc::Error error = failure(suffix);
    CHECK(error.status == Status::invalid);
    CHECK(error.message.find("suffix") != std::string::npos);
  }
}

TEST_CASE("the environment is read again on every call") {
  RootEnv env("/first", std::nullopt, "/home/u");
  CHECK(resolved() == "/first");
  {
    ScopedEnv second("KTCACHE_DIR", "/second");
    CHECK(resolved() == "/second");
  }
  {
    ScopedEnv none("KTCACHE_DIR", std::nullopt);
    CHECK(resolved() == "/home/u/.cache/ktcache/kernels");
  }
  CHECK(resolved() == "/first");
}

TEST_CASE("resolving touches no file") {
  ktc::test::TempDir dir;
  RootEnv env(std::nullopt, dir / "xdg", "/home/u");
  CHECK(resolved() == dir / "xdg/ktcache/kernels");
  CHECK(ktc::test::list_dir(dir.path()).empty());
}

TEST_SUITE_END();
