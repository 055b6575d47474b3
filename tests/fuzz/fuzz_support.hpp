#pragma once

// What both libFuzzer harnesses share: the input as a file the ELF reader
// can open by path, without touching a disk.

#include <cstddef>
#include <cstdint>
#include <string>

namespace ktc::fuzz {

// One memfd, rewritten for every input and opened by its /proc/self/fd
// path: ElfFile::open wants a path and a regular file, and a memfd is both
// without the cost (or the leftovers after a crash) of a file on disk.
class InputFile {
public:
  InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  ~InputFile();

  // Replaces the contents with `data`; aborts when the memfd cannot be
  // written, which is no finding about the code under test.
  void assign(const uint8_t* data, size_t size);
  const std::string& path() const { return m_path; }

private:
  int m_fd = -1;
  std::string m_path;
};

// The most a harness may write to one file. A crafted input can make a
// writer pad or copy far more than its own size (an alignment of 2^34 once
// made strip() write 16 GiB onto tmpfs, that is into RAM); this limit
// makes such a write fail with EFBIG instead, and the harness report it.
constexpr unsigned long long k_max_file_size = 64ull << 20;

// A private directory on tmpfs (else $TMPDIR, else /tmp) for files a harness
// writes, removed at exit. One per process, so that parallel fuzzing jobs
// (-jobs, -fork) never share names. Its first use also sets RLIMIT_FSIZE to
// k_max_file_size, with a SIGXFSZ handler: a write past it then fails with
// EFBIG instead of killing the process, and is recorded.
const std::string& scratch_dir();

// Whether a write went past k_max_file_size since the last call (libelf
// reports the EFBIG as a generic write error, so the signal is the only
// reliable witness).
bool take_file_size_exceeded();

// Prints `what` and aborts: a finding libFuzzer records as a crash.
[[noreturn]] void fail(const std::string& what);

} // namespace ktc::fuzz
