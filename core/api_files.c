/*
 * Files of a session's /workspace, served through the sandbox's executor, which resolves
 * paths with openat2(RESOLVE_BENEATH) inside the sandbox. The core also refuses obviously
 * escaping paths itself so that nothing reaches the sandbox for them.
 */
#include "config.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "exec_client.h"
#include "relay.h"
#include "model.h"
#include "router.h"
#include "services.h"
#include "sessions.h"

#define MAX_PATH_LEN 1024

/* Normalise a client path relative to /workspace. Returns 0, or -1 with msg. Accepts
 * "a/b", "/workspace/a/b"; refuses absolute paths elsewhere, "..", NUL, control chars. */
static int clean_path(const char *in, int allow_empty, char *out, size_t len, char *msg,
		      size_t mlen)
{
	const char *p = in ? in : "";
	size_t o = 0;

	if (strncmp(p, "/workspace/", 11) == 0)
		p += 11;
	else if (strcmp(p, "/workspace") == 0)
		p += 10;
	if (*p == '/') {
		snprintf(msg, mlen, "path '%.200s' is absolute; give a path relative to /workspace",
			 in);
		return -1;
	}
	if (strlen(p) > MAX_PATH_LEN) {
		snprintf(msg, mlen, "path is longer than %d bytes", MAX_PATH_LEN);
		return -1;
	}
	while (*p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			snprintf(msg, mlen,
				 "path '%.200s' leaves the workspace ('..' is not allowed)", in);
			return -1;
		}
		if (!(n == 0 || (n == 1 && p[0] == '.'))) {
			for (size_t i = 0; i < n; i++)
				if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) {
					snprintf(msg, mlen, "path contains a control character");
					return -1;
				}
			if (o + n + 2 > len) {
				snprintf(msg, mlen, "path is too long");
				return -1;
			}
			if (o)
				out[o++] = '/';
			memcpy(out + o, p, n);
			o += n;
		}
		p += n;
		if (*p == '/')
			p++;
	}
	out[o] = '\0';
	if (!o && !allow_empty) {
		snprintf(msg, mlen, "a file path is required");
		return -1;
	}
	return 0;
}

static void urlenc(const char *s, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (; *s && o + 4 < len; s++) {
		unsigned char c = (unsigned char)*s;
		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/')
			out[o++] = (char)c;
		else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
}

/* Look up the session (tenant-visible, running); replies and returns NULL on failure. */
static json_t *live_session(struct req *r)
{
	json_t *sess = NULL;
	sbx_err err;
	int rc;

	sbx_err_clear(&err);
	rc = sessions_get(r->srv, router_tenant(r), router_is_admin(r), r->param[0], &sess, &err);
	if (rc < 0) {
		http_reply_sbx(r, rc, &err, "Sandbox.SessionNotFound");
		return NULL;
	}
	if (strcmp(json_string_value(json_object_get(sess, "status")) ?: "", "running") != 0) {
		http_reply_error(r, 409, "Sandbox.Conflict",
				 "Files are available while the session runs.",
				 "session '%s' is %s", r->param[0],
				 json_string_value(json_object_get(sess, "status")));
		json_decref(sess);
		return NULL;
	}
	return sess;
}

static const json_t *executor_of(const json_t *sess)
{
	return json_object_get(json_object_get(sess, "handle"), "executor");
}

/* Relay an executor error status as ours. */
static void reply_executor_error(struct req *r, long status, const char *body, size_t len)
{
	json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
	const char *msg = json_string_value(json_object_get(j, "error"));
	if (status == 404)
		http_reply_error(r, 404, "Sandbox.FileNotFound", NULL, "%s",
				 msg ? msg : "no such file");
	else if (status == 400 || status == 413 || status == 409)
		http_reply_error(r, (unsigned)status, NULL, NULL, "%s",
				 msg ? msg : "refused by the sandbox");
	else
		http_reply_error(r, 502, "Sandbox.InternalError", NULL,
				 "the sandbox's executor answered HTTP %ld: %.200s", status,
				 msg ? msg : "");
	json_decref(j);
}

/* Check `raw` as a workspace path and find the (running) session. On success returns the
 * session and writes "<endpoint>?path=<encoded>" into q (and the clean path into path);
 * otherwise replies and returns NULL. */
static json_t *target(struct req *r, const char *raw, int allow_empty, const char *endpoint,
		      char *path, size_t plen, char *q, size_t qlen)
{
	char enc[3 * MAX_PATH_LEN + 64], msg[256];
	json_t *sess;

	if (clean_path(raw, allow_empty, path, plen, msg, sizeof msg) < 0) {
		http_reply_error(r, 400, "Sandbox.InvalidPath",
				 "Use a path relative to /workspace.", "%s", msg);
		return NULL;
	}
	if (!(sess = live_session(r)))
		return NULL;
	urlenc(path, enc, sizeof enc);
	snprintf(q, qlen, "%s?path=%s", endpoint, enc);
	return sess;
}

void api_files_list(struct req *r)
{
	char path[MAX_PATH_LEN + 8], q[3 * MAX_PATH_LEN + 128];
	const char *limit_s = http_query(r, "limit");
	json_t *sess, *j = NULL, *files, *f, *out;
	char *body = NULL;
	size_t len, i;
	long status;
	sbx_err err;
	int limit = 1000;

	if (limit_s) {
		char *end;
		long l = strtol(limit_s, &end, 10);
		if (*end || l < 1 || l > 10000) {
			http_reply_error(r, 422, NULL, NULL,
					 "limit must be an integer in 1..10000");
			return;
		}
		limit = (int)l;
	}
	if (!(sess = target(r, http_query(r, "path"), 1, "/files", path, sizeof path, q, sizeof q)))
		return;
	snprintf(q + strlen(q), sizeof q - strlen(q), "&limit=%d", limit);
	sbx_err_clear(&err);
	if (exec_client_call(executor_of(sess), "GET", q, NULL, 0, 64u << 20, &status, &body, &len,
			     &err) < 0) {
		http_reply_sbx(r, -SBX_E_UNAVAILABLE, &err, NULL);
		goto out;
	}
	if (status != 200) {
		reply_executor_error(r, status, body, len);
		goto out;
	}
	j = json_loadb(body ? body : "", len, 0, NULL);
	files = json_array();
	json_array_foreach (json_object_get(j, "files"), i, f) {
		double mt = json_number_value(json_object_get(f, "modified_time"));
		json_t *ms = json_integer((json_int_t)(mt * 1000));
		json_t *e = json_pack(
		    "{s:O?, s:O?, s:O?, s:O?, s:o}", "name", json_object_get(f, "name"), "path",
		    json_object_get(f, "path"), "size", json_object_get(f, "size"), "type",
		    json_object_get(f, "type"), "modified_time", services_iso(ms));
		json_decref(ms);
		json_array_append_new(files, e);
	}
	out = json_pack("{s:s, s:o, s:I}", "session_id", r->param[0], "files", files, "count",
			(json_int_t)json_array_size(files));
	http_reply_json(r, 200, out);
	sessions_touch(r->srv, r->param[0]);
out:
	json_decref(j);
	free(body);
	json_decref(sess);
}

/*
 * Uploads stream: MHD's thread feeds the multipart body to MHD's post processor, whose
 * "file" part is pushed into a bounded relay; an upload thread pulls from it into the
 * executor's PUT. Backpressure parks the connection; nothing holds the whole file.
 * The state is shared by MHD's thread, the upload thread and (until set up) a worker.
 */
#define UPLOAD_RELAY  (1u << 20)
#define UPLOAD_PP_BUF 16384

struct upload {
	pthread_mutex_t mu;
	int refs;
	struct req *r; /* NULL once the request went away */
	struct server *srv;
	char session_id[72];
	json_t *executor;
	struct relay *relay;
	struct MHD_PostProcessor *pp;
	char qpath[MAX_PATH_LEN + 8]; /* ?path= as given ("" when absent) */
	char path[MAX_PATH_LEN + 8];  /* the final workspace path */
	char q[3 * MAX_PATH_LEN + 128];
	int started;      /* the upload thread runs */
	int failed;       /* a reply is set already (refused name, executor error) */
	int ended;        /* the body ended (MHD side) */
	int result_ready; /* the upload thread set the reply */
	long long bytes;
};

static void upload_unref(struct upload *u)
{
	int last;

	pthread_mutex_lock(&u->mu);
	last = --u->refs == 0;
	pthread_mutex_unlock(&u->mu);
	if (!last)
		return;
	if (u->pp)
		MHD_destroy_post_processor(u->pp);
	relay_unref(u->relay);
	json_decref(u->executor);
	pthread_mutex_destroy(&u->mu);
	free(u);
}

static void *upload_thread(void *arg)
{
	struct upload *u = arg;
	char *err_body = NULL;
	size_t err_len = 0;
	long status = 0;
	sbx_err err;
	int rc;

	sbx_err_clear(&err);
	rc = exec_client_transfer(u->executor, "PUT", u->q, 600000, u->relay, -1, NULL, NULL, NULL,
				  &status, &err_body, &err_len, &err);
	relay_abort(u->relay); /* stop the producer if the executor refused early */
	pthread_mutex_lock(&u->mu);
	if (u->r) { /* the request is still there to answer */
		struct req *r = u->r;
		if (rc < 0)
			http_reply_sbx(r, -SBX_E_UNAVAILABLE, &err, NULL);
		else if (status != 200 && status != 201)
			reply_executor_error(r, status, err_body, err_len);
		else {
			http_reply_json(r, 200,
					json_pack("{s:s, s:s, s:I}", "session_id", u->session_id,
						  "file_path", u->path, "size",
						  (json_int_t)u->bytes));
			sessions_touch(u->srv, u->session_id);
		}
		u->result_ready = 1;
		if (u->ended)
			http_complete(r);
	}
	pthread_mutex_unlock(&u->mu);
	free(err_body);
	upload_unref(u);
	return NULL;
}

/* The file part began: settle its workspace path and start the transfer. Caller holds
 * u->mu; MHD's thread. Returns 0, or -1 after setting the error reply. */
static int upload_begin(struct upload *u, const char *filename)
{
	char want[MAX_PATH_LEN + 300], msg[256];
	const char *base = filename ? filename : "";
	struct req *r = u->r;
	pthread_attr_t attr;
	pthread_t t;

	if (!u->qpath[0] || u->qpath[strlen(u->qpath) - 1] == '/') {
		if (!*base) {
			http_reply_error(r, 400, "Sandbox.InvalidPath",
					 "Give ?path= or a file name in the multipart part.",
					 "the upload names no usable file name");
			return -1;
		}
		if (*base == '/' || strstr(base, "..")) {
			http_reply_error(
			    r, 400, "Sandbox.InvalidPath", "Use a file name without directories.",
			    "the uploaded file name '%.200s' leaves the workspace", base);
			return -1;
		}
		snprintf(want, sizeof want, "%s%s", u->qpath, base);
	} else
		snprintf(want, sizeof want, "%s", u->qpath);
	if (clean_path(want, 0, u->path, sizeof u->path, msg, sizeof msg) < 0) {
		http_reply_error(r, 400, "Sandbox.InvalidPath",
				 "Use a path relative to /workspace.", "%s", msg);
		return -1;
	}
	{
		char enc[3 * MAX_PATH_LEN + 64];
		urlenc(u->path, enc, sizeof enc);
		snprintf(u->q, sizeof u->q, "/files/content?path=%s", enc);
	}
	u->refs++;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, upload_thread, u) != 0) {
		u->refs--;
		pthread_attr_destroy(&attr);
		http_reply_error(r, 503, NULL, NULL, "cannot start the upload");
		return -1;
	}
	pthread_attr_destroy(&attr);
	u->started = 1;
	return 0;
}

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
			       const char *filename, const char *content_type,
			       const char *transfer_encoding, const char *data, uint64_t off,
			       size_t size)
{
	struct upload *u = cls;
	int rc = 0;
	(void)kind;
	(void)content_type;
	(void)transfer_encoding;
	(void)off;

	if (!key || strcmp(key, "file") != 0)
		return MHD_YES; /* other fields are ignored */
	pthread_mutex_lock(&u->mu);
	if (u->failed)
		rc = -1;
	else if (!u->started && upload_begin(u, filename) < 0) {
		u->failed = 1;
		rc = -1;
	}
	pthread_mutex_unlock(&u->mu);
	if (rc < 0)
		return MHD_NO;
	if (size && relay_write(u->relay, data, size) < 0)
		return MHD_NO; /* the transfer ended early: its reply says why */
	u->bytes += (long long)size;
	return MHD_YES;
}

/* Feeds as much of data as the relay has room for. MHD calls again for what is left only
 * if the connection is suspended (or more bytes arrive): so either everything is consumed
 * or the connection is parked until the upload thread makes room — never a partial
 * consumption on a running connection, which hangs once the client has sent its last byte. */
static int upload_data(struct req *r, const char *data, size_t n, size_t *consumed)
{
	struct upload *u = r->stream_ctx;
	size_t done = 0, space, feed;

	*consumed = 0;
	while (done < n) {
		/* the post processor may emit what it held back plus this input: keep a
		 * margin */
		space = relay_space(u->relay);
		feed = space > 4 * UPLOAD_PP_BUF ? space - 4 * UPLOAD_PP_BUF : 0;
		if (feed > n - done)
			feed = n - done;
		if (feed == 0) {
			if (relay_aborted(u->relay))
				return -1;
			if (relay_mhd_park_writer(u->relay, r->conn, 4 * UPLOAD_PP_BUF + 1))
				return 0;
			feed = n - done < 4096 ? n - done : 4096; /* space appeared meanwhile */
		}
		if (MHD_post_process(u->pp, data + done, feed) != MHD_YES)
			break;
		done += feed;
		*consumed = done;
	}
	if (done == n)
		return 0;
	*consumed = n;
	pthread_mutex_lock(&u->mu);
	if (!u->failed && !u->result_ready && !u->started) {
		http_reply_error(r, 400, "Sandbox.InvalidRequest", NULL,
				 "the multipart body is malformed");
		u->failed = 1;
	}
	pthread_mutex_unlock(&u->mu);
	relay_close(u->relay, 1); /* a started transfer fails instead of storing a part */
	return -1;
}

static int upload_end(struct req *r)
{
	struct upload *u = r->stream_ctx;
	int reply_now;

	if (u->pp) {
		MHD_destroy_post_processor(u->pp);
		u->pp = NULL;
	}
	pthread_mutex_lock(&u->mu);
	u->ended = 1;
	if (!u->started && !u->failed) {
		http_reply_error(r, 400, "Sandbox.InvalidRequest",
				 "Send multipart/form-data with a field named file.",
				 "the upload has no field named 'file'");
		u->failed = 1;
	}
	relay_close(u->relay, 0);
	reply_now = u->failed || u->result_ready;
	if (!reply_now)
		MHD_suspend_connection(r->conn); /* the upload thread completes it */
	pthread_mutex_unlock(&u->mu);
	return reply_now;
}

static void upload_gone(struct req *r)
{
	struct upload *u = r->stream_ctx;

	pthread_mutex_lock(&u->mu);
	u->r = NULL;
	pthread_mutex_unlock(&u->mu);
	relay_abort(u->relay);
	r->stream_ctx = NULL;
	upload_unref(u);
}

void api_files_upload(struct req *r)
{
	const char *qp = http_query(r, "path");
	char msg[256], tmp[MAX_PATH_LEN + 8];
	struct upload *u;
	json_t *sess;

	if (qp && *qp && qp[strlen(qp) - 1] != '/' &&
	    clean_path(qp, 0, tmp, sizeof tmp, msg, sizeof msg) < 0) {
		http_reply_error(r, 400, "Sandbox.InvalidPath",
				 "Use a path relative to /workspace.", "%s", msg);
		return;
	}
	if (qp && strlen(qp) > MAX_PATH_LEN) {
		http_reply_error(r, 400, "Sandbox.InvalidPath", NULL, "path is too long");
		return;
	}
	if (!(sess = live_session(r)))
		return;
	u = calloc(1, sizeof *u);
	if (!u) {
		json_decref(sess);
		http_reply_error(r, 500, NULL, NULL, "out of memory");
		return;
	}
	pthread_mutex_init(&u->mu, NULL);
	u->refs = 1;
	u->r = r;
	u->srv = r->srv;
	snprintf(u->session_id, sizeof u->session_id, "%s", r->param[0]);
	snprintf(u->qpath, sizeof u->qpath, "%s", qp ? qp : "");
	u->executor = json_incref((json_t *)executor_of(sess));
	json_decref(sess);
	u->relay = relay_new(UPLOAD_RELAY);
	u->pp = MHD_create_post_processor(r->conn, UPLOAD_PP_BUF, on_part, u);
	if (u->relay)
		relay_unref(u->relay); /* one reference is enough: the upload state owns it */
	if (!u->relay || !u->pp) {
		int multipart = u->relay != NULL;
		upload_unref(u);
		http_reply_error(r, multipart ? 400 : 500, "Sandbox.InvalidRequest",
				 "Send multipart/form-data with a field named file.",
				 "the upload is not multipart/form-data");
		return;
	}
	r->stream_ctx = u;
	r->stream_data = upload_data;
	r->stream_end = upload_end;
	r->stream_free = upload_gone;
	r->deferred = 1;
	http_stream_start(r);
}

/* A download streamed from the executor to the client through a relay: a transfer thread
 * pushes the executor's response into it while MHD pulls from it. */
struct download {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;
	int ready, done;
	long status;
	long long length;
	int rc;
	struct relay *relay;
	json_t *executor;
	char q[3 * MAX_PATH_LEN + 128];
	char *err_body;
	size_t err_len;
	sbx_err err;
};

struct reader {
	struct relay *relay;
	struct MHD_Connection *conn;
};

static void download_unref(struct download *d)
{
	int last;

	pthread_mutex_lock(&d->mu);
	last = --d->refs == 0;
	pthread_mutex_unlock(&d->mu);
	if (!last)
		return;
	json_decref(d->executor);
	free(d->err_body);
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
	free(d);
}

static void download_headers(void *ctx, long status, long long length)
{
	struct download *d = ctx;

	pthread_mutex_lock(&d->mu);
	d->status = status;
	d->length = length;
	d->ready = 1;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

static void *download_thread(void *arg)
{
	struct download *d = arg;
	long status = 0;
	int rc;

	sbx_err_clear(&d->err);
	rc = exec_client_transfer(d->executor, "GET", d->q, 600000, NULL, -1, d->relay,
				  download_headers, d, &status, &d->err_body, &d->err_len, &d->err);
	relay_close(d->relay, rc < 0 || status != 200);
	pthread_mutex_lock(&d->mu);
	d->rc = rc;
	d->status = status;
	d->ready = d->done = 1;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	relay_unref(d->relay); /* the producer's reference */
	download_unref(d);
	return NULL;
}

static ssize_t download_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct reader *rd = cls;
	(void)pos;
	return relay_mhd_read(rd->relay, rd->conn, buf, max);
}

static void download_free(void *cls)
{
	struct reader *rd = cls;
	relay_abort(rd->relay); /* a client that left stops the transfer */
	relay_unref(rd->relay);
	free(rd);
}

void api_files_download(struct req *r)
{
	char path[MAX_PATH_LEN + 8];
	struct download *d;
	struct reader *rd;
	struct MHD_Response *resp;
	json_t *sess;
	pthread_attr_t attr;
	pthread_t t;

	d = calloc(1, sizeof *d);
	if (!d) {
		http_reply_error(r, 500, NULL, NULL, "out of memory");
		return;
	}
	if (!(sess = target(r, r->param[1], 0, "/files/content", path, sizeof path, d->q,
			    sizeof d->q))) {
		free(d);
		return;
	}
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	d->refs = 2;
	d->executor = json_incref((json_t *)executor_of(sess));
	json_decref(sess);
	d->relay = relay_new(256 * 1024);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (!d->relay || pthread_create(&t, &attr, download_thread, d) != 0) {
		pthread_attr_destroy(&attr);
		if (d->relay) {
			relay_unref(d->relay);
			relay_unref(d->relay);
		}
		d->refs = 1;
		download_unref(d);
		http_reply_error(r, 503, NULL, NULL, "cannot start the download");
		return;
	}
	pthread_attr_destroy(&attr);
	pthread_mutex_lock(&d->mu);
	while (!d->ready)
		pthread_cond_wait(&d->cv, &d->mu);
	if (d->status == 200) {
		long long length = d->length;
		pthread_mutex_unlock(&d->mu);
		rd = malloc(sizeof *rd);
		resp = rd ? MHD_create_response_from_callback(
				length >= 0 ? (uint64_t)length : MHD_SIZE_UNKNOWN, 65536,
				download_read, rd, download_free)
			  : NULL;
		if (!resp) {
			free(rd);
			relay_abort(d->relay);
			relay_unref(d->relay);
			http_reply_error(r, 500, NULL, NULL, "out of memory");
		} else {
			rd->relay = d->relay;
			rd->conn = r->conn;
			MHD_add_response_header(resp, "Content-Type", "application/octet-stream");
			http_reply_response(r, 200, resp);
			sessions_touch(r->srv, r->param[0]);
		}
		download_unref(d);
		return;
	}
	while (!d->done)
		pthread_cond_wait(&d->cv, &d->mu);
	pthread_mutex_unlock(&d->mu);
	if (d->rc < 0)
		http_reply_sbx(r, -SBX_E_UNAVAILABLE, &d->err, NULL);
	else
		reply_executor_error(r, d->status, d->err_body, d->err_len);
	relay_abort(d->relay);
	relay_unref(d->relay);
	download_unref(d);
}

void api_files_delete(struct req *r)
{
	char path[MAX_PATH_LEN + 8], q[3 * MAX_PATH_LEN + 128];
	json_t *sess;
	char *body = NULL;
	size_t len;
	long status;
	sbx_err err;

	if (!(sess = target(r, r->param[1], 0, "/files/content", path, sizeof path, q, sizeof q)))
		return;
	sbx_err_clear(&err);
	if (exec_client_call(executor_of(sess), "DELETE", q, NULL, 0, 1u << 20, &status, &body,
			     &len, &err) < 0)
		http_reply_sbx(r, -SBX_E_UNAVAILABLE, &err, NULL);
	else if (status != 200)
		reply_executor_error(r, status, body, len);
	else {
		http_reply_json(r, 204, NULL);
		sessions_touch(r->srv, r->param[0]);
	}
	free(body);
	json_decref(sess);
}
