#pragma once

#include <fmt/format.h>

#include <string>
#include <utility>
#include <variant>

namespace ktc {

// Mirrors ktc_status in abi/include/ktcache/ktcache.h; values pinned.
enum class Status : int {
  ok = 0,
  generic = -1,
  invalid = -2,
  not_found = -3,
  locked = -4,
  corrupt = -5,
  io = -6,
  no_space = -7,
  version = -8,
  no_memory = -9,
  internal = -10,
  unsupported = -11,
  mismatch = -12,
  unverifiable = -13,
  environment = -14,
  plugin = -15,
  cancelled = -16,
  build = -17,
  network = -18,
};

// A failure: a status for programs, a one-line message for people. The
// message names the object and the cause and starts lower-case.
struct Error {
  Status status = Status::generic;
  std::string message;
};

template <typename... Args>
[[nodiscard]] Error
make_error(Status status, fmt::format_string<Args...> format, Args&&... args) {
  return Error{status, fmt::format(format, std::forward<Args>(args)...)};
}

// Maps an errno value to the status a caller can act on.
Status status_from_errno(int error_number);

// "<what>: <strerror(error_number)>", with the status derived from errno.
[[nodiscard]] Error errno_error(int error_number, std::string what);

template <typename T>
class [[nodiscard]] Result {
public:
  Result(T value) : m_data(std::move(value)) {}
  Result(Error error) : m_data(std::move(error)) {}

  bool ok() const { return m_data.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(m_data); }
  const T& value() const& { return std::get<0>(m_data); }
  T&& value() && { return std::get<0>(std::move(m_data)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& { return std::get<1>(m_data); }
  Error&& error() && { return std::get<1>(std::move(m_data)); }

private:
  std::variant<T, Error> m_data;
};

template <>
class [[nodiscard]] Result<void> {
public:
  Result() = default;
  Result(Error error) : m_error(std::move(error)), m_failed(true) {}

  bool ok() const { return !m_failed; }
  explicit operator bool() const { return ok(); }
  const Error& error() const& { return m_error; }
  Error&& error() && { return std::move(m_error); }

private:
  Error m_error;
  bool m_failed = false;
};

} // namespace ktc

#define KTC_CONCAT_INNER(a, b) a##b
#define KTC_CONCAT(a, b) KTC_CONCAT_INNER(a, b)

// Returns the error of `expr` from the enclosing function.
#define KTC_TRY(expr)                                                          \
  do {                                                                         \
    auto ktc_try_result_ = (expr);                                             \
    if (!ktc_try_result_) {                                                    \
      return std::move(ktc_try_result_).error();                               \
    }                                                                          \
  } while (false)

// Declares `lhs` from the value of `expr`, or returns its error.
#define KTC_TRY_ASSIGN(lhs, expr)                                              \
  auto KTC_CONCAT(ktc_try_, __LINE__) = (expr);                                \
  if (!KTC_CONCAT(ktc_try_, __LINE__)) {                                       \
    return std::move(KTC_CONCAT(ktc_try_, __LINE__)).error();                  \
  }                                                                            \
  lhs = std::move(KTC_CONCAT(ktc_try_, __LINE__)).value()
