#include "build/releases.hpp"

#include "util/fd.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/sys.hpp"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>

namespace ktc::build {
namespace {

constexpr std::string_view k_default_releases_url =
    "https://www.kernel.org/releases.json";

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

std::string copy_path(const cache::Cache& cache) {
  return cache.root() + "/" + std::string(k_releases_file);
}

int64_t now_seconds() {
  return static_cast<int64_t>(std::time(nullptr));
}

std::optional<int64_t> integer_of(const boost::json::value& value) {
  if (value.is_int64()) {
    return value.as_int64();
  }
  if (value.is_uint64() &&
      value.as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(value.as_uint64());
  }
  return std::nullopt;
}

// The copy as it was written: {"url", "fetched_at", "releases"}.
struct Copy {
  std::string url;
  int64_t fetched_at = 0;
  std::vector<Release> releases;
};

// nullopt when there is no copy; a copy that cannot be read or parsed is
// reported and then treated as missing, so that a fetch replaces it.
std::optional<Copy> read_copy(const std::string& path) {
  int error_number = 0;
  auto text = fs::read_file(AT_FDCWD, path, &error_number);
  if (!text) {
    if (error_number != ENOENT) {
      KTC_LOG(warn, "Ignoring {}: {}", path, text.error().message);
    }
    return std::nullopt;
  }
  auto ignore = [&](std::string_view why) -> std::optional<Copy> {
    KTC_LOG(warn, "Ignoring {}: {}", path, why);
    return std::nullopt;
  };
  std::error_code ec;
  boost::json::value root = boost::json::parse(*text, ec);
  if (ec || !root.is_object()) {
    return ignore("not a JSON object");
  }
  const auto& object = root.as_object();
  const auto* url = object.if_contains("url");
  const auto* fetched_at = object.if_contains("fetched_at");
  const auto* rows = object.if_contains("releases");
  if (url == nullptr || !url->is_string() || fetched_at == nullptr ||
      !integer_of(*fetched_at) || rows == nullptr || !rows->is_array()) {
    return ignore("no \"url\", \"fetched_at\" or \"releases\"");
  }
  Copy copy;
  copy.url = std::string(url->as_string());
  copy.fetched_at = *integer_of(*fetched_at);
  for (const auto& row : rows->as_array()) {
    const auto* fields = row.if_object();
    const auto* moniker = fields ? fields->if_contains("moniker") : nullptr;
    const auto* version = fields ? fields->if_contains("version") : nullptr;
    if (moniker != nullptr && moniker->is_string() && version != nullptr &&
        version->is_string()) {
      copy.releases.push_back(Release{std::string(moniker->as_string()),
                                      std::string(version->as_string())});
    }
  }
  return copy;
}

std::string copy_text(const Copy& copy) {
  boost::json::array rows;
  for (const auto& release : copy.releases) {
    rows.push_back(boost::json::object{{"moniker", release.moniker},
                                       {"version", release.version}});
  }
  boost::json::object root;
  root["url"] = copy.url;
  root["fetched_at"] = copy.fetched_at;
  root["releases"] = std::move(rows);
  return boost::json::serialize(root) + "\n";
}

// Writes the copy atomically: a new file with a leading '.' beside it
// (mode 0666 & umask), fsync, rename, fsync of the directory. On failure
// the errno and the message; nothing is left behind.
struct WriteFailure {
  int error_number = 0;
  std::string message;
};

std::optional<WriteFailure> write_copy(const cache::Cache& cache,
                                       const Copy& copy) {
  auto failed = [](int error_number, std::string what) {
    return WriteFailure{error_number,
                        what + ": " + std::strerror(error_number)};
  };
  const std::string& root = cache.root();
  if (auto made = fs::make_dirs(root); !made) {
    return WriteFailure{errno, made.error().message};
  }
  Fd dir(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) {
    return failed(errno, "cannot open directory " + root);
  }
  std::random_device random;
  std::string temp =
      fmt::format("{}.tmp-{}-{:08x}", k_releases_file, ::getpid(), random());
  std::string text = copy_text(copy);
  {
    Fd out(::openat(dir.get(), temp.c_str(),
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    0666));
    if (!out) {
      return failed(errno, "cannot create " + root + "/" + temp);
    }
    int error_number = sys::write_all(out.get(), text.data(), text.size());
    if (error_number == 0 && sys::fsync(out.get()) != 0) {
      error_number = errno;
    }
    if (error_number != 0) {
      ::unlinkat(dir.get(), temp.c_str(), 0);
      return failed(error_number, "cannot write " + root + "/" + temp);
    }
  }
  std::string name(k_releases_file);
  if (sys::renameat(dir.get(), temp.c_str(), dir.get(), name.c_str()) != 0) {
    int error_number = errno;
    ::unlinkat(dir.get(), temp.c_str(), 0);
    return failed(error_number, "cannot rename " + temp + " to " + name);
  }
  (void)fs::sync_dir(dir.get(), root);
  return std::nullopt;
}

bool read_only_errno(int error_number) {
  return error_number == EROFS || error_number == EACCES ||
         error_number == EPERM;
}

Result<std::vector<Release>> fetch(plugin::Registry& registry) {
  KTC_TRY_ASSIGN(plugin::PluginRef plugin,
                 registry.find(plugin::Kind::source, "tarball"));
  const ktc_source_ops& ops = plugin->source_ops();
  if (ops.struct_size <
          offsetof(ktc_source_ops, releases) + sizeof(ops.releases) ||
      ops.releases == nullptr) {
    return make_error(Status::plugin, "plugin {} ({}) cannot list releases",
                      plugin->name(), plugin->path());
  }
  ktc_plugin_call call;
  call.plugin_name = plugin->name();
  call.offline = registry.offline();
  int status = ops.releases(plugin->state(), &call);
  if (status != KTC_PLUGIN_OK) {
    return plugin::call_error(*plugin, call, status, "releases.json");
  }
  std::vector<Release> releases;
  releases.reserve(call.releases.size());
  for (auto& [moniker, version] : call.releases) {
    releases.push_back(Release{std::move(moniker), std::move(version)});
  }
  return releases;
}

ReleaseList
list_of(Copy copy, int64_t ttl, std::string_view url, std::string from) {
  ReleaseList list;
  list.url = std::move(copy.url);
  list.fetched_at = copy.fetched_at;
  int64_t now = now_seconds();
  list.age_seconds = now >= copy.fetched_at ? now - copy.fetched_at : 0;
  list.ttl_seconds = ttl;
  // A copy from the future (a clock set back) is not trusted to be fresh.
  list.fresh =
      list.url == url && copy.fetched_at <= now && list.age_seconds < ttl;
  list.from = std::move(from);
  list.releases = std::move(copy.releases);
  return list;
}

// "MAJOR.MINOR" with the minor cut to its leading digits, or nullopt.
std::optional<std::string> series_of(std::string_view version) {
  size_t dot = version.find('.');
  if (dot == 0 || dot == std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view major = version.substr(0, dot);
  if (!std::all_of(major.begin(), major.end(), is_digit)) {
    return std::nullopt;
  }
  std::string_view rest = version.substr(dot + 1);
  size_t digits = 0;
  while (digits < rest.size() && is_digit(rest[digits])) {
    ++digits;
  }
  if (digits == 0) {
    return std::nullopt;
  }
  return std::string(major) + "." + std::string(rest.substr(0, digits));
}

} // namespace

boost::json::object ReleaseList::to_json() const {
  boost::json::array rows;
  for (const auto& release : releases) {
    rows.push_back(boost::json::object{{"moniker", release.moniker},
                                       {"version", release.version}});
  }
  boost::json::array series;
  for (auto& name : active_series(releases)) {
    series.emplace_back(name);
  }
  boost::json::object result;
  result["url"] = url;
  result["fetched_at"] = fetched_at;
  result["age_seconds"] = age_seconds;
  result["ttl_seconds"] = ttl_seconds;
  result["fresh"] = fresh;
  result["from"] = from;
  result["releases"] = std::move(rows);
  result["active_series"] = std::move(series);
  return result;
}

std::string releases_url() {
  const char* value = std::getenv("KTCACHE_RELEASES_URL");
  if (value == nullptr || *value == '\0') {
    return std::string(k_default_releases_url);
  }
  return value;
}

int64_t releases_ttl() {
  const char* value = std::getenv("KTCACHE_RELEASES_TTL");
  if (value == nullptr || *value == '\0') {
    return k_releases_ttl_default;
  }
  std::string_view text(value);
  int64_t seconds = 0;
  auto [end, error] =
      std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (error != std::errc() || end != text.data() + text.size() || seconds < 0) {
    KTC_LOG(warn,
            "KTCACHE_RELEASES_TTL='{}' is not a number of seconds; using "
            "the default, {}",
            text, k_releases_ttl_default);
    return k_releases_ttl_default;
  }
  return seconds;
}

Result<ReleaseList> load_releases(const cache::Cache& cache,
                                  plugin::Registry& registry,
                                  const ReleasesOptions& options) {
  if (options.refresh && options.no_fetch) {
    return make_error(Status::invalid,
                      "releases: refresh and no-fetch exclude each other");
  }
  std::string path = copy_path(cache);
  std::string url = releases_url();
  int64_t ttl = releases_ttl();
  std::optional<Copy> copy = read_copy(path);
  std::optional<ReleaseList> on_disk;
  if (copy) {
    on_disk = list_of(*copy, ttl, url, "disk");
  }

  if (options.no_fetch || registry.offline()) {
    if (on_disk) {
      if (on_disk->url != url) {
        KTC_LOG(debug, "Using {} (of {}, not {}) without fetching", path,
                on_disk->url, url);
      }
      return std::move(*on_disk);
    }
    if (options.no_fetch) {
      return make_error(Status::not_found,
                        "releases.json is not cached ({} is missing) and "
                        "fetching it was not allowed",
                        path);
    }
    return make_error(Status::network,
                      "releases.json: not fetched, ktcache is offline "
                      "(KTCACHE_OFFLINE=1), and {} is missing",
                      path);
  }
  if (on_disk && on_disk->fresh && !options.refresh) {
    KTC_LOG(debug, "Using {} ({} s old, time to live {} s)", path,
            on_disk->age_seconds, ttl);
    return std::move(*on_disk);
  }

  KTC_LOG(info, "Fetching {}", url);
  auto fetched = fetch(registry);
  if (!fetched) {
    if (on_disk && fetched.error().status != Status::cancelled) {
      KTC_LOG(warn,
              "Using the releases.json kept in {} ({} s old): the fetch "
              "failed: {}",
              path, on_disk->age_seconds, fetched.error().message);
      return std::move(*on_disk);
    }
    return std::move(fetched).error();
  }
  Copy fresh{url, now_seconds(), std::move(*fetched)};
  if (auto failure = write_copy(cache, fresh)) {
    if (read_only_errno(failure->error_number)) {
      KTC_LOG(debug, "Not keeping releases.json in {}: {}", path,
              failure->message);
    } else {
      KTC_LOG(warn, "Not keeping releases.json in {}: {}", path,
              failure->message);
    }
  }
  return list_of(std::move(fresh), ttl, url, "network");
}

std::vector<std::string> active_series(const std::vector<Release>& releases) {
  std::vector<std::string> series;
  for (const auto& release : releases) {
    if (release.moniker == "linux-next") {
      continue;
    }
    auto name = series_of(release.version);
    if (name &&
        std::find(series.begin(), series.end(), *name) == series.end()) {
      series.push_back(std::move(*name));
    }
  }
  return series;
}

Result<std::vector<std::string>>
releases_in_range(const std::vector<Release>& releases, const KernelId& range) {
  if (range.kind != KernelIdKind::range) {
    return make_error(Status::invalid,
                      "'{}' is not a range (expected START..END)", range.text);
  }
  auto start = parse_kernel_version(range.range_start);
  auto end = parse_kernel_version(range.range_end);
  if (!start || !end) {
    return make_error(Status::invalid,
                      "range {}: an end is not a version (expected "
                      "START..END)",
                      range.text);
  }
  std::vector<std::pair<KernelVersion, std::string>> found;
  for (const auto& release : releases) {
    if (release.moniker != "stable" && release.moniker != "longterm") {
      continue;
    }
    auto version = parse_kernel_version(release.version);
    if (!version || *version < *start || *end < *version) {
      continue;
    }
    found.emplace_back(*version, release.version);
  }
  std::stable_sort(
      found.begin(), found.end(),
      [](const auto& a, const auto& b) { return a.first < b.first; });
  found.erase(std::unique(found.begin(), found.end(),
                          [](const auto& a, const auto& b) {
                            return a.first == b.first;
                          }),
              found.end());
  if (found.empty()) {
    return make_error(Status::not_found,
                      "range {}..{}: no stable or longterm release in "
                      "releases.json falls in it",
                      range.range_start, range.range_end);
  }
  std::vector<std::string> versions;
  versions.reserve(found.size());
  for (auto& [version, text] : found) {
    versions.push_back(std::move(text));
  }
  return versions;
}

std::optional<std::string>
newest_of_series(const std::vector<Release>& releases,
                 std::string_view series) {
  auto wanted = parse_kernel_version(series);
  if (!wanted || wanted->has_patch || wanted->rc) {
    return std::nullopt;
  }
  std::optional<std::pair<KernelVersion, std::string>> best;
  for (const auto& release : releases) {
    if (release.moniker == "linux-next") {
      continue;
    }
    auto version = parse_kernel_version(release.version);
    if (!version || version->rc || !version->has_patch ||
        version->major != wanted->major || version->minor != wanted->minor) {
      continue;
    }
    if (!best || best->first < *version) {
      best.emplace(*version, release.version);
    }
  }
  if (!best) {
    return std::nullopt;
  }
  return best->second;
}

} // namespace ktc::build
