/*
 * The Kubernetes API client of the module: one bounded request (JSON in, JSON out), a
 * watch stream split into events as it arrives, the executor's /health probe, and the
 * mapping of API failures (Status objects) to sbx errors that name the cause.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "k8s.h"

struct buf {
	char *data;
	size_t len, cap;
	int too_large;
};

static int buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n > K8S_BODY_MAX) {
		b->too_large = 1;
		return -1;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *d;
		while (cap < b->len + n + 1)
			cap *= 2;
		if (!(d = realloc(b->data, cap)))
			return -1;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ctx)
{
	return buf_add(ctx, p, size * nmemb) < 0 ? 0 : size * nmemb;
}

int url_encode(const char *in, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			    (*p >= '0' && *p <= '9') || strchr("-._~", *p);
		if (o + (plain ? 1 : 3) >= cap)
			return -1;
		if (plain) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
	return 0;
}

/* A curl handle set up for the API server: URL, TLS, protocols, auth header. */
static CURL *api_handle(struct k8s *k, const char *path, const char *token, long timeout_ms,
			struct curl_slist **hdrs, sbx_err *err)
{
	char url[4096], auth[K8S_TOKEN_MAX + 32];
	CURL *c;

	if (snprintf(url, sizeof url, "%s%s", k->server, path) >= (int)sizeof url) {
		sbx_err_set(err, SBX_E_INTERNAL, "kubernetes runtime: request path too long");
		return NULL;
	}
	if (!(c = curl_easy_init())) {
		sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		return NULL;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, k->allow_insecure_http ? "http,https" : "https");
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	if (timeout_ms > 0)
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	if (k->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, k->ca_file);
	if (k->insecure_skip_tls_verify) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	*hdrs = curl_slist_append(*hdrs, "Accept: application/json");
	if (token[0]) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
		*hdrs = curl_slist_append(*hdrs, auth);
		explicit_bzero(auth, sizeof auth);
	}
	return c;
}

static int transport_error(const struct k8s *k, CURLcode cc, const char *errbuf, sbx_err *err)
{
	if (cc == CURLE_OPERATION_TIMEDOUT)
		return sbx_err_set(err, SBX_E_TIMEOUT, "kubernetes API %s: timed out (%s)",
				   k->server, errbuf[0] ? errbuf : curl_easy_strerror(cc));
	if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
	    cc == CURLE_SSL_CONNECT_ERROR)
		return sbx_err_set(err, SBX_E_UNAVAILABLE,
				   "kubernetes API %s: TLS failed (%s): check ca_file", k->server,
				   errbuf[0] ? errbuf : curl_easy_strerror(cc));
	return sbx_err_set(err, SBX_E_UNAVAILABLE, "kubernetes API %s unreachable: %s", k->server,
			   errbuf[0] ? errbuf : curl_easy_strerror(cc));
}

static int call_once(struct k8s *k, const char *method, const char *path, const char *ctype,
		     const char *body, int force_token, long *status, json_t **resp, sbx_err *err)
{
	char token[K8S_TOKEN_MAX + 1], errbuf[CURL_ERROR_SIZE] = "", hdr[256];
	struct curl_slist *hdrs = NULL;
	struct buf b = {0};
	CURL *c;
	CURLcode cc;
	int rc;

	if ((rc = token_get(k, force_token, token, sizeof token, err)) < 0)
		return rc;
	c = api_handle(k, path, token, k->request_timeout_ms, &hdrs, err);
	explicit_bzero(token, sizeof token);
	if (!c) {
		curl_slist_free_all(hdrs);
		return -SBX_E_INTERNAL;
	}
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		snprintf(hdr, sizeof hdr, "Content-Type: %s", ctype ? ctype : "application/json");
		hdrs = curl_slist_append(hdrs, hdr);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	}
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	cc = curl_easy_perform(c);
	*status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	if (b.too_large) {
		free(b.data);
		return sbx_err_set(err, SBX_E_TOOLARGE,
				   "kubernetes API %s %s: response larger than %u bytes", method,
				   path, K8S_BODY_MAX);
	}
	if (cc != CURLE_OK) {
		free(b.data);
		return transport_error(k, cc, errbuf, err);
	}
	*resp = b.data ? json_loadb(b.data, b.len, 0, NULL) : NULL;
	free(b.data);
	return 0;
}

int api_call(struct k8s *k, const char *method, const char *path, const char *content_type,
	     const json_t *body, long *status, json_t **resp, sbx_err *err)
{
	char *text = NULL;
	int rc;

	*resp = NULL;
	if (body && !(text = json_dumps(body, JSON_COMPACT)))
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	rc = call_once(k, method, path, content_type, text, 0, status, resp, err);
	if (rc == 0 && *status == 401 && k->token_file) {
		/* The projected token may have rotated since we read it. */
		json_decref(*resp);
		*resp = NULL;
		rc = call_once(k, method, path, content_type, text, 1, status, resp, err);
	}
	free(text);
	return rc;
}

/* ---- watch ---------------------------------------------------------------- */

struct watch {
	CURL *c;
	long status; /* 0 until the first body bytes */
	struct buf line;
	api_event_fn fn;
	void *ctx;
	sbx_err *err;
	int result; /* 1 stopped by fn, <0 error */
	int gone;
};

static int watch_line(struct watch *w, const char *s, size_t n)
{
	json_error_t jerr;
	json_t *ev = json_loadb(s, n, 0, &jerr);
	const char *type = json_string_value(json_object_get(ev, "type"));
	int rc;

	if (!ev || !type) {
		json_decref(ev);
		w->result = sbx_err_set(w->err, SBX_E_UNAVAILABLE,
					"kubernetes API: malformed watch event: %s", jerr.text);
		return -1;
	}
	if (!strcmp(type, "ERROR")) {
		const json_t *st = json_object_get(ev, "object");
		long code = (long)json_integer_value(json_object_get(st, "code"));
		if (code == 410)
			w->gone = 1;
		w->result = sbx_err_set(w->err, code == 410 ? SBX_E_CONFLICT : SBX_E_UNAVAILABLE,
					"kubernetes API watch error %ld: %s", code,
					json_string_value(json_object_get(st, "message")) ?: "?");
		json_decref(ev);
		return -1;
	}
	rc = w->fn(w->ctx, ev, w->err);
	json_decref(ev);
	if (rc != 0) {
		w->result = rc;
		return -1;
	}
	return 0;
}

static size_t on_watch(char *p, size_t size, size_t nmemb, void *ctx)
{
	struct watch *w = ctx;
	size_t n = size * nmemb, i, start = 0;

	if (!w->status)
		curl_easy_getinfo(w->c, CURLINFO_RESPONSE_CODE, &w->status);
	if (w->status >= 300) /* a Status object, not events: collect it */
		return buf_add(&w->line, p, n) < 0 ? 0 : n;
	for (i = 0; i < n; i++) {
		if (p[i] != '\n')
			continue;
		if (buf_add(&w->line, p + start, i - start) < 0)
			goto big;
		if (w->line.len && watch_line(w, w->line.data, w->line.len) < 0)
			return 0;
		w->line.len = 0;
		start = i + 1;
	}
	if (buf_add(&w->line, p + start, n - start) < 0)
		goto big;
	return n;
big:
	w->result =
	    sbx_err_set(w->err, SBX_E_TOOLARGE,
			"kubernetes API: a watch event is larger than %u bytes", K8S_BODY_MAX);
	return 0;
}

int api_watch(struct k8s *k, const char *path, long timeout_ms, api_event_fn on_event, void *ctx,
	      int *gone, sbx_err *err)
{
	char token[K8S_TOKEN_MAX + 1], errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	struct watch w = {.fn = on_event, .ctx = ctx, .err = err};
	long status = 0;
	CURL *c;
	CURLcode cc;
	int rc;

	*gone = 0;
	if ((rc = token_get(k, 0, token, sizeof token, err)) < 0)
		return rc;
	c = api_handle(k, path, token, timeout_ms, &hdrs, err);
	explicit_bzero(token, sizeof token);
	if (!c) {
		curl_slist_free_all(hdrs);
		return -SBX_E_INTERNAL;
	}
	w.c = c;
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_watch);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &w);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	if (w.result != 0) {
		free(w.line.data);
		*gone = w.gone;
		return w.result;
	}
	if (status >= 300) {
		json_t *st = w.line.len ? json_loadb(w.line.data, w.line.len, 0, NULL) : NULL;
		free(w.line.data);
		*gone = status == 410;
		rc = api_error(k, status, st, "watch pods", err);
		json_decref(st);
		return rc;
	}
	free(w.line.data);
	if (cc == CURLE_OPERATION_TIMEDOUT || cc == CURLE_OK || cc == CURLE_PARTIAL_FILE)
		return 0; /* the stream ended: the caller re-lists and watches again */
	return transport_error(k, cc, errbuf, err);
}

/* ---- executor ------------------------------------------------------------- */

int api_executor_health(struct k8s *k, const char *url, const char *token, long *status,
			sbx_err *err)
{
	char full[512], auth[600], errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	struct buf b = {0};
	CURL *c = curl_easy_init();
	CURLcode cc;

	*status = 0;
	if (!c)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	snprintf(full, sizeof full, "%s/health", url);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
	hdrs = curl_slist_append(hdrs, auth);
	explicit_bzero(auth, sizeof auth);
	curl_easy_setopt(c, CURLOPT_URL, full);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
			 k->request_timeout_ms < 3000 ? (long)k->request_timeout_ms : 3000L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	free(b.data);
	if (cc != CURLE_OK)
		return sbx_err_set(err, SBX_E_UNAVAILABLE, "executor at %s: %s", url,
				   errbuf[0] ? errbuf : curl_easy_strerror(cc));
	if (*status != 200)
		return sbx_err_set(err, SBX_E_UNAVAILABLE, "executor at %s: /health answered %ld",
				   url, *status);
	return 0;
}

/* ---- errors ---------------------------------------------------------------- */

int api_error(const struct k8s *k, long status, const json_t *resp, const char *what, sbx_err *err)
{
	const char *msg = json_string_value(json_object_get(resp, "message"));
	const char *reason = json_string_value(json_object_get(resp, "reason"));

	if (!msg)
		msg = reason ? reason : "no message";
	switch (status) {
	case 401:
		return sbx_err_set(err, SBX_E_UNAVAILABLE,
				   "kubernetes API %s: %s: 401 Unauthorized: the API server "
				   "rejected sbxd's token; check token_file (%s) and that the "
				   "service account exists",
				   k->server, what, k->token_file ? k->token_file : "none set");
	case 403:
		return sbx_err_set(
		    err, SBX_E_UNAVAILABLE,
		    "kubernetes API: %s: 403 Forbidden (%s): the service account "
		    "needs a Role on pods, pods/status and secrets in namespace '%s' "
		    "(etc/kubernetes/rbac.yaml)",
		    what, msg, k->namespace);
	case 404:
		return sbx_err_set(err, SBX_E_NOTFOUND, "kubernetes API: %s: not found (%s)", what,
				   msg);
	case 409:
		return sbx_err_set(err, SBX_E_CONFLICT, "kubernetes API: %s: %s (%s)", what,
				   reason ? reason : "Conflict", msg);
	case 410:
		return sbx_err_set(err, SBX_E_CONFLICT, "kubernetes API: %s: 410 Gone (%s)", what,
				   msg);
	case 400:
	case 422:
		return sbx_err_set(err, SBX_E_INVALID, "kubernetes API refused %s: %s", what, msg);
	case 429:
		return sbx_err_set(err, SBX_E_UNAVAILABLE,
				   "kubernetes API: %s: throttled (429): %s", what, msg);
	default:
		if (status >= 500)
			return sbx_err_set(err, SBX_E_UNAVAILABLE,
					   "kubernetes API: %s: server error %ld: %s", what, status,
					   msg);
		return sbx_err_set(err, SBX_E_INTERNAL, "kubernetes API: %s: unexpected %ld: %s",
				   what, status, msg);
	}
}
