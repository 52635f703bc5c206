/*
 * auth/apikey internals: the instance, the keys file identity, and the functions of
 * store.c (the keys file: its record rules, reading, atomic writing, the writers' lock).
 */
#ifndef SBX_PLUGIN_APIKEY_H
#define SBX_PLUGIN_APIKEY_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>

#include <sandbox/auth.h>
#include <sandbox/core.h>

/* sbx_<16 hex id>_<43 base64url secret> */
#define TOKEN_PREFIX     "sbx_"
#define TOKEN_PREFIX_LEN 4
#define ID_LEN           16
#define SECRET_BYTES     32
#define SECRET_LEN       43
#define TOKEN_LEN        (TOKEN_PREFIX_LEN + ID_LEN + 1 + SECRET_LEN)
#define HASH_PREFIX      "sha256:"
#define HASH_LEN         (7 + 64) /* "sha256:" + 64 lowercase hex */
#define TENANT_MAX       64
#define NAME_MAX_LEN     200

/* What identifies one version of the keys file: writers replace it by rename, so the
 * inode changes with every write; size and times catch in-place edits by hand. */
struct file_id {
	int exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	mode_t mode;
	struct timespec mtim, ctim;
};

struct apikey {
	const struct sbx_core_api *core;
	char *name;      /* instance name, for logs */
	char *path;      /* keys file, absolute */
	char *lock_path; /* <path>.lock, the writers' flock */
	char *bootstrap; /* bootstrap_admin_key_file, absolute, or NULL */
	long long max_keys;

	/* Guards table, seen and loaded. Readers: authenticate, list, get. Writers: swaps
	 * after a reload or a manage write. Records in the table are never modified in
	 * place (a revoke replaces the record), and authenticate never changes a reference
	 * count on them, so readers only ever read. */
	pthread_rwlock_t lock;
	json_t *table; /* id -> record, as in the file */
	struct file_id seen;
	int loaded;

	/* Monotonic ms before which authenticate does not stat the file again. */
	int64_t next_check; /* accessed with __atomic builtins */

	/* Held by manage for a whole operation, by reloads and by start; authenticate only
	 * tries it. flock belongs to an open file description, so it only excludes other
	 * instances and processes: this serialises the threads of one instance. */
	pthread_mutex_t update_lock;
	struct file_id bad; /* a version of the file that failed to load (update_lock) */
};

/* Record rules, shared by manage (input) and the loader (the file). Return NULL when
 * acceptable, else a static reason to put after the field name. */
const char *store_check_tenant(const char *s);
const char *store_check_role(const char *s);
const char *store_check_id(const char *s);
const char *store_check_name(const char *s);
/* quotas: object of the allowed keys with numbers >= 0. On failure *bad is the offending
 * key (borrowed from q) or NULL when q itself is not an object. */
const char *store_check_quotas(const json_t *q, const char **bad);

/* stat() of the keys file into *id (exists = 0 when missing). 0, or -errno. */
int store_stat(const struct apikey *k, struct file_id *id);
int store_same(const struct file_id *a, const struct file_id *b);

/* Reads and validates the keys file. *table (new reference): id -> record; an absent
 * file is an empty table. *id: the identity of the version read. 0 or <0 with err. */
int store_read(const struct apikey *k, json_t **table, struct file_id *id, sbx_err *err);

/* Writes {"version":1,"keys":[records of table]} atomically (temp file 0600 in the same
 * directory, fsync, rename, fsync of the directory) and fills *id. 0 or <0 with err. */
int store_write(const struct apikey *k, const json_t *table, struct file_id *id, sbx_err *err);

/* Writes `len` bytes to `path` atomically with mode 0600 (used for the bootstrap token).
 * 0 or <0 with err; the message names the path, never the data. */
int store_write_file(const struct apikey *k, const char *path, const char *data, size_t len,
		     sbx_err *err);

/* Takes the exclusive flock on <keys file>.lock, waiting at most `timeout_ms`. Returns the
 * fd to pass to store_unlock, or <0 with err. */
int store_lock(const struct apikey *k, int timeout_ms, sbx_err *err);
void store_unlock(int fd);

#endif
