/*
 * Client of the sbx-executor protocol (docs/executor-protocol.md): run an execution and
 * read its NDJSON stream, fetch a retained result, call the files endpoints.
 */
#ifndef SBXD_EXEC_CLIENT_H
#define SBXD_EXEC_CLIENT_H

#include <stddef.h>

#include <sandbox/core.h>

/* executor: the handle's "executor" object {unix_socket?, url, token?} (borrowed).
 * request: the POST /execute body. On success *result is the "result" event (new ref).
 * on_event (may be NULL) sees every event as it arrives. */
int exec_client_execute(const json_t *executor, const json_t *request, long timeout_ms,
			void (*on_event)(void *ctx, const json_t *ev), void *ctx, json_t **result,
			sbx_err *err);

/* GET /executions/{id}: *result the retained result or {status: running}. NOTFOUND. */
int exec_client_result(const json_t *executor, const char *id, json_t **result, sbx_err *err);

/* GET /health within timeout_ms: 0 when the executor answers 200, else <0 with the cause. */
int exec_client_health(const json_t *executor, long timeout_ms, sbx_err *err);

/* A generic call for the files endpoints. method/path_and_query e.g. "GET",
 * "/files?path=x". body may be NULL. The response body (bounded by max_bytes) is returned
 * in *out (malloc'd) and its length in *out_len; *status is the HTTP status. */
int exec_client_call(const json_t *executor, const char *method, const char *path_and_query,
		     const void *body, size_t body_len, size_t max_bytes, long *status, char **out,
		     size_t *out_len, sbx_err *err);

/* The NDJSON splitter behind exec_client_execute, exposed so that the stream parser can be
 * tested and fuzzed without a transport (tests/fuzz/fuzz_exec_stream.c). Zero-initialise,
 * set on_event/ctx, feed the body in chunks of any size; a complete line is one event.
 * feed returns len, or 0 to abort the transfer (out of memory, or a line longer than the
 * cap: overflow set). result is the last "result" event seen (owned by the stream until
 * taken). One thread at a time. */
struct exec_stream {
	char *buf; /* the incomplete line so far (len bytes of cap) */
	size_t len, cap;
	json_t *result;
	void (*on_event)(void *ctx, const json_t *ev);
	void *ctx;
	int overflow;
};

size_t exec_client_stream_feed(struct exec_stream *s, const char *data, size_t len);
/* Frees the line buffer and any result still held. */
void exec_client_stream_free(struct exec_stream *s);

#endif

struct relay;

/*
 * One streamed request to the executor, run on the calling thread (blocking). The request
 * body, if `in` is non-NULL, is pulled from that relay (in_len bytes, or -1: chunked until
 * it ends); a 2xx response body is pushed into `out` (may be NULL to discard); a non-2xx
 * body is collected (at most 64 KiB) into *err_body (malloc'd, may be NULL). on_headers
 * (may be NULL) is called once, before any body byte, with the status and the
 * Content-Length (-1 when unknown). Neither relay is closed here.
 */
int exec_client_transfer(const json_t *executor, const char *method, const char *path,
			 long timeout_ms, struct relay *in, long long in_len, struct relay *out,
			 void (*on_headers)(void *ctx, long status, long long length), void *ctx,
			 long *status, char **err_body, size_t *err_len, sbx_err *err);
