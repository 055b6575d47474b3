#include "util/log.hpp"

#include <mutex>
#include <string>

namespace ktc::log {
namespace detail {
std::atomic<int> g_max_level{0};
} // namespace detail

namespace {
std::mutex g_sink_mutex;
Sink g_sink = nullptr;
void* g_userdata = nullptr;
} // namespace

void set_sink(int max_level, Sink sink, void* userdata) {
  std::lock_guard lock(g_sink_mutex);
  g_sink = sink;
  g_userdata = userdata;
  detail::g_max_level.store(sink ? max_level : 0, std::memory_order_relaxed);
}

void detail::emit(Level level, std::string_view message) {
  // The sink may be swapped concurrently; copy it under the lock but call
  // it outside, so a slow sink does not serialise every thread.
  Sink sink;
  void* userdata;
  {
    std::lock_guard lock(g_sink_mutex);
    sink = g_sink;
    userdata = g_userdata;
  }
  if (sink != nullptr) {
    std::string line(message);
    sink(static_cast<int>(level), line.c_str(), userdata);
  }
}

} // namespace ktc::log
