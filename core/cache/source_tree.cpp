#include "cache/cache.hpp"
#include "util/fs.hpp"

#include <fcntl.h>
#include <sys/stat.h>

namespace ktc::cache {
namespace {

// The metadata of an entry directory, if it parses.
std::optional<Metadata> read_metadata(const std::string& entry_dir) {
  auto text = fs::read_file(AT_FDCWD, entry_dir + "/metadata.json");
  if (!text) {
    return std::nullopt;
  }
  Corruption ignored;
  return Metadata::parse(*text, &ignored);
}

std::optional<std::string> local_tree_path(const Metadata& metadata) {
  if (metadata.source_type() != "local") {
    return std::nullopt;
  }
  const auto& source = metadata.object().at("source").as_object();
  auto path = source.find("source_tree_path");
  if (path == source.end() || !path->value().is_string()) {
    return std::nullopt;
  }
  return std::string(path->value().as_string());
}

std::optional<int64_t> integer_field(const Metadata& metadata,
                                     std::string_view name) {
  auto found = metadata.object().find(name);
  if (found == metadata.object().end()) {
    return std::nullopt;
  }
  if (found->value().is_int64()) {
    return found->value().as_int64();
  }
  if (found->value().is_uint64()) {
    return static_cast<int64_t>(found->value().as_uint64());
  }
  return std::nullopt;
}

} // namespace

std::optional<std::string> prefer_source_tree(const std::string& entry_dir) {
  auto metadata = read_metadata(entry_dir);
  if (!metadata) {
    return std::nullopt;
  }
  auto size = integer_field(*metadata, "source_vmlinux_size");
  auto mtime = integer_field(*metadata, "source_vmlinux_mtime_secs");
  auto tree = local_tree_path(*metadata);
  if (!size || !mtime || !tree) {
    return std::nullopt;
  }
  struct stat st;
  std::string vmlinux = *tree + "/vmlinux";
  if (::stat(vmlinux.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return std::nullopt;
  }
  // Whole seconds only: filesystems keep different sub-second precision.
  if (static_cast<int64_t>(st.st_size) != *size ||
      static_cast<int64_t>(st.st_mtim.tv_sec) != *mtime) {
    return std::nullopt;
  }
  return tree;
}

std::optional<std::string> recover_source_tree(const std::string& entry_dir) {
  auto metadata = read_metadata(entry_dir);
  if (!metadata) {
    return std::nullopt;
  }
  return local_tree_path(*metadata);
}

} // namespace ktc::cache
