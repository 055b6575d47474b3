// HTTP through libcurl, as the reference's one client behaves: 10 s to
// connect, no total timeout (a tarball may stream for minutes), redirects
// followed, http and https only. Transport failures throw Failure with
// KTC_PLUGIN_E_NETWORK and the URL; HTTP statuses are the caller's to
// judge, since a 404 means something different for each request.
#ifndef KTC_SOURCE_TARBALL_HTTP_HPP
#define KTC_SOURCE_TARBALL_HTTP_HPP

#include "common.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tarball::http {

// libcurl's global state: initialised on first use, released at unload.
void global_cleanup();

bool is_html(std::string_view content_type);

struct Response {
  // The final HTTP status (after redirects); 0 when there was none.
  long status = 0;
  std::string body;
  std::string content_type;
  bool ok() const { return status >= 200 && status < 300; }
  bool html() const { return is_html(content_type); }
};

// Fails (KTC_PLUGIN_E_NETWORK) when the host is offline and `url` is not a
// file:// URL. `what` names the request in the message.
void require_online(const Call& call,
                    std::string_view what,
                    const std::string& url);

// GETs `url` into memory, at most `limit` bytes (more is a failure).
// `what` names the request in messages ("releases", "sha256sums.asc").
Response get(const Call& call,
             const std::string& url,
             size_t limit,
             std::string_view what);

// HEADs every URL at once; true where the answer is 2xx and not HTML.
std::vector<bool> head_all(const Call& call,
                           const std::vector<std::string>& urls);

// A streaming GET, pulled chunk by chunk: the transfer advances only while
// next() is called, so a slow consumer holds the data in the socket rather
// than in memory.
class Download {
public:
  Download(const Call& call, std::string url);
  ~Download();
  Download(const Download&) = delete;
  Download& operator=(const Download&) = delete;

  // The next chunk of the body, valid until the next call; empty at the
  // end. Throws Failure(KTC_PLUGIN_E_NETWORK) with the reference's
  // messages: "download URL: HTTP 404" (http_status() set), the HTML
  // answer, or the transport error.
  std::string_view next();
  // From Content-Length once the body starts; 0 when unknown.
  uint64_t content_length() const { return m_length; }
  const std::string& url() const { return m_url; }

private:
  static size_t on_data(char* data, size_t size, size_t count, void* self);
  [[noreturn]] void raise() const;

  const Call& m_call;
  std::string m_url;
  void* m_easy = nullptr;
  void* m_multi = nullptr;
  std::string m_pending;
  std::string m_current;
  char m_error[256] = {};
  bool m_started = false;
  bool m_done = false;
  bool m_html = false;
  int m_result = 0;
  uint64_t m_length = 0;
};

} // namespace tarball::http

#endif
