// What every part of the tarball plugin shares: the host's services, the
// exception that carries a plugin status to the operation's boundary, and a
// few string helpers. Nothing here crosses the C ABI: every operation
// catches at its boundary (see source_tarball.cpp), and every C callback
// (libcurl, libarchive) catches before returning into C.
#ifndef KTC_SOURCE_TARBALL_COMMON_HPP
#define KTC_SOURCE_TARBALL_COMMON_HPP

#include <ktcache/plugin.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace tarball {

// Set once by the query, before any operation; read-only afterwards.
extern const ktc_host_services* g_host;

// A failure with the plugin status it maps to; what() is the one-line
// message for set_error(). `http_status` is the HTTP status of a download
// that failed with one (0 otherwise), so that callers can say what a 404
// means for what they asked.
class Failure : public std::runtime_error {
public:
  Failure(int status, const std::string& message, long http_status = 0)
      : std::runtime_error(message), m_status(status),
        m_http_status(http_status) {}
  int status() const { return m_status; }
  long http_status() const { return m_http_status; }

private:
  int m_status;
  long m_http_status;
};

[[noreturn]] inline void fail(int status, const std::string& message) {
  throw Failure(status, message);
}

// One operation's call, with the services it uses most. Only the thread
// that runs the operation uses it: the extraction thread reports through
// the pipeline instead (see extract.cpp).
class Call {
public:
  explicit Call(ktc_plugin_call* call) : m_call(call) {}
  ktc_plugin_call* get() const { return m_call; }

  void log(int level, const std::string& message) const {
    g_host->log(m_call, level, message.c_str());
  }
  void warn(const std::string& message) const {
    log(KTC_PLUGIN_LOG_WARN, message);
  }
  void info(const std::string& message) const {
    log(KTC_PLUGIN_LOG_INFO, message);
  }
  void debug(const std::string& message) const {
    log(KTC_PLUGIN_LOG_DEBUG, message);
  }
  void progress(const char* stage, uint64_t done, uint64_t total) const {
    g_host->progress(m_call, stage, done, total);
  }
  bool cancelled() const { return g_host->cancelled(m_call) != 0; }
  // Throws the cancellation failure when the caller asked to stop.
  void check_cancelled() const {
    if (cancelled()) {
      fail(KTC_PLUGIN_E_CANCELLED, "cancelled");
    }
  }
  // What resolve() recorded under `name`, or nullptr when it did not or the
  // host is too old to say (ABI minor 1 has no identity()).
  const char* identity(const char* name) const;
  // Whether the host is offline (its offline() service; KTCACHE_OFFLINE=1
  // for hosts older than ABI minor 3).
  bool offline() const;

private:
  ktc_plugin_call* m_call;
};

// The environment variable `name`, or `fallback` when unset or empty.
std::string env_or(const char* name, std::string_view fallback);

// `text` without trailing '/'.
std::string without_trailing_slash(std::string text);

bool is_hex_digest(std::string_view text);
std::string to_lower(std::string text);
// "1.2 MB" for messages.
std::string human_size(uint64_t bytes);

} // namespace tarball

#endif
