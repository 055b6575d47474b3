#include "build/kernel_id.hpp"
#include "build/pipeline.hpp"

#include <doctest/doctest.h>

#include <string>

using ktc::Status;
using ktc::build::KernelId;
using ktc::build::KernelIdKind;
using ktc::build::parse_kernel_id;
using ktc::build::parse_kernel_version;

namespace {

KernelId parsed(const std::string& text) {
  auto id = parse_kernel_id(text);
  INFO(text, ": ", id ? "" : id.error().message);
  REQUIRE(id);
  return *id;
}

// The message of a refused identifier; fails the case if it was taken.
std::string refusal(const std::string& text) {
  auto id = parse_kernel_id(text);
  INFO(text);
  REQUIRE_FALSE(id);
  CHECK(id.error().status == Status::invalid);
  CHECK(id.error().message.find('\n') == std::string::npos);
  return id.error().message;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

} // namespace

TEST_SUITE("build") {
  TEST_CASE("versions, series and RCs name kernel.org tarballs") {
    KernelId version = parsed("6.14.2");
    CHECK(version.kind == KernelIdKind::version);
    CHECK(version.version == "6.14.2");
    CHECK(version.spec == "tarball:6.14.2");

    KernelId series = parsed("6.14");
    CHECK(series.kind == KernelIdKind::series);
    CHECK(series.spec == "tarball:6.14");

    KernelId rc = parsed("6.15-rc3");
    CHECK(rc.kind == KernelIdKind::rc);
    CHECK(rc.version == "6.15-rc3");
    CHECK(rc.spec == "tarball:6.15-rc3");

    // Blanks around a value read from the environment are dropped.
    CHECK(parsed("  6.14.2\n").version == "6.14.2");
  }

  TEST_CASE("digits and dots that are no version are refused, not taken "
            "for keys") {
    CHECK(contains(refusal("6.12.3.4"), "'6.12.3.4' is not a kernel version"));
    CHECK(contains(refusal("6"), "MAJOR.MINOR[.PATCH][-rcN]"));
    CHECK(contains(refusal("6.12-rc"), "is not a kernel version"));
    CHECK(contains(refusal("6."), "is not a kernel version"));
    // A "v" or a letter makes it text: a key, as in ktstr.
    CHECK(parsed("v6.12").kind == KernelIdKind::key);
    CHECK(parsed("6.12.3-tarball-x86_64-kc0123").kind == KernelIdKind::key);
  }

  TEST_CASE("ranges are ordered with an RC before its release") {
    KernelId range = parsed("6.12..6.14");
    CHECK(range.kind == KernelIdKind::range);
    CHECK(range.range_start == "6.12");
    CHECK(range.range_end == "6.14");
    CHECK(range.spec.empty());
    CHECK(parsed("6.15-rc1..6.15").kind == KernelIdKind::range);
    CHECK(parsed("6.14.2..6.14.2").kind == KernelIdKind::range);

    CHECK(contains(refusal("6.14..6.12"),
                   "the start 6.14 is after the end 6.12"));
    CHECK(contains(refusal("6.15..6.15-rc3"), "is after the end"));
    CHECK(contains(refusal("6.12.."), "the end is empty"));
    CHECK(contains(refusal("..6.12"), "the start is empty"));
    CHECK(contains(refusal("6.12..latest"),
                   "the end 'latest' is not a kernel version"));

    auto rc = parse_kernel_version("6.15-rc3");
    auto release = parse_kernel_version("6.15");
    auto patch = parse_kernel_version("6.15.0");
    REQUIRE(rc);
    REQUIRE(release);
    REQUIRE(patch);
    CHECK(*rc < *release);
    CHECK(*release == *patch);
    CHECK(*parse_kernel_version("6.9.12") < *parse_kernel_version("6.10"));
  }

  TEST_CASE("git sources in both spellings give the same spec") {
    KernelId plus = parsed("git+https://git.example.org/linux.git#v6.14");
    CHECK(plus.kind == KernelIdKind::git);
    CHECK(plus.git_url == "https://git.example.org/linux.git");
    CHECK(plus.git_ref == "v6.14");
    CHECK(plus.spec == "git:https://git.example.org/linux.git@v6.14");

    // Split at the last '#' and the last '@' respectively.
    CHECK(parsed("git+https://h/r#x#main").git_ref == "main");
    KernelId scheme = parsed("git:git@example.org:linux.git@main");
    CHECK(scheme.kind == KernelIdKind::git);
    CHECK(scheme.git_url == "git@example.org:linux.git");
    CHECK(scheme.git_ref == "main");

    CHECK(contains(refusal("git+https://h/r"), "no '#REF' after the URL"));
    CHECK(contains(refusal("git+#main"), "the repository URL is empty"));
    CHECK(contains(refusal("git+https://h/r#"), "the ref is empty"));
    CHECK(contains(refusal("git:https://h/r"), "no '@REF' after the URL"));
    CHECK(contains(refusal("git:@main"), "the repository URL is empty"));
  }

  TEST_CASE("plugin schemes come first and paths before versions") {
    KernelId tarball = parsed("tarball:6.12");
    CHECK(tarball.kind == KernelIdKind::spec);
    CHECK(tarball.scheme == "tarball");
    CHECK(tarball.spec == "tarball:6.12");
    CHECK(parsed("local:/src/linux").scheme == "local");
    CHECK(parsed("my_plugin2:anything/at all").kind == KernelIdKind::spec);

    for (const char* path : {"/src/linux", "./linux", "../linux", "~/linux",
                             ".", "linux/arch/x86/boot/bzImage", "6.12/x"}) {
      KernelId id = parsed(path);
      CHECK(id.kind == KernelIdKind::path);
      CHECK(id.path == path);
    }
  }

  TEST_CASE("anything else must be a valid cache key") {
    KernelId key = parsed("6.14.2-tarball-x86_64-kc0123abcd");
    CHECK(key.kind == KernelIdKind::key);
    CHECK(key.key == "6.14.2-tarball-x86_64-kc0123abcd");
    CHECK(contains(refusal(""), "an empty kernel identifier"));
    CHECK(contains(refusal("   "), "an empty kernel identifier"));
    std::string long_key(300, 'k');
    CHECK(contains(refusal(long_key), "not a kernel version, range, git "
                                      "source, path, plugin spec or valid "
                                      "cache key"));
  }

  TEST_CASE("the pipeline builds single kernels only") {
    CHECK(*ktc::build::source_spec_of("6.14.2") == "tarball:6.14.2");
    CHECK(*ktc::build::source_spec_of("git+file:///r#main") ==
          "git:file:///r@main");
    auto range = ktc::build::source_spec_of("6.12..6.14");
    REQUIRE_FALSE(range);
    CHECK(contains(range.error().message, "names several kernels"));
    auto key = ktc::build::source_spec_of("6.14.2-tarball-x86_64-kc01");
    REQUIRE_FALSE(key);
    CHECK(contains(key.error().message, "is a cache key"));
    auto missing = ktc::build::source_spec_of("/nonexistent/ktcache/tree");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().status == Status::not_found);
    auto file = ktc::build::source_spec_of("/etc/passwd");
    REQUIRE_FALSE(file);
    CHECK(contains(file.error().message, "is a file, not a source tree"));
    auto tree = ktc::build::source_spec_of("/tmp/../tmp/");
    REQUIRE(tree);
    CHECK(*tree == "local:/tmp");
  }
}
