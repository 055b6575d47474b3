/*
 * plugin.h: the plugin C ABI of libktcache.
 *
 * A plugin is a shared object that adds one kernel source scheme ("local",
 * "tarball", a third party's own) or one strip policy ("none", "btf", ...)
 * to an unmodified libktcache. It is built against this header alone; it
 * MUST NOT link libktcache.so: everything it needs from the host arrives
 * through the ktc_host_services table.
 *
 * Contract, for every plugin:
 *  - The file is named "source_<name>.so" or "strip_<name>.so" and lives in
 *    a plugin directory; <name> matches KTC_PLUGIN_NAME_PATTERN and equals
 *    ktc_plugin_info.name. The host finds a scheme's or a policy's plugin
 *    from the file name alone, without loading anything.
 *  - It MUST export exactly one function per ABI major it supports, named
 *    ktc_plugin_query_v<MAJOR> (KTC_PLUGIN_QUERY_SYMBOL for this header), of
 *    type ktc_plugin_query_fn. Nothing else is looked up.
 *  - It MUST be loadable with RTLD_NOW | RTLD_LOCAL: every symbol it uses is
 *    resolved at load, and it exports nothing the host relies on but the
 *    query function. Its constructors SHOULD do nothing; work belongs in
 *    the operations.
 *  - Every struct starts with `struct_size` and only grows at its end. A
 *    reader uses a member only when struct_size covers it and, for function
 *    pointers, when it is non-NULL. A plugin MUST set struct_size to the
 *    sizeof() it was compiled with; a struct larger than the host knows is
 *    accepted only when the tail the host does not know is all zero bytes.
 *  - Operations return a ktc_plugin_status. On failure they SHOULD call
 *    host->set_error() once with a one-line message naming the object and
 *    the cause; the host prefixes the plugin's name.
 *  - Operations may be called from any thread, and concurrently for
 *    different calls; a plugin that keeps mutable state MUST protect it.
 *  - Strings the host passes in are borrowed for the duration of the
 *    operation. Strings the plugin passes to the host (through the
 *    services) are copied by the host before the service returns.
 *  - Everything reachable from the ktc_plugin_info a query returns is owned
 *    by the plugin and MUST stay valid and unchanged until the library is
 *    unloaded (static storage is the usual choice).
 *
 * Versions: KTC_PLUGIN_ABI_MAJOR changes only with an incompatible change,
 * and then the query symbol's name changes with it, so an old host never
 * calls a new plugin's entry by mistake. KTC_PLUGIN_ABI_MINOR counts
 * compatible additions; host and plugin each report theirs and each uses
 * only what both know (by struct_size and NULL checks).
 *
 * This header is plain C99 and compiles alone.
 */
#ifndef KTCACHE_PLUGIN_H
#define KTCACHE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The ABI version of this header. @since 1.1 */
#define KTC_PLUGIN_ABI_MAJOR 1
#define KTC_PLUGIN_ABI_MINOR 3

/** The entry point's name for this ABI major, as a string. @since 1.1 */
#define KTC_PLUGIN_QUERY_SYMBOL "ktc_plugin_query_v1"

/** Allowed plugin names: a lower-case letter, then up to 31 lower-case
 * letters, digits or '_' (documentation only; the host checks it).
 * @since 1.1 */
#define KTC_PLUGIN_NAME_PATTERN "[a-z][a-z0-9_]{0,31}"

/** Plugins export the query function with default visibility even when
 * built with -fvisibility=hidden. @since 1.1 */
#define KTC_PLUGIN_EXPORT __attribute__((visibility("default")))

/**
 * What operations return. Values are pinned forever: never renumbered,
 * never reused; new codes are only appended.
 * @since 1.1
 */
typedef enum ktc_plugin_status {
  KTC_PLUGIN_OK = 0,
  /** The spec or file is not this plugin's to handle (claim, whole_file);
   * the host moves on. Not a failure. */
  KTC_PLUGIN_NOT_MINE = 1,
  /** A failure with no more specific code. */
  KTC_PLUGIN_E_GENERIC = -1,
  /** The spec or an argument is malformed. */
  KTC_PLUGIN_E_INVALID = -2,
  /** The named version, commit, file or tree does not exist. */
  KTC_PLUGIN_E_NOTFOUND = -3,
  /** A system call failed. */
  KTC_PLUGIN_E_IO = -4,
  /** The network was needed and failed. */
  KTC_PLUGIN_E_NETWORK = -5,
  /** host->cancelled() said so and the plugin stopped. */
  KTC_PLUGIN_E_CANCELLED = -6,
  /** The operation is not offered by this plugin for this input. */
  KTC_PLUGIN_E_UNSUPPORTED = -7,
  /** recheck: the tree is no longer what resolve saw; acquire: a digest
   * did not match. */
  KTC_PLUGIN_E_CHANGED = -8,
  /** Memory could not be allocated. */
  KTC_PLUGIN_E_NOMEM = -9
} ktc_plugin_status;

/** ktc_plugin_info.kind. 0 is never a kind. @since 1.1 */
typedef enum ktc_plugin_kind {
  /** Acquires kernel source trees (ktc_source_ops). */
  KTC_PLUGIN_KIND_SOURCE = 1,
  /** Decides what of a vmlinux is kept (ktc_strip_ops). */
  KTC_PLUGIN_KIND_STRIP = 2
  /* 3 is reserved for remote storage. */
} ktc_plugin_kind;

/** Log levels, the same values as ktcache.h's ktc_log_level. @since 1.1 */
enum {
  KTC_PLUGIN_LOG_ERROR = 1,
  KTC_PLUGIN_LOG_WARN = 2,
  KTC_PLUGIN_LOG_INFO = 3,
  KTC_PLUGIN_LOG_DEBUG = 4,
  KTC_PLUGIN_LOG_TRACE = 5
};

/**
 * One operation in progress, owned by the host. Every operation receives
 * one and hands it back to the services it calls; it is valid only during
 * that operation. Opaque.
 * @since 1.1
 */
typedef struct ktc_plugin_call ktc_plugin_call;

/** The ELF strip engine (defined with the strip plugins below); NULL in
 * hosts of ABI minor 0. @since 1.1 */
typedef struct ktc_strip_engine ktc_strip_engine;

/**
 * What the host offers a plugin. Passed to the query function; the same
 * table stays valid until the plugin is unloaded. Every function member is
 * non-NULL in this ABI minor and MAY be called from any thread.
 * @since 1.1
 */
typedef struct ktc_host_services {
  uint32_t struct_size;
  /** The host's plugin ABI version (KTC_PLUGIN_ABI_MAJOR / _MINOR as the
   * host was built). */
  uint32_t abi_major;
  uint32_t abi_minor;
  uint32_t reserved0;
  /** The host library's version, "MAJOR.MINOR.PATCH". */
  const char* host_version;

  /** Writes one log line (no trailing newline) through the host's log
   * sink, at a KTC_PLUGIN_LOG_* level. */
  void (*log)(ktc_plugin_call* call, int level, const char* message);
  /** Reports progress of a named stage ("download", "extract"); `total` is
   * 0 when unknown. Cheap to call often. */
  void (*progress)(ktc_plugin_call* call,
                   const char* stage,
                   uint64_t done,
                   uint64_t total);
  /** Non-zero when the caller asked to stop: a long operation SHOULD check
   * it between steps and return KTC_PLUGIN_E_CANCELLED. */
  int (*cancelled)(ktc_plugin_call* call);
  /** Records the failure message of the current operation (one line). The
   * last call wins. */
  void (*set_error)(ktc_plugin_call* call, const char* message);

  /** Reads a whole regular file of at most `max_bytes` into memory the
   * host allocates; the plugin frees it with free_buffer(). A NUL byte
   * follows the data (not counted in *length).
   * @return KTC_PLUGIN_OK, _E_NOTFOUND, _E_IO (also when larger). */
  int (*read_file)(ktc_plugin_call* call,
                   const char* path,
                   size_t max_bytes,
                   char** data,
                   size_t* length);
  /** Frees what read_file() or run() returned. NULL is accepted. */
  void (*free_buffer)(void* buffer);
  /** Copies a regular file (reflink or in-kernel copy where possible) to
   * `to`, which must not exist; fsyncs it. */
  int (*copy_file)(ktc_plugin_call* call, const char* from, const char* to);
  /** The SHA-256 of a file as 64 lower-case hex digits and a NUL. */
  int (*sha256_file)(ktc_plugin_call* call, const char* path, char hex[65]);
  /** Runs argv[0] (searched in PATH) with `cwd` (NULL: unchanged), no
   * shell, stdin from /dev/null, in a session of its own (no controlling
   * terminal: a tool that would prompt fails instead). Its stdout (at most 1
   * MiB) is returned in *output (free with free_buffer(); NUL-terminated), its
   * stderr goes to the log at debug level. *exit_status is its exit code, or
   * 128+signal.
   * @return KTC_PLUGIN_OK when it ran (whatever its status), _E_NOTFOUND
   *         when argv[0] cannot be executed, _E_IO. */
  int (*run)(ktc_plugin_call* call,
             const char* const* argv,
             const char* cwd,
             char** output,
             int* exit_status);

  /** Source operations: record one identity field of the spec. Known
   * names: "version" (kernel version), "commit" (full git commit),
   * "digest" (hex SHA-256 of an input file), "digest_name" (its
   * basename), "dirty" ("true"/"false"), "tree" (the tree's path). Other
   * names are kept and shown. A NULL value records null. */
  int (*set_identity)(ktc_plugin_call* call,
                      const char* name,
                      const char* value);
  /** Source operations: record one field of the flat `source` payload
   * written to metadata (never "type", which is the plugin's name).
   * A NULL value records JSON null. */
  int (*payload_string)(ktc_plugin_call* call,
                        const char* name,
                        const char* value);
  int (*payload_bool)(ktc_plugin_call* call, const char* name, int value);
  int (*payload_int)(ktc_plugin_call* call, const char* name, int64_t value);
  /** Source describe: append one part of the cache key, in order (for
   * example "6.12.3", "tarball"; or "local", "abc1234"). The host makes
   * each part safe and appends the arch and the build-input hash. */
  int (*add_key_part)(ktc_plugin_call* call, const char* part);
  /** Source expand: append one concrete spec a series or range expands
   * to, oldest first. */
  int (*add_expansion)(ktc_plugin_call* call, const char* spec);
  /** Source acquire: the tree is at `path` instead of the directory the
   * host provided: a tree used in place (KTC_SOURCE_IN_PLACE), or a
   * directory inside `dest_dir` (a tarball's top-level directory). */
  int (*set_tree)(ktc_plugin_call* call, const char* path);

  /** The ELF strip engine; NULL in ABI minor 0, non-NULL from minor 1. */
  const ktc_strip_engine* strip_engine;

  /** Source describe, acquire and recheck: the value resolve() recorded
   * with set_identity() for this spec under `name` ("version", "commit",
   * "digest", or a plugin's own), so that acquire need not resolve again.
   * Borrowed until the operation returns; NULL when it was not recorded
   * or is null. Absent (struct_size too small) in hosts of ABI minor 1.
   * @since 1.3 */
  const char* (*identity)(ktc_plugin_call* call, const char* name);

  /** Non-zero when the host is offline (KTC_OPEN_OFFLINE or
   * KTCACHE_OFFLINE=1): the plugin MUST NOT use the network, and fails
   * what needs it with KTC_PLUGIN_E_NETWORK and a message saying so. What
   * is on disk (a local file, a local repository) is still allowed.
   * Absent in hosts of ABI minor 2 and older (plugins then read
   * KTCACHE_OFFLINE themselves). @since 1.4 */
  int (*offline)(ktc_plugin_call* call);
  /** Source releases: append one row of the upstream's release list,
   * newest first ("stable", "6.12.3"; "longterm", "6.6.60";
   * "mainline", "6.15-rc3"). @since 1.4 */
  int (*add_release)(ktc_plugin_call* call,
                     const char* moniker,
                     const char* version);
} ktc_host_services;

/* ---------------------------------------------------------------------- */
/* Source plugins                                                         */
/* ---------------------------------------------------------------------- */

/** ktc_source_ops.flags. @since 1.1 */
enum {
  /** acquire() never copies: it names the tree in place (set_tree). */
  KTC_SOURCE_IN_PLACE = 1u << 0,
  /** resolve() may need the network. */
  KTC_SOURCE_NETWORK = 1u << 1
};

/**
 * A source plugin's operations. `state` is ktc_plugin_info.state. `spec`
 * is the whole spec including its "<scheme>:" prefix.
 * @since 1.1
 */
typedef struct ktc_source_ops {
  uint32_t struct_size;
  /** KTC_SOURCE_* bits. */
  uint32_t flags;
  /** Optional. Says whether `spec` is this plugin's. The host already
   * matched the scheme to the file; claim refines (a URL it cannot fetch,
   * say). NULL means every spec with the scheme is claimed.
   * @return KTC_PLUGIN_OK, _NOT_MINE, or a failure. */
  int (*claim)(void* state, ktc_plugin_call* call, const char* spec);
  /** Required. Resolves what the spec names, as cheaply as possible and
   * without fetching the tree where it can (a version, a commit, a file's
   * digest), through set_identity(). MUST be deterministic for an unchanged
   * input. */
  int (*resolve)(void* state, ktc_plugin_call* call, const char* spec);
  /** Required. Describes the resolved source: the metadata payload
   * (payload_*) and the cache key's parts (add_key_part(), at least one).
   * Called after resolve() on the same call. */
  int (*describe)(void* state, ktc_plugin_call* call, const char* spec);
  /** Required. Puts the tree into `dest_dir` (an empty directory the host
   * created and owns; the plugin MUST NOT write outside it), or, with
   * KTC_SOURCE_IN_PLACE, calls set_tree() with the tree to use as is. */
  int (*acquire)(void* state,
                 ktc_plugin_call* call,
                 const char* spec,
                 const char* dest_dir);
  /** Optional. After a build in `tree_dir`: KTC_PLUGIN_OK when the tree is
   * still what resolve() saw, KTC_PLUGIN_E_CHANGED (with set_error saying
   * how) when not. */
  int (*recheck)(void* state,
                 ktc_plugin_call* call,
                 const char* spec,
                 const char* tree_dir);
  /** Optional. Lists the concrete specs a series or range names through
   * add_expansion(); _E_UNSUPPORTED when the spec is already concrete. */
  int (*expand)(void* state, ktc_plugin_call* call, const char* spec);
  /** Optional. Lists the releases upstream publishes (kernel.org's
   * releases.json: moniker and version per row) through add_release(),
   * newest first. The host keeps the list on disk with a time to live and
   * calls this only when its copy is missing or old, never when offline.
   * Present when struct_size covers it (plugins of ABI minor 3 and
   * later). @since 1.4 */
  int (*releases)(void* state, ktc_plugin_call* call);
} ktc_source_ops;

/* ---------------------------------------------------------------------- */
/* Strip plugins                                                          */
/* ---------------------------------------------------------------------- */

/** What a strip policy does with one section. @since 1.1 */
typedef enum ktc_strip_decision {
  /** Kept byte for byte. */
  KTC_STRIP_KEEP = 0,
  /** Kept as a header with its address and size, without data. */
  KTC_STRIP_HEADER_ONLY = 1,
  /** Removed. (Allocated sections are kept at least as headers.) */
  KTC_STRIP_DROP = 2
} ktc_strip_decision;

/** One section of the input, as decide() sees it. Borrowed. @since 1.1 */
typedef struct ktc_strip_section {
  uint32_t struct_size;
  /** The section's index in the input. */
  uint32_t index;
  /** Its name; "" when it has none. */
  const char* name;
  /** sh_type, sh_flags and sh_size, widened from either ELF class. */
  uint32_t type;
  uint32_t reserved0;
  uint64_t flags;
  uint64_t size;
  /** KTC_STRIP_ROLE_* bits: what the section is to the engine. Present when
   * struct_size covers it (hosts of ABI minor 1 and later). @since 1.2 */
  uint32_t roles;
  uint32_t reserved1;
} ktc_strip_section;

/** ktc_strip_section.roles. @since 1.2 */
enum {
  /** The null section or the section-name table. */
  KTC_STRIP_ROLE_STRUCTURAL = 1u << 0,
  /** .symtab, its string table, or its SHT_SYMTAB_SHNDX. */
  KTC_STRIP_ROLE_SYMBOLS = 1u << 1,
  /** .BTF. */
  KTC_STRIP_ROLE_BTF = 1u << 2,
  /** Holds the embedded kernel config (kernel_config_data, IKCFG_ST). */
  KTC_STRIP_ROLE_IKCONFIG = 1u << 3,
  /** SHT_NOTE (the build-id among them). */
  KTC_STRIP_ROLE_NOTE = 1u << 4,
  /** DWARF and other debug data (.debug_*, .zdebug_*, .stab*, ...). */
  KTC_STRIP_ROLE_DEBUG = 1u << 5,
  /** .comment. */
  KTC_STRIP_ROLE_COMMENT = 1u << 6,
  /** A relocation section (REL, RELA, RELR, CREL). */
  KTC_STRIP_ROLE_RELOC = 1u << 7,
  /** SHF_ALLOC: part of the loaded image. */
  KTC_STRIP_ROLE_ALLOC = 1u << 8,
  /** SHF_EXECINSTR. */
  KTC_STRIP_ROLE_CODE = 1u << 9,
  /** .BTF.ext. */
  KTC_STRIP_ROLE_BTF_EXT = 1u << 10
};

/** A strip plugin's operations. @since 1.1 */
typedef struct ktc_strip_ops {
  uint32_t struct_size;
  uint32_t flags;
  /** Required. Sets *decision to a ktc_strip_decision for `section`. */
  int (*decide)(void* state,
                ktc_plugin_call* call,
                const ktc_strip_section* section,
                int* decision);
  /** Optional. Produces `output` (which does not exist yet; the host
   * renames it into place afterwards) from `input` by itself, for policies
   * that need more than per-section decisions. _NOT_MINE hands the file
   * back to the engine and decide(). */
  int (*whole_file)(void* state,
                    ktc_plugin_call* call,
                    const char* input,
                    const char* output);
} ktc_strip_ops;

/** A per-section decision function for ktc_strip_engine.strip(): sets
 * *decision to a ktc_strip_decision and returns a ktc_plugin_status.
 * @since 1.2 */
typedef int (*ktc_strip_decide_fn)(void* context,
                                   const ktc_strip_section* section,
                                   int* decision);

/**
 * The host's ELF strip engine, for whole_file() hooks that want the engine
 * with a decision function of their own (a plain policy needs none of this:
 * decide() is enough). Whatever the decisions, the engine keeps allocated
 * sections at least as headers, keeps the symbol and section-name tables,
 * drops relocations of what is not kept, and copies program headers
 * unchanged. Owned by the host, valid until unload.
 * @since 1.2
 */
struct ktc_strip_engine {
  uint32_t struct_size;
  uint32_t reserved0;
  /** Writes `output` (which MUST NOT exist; the engine creates it, and
   * removes it on failure) from the ELF file `input`, calling
   * decide(context, ...) once per section. The output is checked (every
   * named symbol, .BTF, the build-id and IKCONFIG intact) before this
   * returns KTC_PLUGIN_OK; on any failure set_error() has the cause. */
  int (*strip)(ktc_plugin_call* call,
               const char* input,
               const char* output,
               ktc_strip_decide_fn decide,
               void* context);
};

/* ---------------------------------------------------------------------- */
/* The entry point                                                        */
/* ---------------------------------------------------------------------- */

/**
 * What a plugin is. Owned by the plugin, valid until it is unloaded.
 * @since 1.1
 */
typedef struct ktc_plugin_info {
  uint32_t struct_size;
  /** KTC_PLUGIN_ABI_MAJOR and _MINOR as the plugin was built. */
  uint32_t abi_major;
  uint32_t abi_minor;
  /** A ktc_plugin_kind. */
  uint32_t kind;
  /** The scheme or policy name; MUST equal the <name> of the file. For a
   * source plugin it is also the `type` written to metadata. */
  const char* name;
  /** The plugin's own version (recorded in metadata). */
  const char* version;
  /** One line for `ktcache plugins`; may be NULL. */
  const char* description;
  /** Passed back as `state` to every operation; may be NULL. */
  void* state;
  /** Optional. Called once before the library is unloaded. */
  void (*unload)(void* state);
  /** KTC_PLUGIN_KIND_SOURCE: the operations; NULL otherwise. */
  const ktc_source_ops* source;
  /** KTC_PLUGIN_KIND_STRIP: the operations; NULL otherwise. */
  const ktc_strip_ops* strip;
} ktc_plugin_info;

/**
 * The entry point, exported as ktc_plugin_query_v1. Called once per load,
 * before any operation.
 *
 * The plugin MUST NOT keep `host` past unload, SHOULD check
 * host->struct_size and host->abi_minor before using services newer than
 * ABI minor 0, and sets *info to its description on success.
 * @return KTC_PLUGIN_OK; anything else rejects the plugin, with the
 *         message given through host->set_error() (call is NULL-safe here:
 *         the host passes a call for the query too).
 * @since 1.1
 */
typedef int (*ktc_plugin_query_fn)(const ktc_host_services* host,
                                   ktc_plugin_call* call,
                                   const ktc_plugin_info** info);

/** Declares the entry point with the right name, type and visibility.
 * @since 1.1 */
#define KTC_PLUGIN_DECLARE_QUERY                                               \
  KTC_PLUGIN_EXPORT int ktc_plugin_query_v1(const ktc_host_services* host,     \
                                            ktc_plugin_call* call,             \
                                            const ktc_plugin_info** info)

#ifdef __cplusplus
}
#endif

#endif /* KTCACHE_PLUGIN_H */
