// The extern "C" shim of ktc_resolve().

#include "build/resolve.hpp"
#include "capi/capi_guard.hpp"
#include "capi/capi_handles.hpp"

#include <boost/json/serialize.hpp>
#include <ktcache/ktcache.h>

using ktc::Result;
using namespace ktc::capi;

namespace {

Result<ktc::build::ResolveRequest>
resolve_request(const ktc_resolve_options& options) {
  KTC_TRY(
      check_flags(options.flags,
                  KTC_RESOLVE_NO_BUILD | KTC_RESOLVE_NEWEST | KTC_RESOLVE_LEASE,
                  "ktc_resolve_options.flags"));
  ktc::build::ResolveRequest request;
  request.no_build = (options.flags & KTC_RESOLVE_NO_BUILD) != 0;
  request.newest = (options.flags & KTC_RESOLVE_NEWEST) != 0;
  request.lease = (options.flags & KTC_RESOLVE_LEASE) != 0;
  if (options.id == nullptr && !request.newest) {
    return null_argument("ktc_resolve_options.id");
  }
  if (options.id != nullptr) {
    request.id = options.id;
  }
  KTC_TRY_ASSIGN(request.arch,
                 optional_text(options.arch, "ktc_resolve_options.arch"));
  request.kconfig_hash = optional_value(options.kconfig_hash);
  ktc_build_options defaults = KTC_BUILD_OPTIONS_INIT;
  ktc_build_options build = defaults;
  if (options.build != nullptr) {
    KTC_TRY_ASSIGN(build, read_options(*options.build,
                                       KTC_FIRST_SIZE(ktc_build_options, hooks),
                                       "ktc_resolve_options.build"));
  }
  // The identifier names the kernel; the build's own spec is ignored.
  build.spec = request.id.empty() ? "-" : request.id.c_str();
  KTC_TRY_ASSIGN(request.build, build_request(build));
  return request;
}

} // namespace

extern "C" {

int ktc_resolve(ktc_entry** out,
                ktc_cache* cache,
                const ktc_resolve_options* options,
                char** report) {
  return guard(__func__, [&]() -> Result<void> {
    KTC_TRY(start_entry_call(out, report, cache, options));
    KTC_TRY_ASSIGN(ktc_resolve_options copy,
                   read_options(*options,
                                KTC_FIRST_SIZE(ktc_resolve_options, build),
                                "ktc_resolve_options"));
    KTC_TRY_ASSIGN(ktc::build::ResolveRequest request, resolve_request(copy));
    KTC_TRY_ASSIGN(ktc::build::ResolveReport resolved,
                   ktc::build::resolve(cache->cache, cache->plugins, request));
    hand_out(out, std::move(resolved.entry), report,
             boost::json::serialize(resolved.to_json()));
    return {};
  });
}

} // extern "C"
