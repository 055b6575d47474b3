/*
 * strip_btf: the "btf" strip policy, the default. Keeps what a test harness
 * reads from a cached vmlinux: the symbol table and its strings, .BTF, the
 * section holding the embedded kernel config, and the notes (the build-id).
 * The rest of the loaded image stays as section headers with their
 * addresses and sizes, so every symbol keeps its section; everything else
 * (DWARF, .BTF.ext, relocations, .comment) is dropped. A keep list rather
 * than a drop list: sections a future toolchain adds are dropped too.
 */
#include <ktcache/plugin.h>

#include <stddef.h>

static int btf_decide(void* unused,
                      ktc_plugin_call* call,
                      const ktc_strip_section* section,
                      int* decision) {
  const uint32_t kept = KTC_STRIP_ROLE_STRUCTURAL | KTC_STRIP_ROLE_SYMBOLS |
                        KTC_STRIP_ROLE_BTF | KTC_STRIP_ROLE_IKCONFIG |
                        KTC_STRIP_ROLE_NOTE;
  (void)unused;
  (void)call;
  if (section == NULL || decision == NULL) {
    return KTC_PLUGIN_E_INVALID;
  }
  if ((section->roles & kept) != 0) {
    *decision = KTC_STRIP_KEEP;
  } else if ((section->roles & KTC_STRIP_ROLE_ALLOC) != 0) {
    *decision = KTC_STRIP_HEADER_ONLY;
  } else {
    *decision = KTC_STRIP_DROP;
  }
  return KTC_PLUGIN_OK;
}

static const ktc_strip_ops g_strip_ops = {
    sizeof(ktc_strip_ops),
    0,
    btf_decide,
    NULL,
};

static const ktc_plugin_info g_info = {
    sizeof(ktc_plugin_info),
    KTC_PLUGIN_ABI_MAJOR,
    KTC_PLUGIN_ABI_MINOR,
    KTC_PLUGIN_KIND_STRIP,
    "btf",
    "1.0.0",
    "keeps symbols, BTF, IKCONFIG and notes; the rest of the image as headers",
    NULL,
    NULL,
    NULL,
    &g_strip_ops,
};

KTC_PLUGIN_DECLARE_QUERY {
  if (host == NULL || info == NULL) {
    return KTC_PLUGIN_E_INVALID;
  }
  /* Section roles arrived with ABI minor 1; without them this policy cannot
   * tell BTF from anything else. */
  if (host->abi_minor < 1) {
    host->set_error(call, "needs a host of plugin ABI 1.1 or later (section "
                          "roles)");
    return KTC_PLUGIN_E_UNSUPPORTED;
  }
  *info = &g_info;
  return KTC_PLUGIN_OK;
}
