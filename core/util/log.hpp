#pragma once

#include <fmt/format.h>

#include <atomic>
#include <string_view>

namespace ktc::log {

enum class Level : int { error = 1, warn, info, debug, trace };

using Sink = void (*)(int level, const char* message, void* userdata);

// Installs the process-wide sink; nullptr removes it.
void set_sink(int max_level, Sink sink, void* userdata);

namespace detail {
extern std::atomic<int> g_max_level;
void emit(Level level, std::string_view message);
} // namespace detail

// Checked before anything is formatted, so disabled levels cost one load.
inline bool enabled(Level level) {
  return static_cast<int>(level) <=
         detail::g_max_level.load(std::memory_order_relaxed);
}

} // namespace ktc::log

// Messages start with a capital letter and have no trailing period.
#define KTC_LOG(level, ...)                                                    \
  do {                                                                         \
    if (::ktc::log::enabled(::ktc::log::Level::level)) {                       \
      ::ktc::log::detail::emit(::ktc::log::Level::level,                       \
                               ::fmt::format(__VA_ARGS__));                    \
    }                                                                          \
  } while (false)
