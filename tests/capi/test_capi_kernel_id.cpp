#include "test_capi_helpers.hpp"

#include <doctest/doctest.h>
#include <ktcache/ktcache.h>

#include <cstddef>
#include <memory>
#include <string>

using namespace ktc::capi_test;

namespace {

struct KernelIdFree {
  void operator()(ktc_kernel_id* id) const { ktc_kernel_id_free(id); }
};
using KernelIdPtr = std::unique_ptr<ktc_kernel_id, KernelIdFree>;

KernelIdPtr parse(const char* text) {
  ktc_kernel_id* raw = nullptr;
  int status = ktc_kernel_id_parse(&raw, text);
  REQUIRE_MESSAGE(status == KTC_OK, text, ": ", error_message());
  REQUIRE(raw != nullptr);
  return KernelIdPtr(raw);
}

ktc_kernel_id_info info_of(const KernelIdPtr& id) {
  ktc_kernel_id_info info = KTC_KERNEL_ID_INFO_INIT;
  int status = ktc_kernel_id_get_info(id.get(), &info);
  REQUIRE_MESSAGE(status == KTC_OK, error_message());
  return info;
}

std::string text(const char* value) {
  return text_or_empty(value);
}

} // namespace

TEST_SUITE("capi") {
  TEST_CASE("ktc_kernel_id_parse tells every form apart") {
    auto version = parse("6.14.2");
    ktc_kernel_id_info info = info_of(version);
    CHECK(info.kind == KTC_KERNEL_ID_VERSION);
    CHECK(text(info.text) == "6.14.2");
    CHECK(text(info.version) == "6.14.2");
    CHECK(text(info.spec) == "tarball:6.14.2");
    CHECK(info.key == nullptr);
    CHECK(info.range_start == nullptr);

    CHECK(info_of(parse("6.14")).kind == KTC_KERNEL_ID_SERIES);
    CHECK(info_of(parse("6.15-rc3")).kind == KTC_KERNEL_ID_RC);

    auto range = parse("6.12..6.14");
    info = info_of(range);
    CHECK(info.kind == KTC_KERNEL_ID_RANGE);
    CHECK(text(info.range_start) == "6.12");
    CHECK(text(info.range_end) == "6.14");
    CHECK(info.spec == nullptr);

    auto git = parse("git+https://example.org/linux.git#main");
    info = info_of(git);
    CHECK(info.kind == KTC_KERNEL_ID_GIT);
    CHECK(text(info.git_url) == "https://example.org/linux.git");
    CHECK(text(info.git_ref) == "main");
    CHECK(text(info.scheme) == "git");
    CHECK(text(info.spec) == "git:https://example.org/linux.git@main");

    auto path = parse("../linux");
    info = info_of(path);
    CHECK(info.kind == KTC_KERNEL_ID_PATH);
    CHECK(text(info.path) == "../linux");

    auto spec = parse("tarball:/srv/linux-6.1.tar.xz");
    info = info_of(spec);
    CHECK(info.kind == KTC_KERNEL_ID_SPEC);
    CHECK(text(info.scheme) == "tarball");
    CHECK(text(info.spec) == "tarball:/srv/linux-6.1.tar.xz");

    auto key = parse("6.14.2-tarball-x86_64-kc0123");
    info = info_of(key);
    CHECK(info.kind == KTC_KERNEL_ID_KEY);
    CHECK(text(info.key) == "6.14.2-tarball-x86_64-kc0123");
  }

  TEST_CASE("ktc_kernel_id_parse refuses malformed identifiers") {
    ktc_kernel_id* id = nullptr;
    CHECK(ktc_kernel_id_parse(&id, "6.14..6.12") == KTC_E_INVALID);
    CHECK(error_message().find("after the end") != std::string::npos);
    CHECK(ktc_kernel_id_parse(&id, "git+https://example.org/linux") ==
          KTC_E_INVALID);
    CHECK(error_message().find("#REF") != std::string::npos);
    CHECK(ktc_kernel_id_parse(&id, "6.12..") == KTC_E_INVALID);
    CHECK(error_message().find("the end is empty") != std::string::npos);
    CHECK(ktc_kernel_id_parse(&id, "") == KTC_E_INVALID);
    CHECK(id == nullptr);

    prime_error_message();
    CHECK(ktc_kernel_id_parse(nullptr, "6.1") == KTC_E_INVALID);
    CHECK(error_message().find("out") != std::string::npos);
    CHECK(ktc_kernel_id_parse(&id, nullptr) == KTC_E_INVALID);
    CHECK(error_message().find("text") != std::string::npos);
    ktc_kernel_id_free(nullptr);
  }

  TEST_CASE("ktc_kernel_id_get_info follows the struct_size protocol") {
    auto id = parse("6.14.2-tarball-x86_64-kc0123");
    ktc_kernel_id_info info = KTC_KERNEL_ID_INFO_INIT;
    info.struct_size = offsetof(ktc_kernel_id_info, key);
    CHECK(ktc_kernel_id_get_info(id.get(), &info) == KTC_E_INVALID);
    CHECK(error_message().find("ktc_kernel_id_info struct_size") !=
          std::string::npos);
    info.struct_size = sizeof info;
    CHECK(ktc_kernel_id_get_info(nullptr, &info) == KTC_E_INVALID);
    CHECK(ktc_kernel_id_get_info(id.get(), nullptr) == KTC_E_INVALID);
  }

  TEST_CASE("ktc_resolve looks keys up and never builds them") {
    TestCache cache;
    cache.require_store("6.1.2-tarball-x86_64-kc0123");
    ktc_resolve_options options = KTC_RESOLVE_OPTIONS_INIT;
    options.id = "6.1.2-tarball-x86_64-kc0123";
    options.flags = KTC_RESOLVE_LEASE;
    ktc_entry* raw = nullptr;
    char* raw_report = nullptr;
    REQUIRE_MESSAGE(ktc_resolve(&raw, cache.get(), &options, &raw_report) ==
                        KTC_OK,
                    error_message());
    EntryPtr entry(raw);
    StringPtr report(raw_report);
    ktc_entry_info info = info_of(entry.get());
    CHECK(text(info.key) == "6.1.2-tarball-x86_64-kc0123");
    CHECK(info.leased == 1);
    std::string json = report.get();
    CHECK(json.find("\"outcome\":\"hit\"") != std::string::npos);
    CHECK(json.find("\"kind\":\"key\"") != std::string::npos);

    options.id = "6.1.3-tarball-x86_64-kc0123";
    options.flags = 0;
    raw = nullptr;
    CHECK(ktc_resolve(&raw, cache.get(), &options, nullptr) == KTC_E_NOTFOUND);
    CHECK(error_message().find("cache key 6.1.3-tarball-x86_64-kc0123 not "
                               "found") != std::string::npos);
    CHECK(raw == nullptr);
  }

  TEST_CASE("ktc_resolve refuses ranges and bad arguments") {
    TestCache cache;
    ktc_entry* entry = nullptr;
    ktc_resolve_options options = KTC_RESOLVE_OPTIONS_INIT;
    CHECK(ktc_resolve(&entry, cache.get(), &options, nullptr) == KTC_E_INVALID);
    CHECK(error_message().find("ktc_resolve_options.id") != std::string::npos);
    options.id = "6.12..6.14";
    CHECK(ktc_resolve(&entry, cache.get(), &options, nullptr) == KTC_E_INVALID);
    CHECK(error_message().find("names several kernels") != std::string::npos);
    options.flags = 1u << 20;
    CHECK(ktc_resolve(&entry, cache.get(), &options, nullptr) == KTC_E_INVALID);
    CHECK(error_message().find("flags") != std::string::npos);
    options.flags = 0;
    options.struct_size = offsetof(ktc_resolve_options, build);
    CHECK(ktc_resolve(&entry, cache.get(), &options, nullptr) == KTC_E_INVALID);
    CHECK(error_message().find("struct_size") != std::string::npos);
    options.struct_size = sizeof options;
    CHECK(ktc_resolve(nullptr, cache.get(), &options, nullptr) ==
          KTC_E_INVALID);
    CHECK(ktc_resolve(&entry, nullptr, &options, nullptr) == KTC_E_INVALID);
    CHECK(ktc_resolve(&entry, cache.get(), nullptr, nullptr) == KTC_E_INVALID);
    CHECK(entry == nullptr);
  }

  TEST_CASE("ktc_resolve --newest passes over entries without a vmlinux") {
    TestCache cache;
    // TestCache stores images only: nothing is usable for discovery.
    cache.require_store("6.1.2-tarball-x86_64-kc0123");
    ktc_resolve_options options = KTC_RESOLVE_OPTIONS_INIT;
    options.flags = KTC_RESOLVE_NEWEST;
    ktc_entry* entry = nullptr;
    CHECK(ktc_resolve(&entry, cache.get(), &options, nullptr) ==
          KTC_E_NOTFOUND);
    CHECK(error_message().find("1 without image or ELF vmlinux") !=
          std::string::npos);
    options.arch = "sparc";
    CHECK(ktc_resolve(&entry, cache.get(), &options, nullptr) == KTC_E_INVALID);
    CHECK(entry == nullptr);
  }
}
