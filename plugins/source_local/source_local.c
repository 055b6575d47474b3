/*
 * source_local: the "local" source scheme. "local:PATH" names a kernel tree
 * on disk that is built where it is (KTC_SOURCE_IN_PLACE). Its identity is
 * the tree's canonical path, its kernel version (from the top Makefile), its
 * git HEAD and whether it is dirty; a clean git tree is keyed by its commit,
 * anything else by its path only ("unknown"), as ktstr does.
 */
#ifndef _GNU_SOURCE
#define _XOPEN_SOURCE 700
#endif

#include <ktcache/plugin.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SCHEME_PREFIX "local:"
#define MAKEFILE_MAX_BYTES ((size_t)4 << 20)
#define VERSION_MAX 128
/* A SHA-1 or SHA-256 object name. */
#define COMMIT_MAX 64
#define SHORT_HASH_LEN 7

/* Set once by the query, before any operation; read-only afterwards. */
static const ktc_host_services* g_host;

/* What one inspection of a tree found. */
typedef struct tree_state {
  char commit[COMMIT_MAX + 1]; /* "" when not a git tree or no HEAD */
  int dirty;
  int has_version;
  char version[VERSION_MAX];
} tree_state;

/* ---------------------------------------------------------------------- */
/* Small helpers                                                          */
/* ---------------------------------------------------------------------- */

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
fail(ktc_plugin_call* call, const char* format, ...) {
  /* Room for a PATH_MAX path twice over plus the words around it. */
  char message[9000];
  va_list args;
  va_start(args, format);
  vsnprintf(message, sizeof message, format, args);
  va_end(args);
  g_host->set_error(call, message);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
logf_(ktc_plugin_call* call, int level, const char* format, ...) {
  char message[9000];
  va_list args;
  va_start(args, format);
  vsnprintf(message, sizeof message, format, args);
  va_end(args);
  g_host->log(call, level, message);
}

static char* concat_path(const char* dir, const char* name) {
  size_t dir_len = strlen(dir);
  size_t name_len = strlen(name);
  char* out = malloc(dir_len + 1 + name_len + 1);
  if (out == NULL) {
    return NULL;
  }
  memcpy(out, dir, dir_len);
  out[dir_len] = '/';
  memcpy(out + dir_len + 1, name, name_len + 1);
  return out;
}

static int is_regular_file(const char* dir, const char* name) {
  struct stat st;
  char* path = concat_path(dir, name);
  int ok;
  if (path == NULL) {
    return 0;
  }
  ok = stat(path, &st) == 0 && S_ISREG(st.st_mode);
  free(path);
  return ok;
}

static int is_hex(const char* text, size_t length) {
  size_t i;
  for (i = 0; i < length; ++i) {
    char c = text[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return 0;
    }
  }
  return 1;
}

/* FNV-1a, 32 bits: only a stable label for trees without a commit. */
static uint32_t fnv1a32(const char* text) {
  uint32_t hash = 2166136261u;
  const unsigned char* p = (const unsigned char*)text;
  while (*p != '\0') {
    hash ^= *p++;
    hash *= 16777619u;
  }
  return hash;
}

static int check_cancelled(ktc_plugin_call* call) {
  if (g_host->cancelled(call)) {
    fail(call, "cancelled");
    return 1;
  }
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Finding the tree                                                       */
/* ---------------------------------------------------------------------- */

/*
 * Canonicalises `path` and checks it is a kernel tree. `label` names it in
 * messages (the spec, or the directory recheck was given). On success
 * *canonical is malloc'd.
 */
static int find_tree(ktc_plugin_call* call,
                     const char* label,
                     const char* path,
                     char** canonical) {
  struct stat st;
  char* resolved;

  *canonical = NULL;
  if (path[0] == '\0') {
    fail(call, "%s: no path given (expected local:PATH)", label);
    return KTC_PLUGIN_E_INVALID;
  }
  resolved = realpath(path, NULL);
  if (resolved == NULL) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      fail(call, "%s: not a directory (no such file or directory)", label);
      return KTC_PLUGIN_E_NOTFOUND;
    }
    if (err == ENOMEM) {
      fail(call, "%s: out of memory", label);
      return KTC_PLUGIN_E_NOMEM;
    }
    fail(call, "%s: cannot resolve the path: %s", label, strerror(err));
    return KTC_PLUGIN_E_IO;
  }
  if (stat(resolved, &st) != 0 || !S_ISDIR(st.st_mode)) {
    fail(call, "%s: not a directory", label);
    free(resolved);
    return KTC_PLUGIN_E_INVALID;
  }
  if (!is_regular_file(resolved, "Makefile") ||
      !is_regular_file(resolved, "Kconfig")) {
    fail(call, "%s: not a kernel source tree (missing Makefile or Kconfig)",
         resolved);
    free(resolved);
    return KTC_PLUGIN_E_INVALID;
  }
  *canonical = resolved;
  return KTC_PLUGIN_OK;
}

static int
tree_of_spec(ktc_plugin_call* call, const char* spec, char** canonical) {
  size_t prefix_len = strlen(SCHEME_PREFIX);
  *canonical = NULL;
  if (spec == NULL || strncmp(spec, SCHEME_PREFIX, prefix_len) != 0) {
    fail(call, "%s: not a local: spec", spec != NULL ? spec : "(null)");
    return KTC_PLUGIN_E_INVALID;
  }
  return find_tree(call, spec, spec + prefix_len, canonical);
}

/* ---------------------------------------------------------------------- */
/* The kernel version                                                     */
/* ---------------------------------------------------------------------- */

/*
 * If `line` assigns Make variable `name` ("NAME = value", also ":=", "::="
 * and "?="), copies the value, trimmed and without a trailing comment, to
 * `value` and returns 1.
 */
static int match_assignment(const char* line,
                            const char* end,
                            const char* name,
                            char* value,
                            size_t value_size) {
  size_t name_len = strlen(name);
  const char* p;
  const char* stop;
  size_t length;

  if ((size_t)(end - line) < name_len || memcmp(line, name, name_len) != 0) {
    return 0;
  }
  p = line + name_len;
  while (p < end && (*p == ' ' || *p == '\t')) {
    ++p;
  }
  if (p < end && *p == '?') {
    ++p;
  } else {
    while (p < end && *p == ':') {
      ++p;
    }
  }
  if (p >= end || *p != '=') {
    return 0;
  }
  ++p;
  stop = p;
  while (stop < end && *stop != '#') {
    ++stop;
  }
  while (p < stop && (*p == ' ' || *p == '\t')) {
    ++p;
  }
  while (stop > p &&
         (stop[-1] == ' ' || stop[-1] == '\t' || stop[-1] == '\r')) {
    --stop;
  }
  length = (size_t)(stop - p);
  if (length >= value_size) {
    return 0;
  }
  memcpy(value, p, length);
  value[length] = '\0';
  return 1;
}

/*
 * The version as `make kernelversion` prints it:
 * VERSION[.PATCHLEVEL[.SUBLEVEL]]EXTRAVERSION. Leaves has_version 0 when
 * the Makefile sets no VERSION.
 */
static int
read_version(ktc_plugin_call* call, const char* tree, tree_state* state) {
  static const char* const names[4] = {"VERSION", "PATCHLEVEL", "SUBLEVEL",
                                       "EXTRAVERSION"};
  char values[4][VERSION_MAX];
  int found[4] = {0, 0, 0, 0};
  char* makefile = concat_path(tree, "Makefile");
  char* data = NULL;
  size_t length = 0;
  const char* line;
  const char* data_end;
  int status;
  int written;

  state->has_version = 0;
  state->version[0] = '\0';
  if (makefile == NULL) {
    fail(call, "%s: out of memory", tree);
    return KTC_PLUGIN_E_NOMEM;
  }
  status =
      g_host->read_file(call, makefile, MAKEFILE_MAX_BYTES, &data, &length);
  /* On failure the host's message already names the file and the cause. */
  if (status != KTC_PLUGIN_OK) {
    free(makefile);
    return status;
  }
  free(makefile);

  line = data;
  data_end = data + length;
  while (line < data_end) {
    const char* end = memchr(line, '\n', (size_t)(data_end - line));
    int i;
    if (end == NULL) {
      end = data_end;
    }
    for (i = 0; i < 4; ++i) {
      if (!found[i] &&
          match_assignment(line, end, names[i], values[i], VERSION_MAX)) {
        found[i] = 1;
        break;
      }
    }
    line = end + 1;
  }
  g_host->free_buffer(data);

  if (!found[0] || values[0][0] == '\0') {
    logf_(call, KTC_PLUGIN_LOG_DEBUG, "%s: the Makefile sets no VERSION", tree);
    return KTC_PLUGIN_OK;
  }
  if (found[1] && values[1][0] != '\0') {
    if (found[2] && values[2][0] != '\0') {
      written = snprintf(state->version, VERSION_MAX, "%s.%s.%s%s", values[0],
                         values[1], values[2], found[3] ? values[3] : "");
    } else {
      written = snprintf(state->version, VERSION_MAX, "%s.%s%s", values[0],
                         values[1], found[3] ? values[3] : "");
    }
  } else {
    written = snprintf(state->version, VERSION_MAX, "%s%s", values[0],
                       found[3] ? values[3] : "");
  }
  if (written < 0 || written >= VERSION_MAX) {
    state->version[0] = '\0';
    logf_(call, KTC_PLUGIN_LOG_WARN, "%s: the Makefile's version is too long",
          tree);
    return KTC_PLUGIN_OK;
  }
  state->has_version = 1;
  return KTC_PLUGIN_OK;
}

/* ---------------------------------------------------------------------- */
/* Git                                                                    */
/* ---------------------------------------------------------------------- */

/*
 * Runs git; *ran is 0 when git could not be executed (not installed),
 * which the caller treats as "not a git tree".
 */
static int run_git(ktc_plugin_call* call,
                   const char* const* argv,
                   char** output,
                   int* exit_status,
                   int* ran) {
  int status = g_host->run(call, argv, NULL, output, exit_status);
  *ran = 0;
  if (status == KTC_PLUGIN_E_NOTFOUND) {
    *output = NULL;
    logf_(call, KTC_PLUGIN_LOG_DEBUG,
          "git cannot be run; the tree counts as not a git tree");
    return KTC_PLUGIN_OK;
  }
  if (status != KTC_PLUGIN_OK) {
    /* The host's message says why git could not be run. */
    *output = NULL;
    return status;
  }
  *ran = 1;
  return KTC_PLUGIN_OK;
}

/*
 * Fills commit and dirty. Only a tree that is itself the top of a git work
 * tree counts: a plain directory inside somebody's repository (a home
 * directory under version control, say) would otherwise be keyed by that
 * repository's HEAD while its own files are untracked. Anything that is
 * not a git tree with a HEAD is dirty: nothing proves its content.
 */
static int
inspect_git(ktc_plugin_call* call, const char* tree, tree_state* state) {
  const char* rev_argv[] = {
      "git",      "-C",   tree, "rev-parse", "--show-toplevel",
      "--verify", "HEAD", NULL};
  /* --no-optional-locks: status would otherwise refresh the index under
   * index.lock and race with the user's own git commands. */
  const char* status_argv[] = {"git",
                               "--no-optional-locks",
                               "-C",
                               tree,
                               "status",
                               "--porcelain",
                               "--untracked-files=no",
                               "--ignore-submodules",
                               NULL};
  char* output = NULL;
  int exit_status = 0;
  int ran = 0;
  int status;
  char* newline;
  char* hash;
  size_t hash_len;

  state->commit[0] = '\0';
  state->dirty = 1;

  status = run_git(call, rev_argv, &output, &exit_status, &ran);
  if (status != KTC_PLUGIN_OK || !ran) {
    return status;
  }
  if (exit_status != 0 || output == NULL) {
    logf_(call, KTC_PLUGIN_LOG_DEBUG,
          "%s: not a git tree with a HEAD (git rev-parse exited %d)", tree,
          exit_status);
    g_host->free_buffer(output);
    return KTC_PLUGIN_OK;
  }
  newline = strchr(output, '\n');
  if (newline == NULL) {
    g_host->free_buffer(output);
    return KTC_PLUGIN_OK;
  }
  *newline = '\0';
  if (strcmp(output, tree) != 0) {
    logf_(call, KTC_PLUGIN_LOG_DEBUG,
          "%s: inside the git tree %s, not its top; not a git tree", tree,
          output);
    g_host->free_buffer(output);
    return KTC_PLUGIN_OK;
  }
  hash = newline + 1;
  hash_len = strcspn(hash, "\n");
  if ((hash_len != 40 && hash_len != 64) || !is_hex(hash, hash_len)) {
    logf_(call, KTC_PLUGIN_LOG_WARN, "%s: git printed no commit for HEAD",
          tree);
    g_host->free_buffer(output);
    return KTC_PLUGIN_OK;
  }
  memcpy(state->commit, hash, hash_len);
  state->commit[hash_len] = '\0';
  g_host->free_buffer(output);

  if (check_cancelled(call)) {
    return KTC_PLUGIN_E_CANCELLED;
  }
  output = NULL;
  status = run_git(call, status_argv, &output, &exit_status, &ran);
  if (status != KTC_PLUGIN_OK || !ran) {
    return status;
  }
  if (exit_status != 0 || output == NULL) {
    logf_(call, KTC_PLUGIN_LOG_WARN,
          "%s: git status exited %d; the tree counts as dirty", tree,
          exit_status);
  } else {
    state->dirty = output[0] != '\0';
  }
  g_host->free_buffer(output);
  return KTC_PLUGIN_OK;
}

static int inspect(ktc_plugin_call* call, const char* tree, tree_state* state) {
  int status = read_version(call, tree, state);
  if (status != KTC_PLUGIN_OK) {
    return status;
  }
  if (check_cancelled(call)) {
    return KTC_PLUGIN_E_CANCELLED;
  }
  return inspect_git(call, tree, state);
}

/* ---------------------------------------------------------------------- */
/* What resolve saw, for recheck                                          */
/* ---------------------------------------------------------------------- */

/*
 * recheck() receives no identity in ABI minor 0, so the last inspection of
 * each tree by resolve() or describe() in this process is kept here,
 * keyed by canonical path. Freed by unload.
 */
typedef struct seen_tree {
  struct seen_tree* next;
  char* path;
  tree_state state;
} seen_tree;

static pthread_mutex_t g_seen_lock = PTHREAD_MUTEX_INITIALIZER;
static seen_tree* g_seen;

static void
remember(ktc_plugin_call* call, const char* tree, const tree_state* state) {
  seen_tree* entry;
  pthread_mutex_lock(&g_seen_lock);
  for (entry = g_seen; entry != NULL; entry = entry->next) {
    if (strcmp(entry->path, tree) == 0) {
      break;
    }
  }
  if (entry == NULL) {
    entry = malloc(sizeof *entry);
    if (entry != NULL) {
      entry->path = malloc(strlen(tree) + 1);
      if (entry->path == NULL) {
        free(entry);
        entry = NULL;
      } else {
        strcpy(entry->path, tree);
        entry->next = g_seen;
        g_seen = entry;
      }
    }
  }
  if (entry != NULL) {
    entry->state = *state;
  }
  pthread_mutex_unlock(&g_seen_lock);
  if (entry == NULL) {
    logf_(call, KTC_PLUGIN_LOG_WARN,
          "%s: out of memory; a later recheck only checks cleanliness", tree);
  }
}

static int recall(const char* tree, tree_state* state) {
  const seen_tree* entry;
  int found = 0;
  pthread_mutex_lock(&g_seen_lock);
  for (entry = g_seen; entry != NULL; entry = entry->next) {
    if (strcmp(entry->path, tree) == 0) {
      *state = entry->state;
      found = 1;
      break;
    }
  }
  pthread_mutex_unlock(&g_seen_lock);
  return found;
}

static void forget_all(void) {
  pthread_mutex_lock(&g_seen_lock);
  while (g_seen != NULL) {
    seen_tree* next = g_seen->next;
    free(g_seen->path);
    free(g_seen);
    g_seen = next;
  }
  pthread_mutex_unlock(&g_seen_lock);
}

/* ---------------------------------------------------------------------- */
/* Operations                                                             */
/* ---------------------------------------------------------------------- */

static int inspect_spec(ktc_plugin_call* call,
                        const char* spec,
                        char** tree,
                        tree_state* state) {
  int status = tree_of_spec(call, spec, tree);
  if (status != KTC_PLUGIN_OK) {
    return status;
  }
  status = inspect(call, *tree, state);
  if (status != KTC_PLUGIN_OK) {
    free(*tree);
    *tree = NULL;
    return status;
  }
  remember(call, *tree, state);
  return KTC_PLUGIN_OK;
}

/*
 * What resolve() recorded on this call, read back through the host's
 * identity() service (ABI minor 2), so that describe does not run git a
 * second time. 0 when the host is older or nothing was recorded.
 */
static int
recorded_state(ktc_plugin_call* call, char** tree, tree_state* state) {
  const char* path;
  const char* commit;
  const char* dirty;

  if (g_host->struct_size <
          offsetof(ktc_host_services, identity) + sizeof g_host->identity ||
      g_host->identity == NULL) {
    return 0;
  }
  path = g_host->identity(call, "tree");
  dirty = g_host->identity(call, "dirty");
  if (path == NULL || dirty == NULL) {
    return 0;
  }
  commit = g_host->identity(call, "commit");
  if (commit != NULL && strlen(commit) > COMMIT_MAX) {
    return 0;
  }
  *tree = strdup(path);
  if (*tree == NULL) {
    return 0;
  }
  memset(state, 0, sizeof *state);
  if (commit != NULL) {
    memcpy(state->commit, commit, strlen(commit) + 1);
  }
  state->dirty = strcmp(dirty, "true") == 0;
  return 1;
}

/* The first failing service status, or OK. */
static int first_failure(int current, int next) {
  return current != KTC_PLUGIN_OK ? current : next;
}

static int
local_resolve(void* unused, ktc_plugin_call* call, const char* spec) {
  char* tree = NULL;
  tree_state state;
  int status;
  (void)unused;

  status = inspect_spec(call, spec, &tree, &state);
  if (status != KTC_PLUGIN_OK) {
    return status;
  }
  status = g_host->set_identity(call, "tree", tree);
  status = first_failure(
      status, g_host->set_identity(call, "version",
                                   state.has_version ? state.version : NULL));
  status = first_failure(
      status,
      g_host->set_identity(call, "commit",
                           state.commit[0] != '\0' ? state.commit : NULL));
  status = first_failure(
      status,
      g_host->set_identity(call, "dirty", state.dirty ? "true" : "false"));
  free(tree);
  return status;
}

static int
local_describe(void* unused, ktc_plugin_call* call, const char* spec) {
  char* tree = NULL;
  tree_state state;
  char short_hash[SHORT_HASH_LEN + 1];
  char path_hash[9];
  int keyed_by_commit;
  int status;
  (void)unused;

  if (!recorded_state(call, &tree, &state)) {
    status = inspect_spec(call, spec, &tree, &state);
    if (status != KTC_PLUGIN_OK) {
      return status;
    }
  }
  keyed_by_commit = !state.dirty && state.commit[0] != '\0';
  if (keyed_by_commit) {
    memcpy(short_hash, state.commit, SHORT_HASH_LEN);
    short_hash[SHORT_HASH_LEN] = '\0';
  }
  status = g_host->payload_string(call, "source_tree_path", tree);
  status = first_failure(
      status, g_host->payload_string(call, "git_hash",
                                     keyed_by_commit ? short_hash : NULL));
  status = first_failure(status, g_host->add_key_part(call, "local"));
  if (keyed_by_commit) {
    status = first_failure(status, g_host->add_key_part(call, short_hash));
  } else {
    snprintf(path_hash, sizeof path_hash, "%08x", (unsigned)fnv1a32(tree));
    status = first_failure(status, g_host->add_key_part(call, "unknown"));
    status = first_failure(status, g_host->add_key_part(call, path_hash));
  }
  free(tree);
  return status;
}

static int local_acquire(void* unused,
                         ktc_plugin_call* call,
                         const char* spec,
                         const char* dest_dir) {
  char* tree = NULL;
  int status;
  (void)unused;
  (void)dest_dir;

  status = tree_of_spec(call, spec, &tree);
  if (status != KTC_PLUGIN_OK) {
    return status;
  }
  status = g_host->set_tree(call, tree);
  free(tree);
  return status;
}

static const char* commit_or_none(const tree_state* state) {
  return state->commit[0] != '\0' ? state->commit : "none";
}

static int local_recheck(void* unused,
                         ktc_plugin_call* call,
                         const char* spec,
                         const char* tree_dir) {
  char* tree = NULL;
  tree_state before;
  tree_state now;
  int status;
  int had_before;
  (void)unused;
  (void)spec;

  if (tree_dir == NULL) {
    fail(call, "recheck: no tree directory given");
    return KTC_PLUGIN_E_INVALID;
  }
  status = find_tree(call, tree_dir, tree_dir, &tree);
  if (status != KTC_PLUGIN_OK) {
    return status;
  }
  status = inspect(call, tree, &now);
  if (status != KTC_PLUGIN_OK) {
    free(tree);
    return status;
  }
  had_before = recall(tree, &before);
  status = KTC_PLUGIN_E_CHANGED;
  if (!had_before) {
    /* Nothing to compare with: only a clean tree is provably unchanged. */
    if (now.dirty) {
      fail(call,
           "%s: the tree is dirty or not a git tree, so it cannot be shown "
           "unchanged by the build",
           tree);
    } else {
      status = KTC_PLUGIN_OK;
    }
  } else if (strcmp(before.commit, now.commit) != 0) {
    fail(call, "%s: the tree changed during the build (HEAD %s -> %s)", tree,
         commit_or_none(&before), commit_or_none(&now));
  } else if (!before.dirty && now.dirty) {
    fail(call, "%s: the tree changed during the build (it became dirty)", tree);
  } else if (before.has_version != now.has_version ||
             strcmp(before.version, now.version) != 0) {
    fail(call, "%s: the tree changed during the build (version %s -> %s)", tree,
         before.has_version ? before.version : "none",
         now.has_version ? now.version : "none");
  } else {
    status = KTC_PLUGIN_OK;
  }
  free(tree);
  return status;
}

static void local_unload(void* unused) {
  (void)unused;
  forget_all();
  g_host = NULL;
}

static const ktc_source_ops g_source_ops = {
    sizeof(ktc_source_ops),
    KTC_SOURCE_IN_PLACE,
    NULL, /* claim: every "local:" spec is ours */
    local_resolve,
    local_describe,
    local_acquire,
    local_recheck,
    NULL, /* expand: a local tree is always concrete */
    NULL, /* releases: no upstream release list */
};

static const ktc_plugin_info g_info = {
    sizeof(ktc_plugin_info),
    KTC_PLUGIN_ABI_MAJOR,
    KTC_PLUGIN_ABI_MINOR,
    KTC_PLUGIN_KIND_SOURCE,
    "local",
    "1.0.0",
    "a kernel tree on disk, built in place",
    NULL,
    local_unload,
    &g_source_ops,
    NULL,
};

KTC_PLUGIN_DECLARE_QUERY {
  if (host == NULL || info == NULL) {
    return KTC_PLUGIN_E_INVALID;
  }
  if (host->struct_size <
      offsetof(ktc_host_services, set_tree) + sizeof host->set_tree) {
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
