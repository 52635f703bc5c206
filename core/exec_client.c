/*
 * Executor client over libcurl. The NDJSON stream is split into lines as it arrives so
 * that output can be relayed live and memory stays bounded by the line cap, not by the
 * total output of a handler.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "exec_client.h"
#include "relay.h"

#define LINE_MAX_BYTES (80u << 20) /* one event; result events carry capped outputs */

static void handle_line(struct exec_stream *s, const char *line, size_t len)
{
	json_t *ev;
	const char *type;

	if (len == 0)
		return;
	ev = json_loadb(line, len, JSON_ALLOW_NUL, NULL);
	if (!ev)
		return;
	type = json_string_value(json_object_get(ev, "type"));
	if (s->on_event)
		s->on_event(s->ctx, ev);
	if (type && strcmp(type, "result") == 0) {
		json_decref(s->result);
		s->result = json_incref(ev);
	}
	json_decref(ev);
}

size_t exec_client_stream_feed(struct exec_stream *s, const char *data, size_t len)
{
	size_t i, start = 0;

	for (i = 0; i < len; i++) {
		if (data[i] != '\n')
			continue;
		if (s->len) {
			size_t part = i - start;
			if (s->len + part > LINE_MAX_BYTES) {
				s->overflow = 1;
				return 0;
			}
			/* Grow only: the buffer keeps its capacity for the next partial line. */
			if (s->len + part + 1 > s->cap) {
				char *nb = realloc(s->buf, s->len + part + 1);
				if (!nb)
					return 0;
				s->buf = nb;
				s->cap = s->len + part + 1;
			}
			memcpy(s->buf + s->len, data + start, part);
			s->len += part;
			handle_line(s, s->buf, s->len);
			s->len = 0;
		} else
			handle_line(s, data + start, i - start);
		start = i + 1;
	}
	if (start < len) {
		size_t part = len - start;
		if (s->len + part > LINE_MAX_BYTES) {
			s->overflow = 1;
			return 0;
		}
		if (s->len + part + 1 > s->cap) {
			size_t cap = s->cap ? s->cap : 8192;
			while (cap < s->len + part + 1)
				cap *= 2;
			char *nb = realloc(s->buf, cap);
			if (!nb)
				return 0;
			s->buf = nb;
			s->cap = cap;
		}
		memcpy(s->buf + s->len, data + start, part);
		s->len += part;
	}
	return len;
}

void exec_client_stream_free(struct exec_stream *s)
{
	json_decref(s->result);
	s->result = NULL;
	free(s->buf);
	s->buf = NULL;
	s->len = s->cap = 0;
}

static size_t on_data(char *data, size_t size, size_t n, void *ud)
{
	return exec_client_stream_feed(ud, data, size * n);
}

static CURL *prepare(const json_t *executor, const char *path, long timeout_ms,
		     struct curl_slist **hdrs, sbx_err *err)
{
	const char *sock = json_string_value(json_object_get(executor, "unix_socket"));
	const char *base = json_string_value(json_object_get(executor, "url"));
	const char *token = json_string_value(json_object_get(executor, "token"));
	char url[1024];
	CURL *c;

	if (!base)
		base = "http://sandbox";
	if (snprintf(url, sizeof url, "%s%s", base, path) >= (int)sizeof url) {
		sbx_err_set(err, SBX_E_INVALID, "executor URL too long");
		return NULL;
	}
	c = curl_easy_init();
	if (!c) {
		sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		return NULL;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if (sock)
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
	*hdrs = curl_slist_append(*hdrs, "Expect:");
	if (token) {
		char h[300];
		snprintf(h, sizeof h, "Authorization: Bearer %s", token);
		*hdrs = curl_slist_append(*hdrs, h);
	}
	return c;
}

static int curl_fail(CURLcode cc, const char *what, sbx_err *err)
{
	if (cc == CURLE_OPERATION_TIMEDOUT)
		return sbx_err_set(err, SBX_E_TIMEOUT,
				   "the sandbox's executor did not answer %s in time", what);
	return sbx_err_set(err, SBX_E_UNAVAILABLE, "the sandbox's executor is unreachable (%s): %s",
			   what, curl_easy_strerror(cc));
}

int exec_client_execute(const json_t *executor, const json_t *request, long timeout_ms,
			void (*on_event)(void *ctx, const json_t *ev), void *ctx, json_t **result,
			sbx_err *err)
{
	struct exec_stream s = {.on_event = on_event, .ctx = ctx};
	struct curl_slist *hdrs = NULL;
	char *body = NULL;
	CURL *c;
	CURLcode cc;
	long status = 0;
	int rc;

	*result = NULL;
	c = prepare(executor, "/execute", timeout_ms, &hdrs, err);
	if (!c)
		return -err->code;
	body = json_dumps(request, JSON_COMPACT);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (cc != CURLE_OK && !s.result) {
		rc = s.overflow
			 ? sbx_err_set(err, SBX_E_INTERNAL, "the executor sent an oversized event")
			 : curl_fail(cc, "POST /execute", err);
		goto out;
	}
	if (status != 200 && !s.result) {
		if (s.len && s.buf) {
			s.buf[s.len] = '\0';
		}
		rc = sbx_err_set(err,
				 status == 409   ? SBX_E_CONFLICT
				 : status == 429 ? SBX_E_LIMIT
						 : SBX_E_INTERNAL,
				 "the executor refused the execution (HTTP %ld): %.300s", status,
				 s.len && s.buf ? s.buf : "");
		goto out;
	}
	if (!s.result) {
		rc = sbx_err_set(err, SBX_E_UNAVAILABLE,
				 "the executor's stream ended without a result");
		goto out;
	}
	*result = s.result;
	s.result = NULL;
	rc = 0;
out:
	exec_client_stream_free(&s);
	free(body);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return rc;
}

struct sink {
	char *buf;
	size_t len, cap, max;
	int over;
};

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
	struct sink *k = ud;
	size_t len = size * n;
	if (k->len + len > k->max) {
		k->over = 1;
		return 0;
	}
	if (k->len + len + 1 > k->cap) {
		size_t cap = k->cap ? k->cap : 8192;
		while (cap < k->len + len + 1)
			cap *= 2;
		char *nb = realloc(k->buf, cap);
		if (!nb)
			return 0;
		k->buf = nb;
		k->cap = cap;
	}
	memcpy(k->buf + k->len, data, len);
	k->len += len;
	k->buf[k->len] = '\0';
	return len;
}

int exec_client_health(const json_t *executor, long timeout_ms, sbx_err *err)
{
	struct sink k = {.max = 4096};
	struct curl_slist *hdrs = NULL;
	long code = 0;
	CURLcode cc;
	CURL *c = prepare(executor, "/health", timeout_ms, &hdrs, err);
	int rc = 0;

	if (!c)
		return -err->code;
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &k);
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK)
		rc = curl_fail(cc, "/health", err);
	else if (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code), code != 200)
		rc = sbx_err_set(err, SBX_E_UNAVAILABLE, "the executor answered /health with %ld",
				 code);
	free(k.buf);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return rc;
}

int exec_client_call(const json_t *executor, const char *method, const char *path_and_query,
		     const void *body, size_t body_len, size_t max_bytes, long *status, char **out,
		     size_t *out_len, sbx_err *err)
{
	struct sink k = {.max = max_bytes};
	struct curl_slist *hdrs = NULL;
	CURL *c;
	CURLcode cc;
	int rc = 0;

	*out = NULL;
	*out_len = 0;
	*status = 0;
	c = prepare(executor, path_and_query, 300000L, &hdrs, err);
	if (!c)
		return -err->code;
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &k);
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		free(k.buf);
		rc = k.over ? sbx_err_set(err, SBX_E_TOOLARGE, "the file is larger than %zu bytes",
					  max_bytes)
			    : curl_fail(cc, path_and_query, err);
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	*out = k.buf;
	*out_len = k.len;
out:
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return rc;
}

int exec_client_result(const json_t *executor, const char *id, json_t **result, sbx_err *err)
{
	char path[256], *body = NULL;
	size_t len;
	long status;
	int rc;

	*result = NULL;
	snprintf(path, sizeof path, "/executions/%s", id);
	rc =
	    exec_client_call(executor, "GET", path, NULL, 0, 200u << 20, &status, &body, &len, err);
	if (rc < 0)
		return rc;
	if (status == 404)
		rc =
		    sbx_err_set(err, SBX_E_NOTFOUND, "the executor does not know execution %s", id);
	else if (status != 200 ||
		 !(*result = json_loadb(body ? body : "", len, JSON_ALLOW_NUL, NULL)))
		rc = sbx_err_set(err, SBX_E_INTERNAL, "the executor answered HTTP %ld for %s",
				 status, path);
	free(body);
	return rc;
}

struct transfer {
	CURL *c;
	struct relay *in, *out;
	void (*on_headers)(void *ctx, long status, long long length);
	void *ctx;
	int headers_reported;
	long status;
	char *err;
	size_t err_len;
};

static void report_headers(struct transfer *t)
{
	curl_off_t len = -1;

	if (t->headers_reported)
		return;
	t->headers_reported = 1;
	curl_easy_getinfo(t->c, CURLINFO_RESPONSE_CODE, &t->status);
	curl_easy_getinfo(t->c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
	if (t->on_headers)
		t->on_headers(t->ctx, t->status, (long long)len);
}

static size_t on_transfer_header(char *data, size_t size, size_t n, void *ud)
{
	struct transfer *t = ud;
	size_t len = size * n;
	long code = 0;

	/* the blank line ends a header block; skip 1xx interim responses */
	if (len <= 2 && (data[0] == '\r' || data[0] == '\n')) {
		curl_easy_getinfo(t->c, CURLINFO_RESPONSE_CODE, &code);
		if (code >= 200)
			report_headers(t);
	}
	return len;
}

static size_t on_transfer_body(char *data, size_t size, size_t n, void *ud)
{
	struct transfer *t = ud;
	size_t len = size * n;

	report_headers(t);
	if (t->status >= 200 && t->status < 300) {
		if (t->out && relay_write(t->out, data, len) < 0)
			return 0; /* the consumer went away: abort the transfer */
		return len;
	}
	if (t->err_len + len <= 65536) {
		char *nb = realloc(t->err, t->err_len + len + 1);
		if (nb) {
			memcpy(nb + t->err_len, data, len);
			t->err = nb;
			t->err_len += len;
			t->err[t->err_len] = '\0';
		}
	}
	return len;
}

static size_t on_transfer_read(char *buf, size_t size, size_t n, void *ud)
{
	struct transfer *t = ud;
	long got = relay_read(t->in, buf, size * n);
	return got < 0 ? CURL_READFUNC_ABORT : (size_t)got;
}

int exec_client_transfer(const json_t *executor, const char *method, const char *path,
			 long timeout_ms, struct relay *in, long long in_len, struct relay *out,
			 void (*on_headers)(void *ctx, long status, long long length), void *ctx,
			 long *status, char **err_body, size_t *err_len, sbx_err *err)
{
	struct transfer t = {.in = in, .out = out, .on_headers = on_headers, .ctx = ctx};
	struct curl_slist *hdrs = NULL;
	CURLcode cc;
	int rc = 0;

	*status = 0;
	if (err_body)
		*err_body = NULL;
	if (err_len)
		*err_len = 0;
	t.c = prepare(executor, path, timeout_ms, &hdrs, err);
	if (!t.c)
		return -err->code;
	curl_easy_setopt(t.c, CURLOPT_CUSTOMREQUEST, method);
	if (in) {
		curl_easy_setopt(t.c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(t.c, CURLOPT_READFUNCTION, on_transfer_read);
		curl_easy_setopt(t.c, CURLOPT_READDATA, &t);
		if (in_len >= 0)
			curl_easy_setopt(t.c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)in_len);
		else
			hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
		hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
	}
	curl_easy_setopt(t.c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(t.c, CURLOPT_HEADERFUNCTION, on_transfer_header);
	curl_easy_setopt(t.c, CURLOPT_HEADERDATA, &t);
	curl_easy_setopt(t.c, CURLOPT_WRITEFUNCTION, on_transfer_body);
	curl_easy_setopt(t.c, CURLOPT_WRITEDATA, &t);
	cc = curl_easy_perform(t.c);
	report_headers(&t);
	*status = t.status;
	if (cc != CURLE_OK)
		rc = curl_fail(cc, path, err);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(t.c);
	if (err_body)
		*err_body = t.err;
	else
		free(t.err);
	if (err_len)
		*err_len = t.err_len;
	return rc;
}
