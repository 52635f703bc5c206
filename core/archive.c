/*
 * Archives move between the executor and the storage plugin through a relay, one side on
 * a helper thread, so no archive is ever held in memory. Keys are derived from ids the
 * core validated, never from client input: a session can only reach its own archive
 * (restore checks the source session's tenant first).
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "archive.h"
#include "exec_client.h"
#include "log.h"
#include "http.h"
#include "relay.h"
#include "router.h"
#include "sessions.h"
#include "services.h"

#define PREFIX             "workspaces/"
#define ARCHIVE_TIMEOUT_MS 600000L

void archive_key(const char *tenant, const char *session_id, char *out, size_t len)
{
	snprintf(out, len, PREFIX "%s/%s.tar", tenant && *tenant ? tenant : "default", session_id);
}

struct side {
	struct server *srv;
	const json_t *executor;
	struct relay *relay;
	char key[512];
	long status;
	char *err_body;
	size_t err_len;
	sbx_err err;
	int rc;
	long long bytes;
};

/* Counting adapter: the storage plugin reads through this to learn the size. */
static long count_read(void *ctx, void *buf, size_t cap)
{
	struct side *s = ctx;
	long n = relay_read(s->relay, buf, cap);
	if (n > 0)
		s->bytes += n;
	return n;
}

static void *pull_from_executor(void *arg)
{
	struct side *s = arg;

	sbx_err_clear(&s->err);
	s->rc = exec_client_transfer(s->executor, "GET", "/archive", ARCHIVE_TIMEOUT_MS, NULL, -1,
				     s->relay, NULL, NULL, &s->status, &s->err_body, &s->err_len,
				     &s->err);
	relay_close(s->relay, s->rc < 0 || s->status != 200);
	return NULL;
}

int archive_save(struct server *srv, const json_t *session, json_t **info, sbx_err *err)
{
	const struct sbx_storage_plugin *st;
	struct side s = {.srv = srv};
	pthread_t t;
	int rc;

	*info = NULL;
	if (!srv->storage)
		return sbx_err_set(err, SBX_E_UNSUPPORTED, "no storage plugin is configured");
	st = srv->storage->d.storage;
	s.executor = json_object_get(json_object_get(session, "handle"), "executor");
	archive_key(json_string_value(json_object_get(session, "tenant")),
		    json_string_value(json_object_get(session, "id")), s.key, sizeof s.key);
	s.relay = relay_new(1u << 20);
	if (!s.relay)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	if (pthread_create(&t, NULL, pull_from_executor, &s) != 0) {
		relay_unref(s.relay);
		relay_unref(s.relay);
		return sbx_err_set(err, SBX_E_INTERNAL, "cannot start the archive transfer");
	}
	rc = st->put(srv->storage->inst, s.key, count_read, &s, -1, "application/x-tar", err);
	relay_abort(s.relay); /* a failed put stops the executor side */
	pthread_join(t, NULL);
	if (rc == 0 && (s.rc < 0 || s.status != 200)) {
		/* the object may hold a partial archive: do not leave it behind */
		sbx_err e2;
		st->del(srv->storage->inst, s.key, &e2);
		rc = s.rc < 0
			 ? s.rc
			 : sbx_err_set(
			       err, SBX_E_UNAVAILABLE,
			       "the sandbox could not archive its workspace (HTTP %ld): %.200s",
			       s.status, s.err_body ? s.err_body : "");
		if (s.rc < 0)
			*err = s.err;
	}
	if (rc == 0)
		*info = json_pack("{s:s, s:I, s:I}", "key", s.key, "size", (json_int_t)s.bytes,
				  "created_at", (json_int_t)services_now_ms());
	free(s.err_body);
	relay_unref(s.relay);
	relay_unref(s.relay);
	return rc;
}

struct fetch {
	struct server *srv;
	struct relay *relay;
	const char *key;
	sbx_err err;
	int rc;
};

static void *pull_from_storage(void *arg)
{
	struct fetch *f = arg;
	const struct sbx_storage_plugin *st = f->srv->storage->d.storage;

	sbx_err_clear(&f->err);
	f->rc = st->get(f->srv->storage->inst, f->key, relay_write_fn, f->relay, &f->err);
	relay_close(f->relay, f->rc < 0);
	return NULL;
}

int archive_restore(struct server *srv, const json_t *session, const char *key, sbx_err *err)
{
	struct fetch f = {.srv = srv, .key = key};
	char *err_body = NULL;
	size_t err_len = 0;
	long status = 0;
	pthread_t t;
	int rc;

	if (!srv->storage)
		return sbx_err_set(err, SBX_E_UNSUPPORTED, "no storage plugin is configured");
	f.relay = relay_new(1u << 20);
	if (!f.relay)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	if (pthread_create(&t, NULL, pull_from_storage, &f) != 0) {
		relay_unref(f.relay);
		relay_unref(f.relay);
		return sbx_err_set(err, SBX_E_INTERNAL, "cannot start the restore transfer");
	}
	rc = exec_client_transfer(json_object_get(json_object_get(session, "handle"), "executor"),
				  "PUT", "/archive", ARCHIVE_TIMEOUT_MS, f.relay, -1, NULL, NULL,
				  NULL, &status, &err_body, &err_len, err);
	relay_abort(f.relay);
	pthread_join(t, NULL);
	if (f.rc < 0) {
		*err = f.err;
		rc = f.rc;
	} else if (rc == 0 && status != 200)
		rc = sbx_err_set(err, status == 413 ? SBX_E_TOOLARGE : SBX_E_INVALID,
				 "the archive could not be restored (HTTP %ld): %.200s", status,
				 err_body ? err_body : "");
	free(err_body);
	relay_unref(f.relay);
	relay_unref(f.relay);
	return rc;
}

void archive_expire(struct server *srv)
{
	const struct sbx_storage_plugin *st;
	int64_t cutoff;
	char *cursor = NULL;
	sbx_err err;
	int deleted = 0;

	if (!srv->storage || srv->cfg.archive_retention_s <= 0)
		return;
	st = srv->storage->d.storage;
	cutoff = services_now_ms() - srv->cfg.archive_retention_s * 1000;
	for (int pages = 0; pages < 100; pages++) {
		json_t *page = NULL, *it;
		const char *next;
		size_t i;
		if (st->list(srv->storage->inst, PREFIX, cursor, 1000, &page, &err) < 0) {
			LOG_W("archive retention: cannot list %s: %s", PREFIX, err.message);
			break;
		}
		json_array_foreach (json_object_get(page, "items"), i, it) {
			const char *key = json_string_value(json_object_get(it, "key"));
			if (key &&
			    json_integer_value(json_object_get(it, "modified_at")) < cutoff &&
			    st->del(srv->storage->inst, key, &err) == 0)
				deleted++;
		}
		next = json_string_value(json_object_get(page, "next"));
		free(cursor);
		cursor = next ? strdup(next) : NULL;
		json_decref(page);
		if (!cursor)
			break;
	}
	free(cursor);
	if (deleted)
		LOG_I("archive retention: deleted %d workspace archive(s) older than %lld s",
		      deleted, (long long)srv->cfg.archive_retention_s);
}

/* ---- GET /api/v1/sessions/{id}/workspace-archive ------------------------------------ */

struct dl_side {
	struct server *srv;
	char key[512];
	struct relay *relay;
};

static void *storage_to_relay(void *arg)
{
	struct dl_side *d = arg;
	sbx_err e;
	int rc = d->srv->storage->d.storage->get(d->srv->storage->inst, d->key, relay_write_fn,
						 d->relay, &e);
	if (rc < 0)
		LOG_W("archive download %s: %s", d->key, e.message);
	relay_close(d->relay, rc < 0);
	relay_unref(d->relay);
	free(d);
	return NULL;
}

struct dl_reader {
	struct relay *relay;
	struct MHD_Connection *conn;
};

static ssize_t dl_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct dl_reader *rd = cls;
	(void)pos;
	return relay_mhd_read(rd->relay, rd->conn, buf, max);
}

static void dl_free(void *cls)
{
	struct dl_reader *rd = cls;
	relay_abort(rd->relay);
	relay_unref(rd->relay);
	free(rd);
}

void api_session_archive(struct req *r)
{
	struct server *srv = r->srv;
	const struct sbx_storage_plugin *st;
	json_t *sess = NULL, *meta = NULL;
	const char *key;
	struct dl_side *d;
	struct dl_reader *rd;
	struct MHD_Response *resp;
	pthread_attr_t attr;
	pthread_t t;
	sbx_err err;
	int rc;

	sbx_err_clear(&err);
	rc = sessions_get(srv, router_tenant(r), router_is_admin(r), r->param[0], &sess, &err);
	if (rc < 0) {
		http_reply_sbx(r, rc, &err, "Sandbox.SessionNotFound");
		return;
	}
	key = json_string_value(json_object_get(json_object_get(sess, "workspace_archive"), "key"));
	if (!key || !srv->storage) {
		http_reply_error(r, 404, "Sandbox.ArchiveNotFound",
				 "A session's workspace is archived when it ends.",
				 "session '%s' has no workspace archive", r->param[0]);
		goto out;
	}
	st = srv->storage->d.storage;
	if (st->head(srv->storage->inst, key, &meta, &err) < 0) {
		http_reply_sbx(r, -(err.code ? err.code : SBX_E_UNAVAILABLE), &err,
			       "Sandbox.ArchiveNotFound");
		goto out;
	}
	if (SBX_HAS_MEMBER(st, struct sbx_storage_plugin, presign_get)) {
		char *url = NULL;
		if (st->presign_get(srv->storage->inst, key, 300, &url, &err) == 0 && url) {
			resp =
			    MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
			MHD_add_response_header(resp, "Location", url);
			free(url);
			http_reply_response(r, 307, resp);
			goto out;
		}
	}
	d = calloc(1, sizeof *d);
	rd = calloc(1, sizeof *rd);
	if (!d || !rd || !(d->relay = relay_new(1u << 20))) {
		free(d);
		free(rd);
		http_reply_error(r, 500, NULL, NULL, "out of memory");
		goto out;
	}
	d->srv = srv;
	snprintf(d->key, sizeof d->key, "%s", key);
	rd->relay = d->relay;
	rd->conn = r->conn;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, storage_to_relay, d) != 0) {
		relay_unref(d->relay);
		relay_unref(d->relay);
		free(d);
		free(rd);
		pthread_attr_destroy(&attr);
		http_reply_error(r, 503, NULL, NULL, "cannot start the download");
		goto out;
	}
	pthread_attr_destroy(&attr);
	resp = MHD_create_response_from_callback(
	    json_is_integer(json_object_get(meta, "size"))
		? (uint64_t)json_integer_value(json_object_get(meta, "size"))
		: MHD_SIZE_UNKNOWN,
	    65536, dl_read, rd, dl_free);
	MHD_add_response_header(resp, "Content-Type", "application/x-tar");
	http_reply_response(r, 200, resp);
out:
	json_decref(meta);
	json_decref(sess);
}
