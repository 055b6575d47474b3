/*
 * ktcache.h: the host C API of libktcache.
 *
 * libktcache is a cache of built Linux kernel images shared by every process
 * on a machine. This header is the stable interface for host applications
 * (test harnesses, the ktcache CLI, language bindings). It is plain C99 and
 * exposes no C++ type; nothing thrown inside the library crosses it.
 *
 * Conventions, for every function below unless its comment says otherwise:
 *  - Functions return int: KTC_OK (0) on success, a negative ktc_status on
 *    failure. After a failure, ktc_error_message() describes it in one line.
 *  - Output parameters come first and are set only on success.
 *  - Strings returned through `char **` are allocated by the library and
 *    are freed with ktc_free(). Strings returned as `const char *` are
 *    borrowed from the handle they came from and live as long as it does.
 *  - Option structs start with `struct_size`. Initialise them with their
 *    KTC_*_INIT macro; fields are only ever appended (see @since).
 *  - Handles are not thread-safe unless stated; distinct handles may be used
 *    from distinct threads at once, and distinct processes may share a cache
 *    directory freely.
 */
#ifndef KTCACHE_KTCACHE_H
#define KTCACHE_KTCACHE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(KTC_BUILDING_LIBRARY)
#define KTC_API __attribute__((visibility("default")))
#else
#define KTC_API
#endif

/** Compile-time version of this header. @since 1.0 */
#define KTC_VERSION_MAJOR 1
#define KTC_VERSION_MINOR 4
#define KTC_VERSION_PATCH 0

/**
 * Status codes. Values are pinned forever: never renumbered, never reused.
 * @since 1.0
 */
typedef enum ktc_status {
  KTC_OK = 0,
  /** A failure with no more specific code. */
  KTC_E_GENERIC = -1,
  /** A bad argument: NULL where a value is needed, an invalid key, a
   * malformed JSON document, a struct_size smaller than the first release. */
  KTC_E_INVALID = -2,
  /** The key, entry or file asked for does not exist. */
  KTC_E_NOTFOUND = -3,
  /** A lock could not be taken in time; the message names the holders. */
  KTC_E_LOCKED = -4,
  /** An entry exists but its metadata or files are damaged. */
  KTC_E_CORRUPT = -5,
  /** A system call failed (permissions, read-only filesystem, ...). */
  KTC_E_IO = -6,
  /** Not enough free space (checked before copying, or ENOSPC/EDQUOT). */
  KTC_E_NOSPC = -7,
  /** A struct larger than this library knows carries non-zero bytes past
   * the part the library understands. */
  KTC_E_VERSION = -8,
  /** Memory could not be allocated. */
  KTC_E_NOMEM = -9,
  /** A bug in libktcache; the message says where. */
  KTC_E_INTERNAL = -10,
  /** The cache lives on a filesystem where flock(2) is unreliable. */
  KTC_E_UNSUPPORTED = -11,
  /** verify: an artifact's size or SHA-256 differs from its metadata. */
  KTC_E_MISMATCH = -12,
  /** verify: the entry records no hashes (for example, ktstr wrote it). */
  KTC_E_UNVERIFIABLE = -13,
  /** The cache directory cannot be resolved from the environment (HOME
   * unset, empty, "/" or relative). */
  KTC_E_ENV = -14,
  /** No usable plugin for a scheme or policy, or a plugin's operation
   * failed; the message names the plugin's file and the cause.
   * @since 1.1 */
  KTC_E_PLUGIN = -15,
  /** The caller's cancel callback asked to stop, and the operation stopped
   * (a build's make and its children are killed). @since 1.3 */
  KTC_E_CANCELLED = -16,
  /** A kernel build failed (configure or make); the message has the
   * failing step and the log's path. @since 1.3 */
  KTC_E_BUILD = -17,
  /** A download or a remote lookup failed. @since 1.3 */
  KTC_E_NETWORK = -18
} ktc_status;

/**
 * The library's version as "MAJOR.MINOR.PATCH".
 * @return a static string; never NULL.
 * @since 1.0
 */
KTC_API const char* ktc_version(void);

/**
 * A static, human-readable name for a status code ("not found", ...).
 * @return a static string; never NULL (unknown codes give "unknown status").
 * @since 1.0
 */
KTC_API const char* ktc_strerror(int status);

/**
 * The message of the last failure on the calling thread.
 *
 * One line naming the object and the cause, without a trailing newline.
 * @return never NULL: "no error" when nothing failed yet. The string is
 *         owned by the library and valid until the next libktcache call on
 *         this thread.
 * @since 1.0
 */
KTC_API const char* ktc_error_message(void);

/**
 * Frees memory the library allocated and handed out through `char **`.
 * NULL is accepted and ignored.
 * @since 1.0
 */
KTC_API void ktc_free(void* ptr);

/** Log levels; a higher value is more detailed. @since 1.0 */
typedef enum ktc_log_level {
  KTC_LOG_ERROR = 1,
  KTC_LOG_WARN = 2,
  KTC_LOG_INFO = 3,
  KTC_LOG_DEBUG = 4,
  KTC_LOG_TRACE = 5
} ktc_log_level;

/**
 * A log sink. `message` is one line without a trailing newline, valid only
 * during the call. It may be called from any thread that is inside a
 * libktcache call, concurrently; it MUST NOT call back into libktcache.
 * @since 1.0
 */
typedef void (*ktc_log_fn)(int level, const char* message, void* userdata);

/**
 * Installs the process-wide log sink. Messages more detailed than
 * `max_level` are not formatted at all. The library never prints; with no
 * callback installed (the default) it logs nothing. Pass NULL to remove.
 * Thread-safe.
 * @since 1.0
 */
KTC_API void
ktc_log_set_callback(int max_level, ktc_log_fn callback, void* userdata);

/* ---------------------------------------------------------------------- */
/* Locating the cache                                                     */
/* ---------------------------------------------------------------------- */

/**
 * Resolves the default cache root without creating anything.
 *
 * KTCACHE_DIR verbatim when set and non-empty, else
 * $XDG_CACHE_HOME/ktcache/kernels, else $HOME/.cache/ktcache/kernels.
 * HOME is validated: unset, empty, "/" and relative values are each refused
 * with their own message. The environment is read afresh on every call.
 * @param out receives the path; free with ktc_free().
 * @return KTC_OK, KTC_E_ENV, KTC_E_INVALID (out is NULL).
 * @since 1.0
 */
KTC_API int ktc_default_root(char** out);

/**
 * Resolves a sibling root under the same cascade, with `suffix` in place of
 * "kernels" ($XDG_CACHE_HOME/ktcache/<suffix>, $HOME/.cache/ktcache/<suffix>).
 * KTCACHE_DIR, when set, is used verbatim whatever the suffix, as the default
 * root is. `suffix` must be a single non-empty path component.
 * @param out receives the path; free with ktc_free().
 * @return KTC_OK, KTC_E_ENV, KTC_E_INVALID.
 * @since 1.0
 */
KTC_API int ktc_resolve_root(const char* suffix, char** out);

/* ---------------------------------------------------------------------- */
/* Keys                                                                   */
/* ---------------------------------------------------------------------- */

/**
 * Checks a cache key. Keys are directory names: non-empty, at most
 * KTC_KEY_MAX bytes, no path separator, no "..", no ':', no control
 * character, no leading '.' or whitespace-only value.
 * @return KTC_OK or KTC_E_INVALID (the message says which rule).
 * @since 1.0
 */
KTC_API int ktc_key_validate(const char* key);

/** The longest key accepted, in bytes. @since 1.0 */
#define KTC_KEY_MAX 200

/**
 * Composes a valid key from parts joined with '-'. Each part is made safe:
 * characters outside [A-Za-z0-9._+,=~] (a '/' in a git ref, say) become '_',
 * ".." becomes "_.", and a leading '.' becomes '_'. A part that had to be
 * changed gets an 8-hex digest of its original text appended, so
 * "feature/x" and "feature_x" give different keys. A key longer than
 * KTC_KEY_MAX is shortened and ends with a digest of the whole.
 * @param out receives the key; free with ktc_free().
 * @return KTC_OK, KTC_E_INVALID (no parts, a NULL or empty part).
 * @since 1.0
 */
KTC_API int ktc_key_compose(char** out, const char* const* parts, size_t count);

/* ---------------------------------------------------------------------- */
/* Opening a cache                                                        */
/* ---------------------------------------------------------------------- */

/** An open cache directory. @since 1.0 */
typedef struct ktc_cache ktc_cache;

/** ktc_open_options.flags. @since 1.0 */
enum {
  /** Use the cache even on NFS, CIFS, Ceph, AFS, FUSE, 9p, Lustre or GPFS,
   * where flock(2) may be unreliable. Also set by KTCACHE_ALLOW_NETWORK_FS=1
   * in the environment. */
  KTC_OPEN_ALLOW_NETWORK_FS = 1u << 0,
  /** Use only what is on disk: no download, no git ls-remote or fetch of a
   * remote repository, no releases.json refresh. What needs the network
   * fails with KTC_E_NETWORK and a message saying ktcache is offline. Also
   * set by KTCACHE_OFFLINE=1 in the environment. @since 1.4 */
  KTC_OPEN_OFFLINE = 1u << 1
};

/** Options for ktc_cache_open(). @since 1.0 */
typedef struct ktc_open_options {
  uint32_t struct_size;
  /** KTC_OPEN_* bits. */
  uint32_t flags;
  /** The cache root; NULL resolves it as ktc_default_root() does. */
  const char* root;
  /** How long store waits for the entry's exclusive lock; 0 = 60000. */
  uint32_t store_lock_timeout_ms;
  /** How long a leased lookup or verify waits for the shared lock;
   * 0 = 10000. */
  uint32_t shared_lock_timeout_ms;
} ktc_open_options;

#define KTC_OPEN_OPTIONS_INIT                                                  \
  { sizeof(ktc_open_options), 0, NULL, 0, 0 }

/**
 * Opens a cache. Nothing is created on disk: the root and its .locks/
 * directory appear with the first lock or store.
 * @param out receives the handle; free with ktc_cache_free().
 * @param options may be NULL for defaults.
 * @return KTC_OK, KTC_E_ENV (root unresolvable), KTC_E_INVALID,
 *         KTC_E_VERSION (options larger than known with non-zero tail).
 * @since 1.0
 */
KTC_API int ktc_cache_open(ktc_cache** out, const ktc_open_options* options);

/** Closes a cache handle. Entries obtained from it must be freed first.
 * NULL is accepted. @since 1.0 */
KTC_API void ktc_cache_free(ktc_cache* cache);

/** The root directory of an open cache; borrowed from `cache`. @since 1.0 */
KTC_API const char* ktc_cache_root(const ktc_cache* cache);

/* ---------------------------------------------------------------------- */
/* Entries                                                                */
/* ---------------------------------------------------------------------- */

/** One cache entry, valid or corrupt, as looked up or listed. @since 1.0 */
typedef struct ktc_entry ktc_entry;

/** ktc_entry_info.state. @since 1.0 */
enum { KTC_ENTRY_VALID = 0, KTC_ENTRY_CORRUPT = 1 };

/**
 * A read-only view of an entry, filled by ktc_entry_get_info(). All strings
 * are borrowed from the entry (or from the list that holds it).
 * @since 1.0
 */
typedef struct ktc_entry_info {
  uint32_t struct_size;
  /** KTC_ENTRY_VALID or KTC_ENTRY_CORRUPT. */
  int32_t state;
  /** The key (the entry directory's name). */
  const char* key;
  /** The entry directory. */
  const char* path;
  /** Valid entries: the metadata as a JSON object, with every field the
   * file holds (unknown ones included): the text of metadata.json as read,
   * or a compact serialisation for a just-stored entry. NULL when
   * corrupt. */
  const char* metadata_json;
  /** Valid entries: the boot image's path. NULL when corrupt. */
  const char* image_path;
  /** The vmlinux's path, NULL when the entry has none. */
  const char* vmlinux_path;
  /** The stored kernel .config's path, NULL when the entry has none. */
  const char* config_path;
  /** Corrupt entries: the kind ("missing", "unreadable", "schema_drift",
   * "malformed", "truncated", "parse_error", "image_missing", "unknown").
   * NULL when valid. */
  const char* error_kind;
  /** Corrupt entries: a one-line human reason. NULL when valid. */
  const char* reason;
  /** Seconds since the epoch of the last recorded lookup or store, or -1
   * when none was recorded (ktstr-written entries, read-only caches). */
  int64_t last_used;
  /** Non-zero when the entry holds a shared lock (a leased lookup). */
  int32_t leased;
} ktc_entry_info;

#define KTC_ENTRY_INFO_INIT                                                    \
  {                                                                            \
    sizeof(ktc_entry_info), 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
        -1, 0                                                                  \
  }

/**
 * Fills `info` from `entry`. The library writes at most info->struct_size
 * bytes.
 * @return KTC_OK, KTC_E_INVALID (NULL argument, struct_size too small).
 * @since 1.0
 */
KTC_API int ktc_entry_get_info(const ktc_entry* entry, ktc_entry_info* info);

/** Frees an entry and, for a leased entry, releases its shared lock.
 * NULL is accepted. @since 1.0 */
KTC_API void ktc_entry_free(ktc_entry* entry);

/** ktc_lookup() flags. @since 1.0 */
enum {
  /** Hold a shared lock on the entry until ktc_entry_free(): clean skips
   * it and a replacing store waits. Needs a writable .locks/ directory. */
  KTC_LOOKUP_LEASE = 1u << 0
};

/**
 * Looks up a valid entry by key.
 *
 * A plain lookup takes no lock: it opens the entry, reads and parses its
 * metadata, checks the image is there and records the time of use. It works
 * on a read-only cache. A lookup that misses while a store is replacing the
 * entry waits for that store rather than report a miss.
 * @param out receives the entry; free with ktc_entry_free().
 * @param flags KTC_LOOKUP_* bits.
 * @return KTC_OK, KTC_E_NOTFOUND, KTC_E_CORRUPT (the entry exists but is
 *         damaged; the message gives the reason), KTC_E_INVALID (bad key),
 *         KTC_E_LOCKED (lease timed out), KTC_E_UNSUPPORTED (lease on a
 *         network filesystem).
 * @since 1.0
 */
KTC_API int
ktc_lookup(ktc_entry** out, ktc_cache* cache, const char* key, uint32_t flags);

/* ---------------------------------------------------------------------- */
/* Listing                                                                */
/* ---------------------------------------------------------------------- */

/** A snapshot of a cache's entries. @since 1.0 */
typedef struct ktc_list ktc_list;

/**
 * Lists every entry: valid ones newest first (by built_at), then corrupt
 * ones. Names starting with '.' and anything that is not a directory are
 * skipped; a missing root gives an empty list. Takes no lock.
 * @param out receives the list; free with ktc_list_free().
 * @return KTC_OK, KTC_E_IO (the root cannot be read).
 * @since 1.0
 */
KTC_API int ktc_list_entries(ktc_list** out, ktc_cache* cache);

/** Number of entries in a list. @since 1.0 */
KTC_API size_t ktc_list_count(const ktc_list* list);

/** The entry at `index`, borrowed from the list; NULL when out of range.
 * @since 1.0 */
KTC_API const ktc_entry* ktc_list_at(const ktc_list* list, size_t index);

/** Frees a list. NULL is accepted. @since 1.0 */
KTC_API void ktc_list_free(ktc_list* list);

/* ---------------------------------------------------------------------- */
/* Storing                                                                */
/* ---------------------------------------------------------------------- */

/** ktc_store_options.flags. @since 1.0 */
enum {
  /** Store the vmlinux as given, never through a strip policy. */
  KTC_STORE_NO_STRIP = 1u << 0
};

/** What to store. @since 1.0 */
typedef struct ktc_store_options {
  uint32_t struct_size;
  /** KTC_STORE_* bits. */
  uint32_t flags;
  /** Path of the boot image. Required. Copied, never moved. */
  const char* image;
  /** Path of the vmlinux, or NULL. */
  const char* vmlinux;
  /** Path of the kernel's .config, or NULL. Stored as "config". */
  const char* config;
  /** The image's file name in the entry; NULL = the basename of `image`. */
  const char* image_name;
  /** "x86_64", "aarch64", ...; NULL = the host's. */
  const char* arch;
  /** The kernel version, or NULL. */
  const char* version;
  /** The source as a JSON object with a string "type" and its payload,
   * flat (for example {"type":"tarball"}); NULL = {"type":"local",...}
   * with null payload. */
  const char* source_json;
  /** Extra metadata as a JSON object merged into what is written; fields
   * the library owns (has_vmlinux, artifacts, ...) are overwritten. NULL
   * for none. */
  const char* metadata_json;
  /** The hash of the requested kconfig fragments (kconfig_hash), or NULL. */
  const char* kconfig_hash;
  /** A source spec ("local:/src/linux", "<scheme>:..."), resolved and
   * described through its source plugin; what the plugin describes becomes
   * the entry's `source`, and its version is used when `version` is NULL.
   * Mutually exclusive with source_json. NULL for none. @since 1.1 */
  const char* source_spec;
  /** The strip policy for the vmlinux ("btf", "debug", "none", a plugin's);
   * NULL = "btf". A policy named here must have a usable plugin
   * (KTC_E_PLUGIN otherwise). Whatever the policy, an output that loses a
   * named symbol, .BTF, the build-id or IKCONFIG is not stored: the store
   * falls back to the debug policy, then to the whole file, and records
   * that in the vmlinux artifact (strip_policy, strip_requested,
   * strip_fallback). A vmlinux that is not ELF is stored whole. Ignored
   * with KTC_STORE_NO_STRIP. @since 1.2 */
  const char* strip_policy;
} ktc_store_options;

#define KTC_STORE_OPTIONS_INIT                                                 \
  {                                                                            \
    sizeof(ktc_store_options), 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL,    \
        NULL, NULL, NULL, NULL                                                 \
  }

/**
 * Stores an entry, replacing any entry with that key atomically.
 *
 * The files are copied into a private temporary directory, hashed
 * (SHA-256), fsynced and published with one rename; readers see the old
 * entry or the new one, never a mix or a gap. Free space is checked first.
 * On any failure nothing visible changes.
 * @param out receives the new entry, or pass NULL; free with
 *        ktc_entry_free().
 * @return KTC_OK, KTC_E_INVALID (key, image name, JSON), KTC_E_NOTFOUND (an
 *         input file), KTC_E_PLUGIN (source_spec could not be resolved or
 *         described), KTC_E_NOSPC, KTC_E_LOCKED (timed out waiting for
 *         readers or another writer), KTC_E_IO, KTC_E_UNSUPPORTED.
 * @since 1.0
 */
KTC_API int ktc_store(ktc_entry** out,
                      ktc_cache* cache,
                      const char* key,
                      const ktc_store_options* options);

/* ---------------------------------------------------------------------- */
/* Verifying                                                              */
/* ---------------------------------------------------------------------- */

/**
 * Checks every artifact of an entry against the size and SHA-256 recorded
 * in its metadata, under the entry's shared lock.
 * @return KTC_OK, KTC_E_MISMATCH (the message names the file),
 *         KTC_E_UNVERIFIABLE (no hashes recorded), KTC_E_NOTFOUND,
 *         KTC_E_CORRUPT, KTC_E_LOCKED, KTC_E_INVALID.
 * @since 1.0
 */
KTC_API int ktc_verify(ktc_cache* cache, const char* key);

/* ---------------------------------------------------------------------- */
/* Cleaning                                                               */
/* ---------------------------------------------------------------------- */

/** ktc_clean_options.mode. @since 1.0 */
enum {
  /** Remove every entry. */
  KTC_CLEAN_ALL = 0,
  /** Keep the `keep` newest valid entries; remove the rest. */
  KTC_CLEAN_KEEP = 1,
  /** Remove corrupt entries only. */
  KTC_CLEAN_CORRUPT_ONLY = 2,
  /** Remove the entries named in `keys`. */
  KTC_CLEAN_KEYS = 3
};

/** ktc_clean_options.flags. @since 1.0 */
enum {
  /** Report what would be removed; change nothing. */
  KTC_CLEAN_DRY_RUN = 1u << 0
};

/** @since 1.0 */
typedef struct ktc_clean_options {
  uint32_t struct_size;
  /** KTC_CLEAN_* bits. */
  uint32_t flags;
  /** One of KTC_CLEAN_ALL, _KEEP, _CORRUPT_ONLY, _KEYS. */
  uint32_t mode;
  /** KTC_CLEAN_KEEP: how many valid entries to keep. */
  uint32_t keep;
  /** KTC_CLEAN_KEYS: the keys, `key_count` of them. */
  const char* const* keys;
  size_t key_count;
} ktc_clean_options;

#define KTC_CLEAN_OPTIONS_INIT                                                 \
  { sizeof(ktc_clean_options), 0, KTC_CLEAN_ALL, 0, NULL, 0 }

/** What clean did with one entry. @since 1.0 */
enum {
  KTC_CLEAN_REMOVED = 0,
  /** Dry run: it would have been removed. */
  KTC_CLEAN_WOULD_REMOVE = 1,
  /** Someone holds the entry (a lease, a store); left alone. */
  KTC_CLEAN_SKIPPED_IN_USE = 2,
  /** Removal failed; `message` says why. */
  KTC_CLEAN_FAILED = 3,
  /** KTC_CLEAN_KEYS: no such entry. */
  KTC_CLEAN_NOT_FOUND = 4
};

/** The outcome of ktc_clean(). @since 1.0 */
typedef struct ktc_clean_report ktc_clean_report;

/** One row of a clean report; strings borrowed from the report.
 * @since 1.0 */
typedef struct ktc_clean_item {
  uint32_t struct_size;
  /** KTC_CLEAN_REMOVED, ... */
  int32_t action;
  const char* key;
  /** Non-zero when the entry was corrupt. */
  int32_t corrupt;
  /** Why it was skipped or failed (holders, errno text); else NULL. */
  const char* message;
  /** Bytes the entry occupied (apparent size of its files). */
  uint64_t bytes;
} ktc_clean_item;

#define KTC_CLEAN_ITEM_INIT                                                    \
  { sizeof(ktc_clean_item), 0, NULL, 0, NULL, 0 }

/**
 * Removes entries. Each is taken under a non-blocking exclusive lock,
 * renamed out of sight and then deleted, so a crash never leaves half an
 * entry visible; entries someone holds are skipped and reported. Corrupt
 * entries never use a keep slot. Orphaned temporary directories of dead
 * stores are swept as well.
 * @param out receives the report; free with ktc_clean_report_free().
 * @param options may be NULL (KTC_CLEAN_ALL).
 * @return KTC_OK (see the report for per-entry outcomes), KTC_E_INVALID,
 *         KTC_E_IO, KTC_E_UNSUPPORTED.
 * @since 1.0
 */
KTC_API int ktc_clean(ktc_clean_report** out,
                      ktc_cache* cache,
                      const ktc_clean_options* options);

/** Number of rows in a report. @since 1.0 */
KTC_API size_t ktc_clean_report_count(const ktc_clean_report* report);

/** Fills `item` with row `index`.
 * @return KTC_OK, KTC_E_INVALID (out of range, NULL, small struct).
 * @since 1.0 */
KTC_API int ktc_clean_report_get(const ktc_clean_report* report,
                                 size_t index,
                                 ktc_clean_item* item);

/** Frees a report. NULL is accepted. @since 1.0 */
KTC_API void ktc_clean_report_free(ktc_clean_report* report);

/* ---------------------------------------------------------------------- */
/* Locks                                                                  */
/* ---------------------------------------------------------------------- */

/** A snapshot of the lock files under <root>/.locks/. @since 1.0 */
typedef struct ktc_lock_list ktc_lock_list;

/** One lock file; strings borrowed from the list. @since 1.0 */
typedef struct ktc_lock_info {
  uint32_t struct_size;
  /** The file's stem: a key, "<key>.build", "source-<hash>", ... */
  const char* name;
  /** The lock file's path. */
  const char* path;
  /** Number of processes holding it now. */
  size_t holder_count;
} ktc_lock_info;

#define KTC_LOCK_INFO_INIT                                                     \
  { sizeof(ktc_lock_info), NULL, NULL, 0 }

/** One holder of a lock; strings borrowed from the list. @since 1.0 */
typedef struct ktc_lock_holder {
  uint32_t struct_size;
  int64_t pid;
  /** Non-zero for an exclusive (write) lock, zero for shared. */
  int32_t exclusive;
  /** The holder's command line, or "<cmdline unavailable>". */
  const char* cmdline;
} ktc_lock_holder;

#define KTC_LOCK_HOLDER_INIT                                                   \
  { sizeof(ktc_lock_holder), 0, 0, NULL }

/**
 * Lists lock files and who holds them (from /proc/locks). Read-only: never
 * takes a lock, never creates anything.
 * @param out receives the list; free with ktc_lock_list_free().
 * @return KTC_OK, KTC_E_IO.
 * @since 1.0
 */
KTC_API int ktc_locks(ktc_lock_list** out, ktc_cache* cache);

/** Number of lock files in the list. @since 1.0 */
KTC_API size_t ktc_lock_list_count(const ktc_lock_list* list);

/** Fills `info` for lock `index`.
 * @return KTC_OK, KTC_E_INVALID. @since 1.0 */
KTC_API int
ktc_lock_list_get(const ktc_lock_list* list, size_t index, ktc_lock_info* info);

/** Fills `holder` for holder `holder_index` of lock `index`.
 * @return KTC_OK, KTC_E_INVALID. @since 1.0 */
KTC_API int ktc_lock_list_holder(const ktc_lock_list* list,
                                 size_t index,
                                 size_t holder_index,
                                 ktc_lock_holder* holder);

/** Frees a lock list. NULL is accepted. @since 1.0 */
KTC_API void ktc_lock_list_free(ktc_lock_list* list);

/* ---------------------------------------------------------------------- */
/* Kconfig status and source trees                                        */
/* ---------------------------------------------------------------------- */

/** ktc_entry_kconfig_status() results. @since 1.0 */
enum {
  /** The entry's fragment hash equals the caller's. */
  KTC_KCONFIG_MATCHES = 0,
  /** The hashes differ. */
  KTC_KCONFIG_STALE = 1,
  /** The entry records no fragment hash (an older or foreign entry). */
  KTC_KCONFIG_UNTRACKED = 2
};

/**
 * Compares a valid entry's recorded kconfig fragment hash (kconfig_hash,
 * or ktstr's ktstr_kconfig_hash) with `current_hash`.
 * @param out receives a KTC_KCONFIG_* value.
 * @return KTC_OK, KTC_E_INVALID (NULL argument, corrupt entry).
 * @since 1.0
 */
KTC_API int ktc_entry_kconfig_status(int* out,
                                     const ktc_entry* entry,
                                     const char* current_hash);

/**
 * For an entry built from a local tree: the tree's directory, when the
 * tree's vmlinux is provably the one the entry was built from (same size
 * and whole-second mtime as recorded), so a symbolizer can read its DWARF.
 * @param entry_dir an entry directory.
 * @param out receives the tree's path; free with ktc_free().
 * @return KTC_OK, KTC_E_NOTFOUND (no such proof; use the entry itself).
 * @since 1.0
 */
KTC_API int ktc_prefer_source_tree(char** out, const char* entry_dir);

/**
 * For an entry built from a local tree: the recorded tree path, without
 * checking the tree's vmlinux.
 * @param out receives the path; free with ktc_free().
 * @return KTC_OK, KTC_E_NOTFOUND.
 * @since 1.0
 */
KTC_API int ktc_recover_source_tree(char** out, const char* entry_dir);

/* ---------------------------------------------------------------------- */
/* Plugins                                                                */
/* ---------------------------------------------------------------------- */

/**
 * Adds a directory to search for plugins, ahead of KTCACHE_PLUGIN_PATH and
 * the installed plugin directory; directories added earlier come first.
 * Plugins are discovered lazily, when a command first needs one, and only
 * the one it needs is loaded (listing them loads all). Adding a directory
 * after discovery makes the next use discover again.
 *
 * Search order: these directories; then KTCACHE_PLUGIN_PATH (':'-separated;
 * ignored when the process runs setuid or setgid); then the installed
 * directory (see ktc_plugin_default_dir()). A plugin for scheme or policy
 * NAME is the file source_NAME.so or strip_NAME.so; the first directory
 * holding a usable one wins. Files and directories that are world-writable,
 * or owned by a user other than the caller or root, are refused.
 * @param dir an absolute or relative path; made absolute now. It need not
 *        exist.
 * @return KTC_OK, KTC_E_INVALID (NULL or empty), KTC_E_NOMEM.
 * @since 1.1
 */
KTC_API int ktc_plugin_dir_add(ktc_cache* cache, const char* dir);

/**
 * The installed plugin directory compiled into the library
 * ("<prefix>/<libdir>/ktcache/plugins").
 * @return a static string; never NULL.
 * @since 1.1
 */
KTC_API const char* ktc_plugin_default_dir(void);

/** Plugins found by ktc_plugins_list(). @since 1.1 */
typedef struct ktc_plugin_list ktc_plugin_list;

/** ktc_plugins_list() flags. @since 1.1 */
enum {
  /** Also report the plugin files that were rejected, with the reason. */
  KTC_PLUGINS_ALL = 1u << 0
};

/** ktc_plugin_record.state. @since 1.1 */
enum {
  /** Loaded, validated and in use. */
  KTC_PLUGIN_LOADED = 0,
  /** Refused; `reason` says why. Discovery went on. */
  KTC_PLUGIN_REJECTED = 1,
  /** A valid plugin whose name an earlier directory already provides. */
  KTC_PLUGIN_SHADOWED = 2
};

/** One plugin file; strings borrowed from the list. @since 1.1 */
typedef struct ktc_plugin_record {
  uint32_t struct_size;
  /** KTC_PLUGIN_LOADED, _REJECTED or _SHADOWED. */
  int32_t state;
  /** The scheme or policy name (from the file name when the plugin could
   * not be queried). */
  const char* name;
  /** "source" or "strip"; "unknown" when rejected before its kind was
   * known. */
  const char* kind;
  /** The plugin's own version; NULL when unknown. */
  const char* version;
  /** The plugin's absolute path. */
  const char* file;
  /** The plugin ABI version the plugin was built for; 0 when unknown. */
  uint32_t abi_major;
  uint32_t abi_minor;
  /** The plugin's one-line description; NULL when none. */
  const char* description;
  /** Rejected or shadowed: why, in one line. NULL when loaded. */
  const char* reason;
} ktc_plugin_record;

#define KTC_PLUGIN_RECORD_INIT                                                 \
  { sizeof(ktc_plugin_record), 0, NULL, NULL, NULL, NULL, 0, 0, NULL, NULL }

/**
 * Discovers and loads every plugin in the search path. Loaded plugins come
 * first, in search order; with KTC_PLUGINS_ALL the rejected and shadowed
 * files follow. A broken plugin never fails the call.
 * @param out receives the list; free with ktc_plugin_list_free().
 * @return KTC_OK, KTC_E_INVALID, KTC_E_NOMEM.
 * @since 1.1
 */
KTC_API int
ktc_plugins_list(ktc_plugin_list** out, ktc_cache* cache, uint32_t flags);

/** Number of records. @since 1.1 */
KTC_API size_t ktc_plugin_list_count(const ktc_plugin_list* list);

/** Fills `record` with row `index`.
 * @return KTC_OK, KTC_E_INVALID. @since 1.1 */
KTC_API int ktc_plugin_list_get(const ktc_plugin_list* list,
                                size_t index,
                                ktc_plugin_record* record);

/** Frees a plugin list. NULL is accepted. @since 1.1 */
KTC_API void ktc_plugin_list_free(ktc_plugin_list* list);

/**
 * Resolves and describes a source spec ("<scheme>:<rest>") through the
 * plugin of its scheme, loading only that plugin. Fetches nothing the
 * plugin can avoid fetching.
 * @param out receives a JSON object: {"spec", "plugin": {"name",
 *        "version", "file"}, "identity": {...}, "source": {"type", ...},
 *        "key_parts": [...]}; free with ktc_free().
 * @return KTC_OK, KTC_E_INVALID (no scheme, malformed scheme),
 *         KTC_E_PLUGIN (no plugin for the scheme, or it failed; the message
 *         says which and why), KTC_E_NOTFOUND (the plugin found nothing
 *         under the spec).
 * @since 1.1
 */
KTC_API int ktc_source_describe(char** out, ktc_cache* cache, const char* spec);

/* ---------------------------------------------------------------------- */
/* Acquiring sources and building kernels                                 */
/* ---------------------------------------------------------------------- */

/**
 * Called from the thread running a long operation to report a stage
 * ("resolve", "download", "extract", "configure", "build", "strip",
 * "store", "wait") and how far it is: `done` of `total` units (bytes for
 * downloads; percent, 0-100, for builds), `total` 0 when unknown. Called
 * often; it SHOULD return quickly. `stage` is borrowed for the call.
 * @since 1.3
 */
typedef void (*ktc_progress_fn)(void* userdata,
                                const char* stage,
                                uint64_t done,
                                uint64_t total);

/**
 * Polled by long operations between steps (and about every 100 ms while a
 * build runs); non-zero stops the operation with KTC_E_CANCELLED. It may
 * be called from threads the library starts, so it must be thread safe
 * (reading a flag a signal handler sets is the usual body).
 * @since 1.3
 */
typedef int (*ktc_cancel_fn)(void* userdata);

/**
 * Hooks for long operations. Zero-initialize (KTC_HOOKS_INIT) and set
 * what is wanted; every member may be NULL.
 * @since 1.3
 */
typedef struct ktc_hooks {
  uint32_t struct_size;
  uint32_t reserved0;
  ktc_progress_fn progress;
  void* progress_userdata;
  ktc_cancel_fn cancelled;
  void* cancel_userdata;
} ktc_hooks;

/** @since 1.3 */
#define KTC_HOOKS_INIT                                                         \
  { sizeof(ktc_hooks), 0, NULL, NULL, NULL, NULL }

/**
 * Resolves `spec` and puts its source tree into `dest_dir`, which must not
 * exist or be an empty directory (it is created, mode 0777 & ~umask). A
 * source that builds in place (local:) is not copied: the tree named is
 * the tree itself. Tarballs are verified against their SHA-256 before
 * this returns; on any failure `dest_dir` is left empty (or removed when
 * this call created it).
 * @param out receives the ktc_source_describe() object plus "tree": the
 *        absolute path of the tree; free with ktc_free().
 * @param hooks progress and cancellation; may be NULL.
 * @return KTC_OK, KTC_E_INVALID (spec, a non-empty dest_dir), KTC_E_PLUGIN,
 *         KTC_E_NOTFOUND (no such version, commit or file),
 *         KTC_E_NETWORK, KTC_E_MISMATCH (a checksum differs),
 *         KTC_E_CANCELLED, KTC_E_IO.
 * @since 1.3
 */
KTC_API int ktc_source_fetch(char** out,
                             ktc_cache* cache,
                             const char* spec,
                             const char* dest_dir,
                             const ktc_hooks* hooks);

/** ktc_build_options.flags. @since 1.3 */
enum {
  /** Build and replace the entry even when it is cached. */
  KTC_BUILD_FORCE = 1u << 0,
  /** Store a build of a dirty or non-git local tree (recorded as dirty);
   * without it such a build is made but not stored. */
  KTC_BUILD_STORE_DIRTY = 1u << 1,
  /** Store the vmlinux as built, without a strip policy. */
  KTC_BUILD_NO_STRIP = 1u << 2,
  /** Keep the build directory of a fetched source after storing. */
  KTC_BUILD_KEEP_TREE = 1u << 3
};

/**
 * What ktc_ensure() builds. Zero-initialize (KTC_BUILD_OPTIONS_INIT) and
 * set `spec`; every other member may be 0 or NULL. Strings are borrowed
 * for the call.
 * @since 1.3
 */
typedef struct ktc_build_options {
  uint32_t struct_size;
  /** KTC_BUILD_* bits. */
  uint32_t flags;
  /** The kernel: "<scheme>:<rest>" ("tarball:6.12.3", "git:URL@REF",
   * "local:/src/linux", a plugin's own) or a bare version ("6.12.3",
   * "6.12", "6.15-rc3"), which names a kernel.org tarball. Required.
   * From 1.4, any single-kernel identifier (ktc_kernel_id_parse()):
   * "git+URL#REF" and a source-tree directory too; a range, a cache key
   * or a file is KTC_E_INVALID. */
  const char* spec;
  /** "x86_64" or "aarch64" ("arm64" is accepted); NULL: the host's. */
  const char* arch;
  /** A make target ("defconfig", the default; "tinyconfig", ...) or the
   * path of a config file (anything containing '/'). */
  const char* base_config;
  /** Config fragment files merged, in order, over the base config. */
  const char* const* kconfig_files;
  size_t kconfig_file_count;
  /** Single settings merged after the files: "CONFIG_X=y", "X=y",
   * "X=n" (written "# CONFIG_X is not set"), "X=\"text\"", "X=250". */
  const char* const* kconfig_settings;
  size_t kconfig_setting_count;
  /** Extra make arguments ("KCFLAGS=-O2", "W=1"); part of the key. */
  const char* const* make_args;
  size_t make_arg_count;
  /** make -j; 0: the CPUs this process may run on. Not part of the key. */
  uint32_t jobs;
  uint32_t reserved0;
  /** NULL: the environment's CROSS_COMPILE, if any. */
  const char* cross_compile;
  /** CC=...; NULL: the kernel's default. */
  const char* cc;
  /** LLVM=... ("1", "-14", a path prefix); NULL: none. */
  const char* llvm;
  /** The strip policy; NULL: "btf". Ignored with KTC_BUILD_NO_STRIP. */
  const char* strip_policy;
  /** How long to wait for another process's build of the same key; 0:
   * four hours. */
  uint64_t wait_timeout_ms;
  /** Progress and cancellation; may be NULL. */
  const ktc_hooks* hooks;
} ktc_build_options;

/** @since 1.3 */
#define KTC_BUILD_OPTIONS_INIT                                                 \
  {                                                                            \
    sizeof(ktc_build_options), 0, NULL, NULL, NULL, NULL, 0, NULL, 0, NULL, 0, \
        0, 0, NULL, NULL, NULL, NULL, 0, NULL                                  \
  }

/**
 * The kernel `options` names, from the cache or built: looks the key up
 * (a hit costs no plugin work beyond resolving the spec: no clone, no
 * download), else acquires the source, configures, builds, strips and
 * stores it. Single flight across processes: the builder holds
 * <root>/.locks/<key>.build; others wait for it and get the entry, or the
 * failure it recorded (<root>/.build/<key>.failed), without building again.
 * Fetched sources are built under <root>/.build/ and removed after the
 * store; local trees are built in place, one build per tree at a time.
 * The build log is kept at <root>/.build/logs/<key>.log.
 * @param out receives the entry (lease-free, like ktc_lookup without one);
 *        NULL when the build was not stored (a dirty local tree without
 *        KTC_BUILD_STORE_DIRTY; the report names the image). Free with
 *        ktc_entry_free().
 * @param report receives a JSON object (free with ktc_free(); may be NULL):
 *        {"key", "spec", "outcome": "hit" | "built" | "waited" |
 *        "built_not_stored", "entry_dir" (or null), "image" (or null),
 *        "tree" (or null), "log" (or null), "dropped_kconfig": [lines],
 *        "inputs": {...}, "seconds": {"acquire", "configure", "build",
 *        "strip", "store"}}.
 * @return KTC_OK, KTC_E_INVALID (options, spec, arch, a fragment),
 *         KTC_E_PLUGIN, KTC_E_NOTFOUND, KTC_E_NETWORK, KTC_E_MISMATCH
 *         (checksum; a vmlinux of another arch), KTC_E_BUILD (this build
 *         or the one waited for failed), KTC_E_LOCKED (waiting timed out;
 *         the holders are named), KTC_E_CANCELLED, KTC_E_IO, KTC_E_NOSPC.
 * @since 1.3
 */
KTC_API int ktc_ensure(ktc_entry** out,
                       ktc_cache* cache,
                       const ktc_build_options* options,
                       char** report);

/** Options for ktc_strip(). @since 1.1 */
typedef struct ktc_strip_options {
  uint32_t struct_size;
  uint32_t flags;
  /** The strip policy's name; NULL = "btf". */
  const char* policy;
} ktc_strip_options;

#define KTC_STRIP_OPTIONS_INIT                                                 \
  { sizeof(ktc_strip_options), 0, NULL }

/**
 * Writes `output` from the ELF file `input` through a strip policy,
 * loading that policy's plugin only, and checks the result: every named
 * symbol, the .BTF bytes, the build-id and a recoverable IKCONFIG must
 * survive. A policy whose output fails the check falls back to the debug
 * policy (logged, and named in the report); when that fails too, the call
 * fails. The output is written to a temporary file beside it, fsynced and
 * renamed into place: a failure leaves no output.
 * @param report receives, unless NULL, a JSON object {"requested",
 *        "policy", "policy_version", "stripped", "fallback" (string or
 *        null), "input_bytes", "output_bytes", "build_id" (or null)}; free
 *        with ktc_free(). @since 1.2
 * @return KTC_OK, KTC_E_INVALID (not an ELF file, a malformed one),
 *         KTC_E_NOTFOUND (input), KTC_E_PLUGIN, KTC_E_MISMATCH (no policy's
 *         output passed the check), KTC_E_IO.
 * @since 1.1
 */
KTC_API int ktc_strip(ktc_cache* cache,
                      const char* input,
                      const char* output,
                      const ktc_strip_options* options,
                      char** report);

/* ---------------------------------------------------------------------- */
/* Kernel configuration                                                   */
/* ---------------------------------------------------------------------- */

/** Where ktc_kconfig_read() found the configuration. @since 1.2 */
enum {
  /** Embedded in the vmlinux by CONFIG_IKCONFIG. */
  KTC_KCONFIG_FROM_IKCONFIG = 0,
  /** The cache entry's stored .config (the file "config"). */
  KTC_KCONFIG_FROM_CONFIG_FILE = 1
};

/**
 * Reads the kernel configuration (.config text) of a vmlinux file or of a
 * cache entry.
 *
 * `file_or_key` names a file when it contains a '/' or names an existing
 * file that is not a directory; anything else is a cache key. A file must
 * be an ELF file; its configuration is the gzip blob CONFIG_IKCONFIG embeds,
 * found through the symbols kernel_config_data and kernel_config_data_end,
 * else by its "IKCFG_ST" marker in the sections the kernel loads. For a
 * key, the entry's vmlinux is read that way first; when the entry has no
 * vmlinux, or its vmlinux carries no configuration, the entry's stored
 * .config answers. A vmlinux that cannot be read is then logged as a
 * warning and the stored .config used; with no stored .config it is the
 * error. A plain lookup is made: no lock is taken, and a read-only cache
 * works.
 * @param out receives the text; free with ktc_free().
 * @param source receives KTC_KCONFIG_FROM_*; may be NULL.
 * @param path receives the file that answered (the vmlinux or the stored
 *        .config); free with ktc_free(). May be NULL.
 * @param cache needed for a key only; may be NULL when `file_or_key` is a
 *        file.
 * @return KTC_OK; KTC_E_NOTFOUND: the file does not exist (the message
 *         names it), no entry has that key, or there is no configuration
 *         (the message says "no embedded config (CONFIG_IKCONFIG)", and for
 *         an entry "and no stored .config"); KTC_E_INVALID: the file is not
 *         an ELF file, the key is invalid, a key without a cache, a NULL
 *         argument; KTC_E_CORRUPT: the embedded blob is there but does not
 *         decompress, or decompresses past 16 MiB, or the entry is corrupt;
 *         KTC_E_IO.
 * @since 1.2
 */
KTC_API int ktc_kconfig_read(char** out,
                             int* source,
                             char** path,
                             ktc_cache* cache,
                             const char* file_or_key);

/**
 * The value of one option in .config text: what follows "CONFIG_NAME=" on
 * its line, blanks around the line dropped, quotes kept as written
 * ("1000", "y", "\"-rc1\""). The last assignment of the option wins, a
 * "# CONFIG_NAME is not set" line included, as when Kconfig reads the file.
 * @param out receives the value; free with ktc_free().
 * @param name "CONFIG_HZ" or "HZ": letters, digits and '_'.
 * @return KTC_OK; KTC_E_NOTFOUND: the option is absent or not set (the
 *         message says which); KTC_E_INVALID: a NULL argument or a name
 *         that is not an option name.
 * @since 1.2
 */
KTC_API int
ktc_kconfig_value(char** out, const char* config_text, const char* name);

/* ---------------------------------------------------------------------- */
/* Naming a kernel                                                        */
/* ---------------------------------------------------------------------- */

/** ktc_kernel_id_info.kind: the forms a kernel identifier takes, in the
 * order they are recognised. @since 1.4 */
enum {
  /** "<scheme>:<rest>" of a source plugin other than git ("tarball:...",
   * "local:...", a third party's), recognised by its scheme alone. */
  KTC_KERNEL_ID_SPEC = 1,
  /** "git+URL#REF" (split at the last '#') or "git:URL@REF" (split at the
   * last '@'): a branch, tag or commit of a repository. */
  KTC_KERNEL_ID_GIT = 2,
  /** "A..B", both ends versions: every stable and longterm kernel.org
   * release from A to B inclusive. */
  KTC_KERNEL_ID_RANGE = 3,
  /** Contains '/', or starts with '.' or '~': a source tree (directory) or
   * a kernel image file. "~" is not expanded. */
  KTC_KERNEL_ID_PATH = 4,
  /** "MAJOR.MINOR.PATCH": one kernel.org release. */
  KTC_KERNEL_ID_VERSION = 5,
  /** "MAJOR.MINOR": the latest release of that series. */
  KTC_KERNEL_ID_SERIES = 6,
  /** "MAJOR.MINOR-rcN" (or "MAJOR.MINOR.PATCH-rcN"): a release candidate. */
  KTC_KERNEL_ID_RC = 7,
  /** Anything else that is a valid cache key. */
  KTC_KERNEL_ID_KEY = 8
};

/** A parsed kernel identifier. @since 1.4 */
typedef struct ktc_kernel_id ktc_kernel_id;

/**
 * A parsed identifier's parts, filled by ktc_kernel_id_get_info(). Strings
 * are borrowed from the ktc_kernel_id; members that do not apply to the
 * kind are NULL.
 * @since 1.4
 */
typedef struct ktc_kernel_id_info {
  uint32_t struct_size;
  /** A KTC_KERNEL_ID_* value. */
  int32_t kind;
  /** The identifier as given. */
  const char* text;
  /** The source spec ktc_ensure() builds: "tarball:6.14.2" for a version,
   * series or RC, "git:URL@REF" for either git form, the spec itself for
   * SPEC. NULL for a range, a path (a directory becomes "local:<path>"
   * when it is resolved) and a key. */
  const char* spec;
  /** VERSION, SERIES, RC: the version. */
  const char* version;
  /** RANGE: the two ends, as written. */
  const char* range_start;
  const char* range_end;
  /** GIT: the repository and the ref. */
  const char* git_url;
  const char* git_ref;
  /** PATH: the path as written. */
  const char* path;
  /** SPEC and GIT: the scheme ("tarball", "local", "git", ...). */
  const char* scheme;
  /** KEY: the key. */
  const char* key;
} ktc_kernel_id_info;

/** @since 1.4 */
#define KTC_KERNEL_ID_INFO_INIT                                                \
  {                                                                            \
    sizeof(ktc_kernel_id_info), 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL,   \
        NULL, NULL, NULL                                                       \
  }

/**
 * Parses a kernel identifier, as a user or a harness names a kernel:
 * "<scheme>:<rest>" first (a plugin's scheme, recognised without loading
 * it), then ktstr's grammar in its order: "git+URL#REF", a range "A..B", a
 * path, a version ("6.14.2", "6.14", "6.15-rc3"; digits only, no "v"), a
 * cache key. Pure text work: nothing is looked up or fetched.
 * @param out receives the identifier; free with ktc_kernel_id_free().
 * @return KTC_OK; KTC_E_INVALID with a one-line message naming the text and
 *         the rule: an empty identifier, "git+" without "#REF" or with an
 *         empty URL or ref, a range with an empty or non-version end or an
 *         end before its start ("6.14..6.12"), digits and dots that are
 *         not a version ("6.12.3.4"), text that is none of the forms.
 * @since 1.4
 */
KTC_API int ktc_kernel_id_parse(ktc_kernel_id** out, const char* text);

/** Fills `info` from `id`, writing at most info->struct_size bytes.
 * @return KTC_OK, KTC_E_INVALID. @since 1.4 */
KTC_API int ktc_kernel_id_get_info(const ktc_kernel_id* id,
                                   ktc_kernel_id_info* info);

/** Frees an identifier. NULL is accepted. @since 1.4 */
KTC_API void ktc_kernel_id_free(ktc_kernel_id* id);

/** ktc_releases() and ktc_range_expand() flags. @since 1.4 */
enum {
  /** Fetch releases.json now, whatever the age of the copy on disk. */
  KTC_RELEASES_REFRESH = 1u << 0,
  /** Never fetch: answer from the copy on disk, however old. */
  KTC_RELEASES_NO_FETCH = 1u << 1
};

/**
 * kernel.org's list of current releases (releases.json), as ktcache keeps
 * it: a copy in <root>/.releases.json, used while younger than its time to
 * live (KTCACHE_RELEASES_TTL seconds, default 86400; 0 fetches every
 * time; a value that is not a decimal number of seconds is the default,
 * with a warning) and fetched again, through the tarball source plugin's
 * `releases` operation, when older, missing, or fetched from another URL
 * than KTCACHE_RELEASES_URL names now. The copy is written atomically
 * (a temporary dot-file, fsync, rename); a cache that cannot be written
 * (read-only) fetches but keeps no copy. When a fetch fails, an older copy
 * is used (with a warning). Offline (KTC_OPEN_OFFLINE or
 * KTCACHE_OFFLINE=1), or with KTC_RELEASES_NO_FETCH, only the copy on disk
 * is used, whatever its age.
 * @param out receives a JSON object {"url", "fetched_at" (seconds since
 *        the epoch), "age_seconds", "ttl_seconds", "fresh" (bool), "from"
 *        ("disk" or "network"), "releases": [{"moniker", "version"}],
 *        "active_series": ["6.15", "6.12", ...]}: the series releases.json
 *        lists, which is what is not end of life; free with ktc_free().
 * @param flags KTC_RELEASES_* bits (REFRESH and NO_FETCH exclude each
 *        other); unknown bits are KTC_E_INVALID.
 * @return KTC_OK; KTC_E_NOTFOUND: nothing on disk with NO_FETCH;
 *         KTC_E_NETWORK: nothing on disk offline (the message says ktcache
 *         is offline), or the fetch failed and nothing is on disk;
 *         KTC_E_PLUGIN: no tarball plugin, or one that cannot list
 *         releases; KTC_E_INVALID.
 * @since 1.4
 */
KTC_API int ktc_releases(char** out, ktc_cache* cache, uint32_t flags);

/**
 * The kernel.org releases a range "A..B" names: stable and longterm rows of
 * releases.json (as ktc_releases() has it) from A to B inclusive, compared
 * as (major, minor, patch, rc) with an RC below its release, oldest first.
 * The ends need not be releases themselves.
 * @param out receives {"range", "start", "end", "versions": [...]}; free
 *        with ktc_free().
 * @param flags KTC_RELEASES_* bits, as for ktc_releases().
 * @return KTC_OK; KTC_E_INVALID: not a range, or an inverted one;
 *         KTC_E_NOTFOUND: no release falls in the range; and the failures
 *         of ktc_releases().
 * @since 1.4
 */
KTC_API int ktc_range_expand(char** out,
                             ktc_cache* cache,
                             const char* range,
                             uint32_t flags);

/** ktc_resolve_options.flags. @since 1.4 */
enum {
  /** A miss is KTC_E_NOTFOUND instead of a build. */
  KTC_RESOLVE_NO_BUILD = 1u << 0,
  /** Implicit discovery: the newest valid entry of the arch whose kconfig
   * is not stale, its image and vmlinux present; `id` may be NULL (any
   * kernel) or a version or series to narrow it. Never builds. */
  KTC_RESOLVE_NEWEST = 1u << 1,
  /** The entry holds a shared lock until ktc_entry_free(), as a leased
   * ktc_lookup() does. */
  KTC_RESOLVE_LEASE = 1u << 2
};

/**
 * What ktc_resolve() looks for. Zero-initialize (KTC_RESOLVE_OPTIONS_INIT)
 * and set `id`. Strings are borrowed for the call.
 * @since 1.4
 */
typedef struct ktc_resolve_options {
  uint32_t struct_size;
  /** KTC_RESOLVE_* bits. */
  uint32_t flags;
  /** A kernel identifier (ktc_kernel_id_parse()); NULL only with
   * KTC_RESOLVE_NEWEST. */
  const char* id;
  /** KTC_RESOLVE_NEWEST: only entries of this arch; NULL: the build
   * options' arch, else the host's. */
  const char* arch;
  /** KTC_RESOLVE_NEWEST: skip entries whose recorded kconfig hash differs
   * from this one (stale); NULL: no kconfig check. */
  const char* kconfig_hash;
  /** How a miss is built (its `spec` is ignored: `id` names the kernel);
   * NULL: the defaults of ktc_ensure(). */
  const ktc_build_options* build;
} ktc_resolve_options;

/** @since 1.4 */
#define KTC_RESOLVE_OPTIONS_INIT                                               \
  { sizeof(ktc_resolve_options), 0, NULL, NULL, NULL, NULL }

/**
 * The cache entry a kernel identifier names. A cache key is looked up and
 * never builds (a miss says so and suggests `ktcache list`). A version,
 * series, RC, git source, plugin spec or source-tree directory is resolved
 * to its key as ktc_ensure() does: a hit is returned at once, a miss is
 * built (unless KTC_RESOLVE_NO_BUILD). A path to a file inside a cache
 * entry names that entry. A range names several kernels and is refused.
 * @param out receives the entry; free with ktc_entry_free().
 * @param report receives, unless NULL, a JSON object {"id", "kind",
 *        "key", "outcome" ("hit", "built", "waited", "built_not_stored",
 *        "newest"), "entry_dir", "build" (ktc_ensure()'s report, or
 *        null)}; free with ktc_free().
 * @return KTC_OK; KTC_E_NOTFOUND: a miss with KTC_RESOLVE_NO_BUILD, a
 *         missing key, no entry for NEWEST; KTC_E_INVALID: a malformed
 *         identifier, a range, a file outside any entry; a build that was
 *         not stored (a dirty tree) gives KTC_OK with *out NULL; and every
 *         failure of ktc_ensure().
 * @since 1.4
 */
KTC_API int ktc_resolve(ktc_entry** out,
                        ktc_cache* cache,
                        const ktc_resolve_options* options,
                        char** report);

/* ---------------------------------------------------------------------- */
/* Cache membership and the BTF sidecar                                   */
/* ---------------------------------------------------------------------- */

/**
 * Whether `path` lies inside a cache root: the root and the path's parent
 * directory are both made canonical (symlinks resolved) and compared by
 * whole components; `path` itself need not exist. `cache` NULL means the
 * default root, resolved afresh on each call, as ktstr's
 * path_inside_cache_root does.
 * @return 1 inside, 0 outside or when anything cannot be resolved (no
 *         root, a missing parent directory, a bare file name, NULL).
 * @since 1.4
 */
KTC_API int ktc_path_inside_cache_root(const ktc_cache* cache,
                                       const char* path);

/** ktc_btf_read() flags. @since 1.4 */
enum {
  /** Neither read nor write a sidecar; extract from the vmlinux. */
  KTC_BTF_NO_SIDECAR = 1u << 0
};

/**
 * The .BTF section of a vmlinux file or of a cache entry's vmlinux.
 * `file_or_key` names a file or a key as for ktc_kconfig_read().
 *
 * For a vmlinux inside the cache root, the bytes are kept beside it in
 * "<vmlinux>.btf": reused while that file is not older than the vmlinux
 * and starts with the BTF magic (0xeB9F), else extracted and written again
 * (a temporary file, fsync, rename). A sidecar that cannot be written (a
 * read-only cache) only logs a warning. Outside the cache nothing is ever
 * written. ktc_verify() ignores sidecars.
 * @param data receives the bytes; free with ktc_free().
 * @param size receives their number.
 * @param sidecar receives, unless NULL, the sidecar used or written (free
 *        with ktc_free()), or NULL when there is none.
 * @param cache needed for a key, and for the sidecar; may be NULL for a
 *        file (then no sidecar is used).
 * @return KTC_OK; KTC_E_NOTFOUND: no such file or entry, the entry has no
 *         vmlinux, or the vmlinux has no .BTF (the message names
 *         CONFIG_DEBUG_INFO_BTF); KTC_E_INVALID: not an ELF file, a bad
 *         key, a key without a cache, unknown flags, a NULL argument;
 *         KTC_E_CORRUPT: a malformed ELF file or entry, a .BTF section
 *         without the magic; KTC_E_IO.
 * @since 1.4
 */
KTC_API int ktc_btf_read(void** data,
                         size_t* size,
                         char** sidecar,
                         ktc_cache* cache,
                         const char* file_or_key,
                         uint32_t flags);

#ifdef __cplusplus
}
#endif

#endif /* KTCACHE_KTCACHE_H */
