/*
 * strip_none: the "none" strip policy. The vmlinux is stored whole, DWARF
 * and all, for users who debug the cached kernels. whole_file() copies the
 * file as is, so the ELF engine is never needed; decide() keeps every
 * section for hosts that go through the engine anyway.
 */
#include <ktcache/plugin.h>

#include <stddef.h>

/* Set once by the query, before any operation; read-only afterwards. */
static const ktc_host_services* g_host;

static int none_decide(void* unused,
                       ktc_plugin_call* call,
                       const ktc_strip_section* section,
                       int* decision) {
  (void)unused;
  (void)call;
  (void)section;
  if (decision == NULL) {
    return KTC_PLUGIN_E_INVALID;
  }
  *decision = KTC_STRIP_KEEP;
  return KTC_PLUGIN_OK;
}

static int none_whole_file(void* unused,
                           ktc_plugin_call* call,
                           const char* input,
                           const char* output) {
  (void)unused;
  /* On failure the host's copy_file has already set a message naming the
   * file and the cause. */
  return g_host->copy_file(call, input, output);
}

static void none_unload(void* unused) {
  (void)unused;
  g_host = NULL;
}

static const ktc_strip_ops g_strip_ops = {
    sizeof(ktc_strip_ops),
    0,
    none_decide,
    none_whole_file,
};

static const ktc_plugin_info g_info = {
    sizeof(ktc_plugin_info),
    KTC_PLUGIN_ABI_MAJOR,
    KTC_PLUGIN_ABI_MINOR,
    KTC_PLUGIN_KIND_STRIP,
    "none",
    "1.0.0",
    "keeps the vmlinux whole (DWARF included)",
    NULL,
    none_unload,
    NULL,
    &g_strip_ops,
};

KTC_PLUGIN_DECLARE_QUERY {
  if (host == NULL || info == NULL) {
    return KTC_PLUGIN_E_INVALID;
  }
  if (host->struct_size <
      offsetof(ktc_host_services, copy_file) + sizeof host->copy_file) {
    if (host->struct_size >=
        offsetof(ktc_host_services, set_error) + sizeof host->set_error) {
      host->set_error(call, "the host's service table is too small");
    }
    return KTC_PLUGIN_E_UNSUPPORTED;
  }
  g_host = host;
  *info = &g_info;
  return KTC_PLUGIN_OK;
}
