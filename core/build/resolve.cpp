#include "build/resolve.hpp"

#include "build/kernel_id.hpp"
#include "elf/arch.hpp"
#include "util/log.hpp"

#include <boost/json/value.hpp>
#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace ktc::build {
namespace {

std::optional<std::string> canonical(const std::string& path) {
  std::unique_ptr<char, decltype(&std::free)> resolved(
      ::realpath(path.c_str(), nullptr), &std::free);
  if (!resolved) {
    return std::nullopt;
  }
  return std::string(resolved.get());
}

std::string parent_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? std::string("/")
                                                  : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  return path.substr(path.rfind('/') + 1);
}

// The key of the entry directory `directory` (canonical) when it is one
// of `cache`'s: a direct child of the root whose name is no dot-name.
std::optional<std::string> entry_key_of(const cache::Cache& cache,
                                        const std::string& directory) {
  auto root = canonical(cache.root());
  if (!root || parent_of(directory) != *root) {
    return std::nullopt;
  }
  std::string name = base_of(directory);
  if (name.empty() || name.front() == '.') {
    return std::nullopt;
  }
  return name;
}

bool is_elf_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    return false;
  }
  std::array<char, 4> magic{};
  ssize_t got = ::read(fd, magic.data(), magic.size());
  ::close(fd);
  return got == 4 && std::memcmp(magic.data(),
                                 "\x7f"
                                 "ELF",
                                 4) == 0;
}

bool regular_file(const std::string& path) {
  struct stat status {};
  return ::stat(path.c_str(), &status) == 0 && S_ISREG(status.st_mode);
}

Result<cache::Entry>
look_up(cache::Cache& cache, const std::string& key, bool lease) {
  auto entry = cache.lookup(key, lease);
  if (!entry && entry.error().status == Status::not_found) {
    return make_error(Status::not_found,
                      "cache key {} not found; `ktcache list` shows the "
                      "cached kernels",
                      key);
  }
  return entry;
}

ResolveReport looked_up(const KernelId& id, cache::Entry entry) {
  ResolveReport report;
  report.id = id.text;
  report.kind = to_string(id.kind);
  report.key = entry.key;
  report.outcome = "hit";
  report.entry = std::move(entry);
  return report;
}

// Which entries implicit discovery may pick.
struct NewestFilter {
  std::string arch;
  // Exact version (a version or an RC), or a series prefix.
  std::optional<std::string> version;
  std::optional<std::string> series;
  std::optional<std::string> kconfig_hash;

  bool version_matches(std::optional<std::string_view> recorded) const {
    if (version) {
      return recorded && *recorded == *version;
    }
    if (series) {
      return recorded &&
             (*recorded == *series || (recorded->starts_with(*series) &&
                                       recorded->size() > series->size() &&
                                       (*recorded)[series->size()] == '.'));
    }
    return true;
  }
};

Result<NewestFilter> newest_filter(const ResolveRequest& request) {
  NewestFilter filter;
  std::string arch = !request.arch.empty()         ? request.arch
                     : !request.build.arch.empty() ? request.build.arch
                                                   : cache::host_arch();
  KTC_TRY_ASSIGN(elf::Arch found, elf::find_arch(arch));
  filter.arch = found.name;
  filter.kconfig_hash = request.kconfig_hash;
  if (!request.id.empty()) {
    KTC_TRY_ASSIGN(KernelId id, parse_kernel_id(request.id));
    if (id.kind == KernelIdKind::version || id.kind == KernelIdKind::rc) {
      filter.version = id.version;
    } else if (id.kind == KernelIdKind::series) {
      filter.series = id.version;
    } else {
      return make_error(Status::invalid,
                        "{}: the newest entry can be narrowed by a version "
                        "or a series (6.12.3, 6.12), not by a {}",
                        id.text, to_string(id.kind));
    }
  }
  return filter;
}

Result<ResolveReport> resolve_newest(cache::Cache& cache,
                                     const ResolveRequest& request) {
  KTC_TRY_ASSIGN(NewestFilter filter, newest_filter(request));
  Result<void> listed;
  std::vector<cache::Entry> entries = cache.list_entries(&listed);
  KTC_TRY(std::move(listed));
  // Why entries were passed over, for the message when none is left.
  size_t corrupt = 0, other = 0, stale = 0, unusable = 0;
  for (auto& entry : entries) {
    if (!entry.valid()) {
      ++corrupt;
      continue;
    }
    const cache::Metadata& metadata = *entry.metadata;
    if (metadata.arch() != filter.arch ||
        !filter.version_matches(metadata.version())) {
      ++other;
      continue;
    }
    if (filter.kconfig_hash &&
        cache::kconfig_status(metadata, *filter.kconfig_hash) ==
            cache::KconfigStatus::stale) {
      ++stale;
      continue;
    }
    std::string vmlinux = entry.vmlinux_path();
    if (!regular_file(entry.image_path()) || vmlinux.empty() ||
        !is_elf_file(vmlinux)) {
      ++unusable;
      continue;
    }
    KTC_TRY_ASSIGN(cache::Entry chosen,
                   look_up(cache, entry.key, request.lease));
    ResolveReport report;
    report.id = request.id;
    report.kind = "newest";
    report.key = chosen.key;
    report.outcome = "newest";
    report.entry = std::move(chosen);
    return report;
  }
  std::string wanted = filter.arch;
  if (filter.version) {
    wanted += " " + *filter.version;
  } else if (filter.series) {
    wanted += " " + *filter.series + ".x";
  }
  return make_error(Status::not_found,
                    "no usable cached kernel for {} in {} ({} entries: {} "
                    "of another arch or version, {} with a stale kconfig, {} "
                    "without image or ELF vmlinux, {} corrupt)",
                    wanted, cache.root(), entries.size(), other, stale,
                    unusable, corrupt);
}

// A path: an entry directory, a file inside one, or a source tree.
std::optional<Result<ResolveReport>>
resolve_path(cache::Cache& cache, const KernelId& id, bool lease) {
  auto path = canonical(id.path);
  if (!path) {
    return Result<ResolveReport>(
        make_error(Status::not_found, "{}: {}", id.path, std::strerror(errno)));
  }
  bool file = regular_file(*path);
  std::string directory = file ? parent_of(*path) : *path;
  if (auto key = entry_key_of(cache, directory)) {
    auto entry = look_up(cache, *key, lease);
    if (!entry) {
      return Result<ResolveReport>(std::move(entry).error());
    }
    return Result<ResolveReport>(looked_up(id, std::move(*entry)));
  }
  if (file) {
    return Result<ResolveReport>(
        make_error(Status::invalid,
                   "{} is a file outside any entry of {}; name a source tree, "
                   "an entry or a key",
                   id.path, cache.root()));
  }
  return std::nullopt;
}

} // namespace

boost::json::object ResolveReport::to_json() const {
  boost::json::object result;
  result["id"] = id;
  result["kind"] = kind;
  result["key"] = key;
  result["outcome"] = outcome;
  result["entry_dir"] =
      entry ? boost::json::value(entry->path) : boost::json::value(nullptr);
  result["build"] =
      build ? boost::json::value(*build) : boost::json::value(nullptr);
  return result;
}

Result<ResolveReport> resolve(cache::Cache& cache,
                              plugin::Registry& registry,
                              const ResolveRequest& request) {
  if (request.newest) {
    return resolve_newest(cache, request);
  }
  KTC_TRY_ASSIGN(KernelId id, parse_kernel_id(request.id));
  switch (id.kind) {
  case KernelIdKind::key: {
    KTC_TRY_ASSIGN(cache::Entry entry, look_up(cache, id.key, request.lease));
    return looked_up(id, std::move(entry));
  }
  case KernelIdKind::range:
    return make_error(Status::invalid,
                      "range {} names several kernels; resolve one version, "
                      "or build them all with `ktcache build {}`",
                      id.text, id.text);
  case KernelIdKind::path:
    if (auto answer = resolve_path(cache, id, request.lease)) {
      return std::move(*answer);
    }
    break;
  default:
    break;
  }

  BuildRequest build = request.build;
  build.spec = id.text;
  build.no_build = request.no_build;
  KTC_TRY_ASSIGN(BuildReport built, ensure(cache, registry, build));
  ResolveReport report;
  report.id = id.text;
  report.kind = to_string(id.kind);
  report.key = built.key;
  report.outcome = to_string(built.outcome);
  report.build = built.to_json();
  if (built.entry && request.lease) {
    KTC_TRY_ASSIGN(report.entry, look_up(cache, built.key, true));
  } else {
    report.entry = std::move(built.entry);
  }
  return report;
}

} // namespace ktc::build
