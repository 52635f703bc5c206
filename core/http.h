/*
 * The HTTP front end on libmicrohttpd: bounded bodies, suspend + hand-off to the worker
 * pool, replies queued on resume, X-Request-ID, one access log line per request.
 */
#ifndef SBXD_HTTP_H
#define SBXD_HTTP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "server.h"

struct req {
	struct server *srv;
	struct MHD_Connection *conn;
	char method[16];
	char *path;      /* decoded URL path */
	json_t *query;   /* {name: value} */
	json_t *headers; /* {lower-case name: value} */
	char *body;
	size_t body_len, body_cap;
	int64_t body_limit;
	char id[72]; /* request id */
	char remote[64];
	json_t *principal; /* from auth, or NULL */
	int64_t t0;        /* monotonic ms at arrival */
	int state;
	int deferred;       /* the handler will call http_complete() later */
	atomic_int handoff; /* http.c: 1 while a worker runs the handler, 2 if completed then */
	const char *route;  /* matched route pattern, for logs and metrics */
	char *param[3];     /* path captures of the matched route ({id}, {path*}) */
	unsigned status;
	struct MHD_Response *resp;
	/* Streamed request bodies (uploads): set by the handler, called on MHD's thread. */
	void *stream_ctx;
	/* Take up to n bytes; *consumed < n means the handler parked the connection for
	 * backpressure. <0: stop (the rest of the body is discarded). */
	int (*stream_data)(struct req *r, const char *data, size_t n, size_t *consumed);
	/* The body ended: return 1 when the reply is already set (queue it now), 0 when
	 * the handler suspended the connection and will http_complete() later. */
	int (*stream_end)(struct req *r);
	/* The request is going away (reply sent, limit hit or client gone). */
	void (*stream_free)(struct req *r);
	int stream_dead;   /* the rest of the body is read and discarded */
	int stream_primed; /* MHD's repeated headers call after the resume was seen */
};

int http_start(struct server *srv, char *msg, size_t len);
/* Stop accepting, wait up to grace_s for in-flight requests, then stop. */
void http_stop(struct server *srv, int grace_s);
int http_inflight(struct server *srv);
/* Serve an already-connected stream socket as if it had been accepted on the listening one
 * (client address 127.0.0.1). The daemon never calls it: tests and tests/fuzz drive
 * requests over a socketpair with it. fd belongs to the server afterwards, also when -1 is
 * returned (server not started, or MHD refused it). Any thread, after http_start(). */
int http_add_connection(struct server *srv, int fd);

/* Replies. Exactly one per request. */
void http_reply_json(struct req *r, unsigned status, json_t *body /* stolen */);
void http_reply_bytes(struct req *r, unsigned status, const char *ctype, char *data /* freed */,
		      size_t len);
/* An error with the standard body; error_code NULL → derived from status. */
void http_reply_error(struct req *r, unsigned status, const char *error_code, const char *solution,
		      const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
/* Map an sbx_err (from a service or plugin) to the standard error reply. not_found_code
 * names the object for 404s, e.g. "Sandbox.SessionNotFound". */
void http_reply_sbx(struct req *r, int status_code, const sbx_err *e, const char *not_found_code);
/* Reply with a response built by the caller (e.g. from a content-reader callback). */
void http_reply_response(struct req *r, unsigned status, struct MHD_Response *resp);
/* Streamed uploads: the handler set the stream_* hooks and deferred the request; the
 * body now starts to flow into stream_data. Call once, from the handler. */
void http_stream_start(struct req *r);
/* For deferred requests: hand the reply back to MHD. Any thread. */
void http_complete(struct req *r);

const char *http_query(struct req *r, const char *name);
/* Whether the request's Origin is in server.cors_origins. */
int http_cors_allowed(struct req *r);
const char *http_header(struct req *r, const char *lower_name);

#endif
