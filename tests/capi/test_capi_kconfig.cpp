#include "ikconfig_elf.hpp"
#include "test_capi_helpers.hpp"

#include <doctest/doctest.h>
#include <ktcache/ktcache.h>

#include <sys/stat.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

using namespace ktc::capi_test;
namespace fixture = ktc::test::elf;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

struct Kconfig {
  std::string text;
  int source = -1;
  std::string path;
};

// ktc_kconfig_read(), required to succeed.
Kconfig read_kconfig(ktc_cache* cache, const std::string& file_or_key) {
  char* text = nullptr;
  char* path = nullptr;
  int source = -1;
  int status =
      ktc_kconfig_read(&text, &source, &path, cache, file_or_key.c_str());
  REQUIRE_MESSAGE(status == KTC_OK, error_message());
  REQUIRE(text != nullptr);
  REQUIRE(path != nullptr);
  StringPtr text_owner(text);
  StringPtr path_owner(path);
  return {text, source, path};
}

// ktc_kconfig_read(), required to fail with `expected`; checks the outputs
// are left alone and returns the message.
std::string kconfig_failure(ktc_cache* cache,
                            const std::string& file_or_key,
                            int expected) {
  char* text = nullptr;
  char* path = nullptr;
  int source = -1;
  int status =
      ktc_kconfig_read(&text, &source, &path, cache, file_or_key.c_str());
  CHECK_MESSAGE(status == expected, error_message());
  CHECK(text == nullptr);
  CHECK(path == nullptr);
  CHECK(source == -1);
  std::string message = error_message();
  CHECK(message.find('\n') == std::string::npos);
  return message;
}

std::optional<std::string> value_of(const std::string& text,
                                    const std::string& name) {
  char* raw = nullptr;
  int status = ktc_kconfig_value(&raw, text.c_str(), name.c_str());
  if (status == KTC_E_NOTFOUND) {
    CHECK(raw == nullptr);
    return std::nullopt;
  }
  REQUIRE_MESSAGE(status == KTC_OK, error_message());
  StringPtr value(raw);
  return std::string(value.get());
}

// Stores `key` with the given vmlinux and .config contents (nullopt: none).
void store_entry(const TestCache& cache,
                 const std::string& key,
                 const std::optional<std::string>& vmlinux,
                 const std::optional<std::string>& config) {
  std::string image = cache.input(key + "-bzImage", "image bytes");
  std::string vmlinux_path =
      vmlinux ? cache.input(key + "-vmlinux", *vmlinux) : "";
  std::string config_path = config ? cache.input(key + "-config", *config) : "";
  ktc_store_options options = KTC_STORE_OPTIONS_INIT;
  options.flags = KTC_STORE_NO_STRIP;
  options.image = image.c_str();
  options.image_name = "bzImage";
  options.vmlinux = vmlinux ? vmlinux_path.c_str() : nullptr;
  options.config = config ? config_path.c_str() : nullptr;
  int status = ktc_store(nullptr, cache.get(), key.c_str(), &options);
  REQUIRE_MESSAGE(status == KTC_OK, error_message());
}

const std::string k_stored_config = "# stored\nCONFIG_HZ=250\n";

// Restores the working directory when it goes out of scope.
class ScopedChdir {
public:
  explicit ScopedChdir(const std::string& dir) {
    char* old = getcwd(nullptr, 0);
    REQUIRE(old != nullptr);
    m_old = old;
    free(old);
    REQUIRE(chdir(dir.c_str()) == 0);
  }
  ~ScopedChdir() { CHECK(chdir(m_old.c_str()) == 0); }
  ScopedChdir(const ScopedChdir&) = delete;
  ScopedChdir& operator=(const ScopedChdir&) = delete;

private:
  std::string m_old;
};

} // namespace

TEST_SUITE_BEGIN("CApi");

TEST_CASE("ktc_kconfig_read reads the config a vmlinux file embeds") {
  TestCache cache;
  std::string config = fixture::sample_config();

  SUBCASE("located by its symbols") {
    std::string file =
        cache.input("vmlinux", fixture::vmlinux_with_config(config, true));
    Kconfig answer = read_kconfig(cache.get(), file);
    CHECK(answer.text == config);
    CHECK(answer.source == KTC_KCONFIG_FROM_IKCONFIG);
    CHECK(answer.path == file);
  }
  SUBCASE("located by its markers, without a cache") {
    std::string file =
        cache.input("vmlinux", fixture::vmlinux_with_config(config, false));
    Kconfig answer = read_kconfig(nullptr, file);
    CHECK(answer.text == config);
    CHECK(answer.source == KTC_KCONFIG_FROM_IKCONFIG);
  }
  SUBCASE("source and path may be NULL") {
    std::string file =
        cache.input("vmlinux", fixture::vmlinux_with_config(config, true));
    char* text = nullptr;
    REQUIRE_MESSAGE(ktc_kconfig_read(&text, nullptr, nullptr, nullptr,
                                     file.c_str()) == KTC_OK,
                    error_message());
    StringPtr owner(text);
    CHECK(std::string(text) == config);
  }
}

TEST_CASE("ktc_kconfig_read tells a file without IKCONFIG from an error") {
  TestCache cache;
  prime_error_message();

  SUBCASE("no embedded config is not found, naming the file") {
    std::string file =
        cache.input("vmlinux", fixture::vmlinux_without_config());
    std::string message = kconfig_failure(cache.get(), file, KTC_E_NOTFOUND);
    CHECK(message == file + ": no embedded config (CONFIG_IKCONFIG)");
  }
  SUBCASE("a missing file is not found, naming it") {
    std::string file = cache.input("x", "") + "-missing/vmlinux";
    std::string message = kconfig_failure(cache.get(), file, KTC_E_NOTFOUND);
    CHECK_MESSAGE(contains(message, file), message);
    CHECK_FALSE(contains(message, "CONFIG_IKCONFIG"));
  }
  SUBCASE("a file that is not ELF is invalid") {
    std::string file = cache.input("config", fixture::sample_config());
    std::string message = kconfig_failure(cache.get(), file, KTC_E_INVALID);
    CHECK_MESSAGE(contains(message, file), message);
  }
  SUBCASE("a blob that does not decompress is corrupt") {
    fixture::VmlinuxSpec spec;
    spec.blob = fixture::gzip(fixture::sample_config());
    spec.blob.resize(spec.blob.size() / 2);
    std::string file = cache.input("vmlinux", fixture::vmlinux(spec));
    std::string message = kconfig_failure(cache.get(), file, KTC_E_CORRUPT);
    CHECK_MESSAGE(message.starts_with(file + ": embedded config (IKCONFIG)"),
                  message);
  }
}

TEST_CASE("ktc_kconfig_read of a key reads the entry's vmlinux first, then "
          "its stored .config") {
  TestCache cache;
  std::string embedded = fixture::sample_config();
  std::string key = "6.14.2-tarball-x86_64-kc1a2b3c4d";

  SUBCASE("the vmlinux embeds a config") {
    store_entry(cache, key, fixture::vmlinux_with_config(embedded, true),
                k_stored_config);
    Kconfig answer = read_kconfig(cache.get(), key);
    CHECK(answer.text == embedded);
    CHECK(answer.source == KTC_KCONFIG_FROM_IKCONFIG);
    CHECK(answer.path == cache.root() + "/" + key + "/vmlinux");
  }
  SUBCASE("the vmlinux embeds none") {
    store_entry(cache, key, fixture::vmlinux_without_config(), k_stored_config);
    Kconfig answer = read_kconfig(cache.get(), key);
    CHECK(answer.text == k_stored_config);
    CHECK(answer.source == KTC_KCONFIG_FROM_CONFIG_FILE);
    CHECK(answer.path == cache.root() + "/" + key + "/config");
  }
  SUBCASE("the entry has no vmlinux") {
    store_entry(cache, key, std::nullopt, k_stored_config);
    Kconfig answer = read_kconfig(cache.get(), key);
    CHECK(answer.text == k_stored_config);
    CHECK(answer.source == KTC_KCONFIG_FROM_CONFIG_FILE);
  }
  SUBCASE("the vmlinux's blob is corrupt") {
    fixture::VmlinuxSpec spec;
    spec.blob = "not gzip";
    store_entry(cache, key, fixture::vmlinux(spec), k_stored_config);
    Kconfig answer = read_kconfig(cache.get(), key);
    CHECK(answer.text == k_stored_config);
    CHECK(answer.source == KTC_KCONFIG_FROM_CONFIG_FILE);
  }
}

TEST_CASE("ktc_kconfig_read of a key with no config at all is not found") {
  TestCache cache;
  std::string key = "6.14.2-tarball-x86_64-kc1a2b3c4d";
  prime_error_message();

  SUBCASE("a vmlinux without IKCONFIG and no .config") {
    store_entry(cache, key, fixture::vmlinux_without_config(), std::nullopt);
    std::string message = kconfig_failure(cache.get(), key, KTC_E_NOTFOUND);
    CHECK(message == "entry \"" + key +
                         "\": no embedded config (CONFIG_IKCONFIG) and no "
                         "stored .config");
  }
  SUBCASE("no vmlinux and no .config") {
    store_entry(cache, key, std::nullopt, std::nullopt);
    std::string message = kconfig_failure(cache.get(), key, KTC_E_NOTFOUND);
    CHECK(message == "entry \"" + key + "\": no vmlinux and no stored .config");
  }
  SUBCASE("a corrupt blob and no .config is the corruption") {
    fixture::VmlinuxSpec spec;
    spec.blob = "not gzip";
    store_entry(cache, key, fixture::vmlinux(spec), std::nullopt);
    std::string message = kconfig_failure(cache.get(), key, KTC_E_CORRUPT);
    CHECK_MESSAGE(contains(message, "not a gzip stream"), message);
  }
}

TEST_CASE("ktc_kconfig_read checks keys and arguments") {
  TestCache cache;
  prime_error_message();

  SUBCASE("a missing key") {
    std::string message =
        kconfig_failure(cache.get(), "6.1-none-x86_64-kc0", KTC_E_NOTFOUND);
    CHECK_MESSAGE(contains(message, "6.1-none-x86_64-kc0"), message);
  }
  SUBCASE("an invalid key") {
    std::string message =
        kconfig_failure(cache.get(), "bad:key", KTC_E_INVALID);
    CHECK_MESSAGE(contains(message, "bad:key"), message);
  }
  SUBCASE("a key without a cache") {
    std::string message =
        kconfig_failure(nullptr, "6.1-none-x86_64-kc0", KTC_E_INVALID);
    CHECK_MESSAGE(contains(message, "no cache"), message);
  }
  SUBCASE("an empty argument") {
    kconfig_failure(cache.get(), "", KTC_E_INVALID);
  }
  SUBCASE("NULL arguments") {
    char* text = nullptr;
    CHECK(ktc_kconfig_read(nullptr, nullptr, nullptr, cache.get(), "k") ==
          KTC_E_INVALID);
    CHECK(contains(error_message(), "out"));
    CHECK(ktc_kconfig_read(&text, nullptr, nullptr, cache.get(), nullptr) ==
          KTC_E_INVALID);
    CHECK(contains(error_message(), "file_or_key"));
    CHECK(text == nullptr);
  }
}

TEST_CASE("ktc_kconfig_read takes a bare name for a file only when it names "
          "one") {
  TestCache cache;
  std::string key = "6.14.2-tarball-x86_64-kc1a2b3c4d";
  store_entry(cache, key, std::nullopt, k_stored_config);
  ktc::test::TempDir work;

  SUBCASE("a file in the working directory") {
    ktc::test::write_file(work / key,
                          fixture::vmlinux_with_config("CONFIG_HZ=100\n"));
    ScopedChdir here(work.path());
    Kconfig answer = read_kconfig(cache.get(), key);
    CHECK(answer.text == "CONFIG_HZ=100\n");
    CHECK(answer.source == KTC_KCONFIG_FROM_IKCONFIG);
    CHECK(answer.path == key);
  }
  SUBCASE("a directory in the working directory, as in the cache root") {
    ScopedChdir here(cache.root());
    Kconfig answer = read_kconfig(cache.get(), key);
    CHECK(answer.source == KTC_KCONFIG_FROM_CONFIG_FILE);
    CHECK(answer.text == k_stored_config);
  }
}

TEST_CASE("ktc_kconfig_value reads one option as Kconfig does") {
  std::string config = fixture::sample_config();
  CHECK(value_of(config, "CONFIG_HZ") == std::optional<std::string>("1000"));
  CHECK(value_of(config, "HZ") == std::optional<std::string>("1000"));
  CHECK(value_of(config, "LOCALVERSION") == std::optional<std::string>("\"\""));
  CHECK(value_of("CONFIG_HZ=100\nCONFIG_HZ=300\n", "HZ") ==
        std::optional<std::string>("300"));
  CHECK_FALSE(value_of(config, "CONFIG_H"));
}

TEST_CASE("ktc_kconfig_value says whether an option is absent or not set") {
  std::string config = fixture::sample_config();
  prime_error_message();

  SUBCASE("not set") {
    char* raw = nullptr;
    CHECK(ktc_kconfig_value(&raw, config.c_str(), "LOCALVERSION_AUTO") ==
          KTC_E_NOTFOUND);
    CHECK(error_message() == "CONFIG_LOCALVERSION_AUTO is not set");
    CHECK(raw == nullptr);
  }
  SUBCASE("absent") {
    char* raw = nullptr;
    CHECK(ktc_kconfig_value(&raw, config.c_str(), "CONFIG_NOPE") ==
          KTC_E_NOTFOUND);
    CHECK(error_message() == "CONFIG_NOPE is absent from the config");
  }
  SUBCASE("names that are not option names") {
    for (const char* name : {"", "CONFIG_", "HZ=1", "CONFIG HZ", "HZ\n"}) {
      CAPTURE(name);
      char* raw = nullptr;
      CHECK(ktc_kconfig_value(&raw, config.c_str(), name) == KTC_E_INVALID);
      CHECK(contains(error_message(), "not a kconfig option name"));
      CHECK(raw == nullptr);
    }
  }
  SUBCASE("NULL arguments") {
    char* raw = nullptr;
    CHECK(ktc_kconfig_value(nullptr, config.c_str(), "HZ") == KTC_E_INVALID);
    CHECK(ktc_kconfig_value(&raw, nullptr, "HZ") == KTC_E_INVALID);
    CHECK(contains(error_message(), "config_text"));
    CHECK(ktc_kconfig_value(&raw, config.c_str(), nullptr) == KTC_E_INVALID);
    CHECK(contains(error_message(), "name"));
  }
}

TEST_SUITE_END();
