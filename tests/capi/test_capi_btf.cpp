#include "elf_builder.hpp"
#include "test_capi_helpers.hpp"

#include <doctest/doctest.h>
#include <ktcache/ktcache.h>

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mutex>
#include <optional>
#include <string>
#include <vector>

using namespace ktc::capi_test;
namespace builder = ktc::test;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

struct Vmlinux {
  std::string bytes;
  std::string btf;
};

Vmlinux make_vmlinux(unsigned seed = 3) {
  builder::VmlinuxOptions options;
  options.btf_seed = seed;
  builder::ElfImage image = builder::build_vmlinux(options);
  const builder::BuiltSection* btf = image.find(".BTF");
  REQUIRE(btf != nullptr);
  return {image.bytes, btf->data};
}

std::string elf_without_btf() {
  builder::ElfBuilder elf(builder::ElfClass::elf64, builder::ByteOrder::little,
                          EM_X86_64);
  builder::SectionSpec text;
  text.name = ".text";
  text.flags = SHF_ALLOC | SHF_EXECINSTR;
  text.data = std::string(64, '\x90');
  elf.add_section(text);
  return elf.build().bytes;
}

// Stores `key` with `vmlinux` as its vmlinux (unstripped), or none.
std::string store_entry(const TestCache& cache,
                        const std::string& key,
                        const std::optional<std::string>& vmlinux) {
  std::string image = cache.input(key + "-bzImage", "image bytes");
  std::string vmlinux_path =
      vmlinux ? cache.input(key + "-vmlinux", *vmlinux) : "";
  ktc_store_options options = KTC_STORE_OPTIONS_INIT;
  options.flags = KTC_STORE_NO_STRIP;
  options.image = image.c_str();
  options.image_name = "bzImage";
  options.vmlinux = vmlinux ? vmlinux_path.c_str() : nullptr;
  ktc_entry* raw = nullptr;
  int status = ktc_store(&raw, cache.get(), key.c_str(), &options);
  REQUIRE_MESSAGE(status == KTC_OK, error_message());
  EntryPtr entry(raw);
  ktc_entry_info info = info_of(entry.get());
  return text_or_empty(info.vmlinux_path);
}

struct Btf {
  std::string bytes;
  std::optional<std::string> sidecar;
};

Btf read_btf(ktc_cache* cache, const std::string& file_or_key, uint32_t flags) {
  void* data = nullptr;
  size_t size = 0;
  char* sidecar = nullptr;
  int status =
      ktc_btf_read(&data, &size, &sidecar, cache, file_or_key.c_str(), flags);
  REQUIRE_MESSAGE(status == KTC_OK, error_message());
  REQUIRE(data != nullptr);
  Btf result;
  result.bytes.assign(static_cast<const char*>(data), size);
  ktc_free(data);
  if (sidecar != nullptr) {
    result.sidecar = sidecar;
    ktc_free(sidecar);
  }
  return result;
}

// ktc_btf_read() required to fail with `expected`, the outputs untouched;
// returns the message.
std::string btf_failure(ktc_cache* cache,
                        const char* file_or_key,
                        int expected,
                        uint32_t flags = 0) {
  void* data = nullptr;
  size_t size = 12345;
  char* sidecar = nullptr;
  int status = ktc_btf_read(&data, &size, &sidecar, cache, file_or_key, flags);
  CHECK_MESSAGE(status == expected, error_message());
  CHECK(data == nullptr);
  CHECK(size == 12345);
  CHECK(sidecar == nullptr);
  std::string message = error_message();
  CHECK(message.find('\n') == std::string::npos);
  return message;
}

struct stat stat_of(const std::string& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st;
}

bool same_mtime(const struct stat& a, const struct stat& b) {
  return a.st_mtim.tv_sec == b.st_mtim.tv_sec &&
         a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

// Sets the mtime of `path` `seconds` away from now.
void set_mtime(const std::string& path, int seconds) {
  timespec now;
  REQUIRE(::clock_gettime(CLOCK_REALTIME, &now) == 0);
  timespec times[2] = {now, now};
  times[1].tv_sec += seconds;
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
}

std::string directory_of(const std::string& path) {
  return path.substr(0, path.rfind('/'));
}

// Every name below `dir` (recursively), relative to it.
void walk(const std::string& dir,
          const std::string& prefix,
          std::vector<std::string>& names) {
  for (const std::string& name : ktc::test::list_dir(dir)) {
    names.push_back(prefix + name);
    struct stat st;
    std::string path = dir + "/" + name;
    if (::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      walk(path, prefix + name + "/", names);
    }
  }
}

std::vector<std::string> tree(const std::string& dir) {
  std::vector<std::string> names;
  if (ktc::test::exists(dir)) {
    walk(dir, "", names);
  }
  return names;
}

bool has_temporary(const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    if (contains(name, ".tmp-")) {
      return true;
    }
  }
  return false;
}

struct Captured {
  std::mutex mutex;
  std::vector<std::pair<int, std::string>> lines;
};

void capture(int level, const char* message, void* userdata) {
  auto* captured = static_cast<Captured*>(userdata);
  std::lock_guard lock(captured->mutex);
  captured->lines.emplace_back(level, message != nullptr ? message : "");
}

struct SinkReset {
  ~SinkReset() { ktc_log_set_callback(0, nullptr, nullptr); }
};

} // namespace

TEST_SUITE_BEGIN("CApi");

TEST_CASE("ktc_btf_read of a key writes the sidecar beside the entry's "
          "vmlinux, then reuses it") {
  TestCache cache;
  Vmlinux vmlinux = make_vmlinux();
  std::string stored = store_entry(cache, "k", vmlinux.bytes);
  REQUIRE_FALSE(stored.empty());
  std::string sidecar = stored + ".btf";
  CHECK(sidecar == cache.root() + "/k/vmlinux.btf");
  REQUIRE_FALSE(ktc::test::exists(sidecar));

  Btf first = read_btf(cache.get(), "k", 0);
  CHECK(first.bytes == vmlinux.btf);
  REQUIRE(first.sidecar);
  CHECK(*first.sidecar == sidecar);
  REQUIRE(ktc::test::exists(sidecar));
  CHECK(ktc::test::read_file(sidecar) == vmlinux.btf);
  CHECK_FALSE(has_temporary(tree(cache.root())));
  struct stat written = stat_of(sidecar);

  SUBCASE("a second read reuses it") {
    Btf second = read_btf(cache.get(), "k", 0);
    CHECK(second.bytes == vmlinux.btf);
    REQUIRE(second.sidecar);
    CHECK(*second.sidecar == sidecar);
    struct stat again = stat_of(sidecar);
    CHECK(again.st_ino == written.st_ino);
    CHECK(same_mtime(again, written));
  }
  SUBCASE("the vmlinux named as a file inside the cache uses it too") {
    Btf by_path = read_btf(cache.get(), stored, 0);
    CHECK(by_path.bytes == vmlinux.btf);
    REQUIRE(by_path.sidecar);
    CHECK(*by_path.sidecar == sidecar);
    CHECK(stat_of(sidecar).st_ino == written.st_ino);
  }
  SUBCASE("a sidecar older than the vmlinux is rewritten") {
    set_mtime(stored, 60);
    Btf stale = read_btf(cache.get(), "k", 0);
    CHECK(stale.bytes == vmlinux.btf);
    REQUIRE(stale.sidecar);
    struct stat rewritten = stat_of(sidecar);
    CHECK(rewritten.st_ino != written.st_ino);
    CHECK(ktc::test::read_file(sidecar) == vmlinux.btf);
    CHECK_FALSE(has_temporary(tree(cache.root())));
  }
  SUBCASE("a sidecar without the BTF magic is rewritten") {
    ktc::test::write_file(sidecar, "definitely not BTF");
    set_mtime(sidecar, 60);
    struct stat bad = stat_of(sidecar);
    Btf fixed = read_btf(cache.get(), "k", 0);
    CHECK(fixed.bytes == vmlinux.btf);
    CHECK(stat_of(sidecar).st_ino != bad.st_ino);
    CHECK(ktc::test::read_file(sidecar) == vmlinux.btf);
  }
  SUBCASE("KTC_BTF_NO_SIDECAR neither reads nor writes it") {
    ktc::test::write_file(sidecar, "definitely not BTF");
    set_mtime(sidecar, 60);
    Btf plain = read_btf(cache.get(), "k", KTC_BTF_NO_SIDECAR);
    CHECK(plain.bytes == vmlinux.btf);
    CHECK_FALSE(plain.sidecar);
    CHECK(ktc::test::read_file(sidecar) == "definitely not BTF");
  }
  SUBCASE("verify and list ignore it, clean removes it") {
    CHECK_MESSAGE(ktc_verify(cache.get(), "k") == KTC_OK, error_message());
    ktc_list* raw = nullptr;
    REQUIRE(ktc_list_entries(&raw, cache.get()) == KTC_OK);
    ListPtr list(raw);
    REQUIRE(ktc_list_count(list.get()) == 1);
    ktc_entry_info info = info_of(ktc_list_at(list.get(), 0));
    CHECK(info.state == KTC_ENTRY_VALID);
    ktc_clean_options options = KTC_CLEAN_OPTIONS_INIT;
    ktc_clean_report* report = nullptr;
    REQUIRE_MESSAGE(ktc_clean(&report, cache.get(), &options) == KTC_OK,
                    error_message());
    ktc_clean_report_free(report);
    CHECK_FALSE(ktc::test::exists(sidecar));
    CHECK_FALSE(ktc::test::exists(cache.root() + "/k"));
  }
}

TEST_CASE("ktc_btf_read with KTC_BTF_NO_SIDECAR writes no sidecar") {
  TestCache cache;
  Vmlinux vmlinux = make_vmlinux();
  std::string stored = store_entry(cache, "plain", vmlinux.bytes);
  std::vector<std::string> before = tree(cache.root());
  Btf plain = read_btf(cache.get(), "plain", KTC_BTF_NO_SIDECAR);
  CHECK(plain.bytes == vmlinux.btf);
  CHECK_FALSE(plain.sidecar);
  CHECK_FALSE(ktc::test::exists(stored + ".btf"));
  CHECK(tree(cache.root()) == before);
}

TEST_CASE("ktc_btf_read of a file outside the cache writes nothing") {
  TestCache cache;
  cache.require_store("other");
  Vmlinux vmlinux = make_vmlinux(9);
  std::string file = cache.input("vmlinux", vmlinux.bytes);
  std::string outside = directory_of(file);
  std::vector<std::string> before = tree(outside);

  for (ktc_cache* handle : {cache.get(), static_cast<ktc_cache*>(nullptr)}) {
    Btf result = read_btf(handle, file, 0);
    CHECK(result.bytes == vmlinux.btf);
    CHECK_FALSE(result.sidecar);
  }
  CHECK_FALSE(ktc::test::exists(file + ".btf"));
  // Nothing anywhere: not beside the file, not in the cache.
  CHECK(tree(outside) == before);
  CHECK_FALSE(has_temporary(tree(outside)));
}

TEST_CASE("ktc_btf_read returns the bytes when the sidecar cannot be "
          "written, with a warning") {
  if (::geteuid() == 0) {
    MESSAGE("skipped: root ignores directory modes");
    return;
  }
  TestCache cache;
  Vmlinux vmlinux = make_vmlinux();
  std::string stored = store_entry(cache, "ro", vmlinux.bytes);
  std::string entry = directory_of(stored);
  REQUIRE(::chmod(entry.c_str(), 0555) == 0);
  Captured captured;
  std::optional<Btf> result;
  {
    SinkReset reset;
    ktc_log_set_callback(KTC_LOG_WARN, capture, &captured);
    result = read_btf(cache.get(), "ro", 0);
  }
  std::vector<std::string> names = ktc::test::list_dir(entry);
  REQUIRE(::chmod(entry.c_str(), 0777) == 0);
  CHECK(result->bytes == vmlinux.btf);
  CHECK_FALSE(result->sidecar);
  CHECK_FALSE(ktc::test::exists(stored + ".btf"));
  CHECK_FALSE(has_temporary(names));
  bool warned = false;
  for (const auto& [level, message] : captured.lines) {
    if (level == KTC_LOG_WARN && contains(message, stored + ".btf")) {
      warned = true;
      CHECK(message.find('\n') == std::string::npos);
    }
  }
  CHECK_MESSAGE(warned, "no warning naming the sidecar was logged");
}

TEST_CASE("ktc_btf_read returns the bytes when the sidecar cannot be "
          "replaced, even as root") {
  TestCache cache;
  Vmlinux vmlinux = make_vmlinux();
  std::string stored = store_entry(cache, "blocked", vmlinux.bytes);
  std::string entry = directory_of(stored);
  // A directory where the sidecar goes: no rename can replace it.
  REQUIRE(::mkdir((stored + ".btf").c_str(), 0777) == 0);
  Captured captured;
  std::optional<Btf> result;
  {
    SinkReset reset;
    ktc_log_set_callback(KTC_LOG_WARN, capture, &captured);
    result = read_btf(cache.get(), "blocked", 0);
  }
  CHECK(result->bytes == vmlinux.btf);
  CHECK_FALSE(result->sidecar);
  CHECK(ktc::test::list_dir(stored + ".btf").empty());
  CHECK_FALSE(has_temporary(tree(entry)));
  REQUIRE(captured.lines.size() == 1);
  CHECK(captured.lines[0].first == KTC_LOG_WARN);
  CHECK(contains(captured.lines[0].second, stored + ".btf"));
  CHECK(captured.lines[0].second.find('\n') == std::string::npos);
}

TEST_CASE("ktc_btf_read reports what is missing or wrong") {
  TestCache cache;
  store_entry(cache, "no-vmlinux", std::nullopt);
  store_entry(cache, "no-btf", elf_without_btf());

  std::string message = btf_failure(cache.get(), "absent", KTC_E_NOTFOUND);
  CHECK(contains(message, "absent"));
  message = btf_failure(cache.get(), "no-vmlinux", KTC_E_NOTFOUND);
  CHECK(contains(message, "no-vmlinux"));
  CHECK(contains(message, "no vmlinux"));
  message = btf_failure(cache.get(), "no-btf", KTC_E_NOTFOUND);
  CHECK(contains(message, cache.root() + "/no-btf/vmlinux"));
  CHECK(contains(message, "no .BTF section"));
  CHECK(contains(message, "CONFIG_DEBUG_INFO_BTF"));
  CHECK_FALSE(ktc::test::exists(cache.root() + "/no-btf/vmlinux.btf"));

  std::string missing = cache.input("gone", "x");
  REQUIRE(::unlink(missing.c_str()) == 0);
  message = btf_failure(cache.get(), missing.c_str(), KTC_E_NOTFOUND);
  CHECK(contains(message, missing));
  std::string text = cache.input("text", "plain text, not ELF\n");
  message = btf_failure(cache.get(), text.c_str(), KTC_E_INVALID);
  CHECK(contains(message, text));
  CHECK(contains(message, "not an ELF file"));
  std::string damaged = make_vmlinux().bytes;
  damaged.resize(200);
  std::string truncated = cache.input("truncated", damaged);
  message = btf_failure(cache.get(), truncated.c_str(), KTC_E_CORRUPT);
  CHECK(contains(message, truncated));

  btf_failure(cache.get(), "Bad/Key", KTC_E_NOTFOUND);
  btf_failure(cache.get(), "bad:key", KTC_E_INVALID);
  btf_failure(nullptr, "k", KTC_E_INVALID);
  btf_failure(cache.get(), "", KTC_E_INVALID);
  message = btf_failure(cache.get(), "no-btf", KTC_E_INVALID, 1u << 7);
  CHECK(contains(message, "flags"));
}

TEST_CASE("ktc_btf_read refuses NULL arguments") {
  TestCache cache;
  Vmlinux vmlinux = make_vmlinux();
  store_entry(cache, "k", vmlinux.bytes);
  void* data = nullptr;
  size_t size = 0;
  prime_error_message();
  CHECK(ktc_btf_read(nullptr, &size, nullptr, cache.get(), "k", 0) ==
        KTC_E_INVALID);
  CHECK(contains(error_message(), "data"));
  prime_error_message();
  CHECK(ktc_btf_read(&data, nullptr, nullptr, cache.get(), "k", 0) ==
        KTC_E_INVALID);
  CHECK(contains(error_message(), "size"));
  prime_error_message();
  CHECK(ktc_btf_read(&data, &size, nullptr, cache.get(), nullptr, 0) ==
        KTC_E_INVALID);
  CHECK(contains(error_message(), "file_or_key"));
  CHECK(data == nullptr);
  // `sidecar` is optional.
  REQUIRE(ktc_btf_read(&data, &size, nullptr, cache.get(), "k", 0) == KTC_OK);
  CHECK(std::string(static_cast<const char*>(data), size) == vmlinux.btf);
  ktc_free(data);
}

TEST_CASE("ktc_path_inside_cache_root with a handle and with the default "
          "root") {
  TestCache cache;
  cache.require_store("k");
  std::string entry = cache.root() + "/k";
  CHECK(ktc_path_inside_cache_root(cache.get(), (entry + "/vmlinux").c_str()) ==
        1);
  CHECK(ktc_path_inside_cache_root(cache.get(),
                                   (cache.root() + "/x").c_str()) == 1);
  CHECK(ktc_path_inside_cache_root(cache.get(),
                                   (cache.root() + "/k/../../x").c_str()) == 0);
  std::string outside = cache.input("vmlinux", "x");
  CHECK(ktc_path_inside_cache_root(cache.get(), outside.c_str()) == 0);
  CHECK(ktc_path_inside_cache_root(
            cache.get(), (cache.root() + "/missing/vmlinux").c_str()) == 0);
  CHECK(ktc_path_inside_cache_root(cache.get(), "vmlinux") == 0);
  CHECK(ktc_path_inside_cache_root(cache.get(), nullptr) == 0);
  CHECK(ktc_path_inside_cache_root(nullptr, nullptr) == 0);

  {
    ktc::test::ScopedEnv dir("KTCACHE_DIR", cache.root());
    CHECK(ktc_path_inside_cache_root(nullptr, (entry + "/vmlinux").c_str()) ==
          1);
    CHECK(ktc_path_inside_cache_root(nullptr, outside.c_str()) == 0);
  }
  {
    // Resolved afresh: another KTCACHE_DIR moves the answer.
    ktc::test::ScopedEnv dir("KTCACHE_DIR", directory_of(outside));
    CHECK(ktc_path_inside_cache_root(nullptr, outside.c_str()) == 1);
    CHECK(ktc_path_inside_cache_root(nullptr, (entry + "/vmlinux").c_str()) ==
          1);
  }
  {
    // A root that does not exist holds nothing.
    ktc::test::ScopedEnv dir("KTCACHE_DIR", cache.root() + "/nonexistent");
    CHECK(ktc_path_inside_cache_root(nullptr, (entry + "/vmlinux").c_str()) ==
          0);
  }
  {
    // No root can be resolved at all.
    ktc::test::ScopedEnv dir("KTCACHE_DIR", std::nullopt);
    ktc::test::ScopedEnv xdg("XDG_CACHE_HOME", std::nullopt);
    ktc::test::ScopedEnv home("HOME", std::nullopt);
    CHECK(ktc_path_inside_cache_root(nullptr, (entry + "/vmlinux").c_str()) ==
          0);
  }
}

TEST_SUITE_END();
