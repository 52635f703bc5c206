/*
 * Unit test of the core's descriptor vetting (loader_vet in core/loader.c) against the
 * rules of DESIGN.md §3 and the mandatory/optional members written in the SDK headers.
 * Descriptors are built in memory, so every member of every kind is covered.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "loader.h"
#include "tap.h"

static void dummy(void)
{
}

struct member {
	const char *name;
	size_t off;
};

#define M(type, m)                                                                                 \
	{                                                                                          \
#m, offsetof(type, m)                                                              \
	}
#define L(m)                                                                                       \
	{                                                                                          \
#m, offsetof(struct sbx_plugin, life.m)                                            \
	}

struct kind_case {
	int kind;
	const char *kind_name;
	size_t size;
	const struct member *mandatory; /* as documented in the kind's header */
	size_t n_mandatory;
	const struct member *optional;
	size_t n_optional;
};

static const struct member life_mandatory[] = {L(create), L(destroy)};
static const struct member life_optional[] = {L(start), L(stop), L(thread_init), L(thread_fini)};

static const struct member rt_m[] = {
    M(struct sbx_runtime_plugin, sandbox_create), M(struct sbx_runtime_plugin, sandbox_destroy),
    M(struct sbx_runtime_plugin, sandbox_status), M(struct sbx_runtime_plugin, sandbox_list)};
static const struct member rt_o[] = {M(struct sbx_runtime_plugin, nodes),
				     M(struct sbx_runtime_plugin, health)};
static const struct member st_m[] = {
    M(struct sbx_storage_plugin, put),  M(struct sbx_storage_plugin, get),
    M(struct sbx_storage_plugin, head), M(struct sbx_storage_plugin, list),
    M(struct sbx_storage_plugin, del),  M(struct sbx_storage_plugin, del_prefix)};
static const struct member st_o[] = {M(struct sbx_storage_plugin, presign_get),
				     M(struct sbx_storage_plugin, health)};
static const struct member po_m[] = {M(struct sbx_policy_plugin, select_node)};
static const struct member au_m[] = {M(struct sbx_auth_plugin, authenticate)};
static const struct member au_o[] = {M(struct sbx_auth_plugin, manage)};
static const struct member db_m[] = {
    M(struct sbx_db_plugin, session_insert),   M(struct sbx_db_plugin, session_get),
    M(struct sbx_db_plugin, session_list),     M(struct sbx_db_plugin, session_update),
    M(struct sbx_db_plugin, session_delete),   M(struct sbx_db_plugin, execution_insert),
    M(struct sbx_db_plugin, execution_get),    M(struct sbx_db_plugin, execution_list),
    M(struct sbx_db_plugin, execution_update), M(struct sbx_db_plugin, template_insert),
    M(struct sbx_db_plugin, template_get),     M(struct sbx_db_plugin, template_list),
    M(struct sbx_db_plugin, template_update),  M(struct sbx_db_plugin, template_delete),
    M(struct sbx_db_plugin, lease_acquire),    M(struct sbx_db_plugin, lease_release)};
static const struct member db_o[] = {M(struct sbx_db_plugin, health)};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct kind_case kinds[] = {
    {SBX_KIND_RUNTIME, "runtime", sizeof(struct sbx_runtime_plugin), rt_m, N(rt_m), rt_o, N(rt_o)},
    {SBX_KIND_STORAGE, "storage", sizeof(struct sbx_storage_plugin), st_m, N(st_m), st_o, N(st_o)},
    {SBX_KIND_POLICY, "policy", sizeof(struct sbx_policy_plugin), po_m, N(po_m), NULL, 0},
    {SBX_KIND_AUTH, "auth", sizeof(struct sbx_auth_plugin), au_m, N(au_m), au_o, N(au_o)},
    {SBX_KIND_DB, "db", sizeof(struct sbx_db_plugin), db_m, N(db_m), db_o, N(db_o)},
};

/* Room for the largest descriptor plus a future minor's appended members. */
static union {
	struct sbx_runtime_plugin rt;
	struct sbx_storage_plugin st;
	struct sbx_policy_plugin po;
	struct sbx_auth_plugin au;
	struct sbx_db_plugin db;
	unsigned char bytes[1024];
} buf;

static struct sbx_plugin_header *hdr = &buf.rt.hdr;
static char reason[512];

static void set_fn(size_t off, void (*fn)(void))
{
	memcpy(buf.bytes + off, &fn, sizeof fn);
}

/* A complete, valid 1.0 descriptor of kind k: every pointer past the header set. */
static void full(const struct kind_case *k)
{
	size_t off;

	memset(&buf, 0, sizeof buf);
	*hdr = (struct sbx_plugin_header){.magic = SBX_PLUGIN_MAGIC,
					  .abi_major = SBX_ABI_MAJOR,
					  .abi_minor = SBX_ABI_MINOR,
					  .size = (uint32_t)k->size,
					  .kind = (uint32_t)k->kind,
					  .name = "vet",
					  .version = "1.0.0",
					  .description = "loader_vet test"};
	for (off = sizeof(struct sbx_plugin_header); off + sizeof(void (*)(void)) <= k->size;
	     off += sizeof(void (*)(void)))
		set_fn(off, dummy);
}

static int vet(int want_kind)
{
	reason[0] = '\0';
	return loader_vet(hdr, want_kind, reason, sizeof reason);
}

/* Refused, with every `phrase` in the reason. */
static void refused(int want_kind, const char *what, const char *phrase, const char *phrase2)
{
	int rc = vet(want_kind);

	ok(rc < 0 && strstr(reason, phrase) && (!phrase2 || strstr(reason, phrase2)),
	   "%s: refused saying \"%s\"%s%s%s (got %d: \"%s\")", what, phrase,
	   phrase2 ? " and \"" : "", phrase2 ? phrase2 : "", phrase2 ? "\"" : "", rc, reason);
}

int main(void)
{
	const struct kind_case *k;
	char what[128], phrase[128];
	size_t i;

	for (k = kinds; k < kinds + N(kinds); k++) {
		full(k);
		ok(vet(k->kind) == 0, "%s: a complete 1.0 descriptor is accepted (%s)",
		   k->kind_name, reason);

		for (i = 0; i < N(life_mandatory) + k->n_mandatory; i++) {
			const struct member *m = i < N(life_mandatory)
						     ? &life_mandatory[i]
						     : &k->mandatory[i - N(life_mandatory)];
			full(k);
			set_fn(m->off, NULL);
			snprintf(what, sizeof what, "%s without %s", k->kind_name, m->name);
			snprintf(phrase, sizeof phrase, "missing mandatory method '%s'", m->name);
			refused(k->kind, what, phrase, NULL);
		}

		full(k);
		for (i = 0; i < N(life_optional); i++)
			set_fn(life_optional[i].off, NULL);
		for (i = 0; i < k->n_optional; i++)
			set_fn(k->optional[i].off, NULL);
		ok(vet(k->kind) == 0, "%s: every optional member NULL is accepted (%s)",
		   k->kind_name, reason);

		full(k);
		hdr->size = (uint32_t)(k->size - sizeof(void (*)(void)));
		snprintf(phrase, sizeof phrase, "%s descriptor", k->kind_name);
		refused(k->kind, k->kind_name, "descriptor size", phrase);

		full(k);
		hdr->size = (uint32_t)sizeof(struct sbx_plugin_header);
		refused(k->kind, "header-only size", "descriptor size", NULL);

		full(k);
		hdr->size = (uint32_t)(k->size + 64);
		ok(vet(k->kind) == 0,
		   "%s: a descriptor larger than 1.0's (appended members) is accepted (%s)",
		   k->kind_name, reason);
	}

	k = &kinds[2]; /* policy */
	full(k);
	hdr->magic = 0x12345678u;
	refused(k->kind, "bad magic", "bad magic 0x12345678", "not an sbxd plugin");
	full(k);
	hdr->magic = __builtin_bswap32(SBX_PLUGIN_MAGIC);
	refused(k->kind, "byte-swapped magic", "bad magic", NULL);

	full(k);
	hdr->abi_major = SBX_ABI_MAJOR + 1;
	hdr->abi_minor = 0;
	snprintf(phrase, sizeof phrase, "built for ABI %d.0", SBX_ABI_MAJOR + 1);
	refused(k->kind, "newer major", phrase, "rebuild");
	full(k);
	hdr->abi_major = 0;
	hdr->abi_minor = 9;
	refused(k->kind, "older major", "built for ABI 0.9", "rebuild");
	full(k);
	hdr->abi_minor = SBX_ABI_MINOR + 1;
	snprintf(phrase, sizeof phrase, "built for ABI %d.%d, newer than", SBX_ABI_MAJOR,
		 SBX_ABI_MINOR + 1);
	refused(k->kind, "newer minor", phrase, "upgrade sbxd");
	full(k);
	hdr->abi_minor = 0xffff;
	refused(k->kind, "minor 65535", "newer than", NULL);
	full(k);
	hdr->abi_minor = 0;
	ok(vet(k->kind) == 0, "minor 0 is accepted by this %d.%d core (%s)", SBX_ABI_MAJOR,
	   SBX_ABI_MINOR, reason);

	full(k);
	refused(SBX_KIND_STORAGE, "wrong kind", "is a policy plugin, configured as storage", NULL);
	full(k);
	hdr->kind = 0;
	ok(vet(SBX_KIND_POLICY) < 0, "kind 0 refused (%s)", reason);
	full(k);
	hdr->kind = 99;
	ok(vet(SBX_KIND_POLICY) < 0, "kind 99 refused (%s)", reason);

	full(k);
	hdr->name = NULL;
	ok(vet(SBX_KIND_POLICY) < 0, "NULL name refused (%s)", reason);
	full(k);
	hdr->version = NULL;
	ok(vet(SBX_KIND_POLICY) < 0, "NULL version refused (%s)", reason);

	return tap_done();
}
