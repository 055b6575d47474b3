#pragma once

// The CLI's thin layer over the public C API: owning handles, the mapping
// of status codes to exit codes, and the exception that ends a command.

#include <ktcache/ktcache.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace ktc::cli {

// The exit codes documented in `ktcache --help`.
enum ExitCode : int {
  k_exit_ok = 0,
  k_exit_not_found = 1,
  k_exit_usage = 2,
  k_exit_integrity = 3,
  k_exit_unverifiable = 4,
  k_exit_busy = 5,
  k_exit_environment = 6,
  k_exit_plugin = 7,
  k_exit_build = 8,
  k_exit_network = 9,
  k_exit_cancelled = 130,
};

// The exit code for a libktcache status.
int exit_code_for(int status);

// Ends the command: main prints "ktcache: <message>" and exits with
// exit_code().
class CliError : public std::runtime_error {
public:
  CliError(int exit_code, const std::string& message)
      : std::runtime_error(message), m_exit_code(exit_code) {}
  int exit_code() const { return m_exit_code; }

private:
  int m_exit_code;
};

// Throws a CliError carrying ktc_error_message() when `status` is a failure.
void check(int status);

struct CacheDeleter {
  void operator()(ktc_cache* cache) const { ktc_cache_free(cache); }
};
struct EntryDeleter {
  void operator()(ktc_entry* entry) const { ktc_entry_free(entry); }
};
struct ListDeleter {
  void operator()(ktc_list* list) const { ktc_list_free(list); }
};
struct CleanReportDeleter {
  void operator()(ktc_clean_report* report) const {
    ktc_clean_report_free(report);
  }
};
struct LockListDeleter {
  void operator()(ktc_lock_list* list) const { ktc_lock_list_free(list); }
};

struct PluginListDeleter {
  void operator()(ktc_plugin_list* list) const { ktc_plugin_list_free(list); }
};
struct LibraryStringDeleter {
  void operator()(char* text) const { ktc_free(text); }
};

using CachePtr = std::unique_ptr<ktc_cache, CacheDeleter>;
using EntryPtr = std::unique_ptr<ktc_entry, EntryDeleter>;
using ListPtr = std::unique_ptr<ktc_list, ListDeleter>;
using CleanReportPtr = std::unique_ptr<ktc_clean_report, CleanReportDeleter>;
using LockListPtr = std::unique_ptr<ktc_lock_list, LockListDeleter>;
using PluginListPtr = std::unique_ptr<ktc_plugin_list, PluginListDeleter>;
using LibraryString = std::unique_ptr<char, LibraryStringDeleter>;

// The info of an entry; throws on failure.
ktc_entry_info entry_info(const ktc_entry* entry);

} // namespace ktc::cli
