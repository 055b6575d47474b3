#include "test_capi_helpers.hpp"

#include <doctest/doctest.h>
#include <ktcache/ktcache.h>

#include <sys/stat.h>

#include <array>
#include <mutex>
#include <string>
#include <vector>

using namespace ktc::capi_test;

namespace {

struct LogLine {
  int level;
  std::string message;
};

struct Captured {
  std::mutex mutex;
  std::vector<LogLine> lines;
};

void capture(int level, const char* message, void* userdata) {
  auto* captured = static_cast<Captured*>(userdata);
  std::lock_guard lock(captured->mutex);
  captured->lines.push_back({level, message != nullptr ? message : "<NULL>"});
}

// Removes the process-wide sink even when a check throws.
struct SinkReset {
  ~SinkReset() { ktc_log_set_callback(0, nullptr, nullptr); }
};

// Work that exercises store, lookup, list and clean, corrupt entry
// included, in a fresh cache.
void exercise_cache() {
  TestCache cache;
  cache.require_store("logged");
  ktc_entry* raw = nullptr;
  REQUIRE(ktc_lookup(&raw, cache.get(), "logged", KTC_LOOKUP_LEASE) == KTC_OK);
  ktc_entry_free(raw);
  REQUIRE(ktc_lookup(&raw, cache.get(), "missing", 0) == KTC_E_NOTFOUND);
  std::string broken = cache.root() + "/broken";
  REQUIRE(mkdir(broken.c_str(), 0777) == 0);
  ktc::test::write_file(broken + "/metadata.json", "[");
  ktc_list* list = nullptr;
  REQUIRE(ktc_list_entries(&list, cache.get()) == KTC_OK);
  ktc_list_free(list);
  REQUIRE(ktc_verify(cache.get(), "logged") == KTC_OK);
  ktc_clean_report* report = nullptr;
  REQUIRE(ktc_clean(&report, cache.get(), nullptr) == KTC_OK);
  ktc_clean_report_free(report);
}

std::vector<LogLine> lines_at(int max_level) {
  Captured captured;
  SinkReset reset;
  ktc_log_set_callback(max_level, capture, &captured);
  exercise_cache();
  ktc_log_set_callback(0, nullptr, nullptr);
  std::lock_guard lock(captured.mutex);
  return captured.lines;
}

std::array<size_t, 6> count_by_level(const std::vector<LogLine>& lines) {
  std::array<size_t, 6> counts{};
  for (const LogLine& line : lines) {
    if (line.level >= 0 && line.level < 6) {
      ++counts[static_cast<size_t>(line.level)];
    }
  }
  return counts;
}

} // namespace

TEST_SUITE_BEGIN("CApi");

TEST_CASE("the log callback gets one-line messages at known levels") {
  std::vector<LogLine> lines = lines_at(KTC_LOG_TRACE);
  REQUIRE(!lines.empty());
  for (const LogLine& line : lines) {
    CAPTURE(line.message);
    CHECK(line.level >= KTC_LOG_ERROR);
    CHECK(line.level <= KTC_LOG_TRACE);
    CHECK(!line.message.empty());
    CHECK(line.message.find('\n') == std::string::npos);
  }
}

TEST_CASE("the log callback gets messages up to its level and none above") {
  std::array<size_t, 6> all = count_by_level(lines_at(KTC_LOG_TRACE));
  for (int max_level = 0; max_level <= KTC_LOG_DEBUG; ++max_level) {
    CAPTURE(max_level);
    std::array<size_t, 6> seen = count_by_level(lines_at(max_level));
    for (int level = KTC_LOG_ERROR; level <= KTC_LOG_TRACE; ++level) {
      CAPTURE(level);
      auto index = static_cast<size_t>(level);
      CHECK(seen[index] == (level <= max_level ? all[index] : 0));
    }
  }
}

TEST_CASE("a removed log callback is not called") {
  Captured captured;
  SinkReset reset;
  ktc_log_set_callback(KTC_LOG_TRACE, capture, &captured);
  ktc_log_set_callback(KTC_LOG_TRACE, nullptr, &captured);
  exercise_cache();
  std::lock_guard lock(captured.mutex);
  CHECK(captured.lines.empty());
}

TEST_SUITE_END();
