/*
 * The HTTP face of the executor (libmicrohttpd, one thread per connection, so that a content
 * reader or an upload may block on its own pipe): bearer-token check, routing, request limits
 * and validation, the streaming POST /execute response, and one log line per request.
 */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <microhttpd.h>

#include "executor.h"

struct reader {
	struct ctx *c;
	struct execution *e;
};

int http_reply(struct request *rq, unsigned int code, struct MHD_Response *resp)
{
	enum MHD_Result r;

	if (!resp)
		return MHD_NO;
	rq->code = code;
	r = MHD_queue_response(rq->conn, code, resp);
	MHD_destroy_response(resp);
	return r;
}

int http_json(struct request *rq, unsigned int code, json_t *body)
{
	char *s = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	struct MHD_Response *resp;
	size_t n;

	json_decref(body);
	if (!s)
		return MHD_NO;
	n = strlen(s);
	s[n] = 0;
	resp = MHD_create_response_from_buffer(n, s, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(s);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	return http_reply(rq, code, resp);
}

int http_error(struct request *rq, unsigned int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return http_json(rq, code, json_pack("{s:s}", "error", msg));
}

static int token_ok(const char *want, const char *header)
{
	const char *got;
	size_t wl = strlen(want), gl, i;
	unsigned char d;

	if (!header || strncasecmp(header, "Bearer ", 7) != 0)
		return 0;
	got = header + 7;
	while (*got == ' ')
		got++;
	gl = strlen(got);
	d = wl != gl;
	for (i = 0; i < wl; i++) /* time depends on the token's length only */
		d |= (unsigned char)want[i] ^ (unsigned char)(i < gl ? got[i] : 0);
	return d == 0;
}

static ssize_t stream_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct reader *rd = cls;

	return registry_stream_read(rd->c, rd->e, pos, buf, max);
}

static void stream_free(void *cls)
{
	struct reader *rd = cls;

	registry_stream_close(rd->c, rd->e);
	free(rd);
}

static int do_execute(struct ctx *c, struct request *rq)
{
	struct execution *e = NULL;
	struct reader *rd = NULL;
	struct MHD_Response *resp;
	json_error_t jerr;
	json_t *b;
	const char *msg;
	char why[256];
	int rc;

	if (rq->body_too_big)
		return http_error(rq, 413, "request body larger than %u bytes", EXEC_BODY_MAX);
	b = json_loadb(rq->body ? rq->body : "", rq->body_len, 0, &jerr);
	if (!b)
		return http_error(rq, 400, "invalid JSON: %s", jerr.text);
	e = registry_new();
	if (!e) {
		json_decref(b);
		return http_error(rq, 500, "out of memory");
	}
	msg = request_parse_execute(c, b, e, why, sizeof(why));
	json_decref(b);
	if (msg) {
		rc = http_error(rq, 400, "%s", msg);
		registry_put(c, e);
		return rc;
	}
	e->readers = 1; /* the response below, counted before the worker can emit */
	rc = registry_submit(c, e);
	if (rc) {
		rc = rc == 409 ? http_error(rq, 409, "execution '%s' already exists", e->id)
		     : rc == 429
			 ? http_error(rq, 429, "%d executions already queued", EXEC_QUEUE_MAX)
			 : http_error(rq, 503, "the executor is stopping");
		registry_put(c, e);
		return rc;
	}
	rd = malloc(sizeof(*rd));
	if (!rd) {
		registry_stream_close(c, e);
		return MHD_NO;
	}
	rd->c = c;
	rd->e = e; /* takes over our reference */
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_cb, rd,
						 stream_free);
	if (!resp) {
		stream_free(rd);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-ndjson");
	MHD_add_response_header(resp, "X-Execution-Id", e->id);
	return http_reply(rq, 200, resp);
}

static int do_health(struct ctx *c, struct request *rq)
{
	json_t *j;

	pthread_mutex_lock(&c->lock);
	j = json_pack("{s:s, s:s, s:i, s:o, s:i, s:{s:b, s:b}, s:f}", "status", "ok", "version",
		      EXEC_VERSION, "pid", (int)c->self, "running",
		      c->running ? json_string(c->running->id) : json_null(), "queued", c->queued,
		      "zygotes", "python", c->py.pid > 0, "javascript", c->js.pid > 0, "uptime",
		      (now_ms() - c->started_at) / 1000.0);
	pthread_mutex_unlock(&c->lock);
	return http_json(rq, 200, j);
}

static int do_get_execution(struct ctx *c, struct request *rq, const char *id)
{
	struct MHD_Response *resp;
	char *s = registry_describe(c, id);

	if (!s)
		return http_error(rq, 404, "execution '%.128s' not found", id);
	resp = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(s);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	return http_reply(rq, 200, resp);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
			       const char *method, const char *version, const char *data,
			       size_t *size, void **con_cls)
{
	struct ctx *c = cls;
	struct request *rq = *con_cls;
	const char *cl;
	int rc;

	(void)version;
	if (!rq) {
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		rq->conn = conn;
		snprintf(rq->method, sizeof(rq->method), "%s", method);
		rq->url = strndup(url, 256);
		rq->t0 = now_ms();
		*con_cls = rq;
		if (c->token &&
		    !token_ok(c->token, MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
								    MHD_HTTP_HEADER_AUTHORIZATION)))
			return http_error(rq, 401, "missing or wrong bearer token") == MHD_YES
				   ? MHD_YES
				   : MHD_NO;
		if (strcmp(url, "/execute") == 0 && strcmp(method, "POST") == 0) {
			rq->is_execute = 1;
			cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							 MHD_HTTP_HEADER_CONTENT_LENGTH);
			if (cl && strtoull(cl, NULL, 10) > EXEC_BODY_MAX)
				return http_error(rq, 413, "request body larger than %u bytes",
						  EXEC_BODY_MAX) == MHD_YES
					   ? MHD_YES
					   : MHD_NO;
		}
		if (strcmp(url, "/archive") == 0 && strcmp(method, "PUT") == 0) {
			cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							 MHD_HTTP_HEADER_CONTENT_LENGTH);
			if (cl && strtoull(cl, NULL, 10) > c->max_archive)
				return http_error(rq, 413, "archive larger than %llu bytes",
						  (unsigned long long)c->max_archive) == MHD_YES
					   ? MHD_YES
					   : MHD_NO;
		}
		if (strcmp(url, "/files/content") == 0 && strcmp(method, "PUT") == 0) {
			cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							 MHD_HTTP_HEADER_CONTENT_LENGTH);
			if (cl && strtoull(cl, NULL, 10) > c->max_upload)
				return http_error(rq, 413, "upload larger than %llu bytes",
						  (unsigned long long)c->max_upload) == MHD_YES
					   ? MHD_YES
					   : MHD_NO;
		}
		return MHD_YES;
	}
	if (rq->code) {
		/* an early reply (401, 413) was queued: swallow the body */
		*size = 0;
		return MHD_YES;
	}
	if (rq->is_execute) {
		if (*size) {
			if (!rq->body_too_big && rq->body_len + *size <= EXEC_BODY_MAX) {
				char *nb = realloc(rq->body, rq->body_len + *size + 1);
				if (!nb)
					return MHD_NO;
				rq->body = nb;
				memcpy(rq->body + rq->body_len, data, *size);
				rq->body_len += *size;
			} else {
				rq->body_too_big = 1;
			}
			*size = 0;
			return MHD_YES;
		}
		rc = do_execute(c, rq);
	} else if (strcmp(url, "/files") == 0 || strcmp(url, "/files/content") == 0) {
		rc = files_handle(c, rq, data, size);
		if (rc == 0)
			return MHD_YES;
	} else if (strcmp(url, "/archive") == 0) {
		rc = archive_handle(c, rq, data, size);
		if (rc == 0)
			return MHD_YES;
	} else if (*size) {
		*size = 0; /* a body nobody asked for */
		return MHD_YES;
	} else if (strcmp(url, "/health") == 0) {
		rc = strcmp(method, "GET") ? http_error(rq, 405, "use GET") : do_health(c, rq);
	} else if (strncmp(url, "/executions/", 12) == 0 && url[12]) {
		rc = strcmp(method, "GET") ? http_error(rq, 405, "use GET")
					   : do_get_execution(c, rq, url + 12);
	} else if (strcmp(url, "/execute") == 0) {
		rc = http_error(rq, 405, "use POST");
	} else {
		rc = http_error(rq, 404, "no such endpoint: %.200s", url);
	}
	return rc == MHD_YES ? MHD_YES : MHD_NO;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct request *rq = *con_cls;

	(void)cls;
	(void)conn;
	if (!rq)
		return;
	fprintf(stderr, "sbx-executor: request method=%s path=%s status=%u ms=%.1f%s\n", rq->method,
		rq->url ? rq->url : "?", rq->code, now_ms() - rq->t0,
		toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
	files_upload_free(rq->up);
	archive_release(rq->ar);
	free(rq->body);
	free(rq->url);
	free(rq);
	*con_cls = NULL;
}

struct MHD_Daemon *http_start(struct ctx *c, int listen_fd)
{
	return MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0,
	    NULL, NULL, handler, c, MHD_OPTION_LISTEN_SOCKET, listen_fd,
	    MHD_OPTION_NOTIFY_COMPLETED, completed, c, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned int)256, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)600, MHD_OPTION_END);
}
