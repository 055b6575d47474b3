#include "elf/ikconfig.hpp"

#include "util/log.hpp"
#include "util/utf8.hpp"

#include <gelf.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <span>
#include <vector>

namespace ktc::elf {
namespace {

// kernel/configs.c lays the blob out as "IKCFG_ST" <config_data.gz>
// "IKCFG_ED", with kernel_config_data on the first gzip byte and
// kernel_config_data_end just past the last.
constexpr std::string_view k_start_marker = "IKCFG_ST";
constexpr std::string_view k_end_marker = "IKCFG_ED";
constexpr std::string_view k_start_symbol = "kernel_config_data";
constexpr std::string_view k_end_symbol = "kernel_config_data_end";

// A kernel's .config is a few hundred kB; a blob that inflates past this is
// a gzip bomb, not a config.
constexpr size_t k_max_config_size = size_t{16} << 20;

// zlib counts in uInt; larger inputs are fed in pieces of this size.
constexpr size_t k_max_inflate_chunk = size_t{1} << 30;

// Where a gzip stream was found.
struct Blob {
  std::span<const std::byte> bytes;
  const Section* section = nullptr; // nullptr: the file has no sections
  uint64_t offset = 0;              // of the first gzip byte in the file
  bool by_symbols = false;
};

const char* find_bytes(std::span<const std::byte> haystack,
                       std::string_view needle) {
  return static_cast<const char*>(
      ::memmem(haystack.data(), haystack.size(), needle.data(), needle.size()));
}

// The file offset of a symbol's address, through the section that holds it
// (offset = sh_offset + (st_value - sh_addr)); nullopt when the symbol is
// not inside a section's file bytes.
std::optional<uint64_t> file_offset(const ElfFile& file, const Symbol& symbol) {
  bool special =
      symbol.raw_shndx == SHN_UNDEF ||
      (symbol.raw_shndx >= SHN_LORESERVE && symbol.raw_shndx != SHN_XINDEX);
  if (special || symbol.shndx >= file.section_count()) {
    return std::nullopt;
  }
  const Section& section = file.sections()[symbol.shndx];
  // The end symbol may sit exactly at the end of its section.
  if (!section.has_file_data() || symbol.value < section.addr ||
      symbol.value - section.addr > section.size) {
    return std::nullopt;
  }
  return section.offset + (symbol.value - section.addr);
}

std::optional<Blob> locate_by_symbols(const ElfFile& file) {
  if (!file.symtab_index()) {
    return std::nullopt;
  }
  Result<std::vector<Symbol>> symbols = file.symbols();
  if (!symbols) {
    KTC_LOG(debug, "Skipped the symbol table of {}: {}", file.path(),
            symbols.error().message);
    return std::nullopt;
  }
  const Symbol* start = nullptr;
  const Symbol* end = nullptr;
  for (const Symbol& symbol : *symbols) {
    if (symbol.raw_shndx == SHN_UNDEF) {
      continue;
    }
    if (start == nullptr && symbol.name == k_start_symbol) {
      start = &symbol;
    } else if (end == nullptr && symbol.name == k_end_symbol) {
      end = &symbol;
    }
  }
  if (start == nullptr || end == nullptr) {
    return std::nullopt;
  }
  std::optional<uint64_t> from = file_offset(file, *start);
  std::optional<uint64_t> to = file_offset(file, *end);
  if (!from || !to || start->shndx != end->shndx || *to < *from) {
    KTC_LOG(debug,
            "Ignored {} and {} in {}: they do not bound bytes of one "
            "section; scanning for the markers instead",
            k_start_symbol, k_end_symbol, file.path());
    return std::nullopt;
  }
  Blob blob;
  blob.bytes = file.bytes().subspan(*from, *to - *from);
  blob.section = &file.sections()[start->shndx];
  blob.offset = *from;
  blob.by_symbols = true;
  return blob;
}

// Scans `region` for the first start marker followed by gzip's magic
// bytes; the blob runs to the next end marker, or to the end of the region
// (inflate stops at the stream's end). A marker followed by anything else
// is a stray string and is skipped, but the first such one that an end
// marker follows is kept in `malformed`: when no gzip stream is found
// anywhere, that pair is a blob that is there but corrupt.
std::optional<Blob> scan_region(const ElfFile& file,
                                std::span<const std::byte> region,
                                const Section* section,
                                std::optional<Blob>& malformed) {
  auto base = reinterpret_cast<const char*>(file.bytes().data());
  while (!region.empty()) {
    const char* hit = find_bytes(region, k_start_marker);
    if (hit == nullptr) {
      return std::nullopt;
    }
    size_t begin = static_cast<size_t>(
                       hit - reinterpret_cast<const char*>(region.data())) +
                   k_start_marker.size();
    std::span<const std::byte> rest = region.subspan(begin);
    bool gzip = rest.size() >= 2 && rest[0] == std::byte{0x1f} &&
                rest[1] == std::byte{0x8b};
    const char* end = nullptr;
    if (gzip || !malformed) {
      end = find_bytes(rest, k_end_marker);
    }
    if (gzip || end != nullptr) {
      auto first = reinterpret_cast<const char*>(rest.data());
      Blob blob;
      blob.bytes = rest.first(end != nullptr ? static_cast<size_t>(end - first)
                                             : rest.size());
      blob.section = section;
      blob.offset = static_cast<uint64_t>(first - base);
      if (gzip) {
        return blob;
      }
      malformed = blob;
    }
    region = rest;
  }
  return std::nullopt;
}

// The kernel serves /proc/config.gz from memory, so the blob lives in an
// allocated section: read-only data first (kernel/configs.c puts it in
// .rodata), then the other allocated ones. Debug info, symbol and string
// tables (most of a 590 MB vmlinux) are never scanned. A file without
// section headers is scanned whole.
std::optional<Blob> locate_by_markers(const ElfFile& file) {
  auto rodata_like = [](const Section& section) {
    return section.type == SHT_PROGBITS && (section.flags & SHF_ALLOC) != 0 &&
           (section.flags & SHF_EXECINSTR) == 0;
  };
  std::optional<Blob> malformed;
  bool any_section = false;
  for (int pass = 0; pass < 2; ++pass) {
    for (const Section& section : file.sections()) {
      if (!section.has_file_data()) {
        continue;
      }
      any_section = true;
      if ((section.flags & SHF_ALLOC) == 0 ||
          rodata_like(section) != (pass == 0)) {
        continue;
      }
      // Searched with pread first: a section without the marker (all of
      // them, in a kernel without IKCONFIG) is never paged in through the
      // mapping.
      auto has_marker = file.section_contains(section, k_start_marker);
      if (has_marker && !*has_marker) {
        continue;
      }
      if (auto blob =
              scan_region(file, file.raw_data(section), &section, malformed)) {
        return blob;
      }
    }
  }
  if (!any_section) {
    if (auto blob = scan_region(file, file.bytes(), nullptr, malformed)) {
      return blob;
    }
  }
  return malformed;
}

std::string describe(const ElfFile& file, const Blob& blob) {
  std::string where;
  if (blob.section != nullptr) {
    where = blob.section->name.empty()
                ? fmt::format(" in section {}", blob.section->index)
                : fmt::format(" in section {}", blob.section->name);
  }
  return fmt::format("{}: embedded config (IKCONFIG) at offset {}{}",
                     file.path(), blob.offset, where);
}

struct InflateStream {
  z_stream stream{};
  bool initialised = false;
  ~InflateStream() {
    if (initialised) {
      inflateEnd(&stream);
    }
  }
};

// Inflates one gzip member, refusing to produce more than
// k_max_config_size bytes.
Result<std::string> gunzip(const ElfFile& file, const Blob& blob) {
  if (blob.bytes.size() < 2 || blob.bytes[0] != std::byte{0x1f} ||
      blob.bytes[1] != std::byte{0x8b}) {
    return make_error(Status::corrupt, "{} is not a gzip stream",
                      describe(file, blob));
  }
  InflateStream inflater;
  z_stream& stream = inflater.stream;
  int rc = inflateInit2(&stream, 16 + MAX_WBITS);
  if (rc != Z_OK) {
    return make_error(rc == Z_MEM_ERROR ? Status::no_memory : Status::internal,
                      "{}: cannot start zlib: {}", file.path(), zError(rc));
  }
  inflater.initialised = true;

  std::string out;
  // One byte past the limit tells "exactly the limit" from "more".
  const size_t limit = k_max_config_size + 1;
  size_t consumed = 0;
  for (;;) {
    if (stream.avail_in == 0 && consumed < blob.bytes.size()) {
      size_t chunk =
          std::min(blob.bytes.size() - consumed, k_max_inflate_chunk);
      // zlib never writes through next_in; its type just lacks the const.
      stream.next_in = reinterpret_cast<Bytef*>(
          const_cast<std::byte*>(blob.bytes.data() + consumed));
      stream.avail_in = static_cast<uInt>(chunk);
      consumed += chunk;
    }
    size_t used = out.size();
    size_t grow = std::min(std::max<size_t>(used, 64 << 10), limit - used);
    out.resize(used + grow);
    stream.next_out = reinterpret_cast<Bytef*>(out.data() + used);
    stream.avail_out = static_cast<uInt>(grow);
    rc = inflate(&stream, Z_NO_FLUSH);
    out.resize(used + grow - stream.avail_out);
    if (out.size() > k_max_config_size) {
      return make_error(Status::corrupt,
                        "{} decompresses to more than {} MiB; refusing it",
                        describe(file, blob), k_max_config_size >> 20);
    }
    if (rc == Z_STREAM_END) {
      break;
    }
    if (rc == Z_BUF_ERROR && stream.avail_in == 0 &&
        consumed == blob.bytes.size()) {
      return make_error(Status::corrupt,
                        "{} is truncated: the gzip stream ends after {} "
                        "bytes without its trailer",
                        describe(file, blob), blob.bytes.size());
    }
    if (rc == Z_MEM_ERROR) {
      return make_error(Status::no_memory, "{}: zlib is out of memory",
                        describe(file, blob));
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      return make_error(Status::corrupt, "{} does not decompress: {}",
                        describe(file, blob),
                        stream.msg != nullptr ? stream.msg : zError(rc));
    }
  }

  std::string_view text = out;
  for (size_t at = 0; at < text.size();) {
    auto byte = static_cast<unsigned char>(text[at]);
    if (byte < 0x80) {
      ++at;
      continue;
    }
    utf8::Sequence sequence = utf8::sequence_at(text.substr(at));
    if (sequence.kind != utf8::Sequence::Kind::valid) {
      return make_error(Status::corrupt,
                        "{} decompresses to text that is not UTF-8 (byte {})",
                        describe(file, blob), at);
    }
    at += sequence.length;
  }
  return out;
}

std::string_view trim(std::string_view text) {
  constexpr std::string_view k_blanks = " \t\r\f\v";
  size_t first = text.find_first_not_of(k_blanks);
  if (first == std::string_view::npos) {
    return {};
  }
  size_t last = text.find_last_not_of(k_blanks);
  return text.substr(first, last - first + 1);
}

} // namespace

std::optional<size_t> ikconfig_section_index(const ElfFile& file) {
  auto& cached = file.ikconfig_cache();
  if (cached) {
    return *cached;
  }
  std::optional<Blob> blob = locate_by_symbols(file);
  if (!blob) {
    blob = locate_by_markers(file);
  }
  cached = blob && blob->section != nullptr
               ? std::optional<size_t>(blob->section->index)
               : std::nullopt;
  return *cached;
}

Result<std::optional<EmbeddedConfig>> read_ikconfig(const ElfFile& file) {
  std::optional<Blob> blob = locate_by_symbols(file);
  if (!blob) {
    blob = locate_by_markers(file);
  }
  if (!blob) {
    KTC_LOG(debug, "Found no embedded config (IKCONFIG) in {}", file.path());
    return std::optional<EmbeddedConfig>();
  }
  KTC_TRY_ASSIGN(std::string text, gunzip(file, *blob));
  EmbeddedConfig config;
  config.text = std::move(text);
  if (blob->section != nullptr) {
    config.section = std::string(blob->section->name);
  }
  config.found_by_symbols = blob->by_symbols;
  KTC_LOG(debug, "Read the embedded config of {} ({} bytes, by {})",
          file.path(), config.text.size(),
          config.found_by_symbols ? "symbols" : "markers");
  return std::optional<EmbeddedConfig>(std::move(config));
}

// Kconfig reads a .config top to bottom and the last assignment of a
// symbol wins, "# CONFIG_X is not set" included; so does this.
std::optional<std::string> config_value(std::string_view config_text,
                                        std::string_view name) {
  constexpr std::string_view k_prefix = "CONFIG_";
  std::string symbol = name.starts_with(k_prefix)
                           ? std::string(name)
                           : std::string(k_prefix) + std::string(name);
  if (symbol.size() == k_prefix.size()) {
    return std::nullopt;
  }
  std::string unset = "# " + symbol + " is not set";
  std::optional<std::string> value;
  size_t start = 0;
  while (start < config_text.size()) {
    size_t end = config_text.find('\n', start);
    if (end == std::string_view::npos) {
      end = config_text.size();
    }
    std::string_view line = trim(config_text.substr(start, end - start));
    start = end + 1;
    if (line.size() > symbol.size() && line.starts_with(symbol) &&
        line[symbol.size()] == '=') {
      value = std::string(line.substr(symbol.size() + 1));
    } else if (line == unset) {
      value.reset();
    }
  }
  return value;
}

} // namespace ktc::elf
