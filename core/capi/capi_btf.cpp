// The extern "C" shims of ktcache.h's "Cache membership and the BTF
// sidecar" section: ktc_path_inside_cache_root() and ktc_btf_read().

#include "cache/cache.hpp"
#include "cache/root.hpp"
#include "capi/capi_guard.hpp"
#include "capi/capi_handles.hpp"
#include "elf/btf.hpp"
#include "util/result.hpp"

#include <ktcache/ktcache.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

using ktc::Result;
using ktc::Status;
using namespace ktc::capi;
namespace kc = ktc::cache;

int ktc_path_inside_cache_root(const ktc_cache* cache, const char* path) {
  return guard_value<int>(__func__, 0, [&]() -> Result<int> {
    if (path == nullptr) {
      return null_argument("path");
    }
    std::string root;
    if (cache != nullptr) {
      root = cache->cache.root();
    } else {
      // Afresh on every call: the environment may have changed.
      Result<std::string> resolved = kc::resolve_root("kernels");
      if (!resolved) {
        return 0;
      }
      root = std::move(*resolved);
    }
    return kc::path_inside_root(root, path) ? 1 : 0;
  });
}

int ktc_btf_read(void** data,
                 size_t* size,
                 char** sidecar,
                 ktc_cache* cache,
                 const char* file_or_key,
                 uint32_t flags) {
  return guard(__func__, [&]() -> Result<void> {
    if (data == nullptr) {
      return null_argument("data");
    }
    if (size == nullptr) {
      return null_argument("size");
    }
    if (file_or_key == nullptr) {
      return null_argument("file_or_key");
    }
    if (*file_or_key == '\0') {
      return make_error(Status::invalid,
                        "the file or key to read the BTF of is empty");
    }
    KTC_TRY(check_flags(flags, KTC_BTF_NO_SIDECAR, "ktc_btf_read() flags"));
    std::string vmlinux;
    if (names_a_file(file_or_key)) {
      vmlinux = file_or_key;
    } else if (cache == nullptr) {
      return make_error(Status::invalid,
                        "\"{}\" is not a file, and no cache was given to "
                        "look it up as a key",
                        file_or_key);
    } else {
      KTC_TRY_ASSIGN(kc::Entry entry, cache->cache.lookup(file_or_key, false));
      vmlinux = entry.vmlinux_path();
      if (vmlinux.empty()) {
        return make_error(Status::not_found,
                          "entry \"{}\": no vmlinux, so no BTF", file_or_key);
      }
    }
    bool use_sidecar = cache != nullptr && (flags & KTC_BTF_NO_SIDECAR) == 0 &&
                       kc::path_inside_root(cache->cache.root(), vmlinux);
    KTC_TRY_ASSIGN(ktc::elf::BtfBytes btf,
                   ktc::elf::read_btf(vmlinux, use_sidecar));

    // Both copies first, so that a failure leaves the outputs untouched.
    std::unique_ptr<void, decltype(&std::free)> bytes(
        std::malloc(btf.bytes.empty() ? 1 : btf.bytes.size()), &std::free);
    if (bytes == nullptr) {
      throw std::bad_alloc();
    }
    std::memcpy(bytes.get(), btf.bytes.data(), btf.bytes.size());
    char* used = sidecar != nullptr && !btf.sidecar.empty()
                     ? malloc_string(btf.sidecar)
                     : nullptr;
    *data = bytes.release();
    *size = btf.bytes.size();
    if (sidecar != nullptr) {
      *sidecar = used;
    }
    return {};
  });
}
