/*
 * The plugin ABI made visible to abidw. Nothing libktcache exports reaches
 * the types of plugin.h, so a baseline of the library cannot see them
 * change; this library exports one function per public type instead, and
 * abi/plugin.abi is its baseline (see tests/abi/meson.build). Built with
 * debug info; never loaded by anything.
 *
 * A type of plugin.h that no function here reaches is not guarded: a new
 * public struct or typed enum needs its own function below, and the
 * baseline regenerated with tools/abi-check --update.
 */
#include <ktcache/plugin.h>

#define PROBE_API __attribute__((visibility("default")))

PROBE_API uint32_t
ktc_abi_probe_host_services(const ktc_host_services* services) {
  return services->struct_size;
}

PROBE_API uint32_t ktc_abi_probe_source_ops(const ktc_source_ops* ops) {
  return ops->struct_size;
}

PROBE_API uint32_t
ktc_abi_probe_strip_section(const ktc_strip_section* section) {
  return section->struct_size;
}

PROBE_API uint32_t ktc_abi_probe_strip_ops(const ktc_strip_ops* ops) {
  return ops->struct_size;
}

PROBE_API uint32_t ktc_abi_probe_strip_engine(const ktc_strip_engine* engine) {
  return engine->struct_size;
}

PROBE_API int ktc_abi_probe_decide_fn(ktc_strip_decide_fn decide) {
  return decide != NULL;
}

PROBE_API uint32_t ktc_abi_probe_plugin_info(const ktc_plugin_info* info) {
  return info->struct_size;
}

PROBE_API int ktc_abi_probe_query_fn(ktc_plugin_query_fn query) {
  return query != NULL;
}

PROBE_API int ktc_abi_probe_enums(ktc_plugin_status status,
                                  ktc_plugin_kind kind,
                                  ktc_strip_decision decision) {
  return (int)status + (int)kind + (int)decision;
}

/* The entry point as plugins declare it, so the macro's name and signature
 * are guarded too: a renamed or retyped entry is a removed symbol or a
 * changed function here. */
KTC_PLUGIN_DECLARE_QUERY {
  (void)host;
  (void)call;
  (void)info;
  return KTC_PLUGIN_E_UNSUPPORTED;
}
