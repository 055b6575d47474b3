// The extern "C" shims of ktcache.h's releases: ktc_releases() and
// ktc_range_expand().

#include "build/kernel_id.hpp"
#include "build/releases.hpp"
#include "capi/capi_guard.hpp"
#include "capi/capi_handles.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <ktcache/ktcache.h>

using ktc::Result;
using namespace ktc::capi;
namespace kb = ktc::build;

namespace {

Result<kb::ReleasesOptions> releases_options(uint32_t flags) {
  KTC_TRY(check_flags(flags, KTC_RELEASES_REFRESH | KTC_RELEASES_NO_FETCH,
                      "ktc_releases flags"));
  if ((flags & KTC_RELEASES_REFRESH) != 0 &&
      (flags & KTC_RELEASES_NO_FETCH) != 0) {
    return ktc::make_error(ktc::Status::invalid,
                           "KTC_RELEASES_REFRESH and KTC_RELEASES_NO_FETCH "
                           "exclude each other");
  }
  kb::ReleasesOptions options;
  options.refresh = (flags & KTC_RELEASES_REFRESH) != 0;
  options.no_fetch = (flags & KTC_RELEASES_NO_FETCH) != 0;
  return options;
}

} // namespace

extern "C" {

int ktc_releases(char** out, ktc_cache* cache, uint32_t flags) {
  return guard(__func__, [&]() -> Result<void> {
    if (out == nullptr) {
      return null_argument("out");
    }
    *out = nullptr;
    if (cache == nullptr) {
      return null_argument("cache");
    }
    KTC_TRY_ASSIGN(kb::ReleasesOptions options, releases_options(flags));
    KTC_TRY_ASSIGN(kb::ReleaseList list,
                   kb::load_releases(cache->cache, cache->plugins, options));
    *out = malloc_string(boost::json::serialize(list.to_json()));
    return {};
  });
}

int ktc_range_expand(char** out,
                     ktc_cache* cache,
                     const char* range,
                     uint32_t flags) {
  return guard(__func__, [&]() -> Result<void> {
    if (out == nullptr) {
      return null_argument("out");
    }
    *out = nullptr;
    if (cache == nullptr) {
      return null_argument("cache");
    }
    if (range == nullptr) {
      return null_argument("range");
    }
    KTC_TRY_ASSIGN(kb::ReleasesOptions options, releases_options(flags));
    KTC_TRY_ASSIGN(kb::KernelId id, kb::parse_kernel_id(range));
    if (id.kind != kb::KernelIdKind::range) {
      return ktc::make_error(ktc::Status::invalid,
                             "'{}' is not a range (expected START..END)",
                             id.text);
    }
    KTC_TRY_ASSIGN(kb::ReleaseList list,
                   kb::load_releases(cache->cache, cache->plugins, options));
    KTC_TRY_ASSIGN(std::vector<std::string> versions,
                   kb::releases_in_range(list.releases, id));
    boost::json::array version_array;
    for (auto& version : versions) {
      version_array.emplace_back(version);
    }
    boost::json::object result;
    result["range"] = id.text;
    result["start"] = id.range_start;
    result["end"] = id.range_end;
    result["versions"] = std::move(version_array);
    *out = malloc_string(boost::json::serialize(result));
    return {};
  });
}

} // extern "C"
