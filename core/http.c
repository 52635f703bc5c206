/*
 * HTTP front end. MHD's own thread only collects bounded bodies and queues ready replies;
 * every request is suspended and run on the worker pool, so no plugin ever runs on the
 * MHD thread and a slow sandbox never stalls other clients.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "router.h"
#include "services.h"

enum { ST_READING = 0, ST_QUEUED, ST_READY, ST_STREAM_PREP, ST_STREAMING, ST_STREAM_END };

struct httpd {
	struct MHD_Daemon *d;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int inflight;
};

static void req_free(struct req *r)
{
	if (!r)
		return;
	if (r->stream_free)
		r->stream_free(r);
	free(r->path);
	for (int i = 0; i < 3; i++)
		free(r->param[i]);
	json_decref(r->query);
	json_decref(r->headers);
	json_decref(r->principal);
	free(r->body);
	if (r->resp)
		MHD_destroy_response(r->resp);
	free(r);
}

static enum MHD_Result collect_kv(void *cls, enum MHD_ValueKind kind, const char *key,
				  const char *value)
{
	json_t *o = cls;
	(void)kind;
	if (!key)
		return MHD_YES;
	if (json_object_size(o) >= 200)
		return MHD_NO;
	if (o && json_object_get(o, key) == NULL)
		json_object_set_new(o, key, json_string(value ? value : ""));
	return MHD_YES;
}

static enum MHD_Result collect_headers(void *cls, enum MHD_ValueKind kind, const char *key,
				       const char *value)
{
	char lk[128];
	size_t i;
	(void)kind;
	if (!key)
		return MHD_YES;
	for (i = 0; key[i] && i < sizeof lk - 1; i++)
		lk[i] = (char)tolower((unsigned char)key[i]);
	lk[i] = '\0';
	return collect_kv(cls, kind, lk, value);
}

const char *http_query(struct req *r, const char *name)
{
	return json_string_value(json_object_get(r->query, name));
}

const char *http_header(struct req *r, const char *lower_name)
{
	return json_string_value(json_object_get(r->headers, lower_name));
}

static int valid_request_id(const char *s)
{
	size_t n = 0;
	if (!s)
		return 0;
	for (; s[n]; n++)
		if (n >= 64 || !(isalnum((unsigned char)s[n]) || s[n] == '-' || s[n] == '_' ||
				 s[n] == '.' || s[n] == ':'))
			return 0;
	return n > 0;
}

int http_cors_allowed(struct req *r)
{
	const char *origin = http_header(r, "origin");
	const char *p = r->srv->cfg.cors_origins;
	size_t ol;

	if (!origin || !p)
		return 0;
	ol = strlen(origin);
	while (*p) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		while (l && *p == ' ') {
			p++;
			l--;
		}
		while (l && p[l - 1] == ' ')
			l--;
		if ((l == 1 && *p == '*') || (l == ol && strncmp(p, origin, l) == 0))
			return 1;
		if (!e)
			break;
		p = e + 1;
	}
	return 0;
}

static void add_common_headers(struct req *r, struct MHD_Response *resp)
{
	MHD_add_response_header(resp, "X-Request-ID", r->id);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	if (http_cors_allowed(r)) {
		MHD_add_response_header(resp, "Access-Control-Allow-Origin",
					http_header(r, "origin"));
		MHD_add_response_header(resp, "Access-Control-Expose-Headers",
					"X-Request-ID, Retry-After, WWW-Authenticate");
		MHD_add_response_header(resp, "Vary", "Origin");
	}
}

/* The path as logged: an API key pasted into a URL (sbx_<id>_<secret>) keeps only its id. */
static void redact_path(const char *in, char *out, size_t len)
{
	size_t o = 0;

	while (*in && o + 1 < len) {
		const char *k = strncmp(in, "sbx_", 4) == 0 ? in + 4 : NULL;
		size_t n = 0;
		if (k) {
			while (n < 16 && isxdigit((unsigned char)k[n]))
				n++;
		}
		if (k && n == 16 && k[16] == '_') {
			int w = snprintf(out + o, len - o, "sbx_%.16s_[redacted]", k);
			o = w > 0 && (size_t)w < len - o ? o + (size_t)w : len - 1;
			in = k + 17;
			while (*in && *in != '/' && *in != '?')
				in++;
			continue;
		}
		out[o++] = *in++;
	}
	out[o] = '\0';
}

static void set_response(struct req *r, unsigned status, struct MHD_Response *resp)
{
	if (r->resp) { /* a reply was already set: keep the first, it is a bug to reply twice */
		LOG_E("second reply for %s %s ignored", r->method, r->path);
		MHD_destroy_response(resp);
		return;
	}
	add_common_headers(r, resp);
	r->status = status;
	r->resp = resp;
}

void http_reply_response(struct req *r, unsigned status, struct MHD_Response *resp)
{
	set_response(r, status, resp);
}

void http_reply_json(struct req *r, unsigned status, json_t *body)
{
	char *s = NULL;
	struct MHD_Response *resp;

	if (body)
		s = json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(body);
	if (body && !s) {
		status = 500;
		s = strdup(
		    "{\"error_code\":\"Sandbox.InternalError\",\"description\":\"out of memory\"}");
	}
	if (!s) { /* 204 */
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	} else {
		resp = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
		MHD_add_response_header(resp, "Content-Type", "application/json");
	}
	set_response(r, status, resp);
}

void http_reply_bytes(struct req *r, unsigned status, const char *ctype, char *data, size_t len)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	    len, data ? data : (void *)"", data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(resp, "Content-Type", ctype);
	set_response(r, status, resp);
}

static const char *code_for_status(unsigned status)
{
	switch (status) {
	case 400:
		return "Sandbox.InvalidRequest";
	case 401:
		return "Sandbox.Unauthorized";
	case 403:
		return "Sandbox.Forbidden";
	case 404:
		return "Sandbox.NotFound";
	case 405:
		return "Sandbox.MethodNotAllowed";
	case 408:
		return "Sandbox.ExecTimeout";
	case 409:
		return "Sandbox.Conflict";
	case 413:
		return "Sandbox.PayloadTooLarge";
	case 422:
		return "Sandbox.InvalidParameter";
	case 429:
		return "Sandbox.TooManyRequests";
	case 501:
		return "Sandbox.NotImplemented";
	case 503:
		return "Sandbox.Unavailable";
	default:
		return "Sandbox.InternalError";
	}
}

static const char *default_solution(unsigned status)
{
	switch (status) {
	case 400:
		return "Fix the request as described and send it again.";
	case 401:
		return "Send a valid credential in the Authorization header.";
	case 403:
		return "Use a credential whose role allows this action.";
	case 404:
		return "Check the id; list the collection to see what exists.";
	case 408:
		return "Raise sync_timeout, or use the asynchronous execute and poll the result.";
	case 409:
		return "Re-read the object's current state and retry if it still makes sense.";
	case 413:
		return "Send a smaller body; the limit is set in the server configuration.";
	case 422:
		return "Correct the named field and send the request again.";
	case 429:
		return "Wait for the time in Retry-After, or raise the limit in the configuration.";
	case 503:
		return "Retry later; the server logs say which dependency is down.";
	default:
		return "Retry later; if it persists, report it with the X-Request-ID.";
	}
}

/* Replace each byte that is not part of a valid UTF-8 sequence with '?'. Descriptions quote
 * client input (paths, ids) and may be cut mid-character by the buffer; jansson refuses to
 * encode invalid UTF-8, which left such errors with an empty body. */
static void utf8_scrub(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		size_t n = *p < 0x80                  ? 1
			   : *p >= 0xc2 && *p <= 0xdf ? 2
			   : *p >= 0xe0 && *p <= 0xef ? 3
			   : *p >= 0xf0 && *p <= 0xf4 ? 4
						      : 0;
		size_t i;
		for (i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80)
				break;
		/* overlong forms, surrogates and code points above U+10FFFF */
		if (n > 1 && i == n &&
		    ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) ||
		     (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f)))
			i = 0;
		if (n == 0 || i < n) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}

void http_reply_error(struct req *r, unsigned status, const char *error_code, const char *solution,
		      const char *fmt, ...)
{
	char desc[1024];
	va_list ap;
	json_t *b;

	va_start(ap, fmt);
	vsnprintf(desc, sizeof desc, fmt, ap);
	va_end(ap);
	utf8_scrub(desc);
	if (!error_code)
		error_code = code_for_status(status);
	if (!solution)
		solution = default_solution(status);
	b = json_pack("{s:s, s:s, s:s, s:s, s:s}", "error_code", error_code, "description", desc,
		      "error_detail", desc, "solution", solution, "detail", desc);
	http_reply_json(r, status, b);
}

void http_reply_sbx(struct req *r, int status_code, const sbx_err *e, const char *not_found_code)
{
	static const unsigned map[] = {
	    [0] = 500,
	    [SBX_E_INTERNAL] = 500,
	    [SBX_E_INVALID] = 422,
	    [SBX_E_NOTFOUND] = 404,
	    [SBX_E_CONFLICT] = 409,
	    [SBX_E_UNAVAILABLE] = 503,
	    [SBX_E_TIMEOUT] = 408,
	    [SBX_E_TOOLARGE] = 413,
	    [SBX_E_UNAUTHORIZED] = 401,
	    [SBX_E_FORBIDDEN] = 403,
	    [SBX_E_LIMIT] = 429,
	    [SBX_E_BADREQUEST] = 400,
	    [SBX_E_UNSUPPORTED] = 501,
	};
	int code = status_code < 0 ? -status_code : (e ? e->code : SBX_E_INTERNAL);
	unsigned status = (code > 0 && code <= SBX_E_UNSUPPORTED) ? map[code] : 500;
	const char *msg = e && e->message[0] ? e->message : "internal error";

	if (status == 500)
		LOG_E("internal error: %s", msg);
	if (status == 503 || status == 429) {
		/* Retry-After for the retryable ones */
		http_reply_error(r, status, NULL, NULL, "%s", msg);
		if (r->resp)
			MHD_add_response_header(r->resp, "Retry-After", status == 503 ? "5" : "1");
		return;
	}
	http_reply_error(r, status, status == 404 ? not_found_code : NULL, NULL, "%s", msg);
}

/* Resume r's connection, unless its handler is still running on a worker: then the worker
 * resumes it when the handler returns. Once resumed, MHD may finish and free r at any
 * moment, so the worker must not read r after a completion it has not seen. */
static void resume(struct req *r)
{
	int running = 1;

	if (atomic_compare_exchange_strong(&r->handoff, &running, 2))
		return;
	MHD_resume_connection(r->conn);
}

void http_stream_start(struct req *r)
{
	r->state = ST_STREAMING;
	resume(r);
}

void http_complete(struct req *r)
{
	r->state = ST_READY;
	resume(r);
}

static void run_request(void *arg)
{
	struct req *r = arg;

	log_set_request_id(r->id);
	atomic_store(&r->handoff, 1);
	router_dispatch(r);
	if (r->state == ST_STREAM_PREP && r->deferred && !r->stream_data) {
		/* a handler on an upload route that does not stream: not expected */
		r->deferred = 0;
	}
	if (!r->deferred) {
		if (!r->resp)
			http_reply_error(r, 500, NULL, NULL, "the handler produced no reply");
		r->state = ST_READY;
		atomic_store(&r->handoff, 0);
		MHD_resume_connection(r->conn);
	} else if (atomic_exchange(&r->handoff, 0) == 2) {
		MHD_resume_connection(r->conn); /* completed while the handler ran */
	}
	log_set_request_id(NULL);
}

/* Suspend the connection and queue the request for a worker (MHD's thread). */
static void hand_to_worker(struct server *srv, struct req *r, int state)
{
	r->state = state;
	MHD_suspend_connection(r->conn);
	if (pool_submit(srv->pool, run_request, r) < 0) {
		MHD_resume_connection(r->conn);
		http_reply_error(r, 503, NULL, NULL, "the server is shutting down");
		r->state = ST_READY;
	}
}

static int is_upload(const char *method, const char *url)
{
	return strcmp(method, "POST") == 0 && strstr(url, "/files/upload");
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, const char *upload_data,
				 size_t *upload_data_size, void **con_cls)
{
	struct server *srv = cls;
	struct req *r = *con_cls;
	(void)version;

	if (!r) {
		const union MHD_ConnectionInfo *ci;
		const char *rid, *cl;
		r = calloc(1, sizeof *r);
		if (!r)
			return MHD_NO;
		r->srv = srv;
		r->conn = conn;
		r->t0 = services_mono_ms();
		snprintf(r->method, sizeof r->method, "%s", method);
		r->path = strdup(url);
		r->query = json_object();
		r->headers = json_object();
		if (!r->path || !r->query || !r->headers) {
			req_free(r);
			return MHD_NO;
		}
		MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_kv, r->query);
		MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_headers, r->headers);
		rid = http_header(r, "x-request-id");
		if (valid_request_id(rid))
			snprintf(r->id, sizeof r->id, "%s", rid);
		else
			services_new_id("req-", r->id, sizeof r->id);
		ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		if (ci && ci->client_addr) {
			const struct sockaddr *sa = ci->client_addr;
			if (sa->sa_family == AF_INET)
				inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
					  r->remote, sizeof r->remote);
			else if (sa->sa_family == AF_INET6)
				inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
					  r->remote, sizeof r->remote);
		}
		r->body_limit = is_upload(method, url) ? srv->cfg.max_upload : srv->cfg.max_body;
		*con_cls = r;
		pthread_mutex_lock(&srv->httpd->mu);
		srv->httpd->inflight++;
		pthread_mutex_unlock(&srv->httpd->mu);
		cl = http_header(r, "content-length");
		if (cl && strtoll(cl, NULL, 10) > r->body_limit) {
			http_reply_error(
			    r, 413, NULL, NULL,
			    "the request body (%s bytes) is larger than the limit of %lld bytes",
			    cl, (long long)r->body_limit);
			r->state = ST_READY;
			return MHD_queue_response(conn, r->status, r->resp);
		}
		if (is_upload(method, url)) /* streamed: set up before any body byte is read */
			hand_to_worker(srv, r, ST_STREAM_PREP);
		return MHD_YES;
	}
	if (r->state == ST_STREAMING) {
		size_t n = *upload_data_size, consumed = n;
		if (n == 0 && !r->stream_primed) {
			/* MHD repeats its headers call once after the resume that started the
			 * stream; only a later empty call means the body ended */
			r->stream_primed = 1;
			return MHD_YES;
		}
		r->stream_primed = 1;
		if (n == 0) {
			/* a body that died without a reply still goes to the handler: a transfer
			 * it started answers for it */
			if ((r->stream_dead && r->resp) || r->stream_end(r)) {
				r->state = ST_READY;
				if (!r->resp)
					http_reply_error(r, 500, NULL, NULL,
							 "the upload produced no reply");
				return MHD_queue_response(conn, r->status, r->resp);
			}
			r->state = ST_STREAM_END; /* stream_end suspended the connection */
			return MHD_YES;
		}
		if ((int64_t)(r->body_len + n) > r->body_limit) {
			*upload_data_size = 0;
			r->stream_dead = 1;
			if (r->stream_free) {
				r->stream_free(r); /* aborts the handler's transfer */
				r->stream_free = NULL;
			}
			if (r->resp) {
				MHD_destroy_response(r->resp);
				r->resp = NULL;
			}
			http_reply_error(r, 413, NULL, NULL,
					 "the upload is larger than the limit of %lld bytes "
					 "(server.max_upload)",
					 (long long)r->body_limit);
			r->state = ST_READY;
			return MHD_queue_response(conn, r->status, r->resp);
		}
		if (!r->stream_dead && r->stream_data(r, upload_data, n, &consumed) < 0) {
			r->stream_dead = 1;
			consumed = n;
		}
		r->body_len += consumed;
		*upload_data_size = n - consumed;
		return MHD_YES;
	}
	if (r->state == ST_READING && *upload_data_size) {
		size_t n = *upload_data_size;
		if ((int64_t)(r->body_len + n) > r->body_limit) {
			*upload_data_size = 0;
			http_reply_error(r, 413, NULL, NULL,
					 "the request body is larger than the limit of %lld bytes",
					 (long long)r->body_limit);
			r->state = ST_READY;
			return MHD_queue_response(conn, r->status, r->resp);
		}
		if (r->body_len + n + 1 > r->body_cap) {
			size_t cap = r->body_cap ? r->body_cap : 4096;
			char *nb;
			while (cap < r->body_len + n + 1)
				cap *= 2;
			nb = realloc(r->body, cap);
			if (!nb)
				return MHD_NO;
			r->body = nb;
			r->body_cap = cap;
		}
		memcpy(r->body + r->body_len, upload_data, n);
		r->body_len += n;
		r->body[r->body_len] = '\0';
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->state == ST_READING) {
		hand_to_worker(srv, r, ST_QUEUED);
		return MHD_YES;
	}
	if (r->state == ST_READY && r->resp) {
		/* replied before the body was read (an upload refused at set-up): the rest of
		 * the body is discarded; MHD closes the connection after the reply */
		*upload_data_size = 0;
		return MHD_queue_response(conn, r->status, r->resp);
	}
	return MHD_YES;
}

/* The metrics label of a method: MHD accepts any token as a method, and a label taken from
 * the client would let it create metric series without bound. */
static const char *method_label(const char *m)
{
	static const char *const known[] = {"GET",    "HEAD",    "POST", "PUT",
					    "DELETE", "OPTIONS", "PATCH"};
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strcmp(m, known[i]) == 0)
			return known[i];
	return "other";
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct server *srv = cls;
	struct req *r = *con_cls;
	json_t *labels;
	double secs;
	char st[8], logged[512];
	(void)conn;

	if (!r)
		return;
	secs = (double)(services_mono_ms() - r->t0) / 1000.0;
	snprintf(st, sizeof st, "%u", r->status);
	log_set_request_id(r->id);
	redact_path(r->path, logged, sizeof logged);
	log_msg(SBX_LOG_INFO, "http", "method=%s path=%s status=%u ms=%.1f remote=%s%s", r->method,
		logged, r->status, secs * 1000.0, r->remote,
		toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
	log_set_request_id(NULL);
	labels = json_pack("{s:s, s:s, s:s}", "method", method_label(r->method), "route",
			   r->route ? r->route : "unmatched", "status", st);
	metrics_counter_add(srv->metrics, "sbxd_http_requests_total", labels, 1);
	metrics_observe(srv->metrics, "sbxd_http_request_duration_seconds", labels, secs);
	json_decref(labels);
	req_free(r);
	*con_cls = NULL;
	pthread_mutex_lock(&srv->httpd->mu);
	srv->httpd->inflight--;
	pthread_cond_broadcast(&srv->httpd->cv);
	pthread_mutex_unlock(&srv->httpd->mu);
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 0)))
#endif
static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;
	(void)cls;
	vsnprintf(line, sizeof line, fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	log_msg(SBX_LOG_WARN, "mhd", "%s", line);
}

int http_start(struct server *srv, char *msg, size_t len)
{
	struct sockaddr_storage ss;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	struct httpd *h;

	memset(&ss, 0, sizeof ss);
	if (inet_pton(AF_INET, srv->cfg.listen_host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)srv->cfg.listen_port);
	} else if (inet_pton(AF_INET6, srv->cfg.listen_host,
			     &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)srv->cfg.listen_port);
		flags |= MHD_USE_IPv6;
	} else if (strcmp(srv->cfg.listen_host, "localhost") == 0) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)srv->cfg.listen_port);
	} else {
		snprintf(msg, len, "listen address '%s' is not a numeric IPv4/IPv6 address",
			 srv->cfg.listen_host);
		return -1;
	}
	h = calloc(1, sizeof *h);
	if (!h)
		return -1;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	srv->httpd = h;
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_access, srv, MHD_OPTION_SOCK_ADDR, &ss,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)srv->cfg.max_connections,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
				MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_END);
	if (!h->d) {
		snprintf(msg, len, "cannot listen on %s:%d: %s (is another server using the port?)",
			 srv->cfg.listen_host, srv->cfg.listen_port, strerror(errno));
		return -1;
	}
	return 0;
}

int http_add_connection(struct server *srv, int fd)
{
	struct sockaddr_in lo;

	memset(&lo, 0, sizeof lo);
	lo.sin_family = AF_INET;
	lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (!srv->httpd || !srv->httpd->d) {
		close(fd);
		return -1;
	}
	/* MHD closes fd itself when it cannot take it. */
	return MHD_add_connection(srv->httpd->d, fd, (const struct sockaddr *)&lo, sizeof lo) ==
		       MHD_YES
		   ? 0
		   : -1;
}

int http_inflight(struct server *srv)
{
	int n;
	pthread_mutex_lock(&srv->httpd->mu);
	n = srv->httpd->inflight;
	pthread_mutex_unlock(&srv->httpd->mu);
	return n;
}

void http_stop(struct server *srv, int grace_s)
{
	struct httpd *h = srv->httpd;
	MHD_socket ls;
	struct timespec dl;

	if (!h || !h->d)
		return;
	ls = MHD_quiesce_daemon(h->d);
	if (ls != MHD_INVALID_SOCKET)
		close(ls);
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += grace_s;
	pthread_mutex_lock(&h->mu);
	while (h->inflight > 0)
		if (pthread_cond_timedwait(&h->cv, &h->mu, &dl) == ETIMEDOUT)
			break;
	if (h->inflight > 0)
		LOG_W("stopping with %d request(s) still in flight after %d s", h->inflight,
		      grace_s);
	pthread_mutex_unlock(&h->mu);
	MHD_stop_daemon(h->d);
	h->d = NULL;
}
