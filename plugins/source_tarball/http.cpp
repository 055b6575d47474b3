#include "http.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <curl/curl.h>
#include <memory>
#include <mutex>

namespace tarball::http {
namespace {

constexpr long k_connect_timeout_seconds = 10;
constexpr long k_max_redirects = 10;
// How long one wait for the network lasts before cancellation is checked
// again.
constexpr int k_poll_milliseconds = 100;

std::once_flag g_init_once;
bool g_initialised = false;

void global_init() {
  std::call_once(g_init_once, [] {
    // libcurl stays loaded once used, even after this plugin is unloaded:
    // libraries under it (GnuTLS, through librtmp and libldap) keep
    // thread-local state, and a leak checker walking every thread's TLS at
    // exit (LeakSanitizer) crashes on that of an unloaded one.
    (void)::dlopen("libcurl.so.4", RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      fail(KTC_PLUGIN_E_NETWORK, "libcurl could not be initialised");
    }
    g_initialised = true;
  });
  if (!g_initialised) {
    fail(KTC_PLUGIN_E_NETWORK, "libcurl could not be initialised");
  }
}

struct EasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
using Easy = std::unique_ptr<CURL, EasyDeleter>;

struct MultiDeleter {
  void operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
};
using Multi = std::unique_ptr<CURLM, MultiDeleter>;

// The options every request shares.
Easy new_easy(const std::string& url, char* error_buffer) {
  global_init();
  Easy easy(curl_easy_init());
  if (!easy) {
    fail(KTC_PLUGIN_E_NOMEM, url + ": libcurl could not make a handle");
  }
  CURL* handle = easy.get();
  curl_easy_setopt(handle, CURLOPT_URL, url.c_str());
  // Signals are not ours to take (the host may be threaded).
  curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT, k_connect_timeout_seconds);
  curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(handle, CURLOPT_MAXREDIRS, k_max_redirects);
  curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(handle, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  // Statuses >= 400 end the transfer before any body is delivered.
  curl_easy_setopt(handle, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(handle, CURLOPT_USERAGENT, "ktcache-source-tarball/1.0");
  if (error_buffer != nullptr) {
    error_buffer[0] = '\0';
    curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error_buffer);
  }
  return easy;
}

std::string transport_error(CURLcode code, const char* error_buffer) {
  if (error_buffer != nullptr && error_buffer[0] != '\0') {
    return error_buffer;
  }
  return curl_easy_strerror(code);
}

long response_code(CURL* easy) {
  long code = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
  return code;
}

std::string content_type(CURL* easy) {
  char* type = nullptr;
  curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &type);
  return type != nullptr ? type : "";
}

struct Collector {
  std::string* body;
  size_t limit;
  bool too_big = false;
};

size_t collect(char* data, size_t size, size_t count, void* user) {
  auto* collector = static_cast<Collector*>(user);
  size_t bytes = size * count;
  if (collector->body->size() + bytes > collector->limit) {
    collector->too_big = true;
    return 0;
  }
  try {
    collector->body->append(data, bytes);
  } catch (...) {
    // Not into libcurl's C frames: a short count aborts the transfer.
    return 0;
  }
  return bytes;
}

// Runs `multi` until none of its transfers is running, checking for
// cancellation between waits.
void run_all(const Call& call, CURLM* multi, std::string_view what) {
  int running = 1;
  while (running > 0) {
    CURLMcode status = curl_multi_perform(multi, &running);
    if (status != CURLM_OK) {
      fail(KTC_PLUGIN_E_NETWORK,
           std::string(what) + ": " + curl_multi_strerror(status));
    }
    if (running == 0) {
      break;
    }
    if (call.cancelled()) {
      fail(KTC_PLUGIN_E_CANCELLED, "cancelled");
    }
    status = curl_multi_poll(multi, nullptr, 0, k_poll_milliseconds, nullptr);
    if (status != CURLM_OK) {
      fail(KTC_PLUGIN_E_NETWORK,
           std::string(what) + ": " + curl_multi_strerror(status));
    }
  }
}

// The result of each finished transfer in `multi`, by handle.
void collect_results(CURLM* multi,
                     const std::vector<CURL*>& handles,
                     std::vector<CURLcode>& results) {
  int left = 0;
  while (CURLMsg* message = curl_multi_info_read(multi, &left)) {
    if (message->msg != CURLMSG_DONE) {
      continue;
    }
    auto found =
        std::find(handles.begin(), handles.end(), message->easy_handle);
    if (found != handles.end()) {
      results[static_cast<size_t>(found - handles.begin())] =
          message->data.result;
    }
  }
}

} // namespace

void global_cleanup() {
  if (g_initialised) {
    curl_global_cleanup();
    g_initialised = false;
  }
}

bool is_html(std::string_view type) {
  std::string lower(type);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  });
  return lower.find("text/html") != std::string::npos;
}

void require_online(const Call& call,
                    std::string_view what,
                    const std::string& url) {
  if (call.offline() && !url.starts_with("file://")) {
    fail(KTC_PLUGIN_E_NETWORK,
         std::string(what) + " " + url +
             ": not fetched, ktcache is offline (KTCACHE_OFFLINE=1)");
  }
}

Response get(const Call& call,
             const std::string& url,
             size_t limit,
             std::string_view what) {
  require_online(call, what, url);
  char error_buffer[CURL_ERROR_SIZE];
  Easy easy = new_easy(url, error_buffer);
  Response response;
  Collector collector{&response.body, limit};
  curl_easy_setopt(easy.get(), CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(easy.get(), CURLOPT_WRITEDATA, &collector);

  // Through a multi handle so that a cancellation is seen while waiting.
  Multi multi(curl_multi_init());
  if (!multi) {
    fail(KTC_PLUGIN_E_NOMEM, url + ": libcurl could not make a handle");
  }
  curl_multi_add_handle(multi.get(), easy.get());
  std::vector<CURL*> handles{easy.get()};
  std::vector<CURLcode> results{CURLE_OK};
  try {
    run_all(call, multi.get(), std::string(what) + " " + url);
  } catch (...) {
    curl_multi_remove_handle(multi.get(), easy.get());
    throw;
  }
  collect_results(multi.get(), handles, results);
  curl_multi_remove_handle(multi.get(), easy.get());

  CURLcode result = results[0];
  response.status = response_code(easy.get());
  response.content_type = content_type(easy.get());
  if (collector.too_big) {
    fail(KTC_PLUGIN_E_NETWORK, std::string(what) + " " + url + ": more than " +
                                   human_size(limit) +
                                   ", not what was expected");
  }
  if (result == CURLE_HTTP_RETURNED_ERROR) {
    response.body.clear();
    return response;
  }
  if (result != CURLE_OK) {
    fail(KTC_PLUGIN_E_NETWORK, std::string(what) + " " + url + ": " +
                                   transport_error(result, error_buffer));
  }
  return response;
}

std::vector<bool> head_all(const Call& call,
                           const std::vector<std::string>& urls) {
  for (const auto& url : urls) {
    require_online(call, "probe", url);
  }
  Multi multi(curl_multi_init());
  if (!multi) {
    fail(KTC_PLUGIN_E_NOMEM, "libcurl could not make a handle");
  }
  std::vector<Easy> easies;
  std::vector<CURL*> handles;
  std::vector<std::unique_ptr<char[]>> errors;
  for (const auto& url : urls) {
    errors.push_back(std::make_unique<char[]>(CURL_ERROR_SIZE));
    easies.push_back(new_easy(url, errors.back().get()));
    curl_easy_setopt(easies.back().get(), CURLOPT_NOBODY, 1L);
    handles.push_back(easies.back().get());
  }
  struct Detach {
    CURLM* multi;
    std::vector<CURL*>& handles;
    ~Detach() {
      for (CURL* handle : handles) {
        curl_multi_remove_handle(multi, handle);
      }
    }
  } detach{multi.get(), handles};
  for (CURL* handle : handles) {
    curl_multi_add_handle(multi.get(), handle);
  }
  std::vector<CURLcode> results(handles.size(), CURLE_OK);
  run_all(call, multi.get(), "probe");
  collect_results(multi.get(), handles, results);

  std::vector<bool> found(handles.size(), false);
  for (size_t index = 0; index < handles.size(); ++index) {
    CURLcode result = results[index];
    if (result == CURLE_HTTP_RETURNED_ERROR) {
      continue;
    }
    if (result != CURLE_OK) {
      fail(KTC_PLUGIN_E_NETWORK,
           "probe " + urls[index] + ": " +
               transport_error(result, errors[index].get()));
    }
    long status = response_code(handles[index]);
    found[index] =
        status >= 200 && status < 300 && !is_html(content_type(handles[index]));
  }
  return found;
}

Download::Download(const Call& call, std::string url)
    : m_call(call), m_url(std::move(url)) {
  require_online(call, "download", m_url);
  Easy easy = new_easy(m_url, m_error);
  curl_easy_setopt(easy.get(), CURLOPT_WRITEFUNCTION, &Download::on_data);
  curl_easy_setopt(easy.get(), CURLOPT_WRITEDATA, this);
  Multi multi(curl_multi_init());
  if (!multi) {
    fail(KTC_PLUGIN_E_NOMEM, m_url + ": libcurl could not make a handle");
  }
  curl_multi_add_handle(multi.get(), easy.get());
  m_easy = easy.release();
  m_multi = multi.release();
}

Download::~Download() {
  curl_multi_remove_handle(static_cast<CURLM*>(m_multi),
                           static_cast<CURL*>(m_easy));
  curl_easy_cleanup(static_cast<CURL*>(m_easy));
  curl_multi_cleanup(static_cast<CURLM*>(m_multi));
}

size_t Download::on_data(char* data, size_t size, size_t count, void* self) {
  auto* download = static_cast<Download*>(self);
  size_t bytes = size * count;
  if (!download->m_started) {
    download->m_started = true;
    auto* easy = static_cast<CURL*>(download->m_easy);
    if (is_html(content_type(easy))) {
      download->m_html = true;
      return 0;
    }
    curl_off_t length = -1;
    curl_easy_getinfo(easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
    download->m_length = length > 0 ? static_cast<uint64_t>(length) : 0;
  }
  try {
    download->m_pending.append(data, bytes);
  } catch (...) {
    return 0;
  }
  return bytes;
}

void Download::raise() const {
  auto result = static_cast<CURLcode>(m_result);
  if (m_html) {
    fail(KTC_PLUGIN_E_NETWORK,
         "download " + m_url +
             ": server returned HTML instead of tarball (URL may be invalid)");
  }
  if (result == CURLE_HTTP_RETURNED_ERROR) {
    long status = response_code(static_cast<CURL*>(m_easy));
    throw Failure(KTC_PLUGIN_E_NETWORK,
                  "download " + m_url + ": HTTP " + std::to_string(status),
                  status);
  }
  fail(KTC_PLUGIN_E_NETWORK,
       "download " + m_url + ": " + transport_error(result, m_error));
}

std::string_view Download::next() {
  m_current.clear();
  auto* multi = static_cast<CURLM*>(m_multi);
  for (;;) {
    if (!m_pending.empty()) {
      // The spent buffer becomes the next one to fill: no allocation in
      // the steady state.
      std::swap(m_current, m_pending);
      return m_current;
    }
    if (m_done) {
      if (static_cast<CURLcode>(m_result) != CURLE_OK || m_html) {
        raise();
      }
      // An empty body never reached on_data(): its type is checked here.
      if (!m_started && is_html(content_type(static_cast<CURL*>(m_easy)))) {
        m_html = true;
        raise();
      }
      return {};
    }
    m_call.check_cancelled();
    int running = 0;
    CURLMcode status = curl_multi_perform(multi, &running);
    if (status != CURLM_OK) {
      fail(KTC_PLUGIN_E_NETWORK,
           "download " + m_url + ": " + curl_multi_strerror(status));
    }
    int left = 0;
    while (CURLMsg* message = curl_multi_info_read(multi, &left)) {
      if (message->msg == CURLMSG_DONE) {
        m_done = true;
        m_result = message->data.result;
      }
    }
    if (m_pending.empty() && !m_done) {
      status = curl_multi_poll(multi, nullptr, 0, k_poll_milliseconds, nullptr);
      if (status != CURLM_OK) {
        fail(KTC_PLUGIN_E_NETWORK,
             "download " + m_url + ": " + curl_multi_strerror(status));
      }
    }
  }
}

} // namespace tarball::http
