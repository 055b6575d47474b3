#define DOCTEST_CONFIG_IMPLEMENT
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace ktc::test {
namespace {
std::string g_run_dir;
} // namespace

const std::string& run_dir() {
  return g_run_dir;
}

} // namespace ktc::test

int main(int argc, char** argv) {
  std::string base = "/tmp";
  if (const char* tmp = std::getenv("TMPDIR"); tmp != nullptr && *tmp) {
    base = tmp;
  }
  std::string pattern = base + "/ktcache-test-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    std::perror("mkdtemp");
    return 2;
  }
  ktc::test::g_run_dir = pattern;

  doctest::Context context;
  context.applyCommandLine(argc, argv);
  int result = context.run();

  if (result != 0 || context.shouldExit()) {
    if (result != 0) {
      std::fprintf(stderr, "test scratch directory kept: %s\n",
                   pattern.c_str());
    } else {
      std::filesystem::remove_all(pattern);
    }
  } else {
    std::error_code ignored;
    std::filesystem::remove_all(pattern, ignored);
  }
  return result;
}
