/*
 * strip_debug: the "debug" strip policy, like `strip --strip-debug`. DWARF
 * and the other debug sections, and .comment, are dropped (the engine drops
 * their relocations with them); everything else is kept byte for byte, so
 * the file stays usable by tools that read code and data, such as crash(8).
 */
#include <ktcache/plugin.h>

#include <stddef.h>

static int debug_decide(void* unused,
                        ktc_plugin_call* call,
                        const ktc_strip_section* section,
                        int* decision) {
  (void)unused;
  (void)call;
  if (section == NULL || decision == NULL) {
    return KTC_PLUGIN_E_INVALID;
  }
  *decision =
      (section->roles & (KTC_STRIP_ROLE_DEBUG | KTC_STRIP_ROLE_COMMENT)) != 0
          ? KTC_STRIP_DROP
          : KTC_STRIP_KEEP;
  return KTC_PLUGIN_OK;
}

static const ktc_strip_ops g_strip_ops = {
    sizeof(ktc_strip_ops),
    0,
    debug_decide,
    NULL,
};

static const ktc_plugin_info g_info = {
    sizeof(ktc_plugin_info),
    KTC_PLUGIN_ABI_MAJOR,
    KTC_PLUGIN_ABI_MINOR,
    KTC_PLUGIN_KIND_STRIP,
    "debug",
    "1.0.0",
    "drops DWARF and .comment, keeps the rest (strip --strip-debug)",
    NULL,
    NULL,
    NULL,
    &g_strip_ops,
};

KTC_PLUGIN_DECLARE_QUERY {
  if (host == NULL || info == NULL) {
    return KTC_PLUGIN_E_INVALID;
  }
  if (host->abi_minor < 1) {
    host->set_error(call, "needs a host of plugin ABI 1.1 or later (section "
                          "roles)");
    return KTC_PLUGIN_E_UNSUPPORTED;
  }
  *info = &g_info;
  return KTC_PLUGIN_OK;
}
