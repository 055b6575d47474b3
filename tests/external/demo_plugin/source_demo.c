/*
 * source_demo: a source plugin built outside the ktcache tree, against the
 * installed <ktcache/plugin.h> alone. It proves a third party can add a
 * scheme to an unmodified libktcache.
 *
 * Spec "demo:WORD". WORD is not a kernel tree; the plugin only records an
 * identity and a payload that nothing but this plugin computes (the FNV-1a
 * 64-bit hash of WORD), so a test can tell the plugin really ran.
 */
#include <ktcache/plugin.h>

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define DEMO_SCHEME "demo:"

/* Set once by the query, before any operation runs; only read afterwards. */
static const ktc_host_services* g_host;

static uint64_t fnv1a64(const char* text) {
  uint64_t hash = UINT64_C(0xcbf29ce484222325);
  for (; *text != '\0'; ++text) {
    hash ^= (unsigned char)*text;
    hash *= UINT64_C(0x100000001b3);
  }
  return hash;
}

static void checksum_hex(const char* word, char hex[17]) {
  snprintf(hex, 17, "%016" PRIx64, fnv1a64(word));
}

/* WORD becomes a cache key part and a payload value: keep it to a plain
 * token so both stay readable. */
static int valid_word(const char* word) {
  size_t length = strlen(word);
  size_t i;
  if (length == 0 || length > 64) {
    return 0;
  }
  for (i = 0; i < length; ++i) {
    char c = word[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.')) {
      return 0;
    }
  }
  return 1;
}

/* Returns WORD, or NULL after reporting why the spec is unusable. */
static const char* spec_word(ktc_plugin_call* call, const char* spec) {
  char message[160];
  const char* word;
  if (strncmp(spec, DEMO_SCHEME, strlen(DEMO_SCHEME)) != 0) {
    snprintf(message, sizeof message, "spec '%.100s' is not demo:WORD", spec);
    g_host->set_error(call, message);
    return NULL;
  }
  word = spec + strlen(DEMO_SCHEME);
  if (!valid_word(word)) {
    snprintf(message, sizeof message,
             "spec '%.100s': WORD must be 1 to 64 of [A-Za-z0-9_.-]", spec);
    g_host->set_error(call, message);
    return NULL;
  }
  return word;
}

static int demo_resolve(void* state, ktc_plugin_call* call, const char* spec) {
  const char* word = spec_word(call, spec);
  char hex[17];
  int status;
  (void)state;
  if (word == NULL) {
    return KTC_PLUGIN_E_INVALID;
  }
  checksum_hex(word, hex);
  status = g_host->set_identity(call, "version", "0.0.1");
  if (status != KTC_PLUGIN_OK) {
    return status;
  }
  return g_host->set_identity(call, "checksum", hex);
}

static int demo_describe(void* state, ktc_plugin_call* call, const char* spec) {
  const char* word = spec_word(call, spec);
  char hex[17];
  int status;
  (void)state;
  if (word == NULL) {
    return KTC_PLUGIN_E_INVALID;
  }
  checksum_hex(word, hex);
  if ((status = g_host->payload_string(call, "word", word)) != KTC_PLUGIN_OK ||
      (status = g_host->payload_string(call, "checksum", hex)) !=
          KTC_PLUGIN_OK ||
      (status = g_host->add_key_part(call, "demo")) != KTC_PLUGIN_OK) {
    return status;
  }
  return g_host->add_key_part(call, word);
}

/* A WORD has no source tree; acquire is required, so it says so. */
static int demo_acquire(void* state,
                        ktc_plugin_call* call,
                        const char* spec,
                        const char* dest_dir) {
  (void)state;
  (void)spec;
  (void)dest_dir;
  g_host->set_error(call, "demo specs name no source tree to acquire");
  return KTC_PLUGIN_E_UNSUPPORTED;
}

static const ktc_source_ops demo_ops = {
    sizeof(ktc_source_ops), 0,    NULL, demo_resolve, demo_describe,
    demo_acquire,           NULL, NULL, NULL,
};

static const ktc_plugin_info demo_info = {
    sizeof(ktc_plugin_info),
    KTC_PLUGIN_ABI_MAJOR,
    KTC_PLUGIN_ABI_MINOR,
    KTC_PLUGIN_KIND_SOURCE,
    "demo",
    "0.0.1",
    "Out-of-tree demo: demo:WORD, identified by FNV-1a 64 of WORD",
    NULL,
    NULL,
    &demo_ops,
    NULL,
};

KTC_PLUGIN_DECLARE_QUERY {
  (void)call;
  /* Only ABI minor 0 services are used, so any 1.x host whose table
   * reaches set_tree will do. */
  if (host->struct_size <
      offsetof(ktc_host_services, set_tree) + sizeof(host->set_tree)) {
    return KTC_PLUGIN_E_UNSUPPORTED;
  }
  g_host = host;
  *info = &demo_info;
  return KTC_PLUGIN_OK;
}
