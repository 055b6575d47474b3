// Streaming a compressed tarball into a directory, hardened.
//
// Two threads and no temporary tarball: the calling thread pulls the
// compressed bytes (a file, or a download), hashes them with SHA-256 and
// decompresses them (libarchive's raw format behind its filters), handing
// the tar stream in blocks through a bounded queue to a second thread,
// where libarchive's tar reader parses it and this plugin, not libarchive,
// creates every file (see TreeWriter in extract.cpp for the rules).
#ifndef KTC_SOURCE_TARBALL_EXTRACT_HPP
#define KTC_SOURCE_TARBALL_EXTRACT_HPP

#include "common.hpp"
#include "http.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace tarball {

// Where the compressed bytes come from, pulled by the calling thread.
class Input {
public:
  virtual ~Input() = default;
  // The next chunk, valid until the next call; empty at the end. Throws
  // Failure.
  virtual std::string_view next() = 0;
  // The total size when known (after the first next() for a download);
  // 0 when not.
  virtual uint64_t total() const = 0;
  // The progress stage its bytes are reported under.
  virtual const char* stage() const = 0;
};

// A file, opened at construction (which throws when it cannot be).
std::unique_ptr<Input> open_file_input(const std::string& path);
// A streaming download.
std::unique_ptr<Input> open_download_input(const Call& call,
                                           const std::string& url);

// The SHA-256 (lower-case hex) of everything `input` yields, reporting
// progress under its stage.
std::string hash_input(const Call& call, Input& input);

struct Extracted {
  // Of every byte of the compressed input: lower-case hex.
  std::string sha256;
  uint64_t input_bytes = 0;
  // The single top-level directory's name.
  std::string top;
  uint64_t entries = 0;
  uint64_t bytes = 0;
  // Entries whose setuid, setgid or sticky bits were dropped.
  uint64_t masked = 0;
};

// Streams `input` into `dest_dir` (an empty directory). `label` names the
// input in messages (none when empty: the spec names it already). On any
// failure (thrown as Failure) whatever was created inside dest_dir is removed
// again.
Extracted extract(const Call& call,
                  Input& input,
                  const std::string& dest_dir,
                  std::string_view label);

// Removes everything inside `dest_dir` (itself stays), never following a
// link. Best effort: the host empties the directory too.
void empty_directory(const std::string& dest_dir) noexcept;

// Reads the regular file `relative` of the extracted tree in `dest_dir`
// (at most `limit` bytes), never through a link. Empty when it is not
// there or not a regular file.
std::optional<std::string> read_tree_file(const std::string& dest_dir,
                                          const std::string& relative,
                                          size_t limit);

} // namespace tarball

#endif
