/*
 * Module loading. A module is trusted code, but a module built for another ABI would
 * crash the daemon in ways no operator could diagnose, so every descriptor is vetted and
 * refused with a sentence naming the module and the reason.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"

struct kind_abi {
	size_t size;                 /* sizeof the 1.0 descriptor */
	const char *const *required; /* mandatory method names */
	const size_t *offsets;       /* their offsets */
	size_t n_required;
};

#define OFF(t, m) offsetof(t, m)

static const char *const life_names[] = {"create", "destroy"};
static const size_t life_offs[] = {offsetof(struct sbx_plugin, life.create),
				   offsetof(struct sbx_plugin, life.destroy)};

static const char *const rt_names[] = {"sandbox_create", "sandbox_destroy", "sandbox_status",
				       "sandbox_list"};
static const size_t rt_offs[] = {
    OFF(struct sbx_runtime_plugin, sandbox_create), OFF(struct sbx_runtime_plugin, sandbox_destroy),
    OFF(struct sbx_runtime_plugin, sandbox_status), OFF(struct sbx_runtime_plugin, sandbox_list)};

static const char *const st_names[] = {"put", "get", "head", "list", "del", "del_prefix"};
static const size_t st_offs[] = {
    OFF(struct sbx_storage_plugin, put),  OFF(struct sbx_storage_plugin, get),
    OFF(struct sbx_storage_plugin, head), OFF(struct sbx_storage_plugin, list),
    OFF(struct sbx_storage_plugin, del),  OFF(struct sbx_storage_plugin, del_prefix)};

static const char *const po_names[] = {"select_node"};
static const size_t po_offs[] = {OFF(struct sbx_policy_plugin, select_node)};

static const char *const au_names[] = {"authenticate"};
static const size_t au_offs[] = {OFF(struct sbx_auth_plugin, authenticate)};

static const char *const db_names[] = {
    "session_insert",   "session_get",      "session_list",  "session_update",
    "session_delete",   "execution_insert", "execution_get", "execution_list",
    "execution_update", "template_insert",  "template_get",  "template_list",
    "template_update",  "template_delete",  "lease_acquire", "lease_release"};
static const size_t db_offs[] = {
    OFF(struct sbx_db_plugin, session_insert),   OFF(struct sbx_db_plugin, session_get),
    OFF(struct sbx_db_plugin, session_list),     OFF(struct sbx_db_plugin, session_update),
    OFF(struct sbx_db_plugin, session_delete),   OFF(struct sbx_db_plugin, execution_insert),
    OFF(struct sbx_db_plugin, execution_get),    OFF(struct sbx_db_plugin, execution_list),
    OFF(struct sbx_db_plugin, execution_update), OFF(struct sbx_db_plugin, template_insert),
    OFF(struct sbx_db_plugin, template_get),     OFF(struct sbx_db_plugin, template_list),
    OFF(struct sbx_db_plugin, template_update),  OFF(struct sbx_db_plugin, template_delete),
    OFF(struct sbx_db_plugin, lease_acquire),    OFF(struct sbx_db_plugin, lease_release)};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct kind_abi kinds[] = {
    [SBX_KIND_RUNTIME] = {sizeof(struct sbx_runtime_plugin), rt_names, rt_offs, N(rt_names)},
    [SBX_KIND_STORAGE] = {sizeof(struct sbx_storage_plugin), st_names, st_offs, N(st_names)},
    [SBX_KIND_POLICY] = {sizeof(struct sbx_policy_plugin), po_names, po_offs, N(po_names)},
    [SBX_KIND_AUTH] = {sizeof(struct sbx_auth_plugin), au_names, au_offs, N(au_names)},
    [SBX_KIND_DB] = {sizeof(struct sbx_db_plugin), db_names, db_offs, N(db_names)},
};

int loader_init(void)
{
	return lt_dlinit() == 0 ? 0 : -1;
}

void loader_exit(void)
{
	lt_dlexit();
}

static int fn_missing(const struct sbx_plugin_header *h, size_t off)
{
	void *fp;
	memcpy(&fp, (const char *)h + off, sizeof fp);
	return fp == NULL;
}

int loader_vet(const struct sbx_plugin_header *h, int want_kind, char *reason, size_t len)
{
	const struct kind_abi *k;
	size_t i;

	if (h->magic != SBX_PLUGIN_MAGIC) {
		snprintf(reason, len, "bad magic 0x%08x (not an sbxd plugin)", (unsigned)h->magic);
		return -1;
	}
	if (h->abi_major != SBX_ABI_MAJOR) {
		snprintf(reason, len,
			 "built for ABI %u.%u, this sbxd speaks %d.%d (rebuild it against this "
			 "sbxd's SDK)",
			 h->abi_major, h->abi_minor, SBX_ABI_MAJOR, SBX_ABI_MINOR);
		return -1;
	}
	if (h->abi_minor > SBX_ABI_MINOR) {
		snprintf(reason, len,
			 "built for ABI %d.%u, newer than this sbxd's %d.%d (upgrade sbxd or "
			 "rebuild the plugin)",
			 SBX_ABI_MAJOR, h->abi_minor, SBX_ABI_MAJOR, SBX_ABI_MINOR);
		return -1;
	}
	if (h->kind < SBX_KIND_RUNTIME || h->kind > SBX_KIND_DB) {
		snprintf(reason, len, "unknown kind %u", (unsigned)h->kind);
		return -1;
	}
	if ((int)h->kind != want_kind) {
		snprintf(reason, len, "is a %s plugin, configured as %s",
			 conf_kind_name((int)h->kind), conf_kind_name(want_kind));
		return -1;
	}
	if (!h->name || !h->version) {
		snprintf(reason, len, "descriptor has no name or version");
		return -1;
	}
	/* ABI 1.0 is the first version: every 1.x descriptor holds at least the 1.0 members.
	 * (When 1.1 appends members, this check stays at the 1.0 size and newer members are
	 * read only when hdr.size covers them.) */
	k = &kinds[h->kind];
	if (h->size < k->size) {
		snprintf(reason, len,
			 "descriptor size %u is smaller than the ABI 1.0 %s descriptor (%zu)",
			 (unsigned)h->size, conf_kind_name((int)h->kind), k->size);
		return -1;
	}
	for (i = 0; i < N(life_names); i++)
		if (fn_missing(h, life_offs[i])) {
			snprintf(reason, len, "missing mandatory method '%s'", life_names[i]);
			return -1;
		}
	for (i = 0; i < k->n_required; i++)
		if (fn_missing(h, k->offsets[i])) {
			snprintf(reason, len, "missing mandatory method '%s'", k->required[i]);
			return -1;
		}
	return 0;
}

int loader_open(const struct plugin_spec *spec, const char *plugins_dir, struct plugin *out,
		char *msg, size_t len)
{
	char path[4096], reason[512];
	sbx_plugin_entry_fn entry;
	const struct sbx_plugin_header *h;
	union {
		void *p;
		sbx_plugin_entry_fn f;
	} sym;

	memset(out, 0, sizeof *out);
	out->spec = spec;
	if (spec->path)
		snprintf(path, sizeof path, "%s", spec->path);
	else
		snprintf(path, sizeof path, "%s/%s_%s.so", plugins_dir, conf_kind_name(spec->kind),
			 spec->module);
	out->path = strdup(path);
	{
		lt_dladvise adv;
		lt_dladvise_init(&adv);
		lt_dladvise_local(&adv); /* RTLD_LOCAL: modules do not see each other */
		out->dl = lt_dlopenadvise(path, adv);
		lt_dladvise_destroy(&adv);
	}
	if (!out->dl) {
		const char *e = lt_dlerror();
		snprintf(msg, len, "plugin '%s' (%s): cannot load: %s", spec->name, path,
			 e ? e : "unknown error");
		return -1;
	}
	sym.p = lt_dlsym(out->dl, SBX_PLUGIN_ENTRY_SYMBOL);
	if (!sym.p) {
		snprintf(msg, len, "plugin '%s' (%s): no %s symbol (not an sbxd plugin)",
			 spec->name, path, SBX_PLUGIN_ENTRY_SYMBOL);
		goto fail;
	}
	entry = sym.f;
	h = entry();
	if (!h) {
		snprintf(msg, len, "plugin '%s' (%s): %s returned no descriptor", spec->name, path,
			 SBX_PLUGIN_ENTRY_SYMBOL);
		goto fail;
	}
	if (loader_vet(h, spec->kind, reason, sizeof reason) < 0) {
		snprintf(msg, len, "plugin '%s' (%s): %s", spec->name, path, reason);
		goto fail;
	}
	out->d.any = (const struct sbx_plugin *)h;
	return 0;
fail:
	lt_dlclose(out->dl);
	out->dl = NULL;
	return -1;
}

void loader_close(struct plugin *p)
{
	if (p->dl)
		lt_dlclose(p->dl);
	free(p->path);
	memset(p, 0, sizeof *p);
}
