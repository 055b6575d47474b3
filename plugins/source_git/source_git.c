/*
 * source_git: the "git" source scheme. "git:URL@REF" names one commit of a
 * git repository: URL is anything git fetches from (https://, ssh, scp-like
 * "user@host:path", git://, file://, a local path), REF a branch, a tag, a
 * fully qualified ref ("refs/heads/x", "refs/tags/x"), HEAD, or a full
 * commit (40 hex digits, 64 for SHA-256 repositories). The spec splits at
 * its last '@', so URLs that contain '@' need no quoting.
 *
 * resolve() turns REF into a full commit with one `git ls-remote` that
 * asks for exactly the refs REF can name (never the whole remote); a full
 * commit needs no git process at all. A tag counts as the commit it peels
 * to. A name that is both a branch and a tag is refused as ambiguous
 * unless it is given fully qualified. So describing a spec (what a cache
 * hit costs) is one ls-remote and no clone.
 *
 * acquire() fetches exactly that commit with depth 1 into the directory the
 * host gave it, which is the tree: `git init`, `git fetch --depth 1
 * --no-tags URL COMMIT`, `git checkout --detach COMMIT`, and checks that
 * HEAD is the commit. A server that refuses to send a commit by hash
 * (protocol v0 with uploadpack.allowReachableSHA1InWant and
 * allowAnySHA1InWant off) gets the ref by name instead, with depth 1, and
 * the result must still be the resolved commit (otherwise the ref moved
 * and acquire fails with KTC_PLUGIN_E_CHANGED naming both commits); if a
 * shallow fetch fails altogether (a server without shallow support), the
 * ref is fetched in full and the resolved commit taken from its history.
 *
 * The tree keeps its .git directory (a shallow repository with HEAD
 * detached at the commit), so that the kernel's scripts/setlocalversion
 * and other `git describe`-like scripts see a git tree. When REF is a
 * tag, the tag itself is fetched too (refs/tags/NAME, annotated tags with
 * their tag object), so that a tree checked out at a release tag describes
 * as that tag, as a tarball of the release would build.
 *
 * Offline (the host's offline() service; hosts older than ABI minor 3:
 * KTCACHE_OFFLINE=1), a remote repository is neither listed nor fetched
 * (KTC_PLUGIN_E_NETWORK, "git URL: not fetched, ktcache is offline"); a
 * path or a file:// URL still works, and a full commit still resolves
 * with no git process, so its cache hit needs no network.
 */
#ifndef _GNU_SOURCE
#define _XOPEN_SOURCE 700
#endif

#include <ktcache/plugin.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEME_PREFIX "git:"
/* A SHA-1 or SHA-256 object name. */
#define OID_MAX 64
#define SHORT_HASH_LEN 7
#define TAGS_PREFIX "refs/tags/"
#define REFS_PREFIX "refs/"
/* Progress steps of acquire: init, fetch, checkout, verify. */
#define ACQUIRE_STEPS 4

/* Set once by the query, before any operation; read-only afterwards. */
static const ktc_host_services* g_host;

/* A parsed spec; both strings are malloc'd. */
typedef struct git_spec {
  char* url;
  char* ref;
} git_spec;

/* What resolve() found. */
typedef struct resolution {
  /* The commit, lower-case hex. */
  char commit[OID_MAX + 1];
  /* The remote ref that named it ("refs/heads/x", "refs/tags/v1", "HEAD"),
   * "" when REF was a commit. */
  char* remote_ref;
  /* What that ref points at before peeling: a tag object for an annotated
   * tag, else the commit; "" when REF was a commit. */
  char ref_object[OID_MAX + 1];
} resolution;

/* ---------------------------------------------------------------------- */
/* Small helpers                                                          */
/* ---------------------------------------------------------------------- */

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
fail(ktc_plugin_call* call, const char* format, ...) {
  /* Room for a long URL twice over plus the words around it. */
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

/* A malloc'd printf; NULL when out of memory. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static char*
format_alloc(const char* format, ...) {
  va_list args;
  int length;
  char* out;
  va_start(args, format);
  length = vsnprintf(NULL, 0, format, args);
  va_end(args);
  if (length < 0) {
    return NULL;
  }
  out = malloc((size_t)length + 1);
  if (out == NULL) {
    return NULL;
  }
  va_start(args, format);
  vsnprintf(out, (size_t)length + 1, format, args);
  va_end(args);
  return out;
}

static char* copy_range(const char* start, size_t length) {
  char* out = malloc(length + 1);
  if (out == NULL) {
    return NULL;
  }
  memcpy(out, start, length);
  out[length] = '\0';
  return out;
}

static int is_hex_digit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
         (c >= 'A' && c <= 'F');
}

/* Whether text[0, length) is an object name: 40 or 64 hex digits. */
static int is_object_name(const char* text, size_t length) {
  size_t i;
  if (length != 40 && length != 64) {
    return 0;
  }
  for (i = 0; i < length; ++i) {
    if (!is_hex_digit(text[i])) {
      return 0;
    }
  }
  return 1;
}

static int all_hex(const char* text) {
  if (*text == '\0') {
    return 0;
  }
  for (; *text != '\0'; ++text) {
    if (!is_hex_digit(*text)) {
      return 0;
    }
  }
  return 1;
}

/* Copies an object name of `length` characters, lower-cased, to `out`. */
static void copy_oid(char out[OID_MAX + 1], const char* text, size_t length) {
  size_t i;
  for (i = 0; i < length; ++i) {
    char c = text[i];
    out[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
  }
  out[length] = '\0';
}

static int starts_with(const char* text, const char* prefix) {
  return strncmp(text, prefix, strlen(prefix)) == 0;
}

static int ends_with(const char* text, const char* suffix) {
  size_t text_len = strlen(text);
  size_t suffix_len = strlen(suffix);
  return text_len >= suffix_len &&
         strcmp(text + text_len - suffix_len, suffix) == 0;
}

static int check_cancelled(ktc_plugin_call* call) {
  if (g_host->cancelled(call)) {
    fail(call, "cancelled");
    return 1;
  }
  return 0;
}

/* The first failing service status, or OK. */
static int first_failure(int current, int next) {
  return current != KTC_PLUGIN_OK ? current : next;
}

static int out_of_memory(ktc_plugin_call* call, const char* what) {
  fail(call, "%s: out of memory", what);
  return KTC_PLUGIN_E_NOMEM;
}

static int has_identity_service(void) {
  return g_host->struct_size >=
             offsetof(ktc_host_services, identity) + sizeof g_host->identity &&
         g_host->identity != NULL;
}

/* ---------------------------------------------------------------------- */
/* The spec                                                               */
/* ---------------------------------------------------------------------- */

static void free_spec(git_spec* spec) {
  free(spec->url);
  free(spec->ref);
  spec->url = NULL;
  spec->ref = NULL;
}

/*
 * Why `ref` cannot be a ref name, or NULL. A subset of git's
 * check-ref-format rules: enough that every name git would take passes and
 * that nothing reaches git's command line that it would read otherwise
 * (the '^' the ls-remote patterns append, a leading '-').
 */
static const char* bad_ref_reason(const char* ref) {
  const char* p;
  if (ref[0] == '-') {
    return "it starts with '-'";
  }
  if (ref[0] == '/' || ends_with(ref, "/")) {
    return "it starts or ends with '/'";
  }
  if (ends_with(ref, ".") || ends_with(ref, ".lock")) {
    return "it ends with '.' or \".lock\"";
  }
  if (strstr(ref, "..") != NULL || strstr(ref, "//") != NULL ||
      strstr(ref, "@{") != NULL || strstr(ref, "/.") != NULL || ref[0] == '.') {
    return "it contains \"..\", \"//\", \"@{\" or a component starting with "
           "'.'";
  }
  for (p = ref; *p != '\0'; ++p) {
    unsigned char c = (unsigned char)*p;
    if (c < 0x20 || c == 0x7f || c == ' ' || c == '~' || c == '^' || c == ':' ||
        c == '?' || c == '*' || c == '[' || c == '\\') {
      return "it contains a space, a control character or one of ~^:?*[\\";
    }
  }
  return NULL;
}

/* Splits "git:URL@REF" at its last '@'. On failure *spec is empty. */
static int parse_spec(ktc_plugin_call* call, const char* text, git_spec* spec) {
  size_t prefix_len = strlen(SCHEME_PREFIX);
  const char* rest;
  const char* at;
  const char* reason;
  const char* p;

  spec->url = NULL;
  spec->ref = NULL;
  if (text == NULL || strncmp(text, SCHEME_PREFIX, prefix_len) != 0) {
    fail(call, "%s: not a git: spec", text != NULL ? text : "(null)");
    return KTC_PLUGIN_E_INVALID;
  }
  rest = text + prefix_len;
  at = strrchr(rest, '@');
  if (*rest == '\0') {
    fail(call, "%s: no URL and no ref (expected git:URL@REF)", text);
    return KTC_PLUGIN_E_INVALID;
  }
  if (at == NULL) {
    fail(call, "%s: no @REF after the URL (expected git:URL@REF)", text);
    return KTC_PLUGIN_E_INVALID;
  }
  if (at == rest) {
    fail(call, "%s: no URL before the '@' (expected git:URL@REF)", text);
    return KTC_PLUGIN_E_INVALID;
  }
  if (at[1] == '\0') {
    fail(call, "%s: no ref after the last '@' (expected git:URL@REF)", text);
    return KTC_PLUGIN_E_INVALID;
  }
  if (rest[0] == '-') {
    fail(call, "%s: the URL may not start with '-'", text);
    return KTC_PLUGIN_E_INVALID;
  }
  for (p = rest; p < at; ++p) {
    if ((unsigned char)*p < 0x20 || *p == 0x7f) {
      fail(call, "%s: the URL contains a control character", text);
      return KTC_PLUGIN_E_INVALID;
    }
  }
  reason = bad_ref_reason(at + 1);
  if (reason != NULL) {
    fail(call,
         "%s: '%s' is not a ref name: %s (expected git:URL@REF, split at "
         "the last '@'; a URL containing '@' still needs @REF after it)",
         text, at + 1, reason);
    return KTC_PLUGIN_E_INVALID;
  }
  spec->url = copy_range(rest, (size_t)(at - rest));
  spec->ref = copy_range(at + 1, strlen(at + 1));
  if (spec->url == NULL || spec->ref == NULL) {
    free_spec(spec);
    return out_of_memory(call, text);
  }
  return KTC_PLUGIN_OK;
}

/* ---------------------------------------------------------------------- */
/* Git                                                                    */
/* ---------------------------------------------------------------------- */

/* Logs the command at debug level (a URL may carry a token; so does git's
 * own trace, and the debug log is the user's). */
static void log_command(ktc_plugin_call* call, const char* const* argv) {
  char line[4096];
  size_t used = 0;
  const char* const* argument;
  line[0] = '\0';
  for (argument = argv; *argument != NULL && used + 1 < sizeof line;
       ++argument) {
    int written = snprintf(line + used, sizeof line - used, "%s%s",
                           used == 0 ? "" : " ", *argument);
    if (written < 0) {
      break;
    }
    used += (size_t)written;
  }
  logf_(call, KTC_PLUGIN_LOG_DEBUG, "running %s", line);
}

/*
 * Runs git (no shell; its stderr goes to the host's debug log). On
 * KTC_PLUGIN_OK *output (NUL-terminated; free with free_buffer) and
 * *exit_status are set, whatever git's status was.
 */
static int run_git(ktc_plugin_call* call,
                   const char* const* argv,
                   char** output,
                   int* exit_status) {
  int status;
  *output = NULL;
  *exit_status = -1;
  log_command(call, argv);
  status = g_host->run(call, argv, NULL, output, exit_status);
  if (status == KTC_PLUGIN_E_NOTFOUND) {
    *output = NULL;
    fail(call, "cannot run git: it is not installed or not in PATH");
    return KTC_PLUGIN_E_GENERIC;
  }
  if (status != KTC_PLUGIN_OK) {
    /* The host's message says why git could not be run. */
    *output = NULL;
    return status;
  }
  return KTC_PLUGIN_OK;
}

/* Runs git and only wants its exit status in *exit_status. */
static int run_git_status(ktc_plugin_call* call,
                          const char* const* argv,
                          int* exit_status) {
  char* output = NULL;
  int status = run_git(call, argv, &output, exit_status);
  g_host->free_buffer(output);
  return status;
}

/*
 * `git -C DIR rev-parse --verify --quiet NAME^{commit}` into `oid`; "" when
 * NAME names no commit there.
 */
static int rev_parse_commit(ktc_plugin_call* call,
                            const char* dir,
                            const char* name,
                            char oid[OID_MAX + 1]) {
  char* expression = format_alloc("%s^{commit}", name);
  char* output = NULL;
  int exit_status = 0;
  int status;
  size_t length;

  oid[0] = '\0';
  if (expression == NULL) {
    return out_of_memory(call, dir);
  }
  {
    const char* argv[] = {"git",      "-C",      dir,        "rev-parse",
                          "--verify", "--quiet", expression, NULL};
    status = run_git(call, argv, &output, &exit_status);
  }
  free(expression);
  if (status != KTC_PLUGIN_OK) {
    return status;
  }
  length = strcspn(output, "\n");
  if (exit_status == 0 && is_object_name(output, length)) {
    copy_oid(oid, output, length);
  }
  g_host->free_buffer(output);
  return KTC_PLUGIN_OK;
}

/* ---------------------------------------------------------------------- */
/* Resolving                                                              */
/* ---------------------------------------------------------------------- */

static void free_resolution(resolution* found) {
  free(found->remote_ref);
  found->remote_ref = NULL;
}

/* One ref ls-remote printed, if it is one we asked for. */
typedef struct wanted_ref {
  const char* name; /* borrowed; NULL ends the list */
  char oid[OID_MAX + 1];
} wanted_ref;

/* Fills the oids of `wanted` from ls-remote's "<oid>\t<name>\n" lines, by
 * exact name: git matches patterns by their tail, so "refs/heads/x" also
 * matches "refs/remotes/origin/refs/heads/x". */
static void match_lines(const char* output, wanted_ref* wanted) {
  const char* line = output;
  while (*line != '\0') {
    size_t length = strcspn(line, "\n");
    const char* tab = memchr(line, '\t', length);
    if (tab != NULL && is_object_name(line, (size_t)(tab - line))) {
      const char* name = tab + 1;
      size_t name_len = length - (size_t)(name - line);
      wanted_ref* entry;
      for (entry = wanted; entry->name != NULL; ++entry) {
        if (strlen(entry->name) == name_len &&
            memcmp(entry->name, name, name_len) == 0) {
          copy_oid(entry->oid, line, (size_t)(tab - line));
        }
      }
    }
    line += length;
    if (*line == '\n') {
      ++line;
    }
  }
}

/* Short forms of oids for messages. */
static void short_oid(char out[SHORT_HASH_LEN + 1], const char* oid) {
  memcpy(out, oid, SHORT_HASH_LEN);
  out[SHORT_HASH_LEN] = '\0';
}

/*
 * Whether the host is offline: its offline() service (ABI minor 3), else
 * KTCACHE_OFFLINE=1 (exactly "1") in the environment.
 */
static int host_offline(ktc_plugin_call* call) {
  const char* value;
  if (g_host->struct_size >=
          offsetof(ktc_host_services, offline) + sizeof g_host->offline &&
      g_host->offline != NULL) {
    return g_host->offline(call) != 0;
  }
  value = getenv("KTCACHE_OFFLINE");
  return value != NULL && strcmp(value, "1") == 0;
}

/*
 * Whether git reaches `url` without the network: a file:// URL or a path.
 * "scheme://..." is a URL; "host:path" with its ':' before any '/' is
 * git's scp-like remote; anything else is a path.
 */
static int is_local_url(const char* url) {
  const char* scheme_end = strstr(url, "://");
  const char* slash = strchr(url, '/');
  const char* colon = strchr(url, ':');
  if (scheme_end != NULL && (slash == NULL || scheme_end < slash)) {
    return starts_with(url, "file://");
  }
  return colon == NULL || (slash != NULL && slash < colon);
}

/* Refuses to reach a remote repository while the host is offline. */
static int require_online(ktc_plugin_call* call, const char* url) {
  if (!is_local_url(url) && host_offline(call)) {
    fail(call, "git %s: not fetched, ktcache is offline (KTCACHE_OFFLINE=1)",
         url);
    return KTC_PLUGIN_E_NETWORK;
  }
  return KTC_PLUGIN_OK;
}

/*
 * Asks the remote for the refs REF can name, and picks the one it names:
 * REF itself when qualified ("refs/...") or HEAD, else refs/heads/REF or
 * refs/tags/REF (both: ambiguous). A tag's peeled commit wins over the tag.
 */
static int ls_remote(ktc_plugin_call* call,
                     const char* spec_text,
                     const git_spec* spec,
                     resolution* found) {
  char* names[2] = {NULL, NULL};
  char* peeled = NULL;
  wanted_ref wanted[4];
  const char* argv[8];
  size_t argc = 0;
  size_t count = 0;
  size_t i;
  char* output = NULL;
  int exit_status = 0;
  int status = KTC_PLUGIN_OK;
  int qualified = starts_with(spec->ref, REFS_PREFIX);
  int head = strcmp(spec->ref, "HEAD") == 0;
  const wanted_ref* chosen = NULL;
  const wanted_ref* chosen_peeled = NULL;

  status = require_online(call, spec->url);
  if (status != KTC_PLUGIN_OK) {
    return status;
  }
  memset(wanted, 0, sizeof wanted);
  if (qualified || head) {
    names[0] = copy_range(spec->ref, strlen(spec->ref));
    count = 1;
  } else {
    names[0] = format_alloc("refs/heads/%s", spec->ref);
    names[1] = format_alloc(TAGS_PREFIX "%s", spec->ref);
    count = 2;
  }
  for (i = 0; i < count; ++i) {
    if (names[i] == NULL) {
      status = out_of_memory(call, spec_text);
      goto done;
    }
  }
  /* HEAD and branches peel to themselves; only ask for what can peel. */
  if (!head) {
    const char* tag = qualified ? names[0] : names[1];
    peeled = format_alloc("%s^{}", tag);
    if (peeled == NULL) {
      status = out_of_memory(call, spec_text);
      goto done;
    }
  }

  argv[argc++] = "git";
  argv[argc++] = "ls-remote";
  argv[argc++] = spec->url;
  for (i = 0; i < count; ++i) {
    wanted[i].name = names[i];
    argv[argc++] = names[i];
  }
  if (peeled != NULL) {
    wanted[count].name = peeled;
    argv[argc++] = peeled;
  }
  argv[argc] = NULL;

  status = run_git(call, argv, &output, &exit_status);
  if (status != KTC_PLUGIN_OK) {
    goto done;
  }
  if (exit_status != 0) {
    fail(call,
         "%s: cannot list the refs of %s: git ls-remote exited with status %d "
         "(the remote is unreachable, is not a git repository, or refused "
         "access; git's message is in the debug log, -vv)",
         spec_text, spec->url, exit_status);
    status = KTC_PLUGIN_E_NETWORK;
    goto done;
  }
  match_lines(output, wanted);

  if (qualified || head) {
    if (wanted[0].oid[0] != '\0') {
      chosen = &wanted[0];
      chosen_peeled = peeled != NULL ? &wanted[1] : NULL;
    }
  } else {
    const wanted_ref* branch = &wanted[0];
    const wanted_ref* tag = &wanted[1];
    if (branch->oid[0] != '\0' && tag->oid[0] != '\0') {
      char branch_short[SHORT_HASH_LEN + 1];
      char tag_short[SHORT_HASH_LEN + 1];
      short_oid(branch_short, branch->oid);
      short_oid(tag_short, wanted[2].oid[0] != '\0' ? wanted[2].oid : tag->oid);
      fail(call,
           "%s: '%s' is ambiguous at %s: both the branch %s (%s) and the tag "
           "%s (%s) exist; name one of them in full",
           spec_text, spec->ref, spec->url, branch->name, branch_short,
           tag->name, tag_short);
      status = KTC_PLUGIN_E_INVALID;
      goto done;
    }
    if (branch->oid[0] != '\0') {
      chosen = branch;
    } else if (tag->oid[0] != '\0') {
      chosen = tag;
      chosen_peeled = &wanted[2];
    }
  }
  if (chosen == NULL) {
    int abbreviated = all_hex(spec->ref) && strlen(spec->ref) < 40;
    fail(call, "%s: no ref %s at %s%s", spec_text, spec->ref, spec->url,
         abbreviated ? " (an abbreviated commit is not enough: give all 40 "
                       "hex digits)"
                     : "");
    status = KTC_PLUGIN_E_NOTFOUND;
    goto done;
  }
  found->remote_ref = copy_range(chosen->name, strlen(chosen->name));
  if (found->remote_ref == NULL) {
    status = out_of_memory(call, spec_text);
    goto done;
  }
  strcpy(found->ref_object, chosen->oid);
  strcpy(found->commit, chosen_peeled != NULL && chosen_peeled->oid[0] != '\0'
                            ? chosen_peeled->oid
                            : chosen->oid);
  logf_(call, KTC_PLUGIN_LOG_DEBUG, "%s: %s is %s at %s", spec_text,
        found->remote_ref, found->commit, spec->url);

done:
  g_host->free_buffer(output);
  for (i = 0; i < 2; ++i) {
    free(names[i]);
  }
  free(peeled);
  return status;
}

/* Resolves a parsed spec: a full commit as is, anything else remotely. */
static int resolve_spec(ktc_plugin_call* call,
                        const char* spec_text,
                        const git_spec* spec,
                        resolution* found) {
  found->commit[0] = '\0';
  found->remote_ref = NULL;
  found->ref_object[0] = '\0';
  if (is_object_name(spec->ref, strlen(spec->ref))) {
    copy_oid(found->commit, spec->ref, strlen(spec->ref));
    return KTC_PLUGIN_OK;
  }
  return ls_remote(call, spec_text, spec, found);
}

/*
 * What resolve() recorded for this call, when the host can say (identity()
 * of ABI 1.2); otherwise, or when it is missing, resolves again.
 */
static int recorded_or_resolve(ktc_plugin_call* call,
                               const char* spec_text,
                               const git_spec* spec,
                               resolution* found) {
  const char* commit = NULL;
  found->commit[0] = '\0';
  found->remote_ref = NULL;
  found->ref_object[0] = '\0';
  if (has_identity_service()) {
    commit = g_host->identity(call, "commit");
  }
  if (commit != NULL && is_object_name(commit, strlen(commit))) {
    const char* remote_ref = g_host->identity(call, "remote_ref");
    const char* ref_object = g_host->identity(call, "ref_object");
    copy_oid(found->commit, commit, strlen(commit));
    if (remote_ref != NULL && remote_ref[0] != '\0') {
      found->remote_ref = copy_range(remote_ref, strlen(remote_ref));
      if (found->remote_ref == NULL) {
        return out_of_memory(call, spec_text);
      }
    }
    if (ref_object != NULL && is_object_name(ref_object, strlen(ref_object))) {
      copy_oid(found->ref_object, ref_object, strlen(ref_object));
    }
    return KTC_PLUGIN_OK;
  }
  logf_(call, KTC_PLUGIN_LOG_DEBUG,
        "%s: the host keeps no resolved commit for this call; resolving "
        "again",
        spec_text);
  return resolve_spec(call, spec_text, spec, found);
}

/* ---------------------------------------------------------------------- */
/* Fetching                                                               */
/* ---------------------------------------------------------------------- */

/* The tag REF resolved to ("refs/tags/x"), or NULL. */
static const char* resolved_tag(const resolution* found) {
  return found->remote_ref != NULL &&
                 starts_with(found->remote_ref, TAGS_PREFIX)
             ? found->remote_ref
             : NULL;
}

/*
 * The first attempt: the commit by hash, with depth 1. For a tag, the tag
 * comes along into refs/tags/NAME: an annotated tag's object by hash in
 * the same fetch, a lightweight tag as a local ref afterwards (it is the
 * commit).
 */
static int fetch_by_hash(ktc_plugin_call* call,
                         const char* dir,
                         const char* url,
                         const resolution* found,
                         int* fetched) {
  const char* tag = resolved_tag(found);
  char* tag_refspec = NULL;
  int exit_status = 0;
  int status;

  *fetched = 0;
  if (tag != NULL && found->ref_object[0] != '\0' &&
      strcmp(found->ref_object, found->commit) != 0) {
    tag_refspec = format_alloc("%s:%s", found->ref_object, tag);
    if (tag_refspec == NULL) {
      return out_of_memory(call, dir);
    }
  }
  {
    const char* argv[] = {"git",     "-C",          dir,         "fetch",
                          "--quiet", "--depth",     "1",         "--no-tags",
                          url,       found->commit, tag_refspec, NULL};
    status = run_git_status(call, argv, &exit_status);
  }
  free(tag_refspec);
  if (status != KTC_PLUGIN_OK) {
    return status;
  }
  if (exit_status != 0) {
    logf_(call, KTC_PLUGIN_LOG_INFO,
          "fetching %s by hash from %s failed (git fetch exited with status "
          "%d)",
          found->commit, url, exit_status);
    return KTC_PLUGIN_OK;
  }
  *fetched = 1;
  /* Only a tag known to be lightweight: an annotated one unknown here
   * would otherwise become a lightweight tag. */
  if (tag != NULL && strcmp(found->ref_object, found->commit) == 0) {
    const char* argv[] = {"git",        "-C", dir,           "update-ref",
                          "--no-deref", tag,  found->commit, NULL};
    status = run_git_status(call, argv, &exit_status);
    if (status == KTC_PLUGIN_OK && exit_status != 0) {
      /* The tree is right without it; only describe-like scripts miss it. */
      logf_(call, KTC_PLUGIN_LOG_WARN, "%s: cannot create the local tag %s",
            dir, tag);
    }
  }
  return status;
}

/*
 * The fallbacks: the resolved ref by name, with depth 1 (`depth` non-zero)
 * or in full. *fetched says whether git succeeded; *tip is what the ref
 * names now ("" when unknown).
 */
static int fetch_by_name(ktc_plugin_call* call,
                         const char* dir,
                         const char* url,
                         const resolution* found,
                         int depth,
                         int* fetched,
                         char tip[OID_MAX + 1]) {
  const char* tag = resolved_tag(found);
  char* refspec;
  int exit_status = 0;
  int status;

  *fetched = 0;
  tip[0] = '\0';
  /* A tag is kept as refs/tags/NAME (forced: an empty repository has none,
   * but a tag that moved must not stop the fetch before it is compared). */
  refspec = tag != NULL
                ? format_alloc("+%s:%s", tag, tag)
                : copy_range(found->remote_ref, strlen(found->remote_ref));
  if (refspec == NULL) {
    return out_of_memory(call, dir);
  }
  if (depth) {
    const char* argv[] = {"git",     "-C",      dir, "fetch",
                          "--quiet", "--depth", "1", "--no-tags",
                          url,       refspec,   NULL};
    status = run_git_status(call, argv, &exit_status);
  } else {
    const char* argv[] = {"git",       "-C", dir,     "fetch", "--quiet",
                          "--no-tags", url,  refspec, NULL};
    status = run_git_status(call, argv, &exit_status);
  }
  free(refspec);
  if (status != KTC_PLUGIN_OK) {
    return status;
  }
  if (exit_status != 0) {
    logf_(call, KTC_PLUGIN_LOG_INFO,
          "fetching %s%s from %s failed (git fetch exited with status %d)",
          found->remote_ref, depth ? " with depth 1" : "", url, exit_status);
    return KTC_PLUGIN_OK;
  }
  *fetched = 1;
  return rev_parse_commit(call, dir, "FETCH_HEAD", tip);
}

/* Gets the resolved commit into `dir`, by hash, else by name. */
static int fetch_commit(ktc_plugin_call* call,
                        const char* spec_text,
                        const char* dir,
                        const char* url,
                        const resolution* found) {
  char tip[OID_MAX + 1];
  char have[OID_MAX + 1];
  int fetched = 0;
  int status = fetch_by_hash(call, dir, url, found, &fetched);

  if (status != KTC_PLUGIN_OK || fetched) {
    return status;
  }
  if (check_cancelled(call)) {
    return KTC_PLUGIN_E_CANCELLED;
  }
  if (found->remote_ref == NULL) {
    fail(call,
         "%s: cannot fetch the commit %s from %s (git fetch exited with an "
         "error): the remote does not have it, refuses to send a commit by "
         "hash (uploadpack.allowReachableSHA1InWant), or cannot be reached; "
         "name a branch or tag that points at it instead",
         spec_text, found->commit, url);
    return KTC_PLUGIN_E_NOTFOUND;
  }
  logf_(call, KTC_PLUGIN_LOG_INFO, "fetching %s by name with depth 1 instead",
        found->remote_ref);
  status = fetch_by_name(call, dir, url, found, 1, &fetched, tip);
  if (status != KTC_PLUGIN_OK) {
    return status;
  }
  if (!fetched) {
    if (check_cancelled(call)) {
      return KTC_PLUGIN_E_CANCELLED;
    }
    logf_(call, KTC_PLUGIN_LOG_INFO,
          "fetching %s in full (the last resort: a shallow fetch failed)",
          found->remote_ref);
    status = fetch_by_name(call, dir, url, found, 0, &fetched, tip);
    if (status != KTC_PLUGIN_OK) {
      return status;
    }
    if (!fetched) {
      fail(call,
           "%s: cannot fetch %s (%s) from %s: git fetch failed by hash, by "
           "name with depth 1 and in full (git's messages are in the debug "
           "log, -vv)",
           spec_text, found->remote_ref, found->commit, url);
      return KTC_PLUGIN_E_NETWORK;
    }
    /* A full history may hold the resolved commit even though the ref
     * moved on: that commit is the one asked for. */
    status = rev_parse_commit(call, dir, found->commit, have);
    if (status != KTC_PLUGIN_OK) {
      return status;
    }
    if (strcmp(have, found->commit) == 0) {
      return KTC_PLUGIN_OK;
    }
  } else if (strcmp(tip, found->commit) == 0) {
    return KTC_PLUGIN_OK;
  }
  fail(call,
       "%s: %s at %s moved from %s (resolved) to %s before it could be "
       "fetched; describe the spec again",
       spec_text, found->remote_ref, url, found->commit,
       tip[0] != '\0' ? tip : "an unknown commit");
  return KTC_PLUGIN_E_CHANGED;
}

/* ---------------------------------------------------------------------- */
/* Operations                                                             */
/* ---------------------------------------------------------------------- */

static int git_resolve(void* unused, ktc_plugin_call* call, const char* spec) {
  git_spec parsed;
  resolution found;
  int status;
  (void)unused;

  status = parse_spec(call, spec, &parsed);
  if (status != KTC_PLUGIN_OK) {
    return status;
  }
  status = resolve_spec(call, spec, &parsed, &found);
  if (status == KTC_PLUGIN_OK) {
    status = g_host->set_identity(call, "commit", found.commit);
    status =
        first_failure(status, g_host->set_identity(call, "ref", parsed.ref));
    status =
        first_failure(status, g_host->set_identity(call, "url", parsed.url));
    status = first_failure(
        status, g_host->set_identity(call, "remote_ref", found.remote_ref));
    status = first_failure(
        status, g_host->set_identity(
                    call, "ref_object",
                    found.ref_object[0] != '\0' ? found.ref_object : NULL));
  }
  free_resolution(&found);
  free_spec(&parsed);
  return status;
}

static int git_describe(void* unused, ktc_plugin_call* call, const char* spec) {
  git_spec parsed;
  resolution found;
  char short_hash[SHORT_HASH_LEN + 1];
  int status;
  (void)unused;

  status = parse_spec(call, spec, &parsed);
  if (status != KTC_PLUGIN_OK) {
    return status;
  }
  /* describe() runs on resolve()'s call: its identity is the resolution,
   * so a describe costs no second ls-remote. */
  status = recorded_or_resolve(call, spec, &parsed, &found);
  if (status == KTC_PLUGIN_OK) {
    short_oid(short_hash, found.commit);
    status = g_host->payload_string(call, "git_hash", short_hash);
    status =
        first_failure(status, g_host->payload_string(call, "ref", parsed.ref));
    status = first_failure(
        status, g_host->payload_string(call, "git_commit", found.commit));
    status =
        first_failure(status, g_host->payload_string(call, "url", parsed.url));
    status = first_failure(status, g_host->add_key_part(call, parsed.ref));
    status = first_failure(status, g_host->add_key_part(call, "git"));
    status = first_failure(status, g_host->add_key_part(call, short_hash));
  }
  free_resolution(&found);
  free_spec(&parsed);
  return status;
}

static void progress(ktc_plugin_call* call, uint64_t step) {
  g_host->progress(call, "fetch", step, ACQUIRE_STEPS);
}

static int acquire_into(ktc_plugin_call* call,
                        const char* spec,
                        const git_spec* parsed,
                        const resolution* found,
                        const char* dest_dir) {
  char head[OID_MAX + 1];
  int exit_status = 0;
  int status;

  progress(call, 0);
  {
    /* The branch name only quiets git's advice: HEAD ends up detached. */
    const char* argv[] = {"git",  "-c", "init.defaultBranch=ktcache",
                          "init", "-q", dest_dir,
                          NULL};
    status = run_git_status(call, argv, &exit_status);
  }
  if (status != KTC_PLUGIN_OK) {
    return status;
  }
  if (exit_status != 0) {
    fail(call,
         "%s: cannot create a git repository in %s (git init exited "
         "with status %d)",
         spec, dest_dir, exit_status);
    return KTC_PLUGIN_E_IO;
  }
  progress(call, 1);
  if (check_cancelled(call)) {
    return KTC_PLUGIN_E_CANCELLED;
  }

  status = fetch_commit(call, spec, dest_dir, parsed->url, found);
  if (status != KTC_PLUGIN_OK) {
    return status;
  }
  progress(call, 2);
  if (check_cancelled(call)) {
    return KTC_PLUGIN_E_CANCELLED;
  }

  {
    const char* argv[] = {"git",     "-C",       dest_dir,      "checkout",
                          "--quiet", "--detach", found->commit, NULL};
    status = run_git_status(call, argv, &exit_status);
  }
  if (status != KTC_PLUGIN_OK) {
    return status;
  }
  if (exit_status != 0) {
    fail(call,
         "%s: cannot check out %s in %s (git checkout exited with "
         "status %d)",
         spec, found->commit, dest_dir, exit_status);
    return KTC_PLUGIN_E_IO;
  }
  progress(call, 3);
  if (check_cancelled(call)) {
    return KTC_PLUGIN_E_CANCELLED;
  }

  status = rev_parse_commit(call, dest_dir, "HEAD", head);
  if (status != KTC_PLUGIN_OK) {
    return status;
  }
  if (strcmp(head, found->commit) != 0) {
    fail(call, "%s: HEAD in %s is %s, not the resolved commit %s", spec,
         dest_dir, head[0] != '\0' ? head : "missing", found->commit);
    return KTC_PLUGIN_E_CHANGED;
  }
  progress(call, 4);
  logf_(call, KTC_PLUGIN_LOG_DEBUG, "%s: %s checked out in %s", spec,
        found->commit, dest_dir);
  return KTC_PLUGIN_OK;
}

static int git_acquire(void* unused,
                       ktc_plugin_call* call,
                       const char* spec,
                       const char* dest_dir) {
  git_spec parsed;
  resolution found;
  int status;
  (void)unused;

  if (dest_dir == NULL || dest_dir[0] == '\0') {
    fail(call, "%s: no destination directory given",
         spec != NULL ? spec : "(null)");
    return KTC_PLUGIN_E_INVALID;
  }
  status = parse_spec(call, spec, &parsed);
  if (status != KTC_PLUGIN_OK) {
    return status;
  }
  status = recorded_or_resolve(call, spec, &parsed, &found);
  if (status == KTC_PLUGIN_OK) {
    if (check_cancelled(call)) {
      status = KTC_PLUGIN_E_CANCELLED;
    } else {
      status = require_online(call, parsed.url);
    }
    if (status == KTC_PLUGIN_OK) {
      status = acquire_into(call, spec, &parsed, &found, dest_dir);
    }
  }
  free_resolution(&found);
  free_spec(&parsed);
  return status;
}

static void git_unload(void* unused) {
  (void)unused;
  g_host = NULL;
}

static const ktc_source_ops g_source_ops = {
    sizeof(ktc_source_ops),
    KTC_SOURCE_NETWORK,
    NULL, /* claim: every "git:" spec is ours */
    git_resolve,
    git_describe,
    git_acquire,
    NULL, /* recheck: a fetched commit does not change */
    NULL, /* expand: a spec names one commit */
    NULL, /* releases: kernel.org lists tarballs, not commits */
};

static const ktc_plugin_info g_info = {
    sizeof(ktc_plugin_info),
    KTC_PLUGIN_ABI_MAJOR,
    KTC_PLUGIN_ABI_MINOR,
    KTC_PLUGIN_KIND_SOURCE,
    "git",
    "1.0.0",
    "a commit of a git repository (git:URL@REF), fetched with depth 1",
    NULL,
    git_unload,
    &g_source_ops,
    NULL,
};

KTC_PLUGIN_DECLARE_QUERY {
  if (host == NULL || info == NULL) {
    return KTC_PLUGIN_E_INVALID;
  }
  if (host->struct_size <
      offsetof(ktc_host_services, add_key_part) + sizeof host->add_key_part) {
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
