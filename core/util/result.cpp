#include "util/result.hpp"

#include <cerrno>
#include <cstring>

namespace ktc {

Status status_from_errno(int error_number) {
  switch (error_number) {
  case ENOENT:
  case ENOTDIR:
    return Status::not_found;
  case ENOSPC:
  case EDQUOT:
    return Status::no_space;
  case ENOMEM:
    return Status::no_memory;
  case EWOULDBLOCK:
    return Status::locked;
  default:
    return Status::io;
  }
}

Error errno_error(int error_number, std::string what) {
  what += ": ";
  what += std::strerror(error_number);
  return Error{status_from_errno(error_number), std::move(what)};
}

} // namespace ktc
