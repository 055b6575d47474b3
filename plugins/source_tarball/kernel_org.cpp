#include "kernel_org.hpp"

#include "http.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <array>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace tarball::kernel_org {
namespace {

constexpr std::string_view k_default_mirror =
    "https://cdn.kernel.org/pub/linux/kernel";
constexpr std::string_view k_default_releases =
    "https://www.kernel.org/releases.json";
constexpr std::string_view k_default_rc = "https://git.kernel.org/torvalds/t";
constexpr size_t k_releases_max_bytes = 8u << 20;
// The reference's bounds for probing an EOL series: windows of 16 HEADs,
// doubling (capped by the thread-pool size, never below 16), and no patch
// level above 500.
constexpr unsigned k_probe_first_window = 16;
constexpr unsigned k_probe_bound = 500;

struct Release {
  std::string moniker;
  std::string version;
};

// releases.json, per URL, for the life of the process; failures are never
// kept, so the next caller tries again.
std::mutex g_releases_mutex;
std::map<std::string, std::vector<Release>> g_releases;

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return c >= '0' && c <= '9';
  });
}

// "6", "6.12", "6.12.3" as numbers; nullopt for anything else (an RC,
// linux-next's dates).
std::optional<std::array<unsigned long, 3>> numbers(std::string_view text) {
  std::array<unsigned long, 3> result{0, 0, 0};
  size_t index = 0;
  for (;;) {
    size_t dot = text.find('.');
    std::string_view part = text.substr(0, dot);
    if (index == 3 || !all_digits(part) || part.size() > 9) {
      return std::nullopt;
    }
    result[index++] = std::stoul(std::string(part));
    if (dot == std::string_view::npos) {
      break;
    }
    text.remove_prefix(dot + 1);
  }
  return result;
}

std::string major_of(std::string_view version) {
  return std::string(version.substr(0, version.find('.')));
}

std::string host_of(const std::string& url) {
  size_t start = url.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  size_t end = url.find('/', start);
  return url.substr(start, end == std::string::npos ? end : end - start);
}

std::vector<Release> parse_releases(const std::string& url,
                                    const std::string& body,
                                    const Call& call) {
  boost::system::error_code error;
  boost::json::value root = boost::json::parse(body, error);
  if (error) {
    fail(KTC_PLUGIN_E_NETWORK,
         "releases " + url + ": not valid JSON (" + error.message() + ")");
  }
  const boost::json::value* rows =
      root.is_object() ? root.as_object().if_contains("releases") : nullptr;
  if (rows == nullptr || !rows->is_array()) {
    fail(KTC_PLUGIN_E_NETWORK,
         "releases " + url + ": no \"releases\" array in the answer");
  }
  std::vector<Release> releases;
  size_t dropped = 0;
  for (const auto& row : rows->as_array()) {
    const auto* object = row.if_object();
    const boost::json::value* moniker =
        object != nullptr ? object->if_contains("moniker") : nullptr;
    const boost::json::value* version =
        object != nullptr ? object->if_contains("version") : nullptr;
    if (moniker == nullptr || version == nullptr || !moniker->is_string() ||
        !version->is_string()) {
      ++dropped;
      continue;
    }
    releases.push_back(Release{std::string(moniker->as_string()),
                               std::string(version->as_string())});
  }
  if (dropped != 0) {
    call.warn("releases " + url + ": dropped " + std::to_string(dropped) +
              " row(s) without a string moniker and version");
  }
  return releases;
}

std::vector<Release> fetch_releases(const Call& call, const std::string& url) {
  http::Response response =
      http::get(call, url, k_releases_max_bytes, "releases");
  if (!response.ok()) {
    fail(KTC_PLUGIN_E_NETWORK,
         "releases " + url + ": HTTP " + std::to_string(response.status));
  }
  std::vector<Release> parsed = parse_releases(url, response.body, call);
  std::lock_guard lock(g_releases_mutex);
  g_releases[url] = parsed;
  return parsed;
}

std::vector<Release> releases(const Call& call) {
  std::string url = releases_url();
  {
    std::lock_guard lock(g_releases_mutex);
    auto found = g_releases.find(url);
    if (found != g_releases.end()) {
      return found->second;
    }
  }
  return fetch_releases(call, url);
}

// The highest release whose version is `prefix` or continues it with ".".
std::optional<std::string> newest_matching(const std::vector<Release>& rows,
                                           std::string_view prefix) {
  std::optional<std::array<unsigned long, 3>> best_numbers;
  std::optional<std::string> best;
  for (const auto& row : rows) {
    if (row.moniker == "linux-next") {
      continue;
    }
    std::string_view version = row.version;
    if (version != prefix &&
        !(version.starts_with(prefix) && version.size() > prefix.size() &&
          version[prefix.size()] == '.')) {
      continue;
    }
    auto parsed = numbers(version);
    if (!parsed) {
      continue;
    }
    if (!best_numbers || *parsed > *best_numbers) {
      best_numbers = parsed;
      best = row.version;
    }
  }
  return best;
}

// The highest N with <mirror>/v<major>.x/linux-<prefix>.N.tar.xz there,
// counting up from 1 and stopping at the first that is not.
std::string probe(const Call& call, const std::string& prefix) {
  std::string base =
      mirror() + "/v" + major_of(prefix) + ".x/linux-" + prefix + ".";
  unsigned cap =
      std::max(k_probe_first_window, std::thread::hardware_concurrency());
  unsigned window = k_probe_first_window;
  unsigned next = 1;
  unsigned latest = 0;
  bool stopped = false;
  while (!stopped && next <= k_probe_bound) {
    call.check_cancelled();
    unsigned count = std::min(window, k_probe_bound + 1 - next);
    std::vector<std::string> urls;
    for (unsigned index = 0; index < count; ++index) {
      urls.push_back(base + std::to_string(next + index) + ".tar.xz");
    }
    std::vector<bool> found = http::head_all(call, urls);
    for (unsigned index = 0; index < count; ++index) {
      if (!found[index]) {
        stopped = true;
        break;
      }
      latest = next + index;
    }
    next += count;
    window = std::min(window * 2, cap);
  }
  if (latest == 0) {
    fail(KTC_PLUGIN_E_NOTFOUND,
         "no tarball found for " + prefix + ".x on " + host_of(mirror()));
  }
  return prefix + "." + std::to_string(latest);
}

} // namespace

VersionKind classify(std::string_view text) {
  size_t rc = text.find("-rc");
  if (rc != std::string_view::npos) {
    auto base = numbers(text.substr(0, rc));
    std::string_view count = text.substr(rc + 3);
    size_t dots =
        std::count(text.begin(), text.begin() + static_cast<long>(rc), '.');
    return base && dots == 1 && all_digits(count) ? VersionKind::rc
                                                  : VersionKind::none;
  }
  if (!numbers(text)) {
    return VersionKind::none;
  }
  return std::count(text.begin(), text.end(), '.') == 2 ? VersionKind::release
                                                        : VersionKind::series;
}

bool is_rc(std::string_view version) {
  return version.find("-rc") != std::string_view::npos;
}

std::string mirror() {
  return without_trailing_slash(
      env_or("KTCACHE_KERNEL_MIRROR", k_default_mirror));
}

std::string releases_url() {
  return env_or("KTCACHE_RELEASES_URL", k_default_releases);
}

std::string rc_base() {
  return without_trailing_slash(env_or("KTCACHE_RC_URL", k_default_rc));
}

std::string tarball_name(std::string_view version) {
  return "linux-" + std::string(version) +
         (is_rc(version) ? ".tar.gz" : ".tar.xz");
}

std::string tarball_url(std::string_view version) {
  if (is_rc(version)) {
    return rc_base() + "/" + tarball_name(version);
  }
  return mirror() + "/v" + major_of(version) + ".x/" + tarball_name(version);
}

std::string sums_url(std::string_view version) {
  return mirror() + "/v" + major_of(version) + ".x/sha256sums.asc";
}

std::string latest_of_series(const Call& call, const std::string& prefix) {
  call.info("fetching latest " + prefix + ".x kernel version");
  std::optional<std::string> latest = newest_matching(releases(call), prefix);
  if (latest) {
    call.info("latest " + prefix + ".x kernel: " + *latest);
    return *latest;
  }
  call.info(prefix + ".x not in releases.json (EOL series), probing " +
            host_of(mirror()));
  std::string probed = probe(call, prefix);
  call.info("latest " + prefix + ".x kernel (from cdn probe): " + probed);
  return probed;
}

std::optional<std::string> newer_in_series(const Call& call,
                                           const std::string& version) {
  auto parsed = numbers(version);
  if (!parsed) {
    return std::nullopt;
  }
  std::string series =
      std::to_string((*parsed)[0]) + "." + std::to_string((*parsed)[1]);
  try {
    std::optional<std::string> latest = newest_matching(releases(call), series);
    if (latest && *latest != version) {
      return latest;
    }
  } catch (const Failure& failure) {
    call.debug(std::string("no hint from releases.json: ") + failure.what());
  }
  return std::nullopt;
}

void report_releases(const Call& call) {
  for (const auto& row : fetch_releases(call, releases_url())) {
    int status = g_host->add_release(call.get(), row.moniker.c_str(),
                                     row.version.c_str());
    if (status != KTC_PLUGIN_OK) {
      fail(status, "releases: the host refused a row");
    }
  }
}

void forget() {
  std::lock_guard lock(g_releases_mutex);
  g_releases.clear();
}

} // namespace tarball::kernel_org
