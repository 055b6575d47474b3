#include "util/fd.hpp"

#include <unistd.h>

namespace ktc {

void Fd::reset(int fd) {
  if (m_fd >= 0) {
    // Note: close() errors are not actionable here; data that must be
    // durable is fsynced explicitly before the descriptor is dropped.
    ::close(m_fd);
  }
  m_fd = fd;
}

} // namespace ktc
