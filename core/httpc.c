/*
 * libcurl-backed implementation of sbx_core_api.http_request. One easy handle per call,
 * reused per thread would be faster; calls here are rare (engine APIs, readiness probes)
 * except for the executor, which has its own client in executor_client.c.
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "httpc.h"

#define COLLECT_MAX (16u << 20)

struct xfer {
	sbx_write_fn sink;
	void *sink_ctx;
	char *buf;
	size_t len, cap;
	int too_large;
	int sink_failed;
	json_t *headers;
	sbx_read_fn read_fn;
	void *read_ctx;
	const char *body;
	size_t body_len, body_off;
};

int httpc_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void httpc_global_cleanup(void)
{
	curl_global_cleanup();
}

static size_t on_write(char *data, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;

	if (x->sink) {
		if (x->sink(x->sink_ctx, data, len) < 0) {
			x->sink_failed = 1;
			return 0;
		}
		return len;
	}
	if (x->len + len > COLLECT_MAX) {
		x->too_large = 1;
		return 0;
	}
	if (x->len + len + 1 > x->cap) {
		size_t ncap = x->cap ? x->cap : 4096;
		char *nb;
		while (ncap < x->len + len + 1)
			ncap *= 2;
		nb = realloc(x->buf, ncap);
		if (!nb)
			return 0;
		x->buf = nb;
		x->cap = ncap;
	}
	memcpy(x->buf + x->len, data, len);
	x->len += len;
	x->buf[x->len] = '\0';
	return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n, i, klen;
	char key[128];
	const char *v, *end;

	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		json_object_clear(x->headers); /* a new response (redirect, 100-continue) */
		return len;
	}
	v = memchr(data, ':', len);
	if (!v)
		return len;
	klen = (size_t)(v - data);
	if (klen == 0 || klen >= sizeof key)
		return len;
	for (i = 0; i < klen; i++)
		key[i] = (char)tolower((unsigned char)data[i]);
	key[klen] = '\0';
	v++;
	end = data + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
	json_object_set_new(x->headers, key, json_stringn(v, (size_t)(end - v)));
	return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t cap = size * n;

	if (x->read_fn) {
		long got = x->read_fn(x->read_ctx, buf, cap);
		if (got < 0)
			return CURL_READFUNC_ABORT;
		return (size_t)got;
	}
	if (cap > x->body_len - x->body_off)
		cap = x->body_len - x->body_off;
	memcpy(buf, x->body + x->body_off, cap);
	x->body_off += cap;
	return cap;
}

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

int httpc_request(const json_t *req, const void *body, size_t body_len, sbx_read_fn read_fn,
		  void *read_ctx, sbx_write_fn sink, void *sink_ctx, json_t **resp, sbx_err *err)
{
	struct xfer x = {.sink = sink,
			 .sink_ctx = sink_ctx,
			 .read_fn = read_fn,
			 .read_ctx = read_ctx,
			 .body = body,
			 .body_len = body_len};
	struct curl_slist *hdrs = NULL;
	const char *method, *url, *k, *s;
	json_t *v;
	CURL *c = NULL;
	CURLcode cc;
	long status = 0, timeout_ms;
	int rc;

	*resp = NULL;
	method = jstr(req, "method");
	url = jstr(req, "url");
	if (!method || !url)
		return sbx_err_set(err, SBX_E_INVALID, "http_request: method and url are required");
	timeout_ms = (long)json_integer_value(json_object_get(req, "timeout_ms"));
	if (timeout_ms <= 0)
		timeout_ms = 30000;
	x.headers = json_object();
	c = curl_easy_init();
	if (!c || !x.headers) {
		rc = sbx_err_set(err, SBX_E_INTERNAL, "http_request: out of memory");
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 10000 ? timeout_ms : 10000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if ((s = jstr(req, "unix_socket")))
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, s);
	if ((s = jstr(req, "aws_sigv4")))
		curl_easy_setopt(c, CURLOPT_AWS_SIGV4, s);
	if ((s = jstr(req, "userpwd")))
		curl_easy_setopt(c, CURLOPT_USERPWD, s);
	if ((s = jstr(req, "cacert")))
		curl_easy_setopt(c, CURLOPT_CAINFO, s);
	if ((s = jstr(req, "cert")))
		curl_easy_setopt(c, CURLOPT_SSLCERT, s);
	if ((s = jstr(req, "key")))
		curl_easy_setopt(c, CURLOPT_SSLKEY, s);
	json_object_foreach ((json_t *)json_object_get(req, "headers"), k, v) {
		char line[4096];
		if (!json_is_string(v))
			continue;
		snprintf(line, sizeof line, "%s: %s", k, json_string_value(v));
		hdrs = curl_slist_append(hdrs, line);
	}
	if (body || read_fn) {
		hdrs = curl_slist_append(hdrs, "Expect:");
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c, CURLOPT_READDATA, &x);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body_len);
	}
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);

	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		if (x.too_large)
			rc = sbx_err_set(err, SBX_E_TOOLARGE,
					 "response from %s is larger than %u bytes", url,
					 COLLECT_MAX);
		else if (x.sink_failed)
			rc = sbx_err_set(err, SBX_E_INTERNAL, "receiving from %s was aborted", url);
		else if (cc == CURLE_OPERATION_TIMEDOUT)
			rc = sbx_err_set(err, SBX_E_TIMEOUT, "%s %s: no answer within %ld ms",
					 method, url, timeout_ms);
		else
			rc = sbx_err_set(err, SBX_E_UNAVAILABLE, "%s %s: %s", method, url,
					 curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	*resp = json_pack("{s:I, s:O}", "status", (json_int_t)status, "headers", x.headers);
	if (*resp && !sink)
		json_object_set_new(*resp, "body", json_stringn_nocheck(x.buf ? x.buf : "", x.len));
	rc = *resp ? 0 : sbx_err_set(err, SBX_E_INTERNAL, "http_request: out of memory");
out:
	curl_slist_free_all(hdrs);
	if (c)
		curl_easy_cleanup(c);
	json_decref(x.headers);
	free(x.buf);
	return rc;
}
