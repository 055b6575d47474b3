// The layout of every struct in plugin.h on x86_64 (LP64), pinned at
// compile time: plugins built against an older header are loaded by newer
// hosts, so a member that moves is a broken plugin ABI even when abidw is
// not installed. A change here is a build failure. The only allowed change
// is appending a member at the end of a struct (a larger sizeof, the
// offsets below unchanged); update the pinned size with it.
//
// The values of the untyped enums and macros are pinned too: abidiff sees
// only the typed enums, through tests/abi/plugin_abi_probe.c.

#include <ktcache/plugin.h>

#include <cstddef>
#include <string_view>
#include <type_traits>

#if defined(__x86_64__) && defined(__LP64__)

namespace {

template <typename T>
constexpr bool
    pinnable = std::is_standard_layout_v<T>&& std::is_trivially_copyable_v<T> &&
               alignof(T) == 8;

static_assert(pinnable<ktc_host_services>);
static_assert(sizeof(ktc_host_services) == 184);
static_assert(offsetof(ktc_host_services, struct_size) == 0);
static_assert(offsetof(ktc_host_services, abi_major) == 4);
static_assert(offsetof(ktc_host_services, abi_minor) == 8);
static_assert(offsetof(ktc_host_services, reserved0) == 12);
static_assert(offsetof(ktc_host_services, host_version) == 16);
static_assert(offsetof(ktc_host_services, log) == 24);
static_assert(offsetof(ktc_host_services, progress) == 32);
static_assert(offsetof(ktc_host_services, cancelled) == 40);
static_assert(offsetof(ktc_host_services, set_error) == 48);
static_assert(offsetof(ktc_host_services, read_file) == 56);
static_assert(offsetof(ktc_host_services, free_buffer) == 64);
static_assert(offsetof(ktc_host_services, copy_file) == 72);
static_assert(offsetof(ktc_host_services, sha256_file) == 80);
static_assert(offsetof(ktc_host_services, run) == 88);
static_assert(offsetof(ktc_host_services, set_identity) == 96);
static_assert(offsetof(ktc_host_services, payload_string) == 104);
static_assert(offsetof(ktc_host_services, payload_bool) == 112);
static_assert(offsetof(ktc_host_services, payload_int) == 120);
static_assert(offsetof(ktc_host_services, add_key_part) == 128);
static_assert(offsetof(ktc_host_services, add_expansion) == 136);
static_assert(offsetof(ktc_host_services, set_tree) == 144);
static_assert(offsetof(ktc_host_services, strip_engine) == 152);
static_assert(offsetof(ktc_host_services, identity) == 160);
static_assert(offsetof(ktc_host_services, offline) == 168);
static_assert(offsetof(ktc_host_services, add_release) == 176);

static_assert(pinnable<ktc_source_ops>);
static_assert(sizeof(ktc_source_ops) == 64);
static_assert(offsetof(ktc_source_ops, struct_size) == 0);
static_assert(offsetof(ktc_source_ops, flags) == 4);
static_assert(offsetof(ktc_source_ops, claim) == 8);
static_assert(offsetof(ktc_source_ops, resolve) == 16);
static_assert(offsetof(ktc_source_ops, describe) == 24);
static_assert(offsetof(ktc_source_ops, acquire) == 32);
static_assert(offsetof(ktc_source_ops, recheck) == 40);
static_assert(offsetof(ktc_source_ops, expand) == 48);
static_assert(offsetof(ktc_source_ops, releases) == 56);

static_assert(pinnable<ktc_strip_section>);
static_assert(sizeof(ktc_strip_section) == 48);
static_assert(offsetof(ktc_strip_section, struct_size) == 0);
static_assert(offsetof(ktc_strip_section, index) == 4);
static_assert(offsetof(ktc_strip_section, name) == 8);
static_assert(offsetof(ktc_strip_section, type) == 16);
static_assert(offsetof(ktc_strip_section, reserved0) == 20);
static_assert(offsetof(ktc_strip_section, flags) == 24);
static_assert(offsetof(ktc_strip_section, size) == 32);
static_assert(offsetof(ktc_strip_section, roles) == 40);
static_assert(offsetof(ktc_strip_section, reserved1) == 44);

static_assert(pinnable<ktc_strip_engine>);
static_assert(sizeof(ktc_strip_engine) == 16);
static_assert(offsetof(ktc_strip_engine, struct_size) == 0);
static_assert(offsetof(ktc_strip_engine, reserved0) == 4);
static_assert(offsetof(ktc_strip_engine, strip) == 8);

static_assert(pinnable<ktc_strip_ops>);
static_assert(sizeof(ktc_strip_ops) == 24);
static_assert(offsetof(ktc_strip_ops, struct_size) == 0);
static_assert(offsetof(ktc_strip_ops, flags) == 4);
static_assert(offsetof(ktc_strip_ops, decide) == 8);
static_assert(offsetof(ktc_strip_ops, whole_file) == 16);

static_assert(pinnable<ktc_plugin_info>);
static_assert(sizeof(ktc_plugin_info) == 72);
static_assert(offsetof(ktc_plugin_info, struct_size) == 0);
static_assert(offsetof(ktc_plugin_info, abi_major) == 4);
static_assert(offsetof(ktc_plugin_info, abi_minor) == 8);
static_assert(offsetof(ktc_plugin_info, kind) == 12);
static_assert(offsetof(ktc_plugin_info, name) == 16);
static_assert(offsetof(ktc_plugin_info, version) == 24);
static_assert(offsetof(ktc_plugin_info, description) == 32);
static_assert(offsetof(ktc_plugin_info, state) == 40);
static_assert(offsetof(ktc_plugin_info, unload) == 48);
static_assert(offsetof(ktc_plugin_info, source) == 56);
static_assert(offsetof(ktc_plugin_info, strip) == 64);

// Values that plugins compile in; the header pins them forever.
static_assert(sizeof(ktc_plugin_status) == 4);
static_assert(sizeof(ktc_plugin_kind) == 4);
static_assert(sizeof(ktc_strip_decision) == 4);
static_assert(std::is_same_v<ktc_plugin_query_fn,
                             int (*)(const ktc_host_services*,
                                     ktc_plugin_call*,
                                     const ktc_plugin_info**)>);
static_assert(KTC_PLUGIN_ABI_MAJOR == 1);
static_assert(std::string_view(KTC_PLUGIN_QUERY_SYMBOL) ==
              "ktc_plugin_query_v1");
static_assert(KTC_PLUGIN_LOG_ERROR == 1 && KTC_PLUGIN_LOG_WARN == 2 &&
              KTC_PLUGIN_LOG_INFO == 3 && KTC_PLUGIN_LOG_DEBUG == 4 &&
              KTC_PLUGIN_LOG_TRACE == 5);
static_assert(KTC_SOURCE_IN_PLACE == 1 && KTC_SOURCE_NETWORK == 2);
static_assert(KTC_STRIP_ROLE_STRUCTURAL == 1 && KTC_STRIP_ROLE_SYMBOLS == 2 &&
              KTC_STRIP_ROLE_BTF == 4 && KTC_STRIP_ROLE_IKCONFIG == 8 &&
              KTC_STRIP_ROLE_NOTE == 16 && KTC_STRIP_ROLE_DEBUG == 32 &&
              KTC_STRIP_ROLE_COMMENT == 64 && KTC_STRIP_ROLE_RELOC == 128 &&
              KTC_STRIP_ROLE_ALLOC == 256 && KTC_STRIP_ROLE_CODE == 512 &&
              KTC_STRIP_ROLE_BTF_EXT == 1024);
static_assert(std::is_same_v<ktc_strip_decide_fn,
                             int (*)(void*, const ktc_strip_section*, int*)>);

} // namespace

#endif
