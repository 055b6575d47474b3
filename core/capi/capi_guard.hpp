#pragma once

// The machinery every extern "C" shim runs through: the per-thread error
// message, the guard that turns Error and exceptions into a status, and the
// size-prefixed struct readers and writers of style.md section 3.2.

#include "util/result.hpp"

#include <ktcache/ktcache.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>

namespace ktc::capi {

// Records the calling thread's last failure as one line.
void set_error_message(std::string_view message) noexcept;

// The calling thread's last failure, or "no error".
const char* error_message() noexcept;

[[nodiscard]] inline Error null_argument(std::string_view name) {
  return make_error(Status::invalid, "required argument {} is NULL", name);
}

// Maps the body's failure to a status and records its message. Any
// exception stops here: nothing thrown crosses the C ABI.
int status_of(const Error& error) noexcept;
int report_bad_alloc(const char* function) noexcept;
int report_exception(const char* function, const char* what) noexcept;

template <typename Body>
int guard(const char* function, Body&& body) noexcept {
  try {
    Result<void> result = body();
    return result ? KTC_OK : status_of(result.error());
  } catch (const std::bad_alloc&) {
    return report_bad_alloc(function);
  } catch (const std::exception& exception) {
    return report_exception(function, exception.what());
  } catch (...) {
    return report_exception(function, "unknown exception");
  }
}

// For shims that return a value instead of a status (counts, borrowed
// pointers): `fallback` on any failure, with the message recorded.
template <typename T, typename Body>
T guard_value(const char* function, T fallback, Body&& body) noexcept {
  T value = fallback;
  guard(function, [&]() -> Result<void> {
    Result<T> result = body();
    if (!result) {
      return std::move(result).error();
    }
    value = *result;
    return {};
  });
  return value;
}

// Size-prefixed structs: `first_size` is the size of the first published
// layout (offsetof the last v1.0 member plus its size), which may be less
// than sizeof(T) by tail padding.
#define KTC_FIRST_SIZE(type, last_member)                                      \
  (offsetof(type, last_member) + sizeof(type::last_member))

// Copies a caller's options struct: min(caller, ours) bytes, the rest
// zero. A larger caller struct must be zero past our size.
template <typename T>
Result<T>
read_options(const T& caller, size_t first_size, std::string_view what) {
  static_assert(std::is_trivially_copyable_v<T>);
  T copy;
  std::memset(&copy, 0, sizeof(T));
  uint32_t size = caller.struct_size;
  if (size < first_size) {
    return make_error(Status::invalid,
                      "{} struct_size {} is smaller than its first published "
                      "size {}",
                      what, size, first_size);
  }
  // Note: reading past sizeof(T) is what the protocol asks for: the caller
  // promised `size` readable bytes.
  const auto* bytes = reinterpret_cast<const unsigned char*>(&caller);
  for (size_t offset = sizeof(T); offset < size; ++offset) {
    if (bytes[offset] != 0) {
      return make_error(Status::version,
                        "{} has a non-zero byte at offset {}, past the {} "
                        "bytes this library knows (struct_size {}); the "
                        "caller needs a newer libktcache",
                        what, offset, sizeof(T), size);
    }
  }
  std::memcpy(&copy, &caller, std::min<size_t>(size, sizeof(T)));
  return copy;
}

// Checks an output struct before anything is computed for it.
template <typename T>
Result<void>
check_output(const T& caller, size_t first_size, std::string_view what) {
  if (caller.struct_size < first_size) {
    return make_error(Status::invalid,
                      "{} struct_size {} is smaller than its first published "
                      "size {}",
                      what, caller.struct_size, first_size);
  }
  return {};
}

// Writes at most caller.struct_size bytes of `full` and keeps the caller's
// struct_size, so a caller built against an older or newer header gets
// exactly the part both know.
template <typename T>
void write_output(T& caller, T full) noexcept {
  static_assert(std::is_trivially_copyable_v<T>);
  uint32_t size = caller.struct_size;
  full.struct_size = size;
  std::memcpy(&caller, &full, std::min<size_t>(size, sizeof(T)));
}

} // namespace ktc::capi
