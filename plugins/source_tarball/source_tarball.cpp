/*
 * source_tarball: the "tarball" source scheme. A spec names a kernel.org
 * release ("tarball:6.12.3"), the latest of a series ("tarball:6.12"), a
 * release candidate ("tarball:6.15-rc3"), a tarball on disk
 * ("tarball:/src/linux-6.1.tar.xz") or one on the web
 * ("tarball:https://host/linux.tar.xz"); any of them may end with
 * "#sha256=<64 hex>", the digest the user expects.
 *
 * resolve() never fetches a tree: a release is its version; a series is
 * the latest release (releases.json, else probing the mirror for an EOL
 * series, as ktstr does); a file or URL is the SHA-256 of the tarball,
 * taken from the spec, from the sha256sums.asc beside a URL, by hashing a
 * file, or, as a last resort, by downloading the URL once. acquire()
 * streams the tarball into the directory the host gives (extract.hpp),
 * checks its SHA-256 and the tree's Makefile, and names the tree.
 */
#include "common.hpp"
#include "extract.hpp"
#include "http.hpp"
#include "kernel_org.hpp"
#include "sums.hpp"

#include <ktcache/plugin.h>

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <string>

namespace tarball {
namespace {

constexpr std::string_view k_prefix = "tarball:";
constexpr std::string_view k_sha256_mark = "#sha256=";
constexpr size_t k_sums_max_bytes = 8u << 20;
constexpr size_t k_makefile_max_bytes = 4u << 20;
constexpr size_t k_key_digest_length = 12;

constexpr std::string_view k_expected_forms =
    "expected a version such as 6.12.3, 6.12 or 6.15-rc3, a path to a "
    "tarball, or an http(s) URL, optionally followed by #sha256=<64 hex>";

// Longest first, so that a name loses its whole suffix.
constexpr std::array<std::string_view, 14> k_tarball_suffixes = {
    ".tar.gz",   ".tar.xz", ".tar.bz2", ".tar.zst", ".tar.lz4",
    ".tar.lzma", ".tar.lz", ".tar.Z",   ".tbz2",    ".tzst",
    ".tgz",      ".txz",    ".tbz",     ".tar"};

enum class Kind { release, series, rc, file, url };

struct Spec {
  Kind kind = Kind::release;
  // What follows "tarball:", without the #sha256= suffix.
  std::string text;
  // From "#sha256=", lower-case.
  std::optional<std::string> sha256;

  bool kernel_org() const {
    return kind == Kind::release || kind == Kind::series || kind == Kind::rc;
  }
};

// What resolve() found. The identity (see record()) holds the version, or
// the digest and its file's name, and the URL; describe() and acquire()
// read it back and take the rest from the spec again.
struct Resolved {
  Spec spec;
  // kernel.org specs: the concrete version.
  std::string version;
  // kernel.org specs and URLs: where the tarball is.
  std::string url;
  // Files: the canonical path.
  std::string path;
  // Files and URLs: the tarball's SHA-256 and its basename.
  std::string digest;
  std::string digest_name;
};

struct Expected {
  std::string hex;
  std::string from;
};

// A host service failed and set the call's error itself: the empty message
// leaves it standing (see guarded()).
[[noreturn]] void host_failed(int status) {
  throw Failure(status, "");
}

void check(int status) {
  if (status != KTC_PLUGIN_OK) {
    host_failed(status);
  }
}

// --- specs -------------------------------------------------------------------

bool is_http_url(std::string_view text) {
  return text.starts_with("http://") || text.starts_with("https://");
}

bool has_tarball_suffix(std::string_view name) {
  return std::any_of(k_tarball_suffixes.begin(), k_tarball_suffixes.end(),
                     [&](std::string_view suffix) {
                       return name.size() > suffix.size() &&
                              name.ends_with(suffix);
                     });
}

std::string stem_of(std::string_view name) {
  for (auto suffix : k_tarball_suffixes) {
    if (name.size() > suffix.size() && name.ends_with(suffix)) {
      return std::string(name.substr(0, name.size() - suffix.size()));
    }
  }
  return std::string(name);
}

// The URL without its query or fragment.
std::string_view url_path(std::string_view url) {
  return url.substr(0, url.find_first_of("?#"));
}

std::string url_basename(std::string_view url) {
  std::string_view path = url_path(url);
  size_t after_scheme = path.find("://");
  size_t host_end = path.find(
      '/', after_scheme == std::string_view::npos ? 0 : after_scheme + 3);
  if (host_end == std::string_view::npos) {
    return "";
  }
  return std::string(path.substr(path.rfind('/') + 1));
}

std::string url_directory(std::string_view url) {
  std::string_view path = url_path(url);
  return std::string(path.substr(0, path.rfind('/')));
}

std::string path_basename(std::string_view path) {
  size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path
                                                     : path.substr(slash + 1));
}

// A URL of a scheme other than http(s): not this plugin's to fetch.
bool is_foreign_url(std::string_view rest) {
  size_t scheme_end = rest.find("://");
  return scheme_end != std::string_view::npos && scheme_end > 0 &&
         !is_http_url(rest) &&
         rest.substr(0, scheme_end).find('/') == std::string_view::npos;
}

std::string_view after_prefix(std::string_view spec) {
  if (!spec.starts_with(k_prefix)) {
    fail(KTC_PLUGIN_E_INVALID, "not a tarball: spec");
  }
  return spec.substr(k_prefix.size());
}

Spec parse_spec(std::string_view spec_text) {
  std::string_view rest = after_prefix(spec_text);
  Spec spec;
  size_t mark = rest.rfind(k_sha256_mark);
  if (mark != std::string_view::npos) {
    std::string given(rest.substr(mark + k_sha256_mark.size()));
    std::string hex = to_lower(given);
    if (!is_hex_digest(hex)) {
      fail(KTC_PLUGIN_E_INVALID,
           "'#sha256=" + given + "' is not a SHA-256 (64 hex digits)");
    }
    spec.sha256 = hex;
    rest = rest.substr(0, mark);
  }
  if (rest.empty()) {
    fail(KTC_PLUGIN_E_INVALID,
         "nothing after 'tarball:' (" + std::string(k_expected_forms) + ")");
  }
  spec.text = std::string(rest);
  if (is_http_url(rest)) {
    spec.kind = Kind::url;
    if (url_basename(rest).empty()) {
      fail(KTC_PLUGIN_E_INVALID,
           "the URL " + spec.text +
               " names no file (expected .../NAME.tar.xz)");
    }
    return spec;
  }
  if (is_foreign_url(rest)) {
    fail(KTC_PLUGIN_E_INVALID,
         spec.text + ": only http:// and https:// URLs are fetched");
  }
  if (rest.find('/') != std::string_view::npos || has_tarball_suffix(rest)) {
    spec.kind = Kind::file;
    return spec;
  }
  switch (kernel_org::classify(rest)) {
  case kernel_org::VersionKind::release:
    spec.kind = Kind::release;
    return spec;
  case kernel_org::VersionKind::series:
    spec.kind = Kind::series;
    return spec;
  case kernel_org::VersionKind::rc:
    spec.kind = Kind::rc;
    return spec;
  case kernel_org::VersionKind::none:
    break;
  }
  fail(KTC_PLUGIN_E_INVALID, "'" + spec.text +
                                 "' is not a kernel version, a path or a URL "
                                 "(" +
                                 std::string(k_expected_forms) + ")");
}

// --- sha256sums.asc
// ------------------------------------------------------------

std::atomic<bool> g_warned_unsigned{false};

std::string temp_parent() {
  return without_trailing_slash(env_or("TMPDIR", "/tmp"));
}

// Checks the clear-signed `text` fetched from `sums_url` with gpgv when
// KTCACHE_KEYRING names a keyring; says once, plainly, that nothing checks
// it otherwise. gpgv reads a file: it is written to a private directory
// made in `scratch_parent` and removed again.
void check_signature(const Call& call,
                     const std::string& text,
                     const std::string& sums_url,
                     const std::string& scratch_parent) {
  std::string keyring = env_or("KTCACHE_KEYRING", "");
  if (keyring.empty()) {
    if (!g_warned_unsigned.exchange(true)) {
      call.warn("the PGP signature of " + sums_url +
                " is NOT checked, so its SHA-256 sums are only as "
                "trustworthy as the connection; set "
                "KTCACHE_KEYRING=/path/keyring.gpg to check it with gpgv");
    }
    return;
  }
  char* real = ::realpath(keyring.c_str(), nullptr);
  if (real == nullptr) {
    fail(KTC_PLUGIN_E_NOTFOUND,
         "KTCACHE_KEYRING=" + keyring + ": " + std::strerror(errno));
  }
  std::string keyring_path(real);
  std::free(real);

  std::string scratch = scratch_parent + "/.ktcache-gpgv-XXXXXX";
  if (::mkdtemp(scratch.data()) == nullptr) {
    fail(KTC_PLUGIN_E_IO, scratch_parent + ": " + std::strerror(errno));
  }
  std::string file = scratch + "/sha256sums.asc";
  struct Cleanup {
    const std::string& file;
    const std::string& dir;
    ~Cleanup() {
      ::unlink(file.c_str());
      ::rmdir(dir.c_str());
    }
  } cleanup{file, scratch};
  {
    std::ofstream out(file, std::ios::binary);
    out << text;
    if (!out.flush()) {
      fail(KTC_PLUGIN_E_IO, file + ": cannot be written");
    }
  }
  const char* argv[] = {"gpgv", "--keyring", keyring_path.c_str(),
                        "sha256sums.asc", nullptr};
  char* output = nullptr;
  int exit_status = 0;
  int status =
      g_host->run(call.get(), argv, scratch.c_str(), &output, &exit_status);
  g_host->free_buffer(output);
  if (status == KTC_PLUGIN_E_NOTFOUND) {
    fail(KTC_PLUGIN_E_NOTFOUND,
         "KTCACHE_KEYRING is set but gpgv cannot be run (install gpgv)");
  }
  check(status);
  if (exit_status != 0) {
    fail(KTC_PLUGIN_E_CHANGED, sums_url +
                                   ": the PGP signature does not verify with "
                                   "KTCACHE_KEYRING=" +
                                   keyring + " (gpgv exited " +
                                   std::to_string(exit_status) + ")");
  }
  call.info(sums_url + ": PGP signature verified with gpgv");
}

// The SHA-256 that the sha256sums.asc at `sums_url` gives for `name`;
// nullopt when there is no such file or it does not list the name.
std::optional<std::string> digest_from_sums(const Call& call,
                                            const std::string& sums_url,
                                            const std::string& name,
                                            const std::string& scratch) {
  http::Response response =
      http::get(call, sums_url, k_sums_max_bytes, "sha256sums.asc");
  if (!response.ok() || response.html()) {
    long status = response.status;
    // Missing (S3-like stores answer 403); anything else is the server's
    // failure, and no reason to go on without a digest.
    if (response.html() || status == 403 || status == 404 || status == 410) {
      call.debug(sums_url + ": not there (HTTP " + std::to_string(status) +
                 ")");
      return std::nullopt;
    }
    fail(KTC_PLUGIN_E_NETWORK,
         "sha256sums.asc " + sums_url + ": HTTP " + std::to_string(status));
  }
  Sums sums = parse_sums(response.body);
  auto found = sums.digests.find(name);
  if (found == sums.digests.end()) {
    call.debug(sums_url + ": no line for " + name);
    return std::nullopt;
  }
  check_signature(call, response.body, sums_url, scratch);
  return found->second;
}

// --- resolving
// -------------------------------------------------------------------

// SHA-256s of URLs that had to be downloaded to be hashed, for the life of
// the process, so that resolving the spec again does not download again.
std::mutex g_download_mutex;
std::map<std::string, std::string> g_download_digests;

std::string digest_by_download(const Call& call, const std::string& url) {
  {
    std::lock_guard lock(g_download_mutex);
    auto found = g_download_digests.find(url);
    if (found != g_download_digests.end()) {
      return found->second;
    }
  }
  call.info(url + ": no SHA-256 beside it (no #sha256= and no "
                  "sha256sums.asc listing it); downloading it once to hash "
                  "it");
  std::unique_ptr<Input> input = open_download_input(call, url);
  std::string digest = hash_input(call, *input);
  std::lock_guard lock(g_download_mutex);
  g_download_digests.emplace(url, digest);
  return digest;
}

// The canonical path of a file spec's tarball, which must be a regular
// file.
std::string canonical_file(const Spec& spec) {
  char* real = ::realpath(spec.text.c_str(), nullptr);
  if (real == nullptr) {
    int error = errno;
    if (error == ENOENT || error == ENOTDIR) {
      fail(KTC_PLUGIN_E_NOTFOUND, spec.text + ": no such file");
    }
    fail(KTC_PLUGIN_E_IO, spec.text + ": " + std::strerror(error));
  }
  std::string path(real);
  std::free(real);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    fail(KTC_PLUGIN_E_INVALID, spec.text + ": not a regular file");
  }
  return path;
}

Resolved resolve_file(const Call& call, const Spec& spec) {
  Resolved resolved;
  resolved.spec = spec;
  resolved.path = canonical_file(spec);
  char hex[65];
  check(g_host->sha256_file(call.get(), resolved.path.c_str(), hex));
  resolved.digest = to_lower(hex);
  if (spec.sha256 && *spec.sha256 != resolved.digest) {
    fail(KTC_PLUGIN_E_CHANGED, resolved.path +
                                   ": SHA-256 mismatch: the spec's #sha256= "
                                   "is " +
                                   *spec.sha256 + ", the file's is " +
                                   resolved.digest);
  }
  resolved.digest_name = path_basename(resolved.path);
  return resolved;
}

Resolved resolve_url(const Call& call, const Spec& spec) {
  Resolved resolved;
  resolved.spec = spec;
  resolved.url = spec.text;
  resolved.digest_name = url_basename(spec.text);
  if (spec.sha256) {
    resolved.digest = *spec.sha256;
    return resolved;
  }
  std::string sums_url = url_directory(spec.text) + "/sha256sums.asc";
  std::optional<std::string> listed =
      digest_from_sums(call, sums_url, resolved.digest_name, temp_parent());
  if (listed) {
    call.debug(spec.text + ": SHA-256 " + *listed + " from " + sums_url);
    resolved.digest = *listed;
    return resolved;
  }
  resolved.digest = digest_by_download(call, spec.text);
  return resolved;
}

Resolved resolve_spec(const Call& call, const Spec& spec) {
  switch (spec.kind) {
  case Kind::file:
    return resolve_file(call, spec);
  case Kind::url:
    return resolve_url(call, spec);
  case Kind::release:
  case Kind::rc:
  case Kind::series:
    break;
  }
  Resolved resolved;
  resolved.spec = spec;
  resolved.version = spec.kind == Kind::series
                         ? kernel_org::latest_of_series(call, spec.text)
                         : spec.text;
  resolved.url = kernel_org::tarball_url(resolved.version);
  return resolved;
}

// The identity is what the build hashes into the key, less "url" and
// "digest_name" (where the tarball came from): so only what names the
// content goes in. A path, or whether a digest came from the spec or from
// a sums file, would split one tarball into several keys.
void record(const Call& call, const Resolved& resolved) {
  auto set = [&](const char* name, const std::string& value) {
    if (!value.empty()) {
      check(g_host->set_identity(call.get(), name, value.c_str()));
    }
  };
  set("version", resolved.version);
  set("digest", resolved.digest);
  set("digest_name", resolved.digest_name);
  set("url", resolved.url);
}

// What resolve() recorded for this spec, through the host's identity();
// resolved again when the host cannot say (ABI minor 1) or lacks a field.
Resolved recall(const Call& call, const char* spec_text) {
  Spec spec = parse_spec(spec_text);
  auto get = [&](const char* name) -> std::string {
    const char* value = call.identity(name);
    return value != nullptr ? value : "";
  };
  Resolved resolved;
  resolved.spec = spec;
  resolved.version = get("version");
  resolved.url = get("url");
  resolved.digest = get("digest");
  resolved.digest_name = get("digest_name");
  bool complete = false;
  switch (spec.kind) {
  case Kind::release:
  case Kind::rc:
  case Kind::series:
    complete = !resolved.version.empty();
    if (complete && resolved.url.empty()) {
      resolved.url = kernel_org::tarball_url(resolved.version);
    }
    break;
  case Kind::file:
    complete = is_hex_digest(resolved.digest);
    if (complete) {
      resolved.path = canonical_file(spec);
      if (resolved.digest_name.empty()) {
        resolved.digest_name = path_basename(resolved.path);
      }
    }
    break;
  case Kind::url:
    complete = is_hex_digest(resolved.digest);
    resolved.url = spec.text;
    if (resolved.digest_name.empty()) {
      resolved.digest_name = url_basename(spec.text);
    }
    break;
  }
  if (complete) {
    return resolved;
  }
  call.debug(std::string(spec_text) +
             ": the host has no recorded identity; resolving again");
  return resolve_spec(call, spec);
}

// --- acquiring
// -------------------------------------------------------------------

std::optional<Expected> expected_digest(const Call& call,
                                        const Resolved& resolved,
                                        const std::string& dest_dir) {
  if (resolved.spec.sha256) {
    return Expected{*resolved.spec.sha256, "the spec's #sha256="};
  }
  switch (resolved.spec.kind) {
  case Kind::release:
  case Kind::series: {
    std::string sums_url = kernel_org::sums_url(resolved.version);
    std::string name = kernel_org::tarball_name(resolved.version);
    std::optional<std::string> listed =
        digest_from_sums(call, sums_url, name, dest_dir);
    if (listed) {
      return Expected{*listed, sums_url};
    }
    call.warn(sums_url + " has no SHA-256 for " + name +
              ": the tarball cannot be verified");
    return std::nullopt;
  }
  case Kind::rc:
    call.warn(resolved.url +
              ": no checksum is available for RC tarballs: the tarball is "
              "not verified");
    return std::nullopt;
  case Kind::file:
    return Expected{resolved.digest, "its SHA-256 when the spec was resolved"};
  case Kind::url:
    // From the sha256sums.asc beside it, or a download of it.
    return Expected{resolved.digest,
                    "the SHA-256 found when the spec was resolved"};
  }
  return std::nullopt;
}

[[noreturn]] void version_not_found(const Call& call,
                                    const Resolved& resolved) {
  if (resolved.spec.kind == Kind::rc) {
    fail(KTC_PLUGIN_E_NOTFOUND,
         "RC tarball not found: " + resolved.url +
             ". RC releases are removed from git.kernel.org after the stable "
             "version ships");
  }
  std::string message = "version " + resolved.version + " not found";
  std::optional<std::string> newer =
      kernel_org::newer_in_series(call, resolved.version);
  if (newer) {
    std::string series = resolved.version.substr(
        0, resolved.version.find('.', resolved.version.find('.') + 1));
    message += ". latest " + series + ".x: " + *newer;
  }
  fail(KTC_PLUGIN_E_NOTFOUND, message);
}

// If `line` assigns Make variable `name` ("NAME = value", also ":=", "::="
// and "?="), its value, trimmed and without a trailing comment.
std::optional<std::string> assignment(std::string_view line,
                                      std::string_view name) {
  if (!line.starts_with(name)) {
    return std::nullopt;
  }
  std::string_view rest = line.substr(name.size());
  rest.remove_prefix(std::min(rest.find_first_not_of(" \t"), rest.size()));
  if (rest.starts_with("?=")) {
    rest.remove_prefix(2);
  } else {
    rest.remove_prefix(std::min(rest.find_first_not_of(':'), rest.size()));
    if (!rest.starts_with("=")) {
      return std::nullopt;
    }
    rest.remove_prefix(1);
  }
  rest = rest.substr(0, rest.find('#'));
  size_t begin = rest.find_first_not_of(" \t");
  size_t end = rest.find_last_not_of(" \t\r");
  if (begin == std::string_view::npos) {
    return std::string();
  }
  return std::string(rest.substr(begin, end - begin + 1));
}

// The version the Makefile declares, named as kernel.org names releases:
// "6.12" for SUBLEVEL 0, "6.12.3", "6.15-rc3".
std::optional<std::string> makefile_version(std::string_view text) {
  static constexpr std::array<std::string_view, 4> names = {
      "VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"};
  std::array<std::optional<std::string>, 4> values;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    for (size_t index = 0; index < names.size(); ++index) {
      if (!values[index]) {
        values[index] = assignment(line, names[index]);
        if (values[index]) {
          break;
        }
      }
    }
    if (end == std::string_view::npos) {
      break;
    }
    text.remove_prefix(end + 1);
  }
  if (!values[0] || values[0]->empty()) {
    return std::nullopt;
  }
  std::string version = *values[0];
  if (values[1] && !values[1]->empty()) {
    version += "." + *values[1];
    if (values[2] && !values[2]->empty() && *values[2] != "0") {
      version += "." + *values[2];
    }
  }
  return version + values[3].value_or("");
}

void acquire_tree(const Call& call,
                  const char* spec_text,
                  const std::string& dest_dir) {
  Resolved resolved = recall(call, spec_text);
  const Spec& spec = resolved.spec;
  std::optional<Expected> expected = expected_digest(call, resolved, dest_dir);
  bool from_file = spec.kind == Kind::file;
  const std::string& where = from_file ? resolved.path : resolved.url;
  call.info((from_file ? "extracting " : "downloading ") + where);
  // Messages name what was read unless the host's prefix, the spec, does.
  std::string label = from_file && where == spec.text ? "" : where;
  std::string prefix = label.empty() ? "" : label + ": ";

  std::unique_ptr<Input> input = from_file
                                     ? open_file_input(resolved.path)
                                     : open_download_input(call, resolved.url);
  Extracted extracted;
  try {
    extracted = extract(call, *input, dest_dir, label);
  } catch (const Failure& failure) {
    if (failure.http_status() == 404 && spec.kernel_org()) {
      version_not_found(call, resolved);
    }
    throw;
  }
  auto discard = [&](int status, const std::string& message) {
    empty_directory(dest_dir);
    fail(status, message);
  };
  if (expected && extracted.sha256 != expected->hex) {
    discard(KTC_PLUGIN_E_CHANGED,
            prefix + "SHA-256 mismatch: expected " + expected->hex + " (from " +
                expected->from + "), got " + extracted.sha256 +
                "; the extracted tree was removed");
  }
  if (expected) {
    call.debug(where + ": SHA-256 " + extracted.sha256 + " matches " +
               expected->from);
  }

  std::string tree = dest_dir + "/" + extracted.top;
  std::optional<std::string> makefile = read_tree_file(
      dest_dir, extracted.top + "/Makefile", k_makefile_max_bytes);
  if (!makefile) {
    discard(KTC_PLUGIN_E_INVALID, prefix +
                                      "not a kernel source tree (no "
                                      "Makefile in " +
                                      extracted.top + "/)");
  }
  std::optional<std::string> version = makefile_version(*makefile);
  if (spec.kernel_org() && version != resolved.version) {
    discard(KTC_PLUGIN_E_CHANGED, prefix + "the tree's Makefile says version " +
                                      version.value_or("(none)") + ", not " +
                                      resolved.version);
  }
  if (extracted.masked != 0) {
    call.warn(where + ": dropped the setuid, setgid or sticky bits of " +
              std::to_string(extracted.masked) + " entries");
  }
  call.info(where + ": kernel " + version.value_or("of unknown version") +
            " in " + tree + " (" + std::to_string(extracted.entries) +
            " entries, " + human_size(extracted.bytes) + " of tar)");
  check(g_host->set_tree(call.get(), tree.c_str()));
}

// --- operations
// -----------------------------------------------------------------

// Runs an operation's body, turning what it throws into a status and the
// call's error. Nothing is thrown across the C ABI.
template <typename Body>
int guarded(ktc_plugin_call* call, Body&& body) noexcept {
  try {
    return body();
  } catch (const Failure& failure) {
    if (failure.what()[0] != '\0') {
      g_host->set_error(call, failure.what());
    }
    return failure.status();
  } catch (const std::bad_alloc&) {
    g_host->set_error(call, "out of memory");
    return KTC_PLUGIN_E_NOMEM;
  } catch (const std::exception& exception) {
    g_host->set_error(call, exception.what());
    return KTC_PLUGIN_E_GENERIC;
  } catch (...) {
    g_host->set_error(call, "unexpected failure");
    return KTC_PLUGIN_E_GENERIC;
  }
}

int tarball_claim(void*, ktc_plugin_call* call, const char* spec) {
  return guarded(call, [&] {
    if (spec == nullptr) {
      fail(KTC_PLUGIN_E_INVALID, "no spec");
    }
    if (is_foreign_url(after_prefix(spec))) {
      g_host->set_error(call, "only http:// and https:// URLs are fetched");
      return static_cast<int>(KTC_PLUGIN_NOT_MINE);
    }
    (void)parse_spec(spec);
    return static_cast<int>(KTC_PLUGIN_OK);
  });
}

int tarball_resolve(void*, ktc_plugin_call* call, const char* spec) {
  return guarded(call, [&] {
    if (spec == nullptr) {
      fail(KTC_PLUGIN_E_INVALID, "no spec");
    }
    Call context(call);
    record(context, resolve_spec(context, parse_spec(spec)));
    return static_cast<int>(KTC_PLUGIN_OK);
  });
}

int tarball_describe(void*, ktc_plugin_call* call, const char* spec) {
  return guarded(call, [&] {
    if (spec == nullptr) {
      fail(KTC_PLUGIN_E_INVALID, "no spec");
    }
    Call context(call);
    // describe() runs on resolve()'s call, so its identity is at hand.
    Resolved resolved = recall(context, spec);
    auto payload = [&](const char* name, const std::string& value) {
      check(g_host->payload_string(call, name,
                                   value.empty() ? nullptr : value.c_str()));
    };
    std::string sha256 = !resolved.digest.empty()
                             ? resolved.digest
                             : resolved.spec.sha256.value_or("");
    payload("url", resolved.url);
    payload("file", resolved.path);
    payload("sha256", sha256);
    if (resolved.spec.kernel_org()) {
      check(g_host->add_key_part(call, resolved.version.c_str()));
      check(g_host->add_key_part(call, "tarball"));
    } else {
      check(g_host->add_key_part(call, stem_of(resolved.digest_name).c_str()));
      check(g_host->add_key_part(call, "tarball"));
      check(g_host->add_key_part(
          call, resolved.digest.substr(0, k_key_digest_length).c_str()));
    }
    return static_cast<int>(KTC_PLUGIN_OK);
  });
}

int tarball_acquire(void*,
                    ktc_plugin_call* call,
                    const char* spec,
                    const char* dest_dir) {
  return guarded(call, [&] {
    if (spec == nullptr || dest_dir == nullptr || dest_dir[0] != '/') {
      fail(KTC_PLUGIN_E_INVALID, "acquire needs a spec and an absolute "
                                 "destination directory");
    }
    Call context(call);
    acquire_tree(context, spec, without_trailing_slash(dest_dir));
    return static_cast<int>(KTC_PLUGIN_OK);
  });
}

int tarball_releases(void*, ktc_plugin_call* call) {
  return guarded(call, [&] {
    // Only hosts of ABI minor 3 and later call this, and they have
    // add_release().
    Call context(call);
    kernel_org::report_releases(context);
    return static_cast<int>(KTC_PLUGIN_OK);
  });
}

void tarball_unload(void*) {
  kernel_org::forget();
  {
    std::lock_guard lock(g_download_mutex);
    g_download_digests.clear();
  }
  http::global_cleanup();
  g_host = nullptr;
}

const ktc_source_ops k_source_ops = {
    .struct_size = sizeof(ktc_source_ops),
    .flags = KTC_SOURCE_NETWORK,
    .claim = tarball_claim,
    .resolve = tarball_resolve,
    .describe = tarball_describe,
    .acquire = tarball_acquire,
    .recheck = nullptr, // the tree is a private copy
    .expand = nullptr,  // releases.json lists only a series' latest
    .releases = tarball_releases,
};

const ktc_plugin_info k_info = {
    .struct_size = sizeof(ktc_plugin_info),
    .abi_major = KTC_PLUGIN_ABI_MAJOR,
    .abi_minor = KTC_PLUGIN_ABI_MINOR,
    .kind = KTC_PLUGIN_KIND_SOURCE,
    .name = "tarball",
    .version = "1.0.0",
    .description = "kernel.org releases and tarball files or URLs, verified "
                   "and extracted hardened",
    .state = nullptr,
    .unload = tarball_unload,
    .source = &k_source_ops,
    .strip = nullptr,
};

} // namespace
} // namespace tarball

extern "C" KTC_PLUGIN_DECLARE_QUERY {
  if (host == nullptr || info == nullptr) {
    return KTC_PLUGIN_E_INVALID;
  }
  if (host->struct_size <
      offsetof(ktc_host_services, set_tree) + sizeof host->set_tree) {
    if (host->struct_size >=
        offsetof(ktc_host_services, set_error) + sizeof host->set_error) {
      host->set_error(call, "the host's service table is too small");
    }
    return KTC_PLUGIN_E_UNSUPPORTED;
  }
  tarball::g_host = host;
  *info = &tarball::k_info;
  return KTC_PLUGIN_OK;
}
