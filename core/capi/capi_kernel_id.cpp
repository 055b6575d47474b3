// The extern "C" shims of ktcache.h's kernel identifiers.

#include "build/kernel_id.hpp"
#include "capi/capi_guard.hpp"
#include "capi/capi_handles.hpp"

#include <ktcache/ktcache.h>

#include <memory>

using ktc::Result;
using namespace ktc::capi;
namespace kb = ktc::build;

struct ktc_kernel_id {
  kb::KernelId id;
};

static_assert(static_cast<int>(kb::KernelIdKind::spec) == KTC_KERNEL_ID_SPEC);
static_assert(static_cast<int>(kb::KernelIdKind::git) == KTC_KERNEL_ID_GIT);
static_assert(static_cast<int>(kb::KernelIdKind::range) == KTC_KERNEL_ID_RANGE);
static_assert(static_cast<int>(kb::KernelIdKind::path) == KTC_KERNEL_ID_PATH);
static_assert(static_cast<int>(kb::KernelIdKind::version) ==
              KTC_KERNEL_ID_VERSION);
static_assert(static_cast<int>(kb::KernelIdKind::series) ==
              KTC_KERNEL_ID_SERIES);
static_assert(static_cast<int>(kb::KernelIdKind::rc) == KTC_KERNEL_ID_RC);
static_assert(static_cast<int>(kb::KernelIdKind::key) == KTC_KERNEL_ID_KEY);

namespace {

const char* null_if_empty(const std::string& text) {
  return text.empty() ? nullptr : text.c_str();
}

} // namespace

extern "C" {

int ktc_kernel_id_parse(ktc_kernel_id** out, const char* text) {
  return guard(__func__, [&]() -> Result<void> {
    if (out == nullptr) {
      return null_argument("out");
    }
    if (text == nullptr) {
      return null_argument("text");
    }
    KTC_TRY_ASSIGN(kb::KernelId id, kb::parse_kernel_id(text));
    *out =
        std::make_unique<ktc_kernel_id>(ktc_kernel_id{std::move(id)}).release();
    return {};
  });
}

int ktc_kernel_id_get_info(const ktc_kernel_id* id, ktc_kernel_id_info* info) {
  return guard(__func__, [&]() -> Result<void> {
    if (id == nullptr) {
      return null_argument("id");
    }
    if (info == nullptr) {
      return null_argument("info");
    }
    KTC_TRY(check_output(*info, KTC_FIRST_SIZE(ktc_kernel_id_info, key),
                         "ktc_kernel_id_info"));
    const kb::KernelId& source = id->id;
    ktc_kernel_id_info full = KTC_KERNEL_ID_INFO_INIT;
    full.kind = static_cast<int32_t>(source.kind);
    full.text = source.text.c_str();
    full.spec = null_if_empty(source.spec);
    full.version = null_if_empty(source.version);
    full.range_start = null_if_empty(source.range_start);
    full.range_end = null_if_empty(source.range_end);
    full.git_url = null_if_empty(source.git_url);
    full.git_ref = null_if_empty(source.git_ref);
    full.path = null_if_empty(source.path);
    full.scheme = null_if_empty(source.scheme);
    full.key = null_if_empty(source.key);
    write_output(*info, full);
    return {};
  });
}

void ktc_kernel_id_free(ktc_kernel_id* id) {
  delete id;
}

} // extern "C"
