/*
 * The sbxd plugin ABI: the frozen descriptor header, the lifecycle block every module
 * implements, the single entry point, and the version rules. Kind-specific methods are
 * in runtime.h, storage.h, policy.h, auth.h and db.h; core services in core.h.
 *
 * VERSION RULES
 *   A module is loaded iff hdr.magic == SBX_PLUGIN_MAGIC, hdr.abi_major == the core's
 *   major and hdr.abi_minor <= the core's minor. hdr.size is sizeof the module's
 *   descriptor: members that start at or past hdr.size are treated as absent (NULL).
 *   Appending a member to a descriptor or to struct sbx_core_api bumps the minor;
 *   anything else (reordering, removing, changing a type or a meaning) bumps the major.
 *   Every bump adds a line to the changelog below.
 *
 * CHANGELOG
 *   1.0  (2026-11) first stable ABI: header, lifecycle, core services, five kinds.
 *        Header-only helpers (sbx_err_set, sbx_storage_key_check) are not ABI: they are
 *        compiled into each module and may be added without a version bump.
 */
#ifndef SANDBOX_PLUGIN_H
#define SANDBOX_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <sandbox/err.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SBX_PLUGIN_MAGIC 0x53425850u /* "SBXP" */
#define SBX_ABI_MAJOR    1
#define SBX_ABI_MINOR    0

#if defined(__GNUC__)
#define SBX_EXPORT __attribute__((visibility("default")))
#else
#define SBX_EXPORT
#endif

enum sbx_plugin_kind {
	SBX_KIND_RUNTIME = 1,
	SBX_KIND_STORAGE = 2,
	SBX_KIND_POLICY = 3,
	SBX_KIND_AUTH = 4,
	SBX_KIND_DB = 5,
};

struct sbx_core_api; /* core.h */

/* Frozen forever: the core reads these members before it knows anything else. */
struct sbx_plugin_header {
	uint32_t magic;          /* SBX_PLUGIN_MAGIC */
	uint16_t abi_major;      /* SBX_ABI_MAJOR the module was built with */
	uint16_t abi_minor;      /* SBX_ABI_MINOR the module was built with */
	uint32_t size;           /* sizeof the module's whole descriptor */
	uint32_t kind;           /* enum sbx_plugin_kind */
	const char *name;        /* module name, e.g. "linux"; static storage */
	const char *version;     /* the module's own version, e.g. "1.2.0"; static */
	const char *description; /* one line for humans; static */
};

/*
 * Lifecycle, identical for every kind. `inst` is the module's own per-instance state;
 * several instances of one module may be live at once (no mutable globals).
 *
 * create   Mandatory. Called once per configured instance, on the main thread, before
 *          any other thread exists. `core` stays valid until destroy returns. `config`
 *          (borrowed) is the instance's libconfig group as a JSON object; unpack it
 *          strictly: an unknown key must fail with SBX_E_INVALID naming the key.
 *          `instance_name` (borrowed) is the operator's name for this instance.
 *          On success sets *inst (owned by the module until destroy).
 * start    Optional. Main thread, after every module is created, before requests are
 *          served. May start the module's own threads.
 * stop     Optional. Main thread, after the HTTP server stopped accepting and workers
 *          drained; stop the module's threads. No other call follows except destroy.
 * destroy  Mandatory. Main thread. Frees inst.
 * thread_init / thread_fini  Optional. Called on each core worker thread once before
 *          its first and after its last call into this instance (per-thread
 *          connections, e.g. mysql_thread_init).
 */
struct sbx_plugin_lifecycle {
	int (*create)(const struct sbx_core_api *core, const char *instance_name,
		      const json_t *config, void **inst, sbx_err *err);
	int (*start)(void *inst, sbx_err *err);
	void (*stop)(void *inst);
	void (*destroy)(void *inst);
	void (*thread_init)(void *inst);
	void (*thread_fini)(void *inst);
};

/* What every kind's descriptor starts with. */
struct sbx_plugin {
	struct sbx_plugin_header hdr;
	struct sbx_plugin_lifecycle life;
};

/* Initialise a descriptor's header: SBX_PLUGIN_HEADER(SBX_KIND_DB, struct sbx_db_plugin,
 * "sqlite", "1.0.0", "SQLite state store"). */
#define SBX_PLUGIN_HEADER(kind_, type_, name_, version_, desc_)                                    \
	{                                                                                          \
		.magic = SBX_PLUGIN_MAGIC, .abi_major = SBX_ABI_MAJOR, .abi_minor = SBX_ABI_MINOR, \
		.size = (uint32_t)sizeof(type_), .kind = (kind_), .name = (name_),                 \
		.version = (version_), .description = (desc_)                                      \
	}

/*
 * The one symbol a module exports. Returns a pointer to a static const descriptor
 * (struct sbx_runtime_plugin, ...) whose first member is struct sbx_plugin_header.
 * Called once per dlopen, on the main thread; must not fail or allocate.
 */
typedef const struct sbx_plugin_header *(*sbx_plugin_entry_fn)(void);
#define SBX_PLUGIN_ENTRY_SYMBOL "sbx_plugin_entry"

/* True when a descriptor of header size `hsize` contains member `member` of `type`. */
#define SBX_HAS_MEMBER(desc, type, member)                                                         \
	((desc)->hdr.size >= offsetof(type, member) + sizeof(((type *)0)->member) &&               \
	 ((type *)(desc))->member != NULL)

#ifdef __cplusplus
}
#endif
#endif
