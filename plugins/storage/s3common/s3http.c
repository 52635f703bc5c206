/*
 * One S3 request through libcurl (signed by libcurl's CURLOPT_AWS_SIGV4), the mapping of
 * S3 error responses to sbx statuses with messages that say which credentials, bucket or
 * endpoint is at fault, and the bounded XML extraction of <Code>/<Message> and friends.
 * libcurl is used directly (not the core's http_request) for streamed bodies of a given
 * length, a separate stall timeout, TLS verification switches and connection reuse.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "plugins/storage/s3common/s3common.h"

#define BODY_MAX (8 * 1024 * 1024) /* collected (non-streamed) response bodies */

char *s3_uri_encode(const char *src, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(src);
	char *out = malloc(3 * n + 1), *o = out;

	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
		if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' ||
		    (keep_slash && *p == '/')) {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

char *s3_url(const struct s3 *s, const char *key)
{
	char *enc = key ? s3_uri_encode(key, 1) : NULL, *url;
	size_t n;

	if (key && !enc)
		return NULL;
	n = strlen(s->base) + (enc ? strlen(enc) : 0) + 3;
	url = malloc(n);
	if (url) {
		if (enc)
			snprintf(url, n, "%s/%s", s->base, enc);
		else /* the bucket: "/" in virtual-hosted style, "/bucket" in path style */
			snprintf(url, n, "%s%s", s->base, s->path_style ? "" : "/");
	}
	free(enc);
	return url;
}

const char *s3_xml_find(const char *p, const char *end, const char *tag, size_t *len,
			const char **next)
{
	char open[64], close[64];
	size_t ol, cl;
	const char *a, *b;

	ol = (size_t)snprintf(open, sizeof open, "<%s>", tag);
	cl = (size_t)snprintf(close, sizeof close, "</%s>", tag);
	if (!p || ol >= sizeof open || cl >= sizeof close)
		return NULL;
	a = memmem(p, (size_t)(end - p), open, ol);
	if (!a)
		return NULL;
	a += ol;
	b = memmem(a, (size_t)(end - a), close, cl);
	if (!b)
		return NULL;
	*len = (size_t)(b - a);
	if (next)
		*next = b + cl;
	return a;
}

void s3_xml_copy(const char *v, size_t len, char *out, size_t cap)
{
	static const struct {
		const char *ent;
		char c;
	} ents[] = {
	    {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
	size_t o = 0;

	for (size_t i = 0; i < len && o + 1 < cap;) {
		int hit = 0;

		for (size_t e = 0; v[i] == '&' && e < sizeof ents / sizeof ents[0]; e++) {
			size_t el = strlen(ents[e].ent);

			if (i + el <= len && memcmp(v + i, ents[e].ent, el) == 0) {
				out[o++] = ents[e].c;
				i += el;
				hit = 1;
				break;
			}
		}
		if (!hit)
			out[o++] = v[i++];
	}
	if (cap)
		out[o] = '\0';
}

/* ---- the request ----------------------------------------------------------------- */

struct xfer {
	CURL *h;
	const struct s3_req *rq;
	struct s3_resp *rs;
	size_t body_cap;
	int too_big;
};

static size_t read_cb(char *p, size_t size, size_t nmemb, void *ud)
{
	struct s3_src *src = ud;
	size_t want = size * nmemb;
	long n;

	if ((long long)want > src->remaining)
		want = (size_t)src->remaining;
	if (want == 0)
		return 0;
	if (src->buf) {
		memcpy(p, src->buf, want);
		src->buf += want;
		src->remaining -= (long long)want;
		return want;
	}
	n = src->fn(src->ctx, p, want);
	if (n < 0 || (size_t)n > want) {
		src->failed = 1;
		return CURL_READFUNC_ABORT;
	}
	if (n == 0) {
		src->ended = 1;
		return CURL_READFUNC_ABORT;
	}
	src->remaining -= n;
	return (size_t)n;
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nmemb;
	long status = 0;

	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 200 && status < 300 && x->rq->sink) {
		if (x->rq->sink(x->rq->sink_ctx, p, n) < 0) {
			x->rs->sink_failed = 1;
			return 0;
		}
		return n;
	}
	if (x->rs->body_len + n > BODY_MAX) {
		x->too_big = 1;
		return 0;
	}
	if (x->rs->body_len + n + 1 > x->body_cap) {
		size_t cap = (x->rs->body_len + n + 1) * 2;
		char *nb = realloc(x->rs->body, cap);

		if (!nb)
			return 0;
		x->rs->body = nb;
		x->body_cap = cap;
	}
	memcpy(x->rs->body + x->rs->body_len, p, n);
	x->rs->body_len += n;
	x->rs->body[x->rs->body_len] = '\0';
	return n;
}

/* Copies header `name` (lower case, with ':') of line p into out when it matches. */
static void header_value(const char *p, size_t n, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name), vl;

	if (n <= nl || strncasecmp(p, name, nl) != 0)
		return;
	p += nl;
	n -= nl;
	while (n && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	while (n && (p[n - 1] == '\r' || p[n - 1] == '\n' || p[n - 1] == ' '))
		n--;
	vl = n < cap - 1 ? n : cap - 1;
	memcpy(out, p, vl);
	out[vl] = '\0';
}

static size_t header_cb(char *p, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nmemb;
	char num[32] = "";

	if (n > 5 && strncmp(p, "HTTP/", 5) == 0) {
		/* A new response (after a 100 Continue): forget the previous headers. */
		x->rs->etag[0] = x->rs->content_type[0] = x->rs->last_modified[0] = '\0';
		x->rs->err_code[0] = '\0';
		x->rs->content_length = -1;
		return n;
	}
	header_value(p, n, "etag:", x->rs->etag, sizeof x->rs->etag);
	header_value(p, n, "content-type:", x->rs->content_type, sizeof x->rs->content_type);
	header_value(p, n, "last-modified:", x->rs->last_modified, sizeof x->rs->last_modified);
	header_value(p, n, "x-amz-error-code:", x->rs->err_code, sizeof x->rs->err_code);
	header_value(p, n, "x-minio-error-code:", x->rs->err_code, sizeof x->rs->err_code);
	header_value(p, n, "content-length:", num, sizeof num);
	if (num[0])
		x->rs->content_length = strtoll(num, NULL, 10);
	return n;
}

static void hexsha256(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void b64md5(const void *data, size_t len, char out[32])
{
	unsigned char md[16];
	unsigned int mdlen = 0;

	EVP_Digest(data, len, md, &mdlen, EVP_md5(), NULL);
	EVP_EncodeBlock((unsigned char *)out, md, 16);
}

static CURL *handle_take(struct s3 *s)
{
	CURL *h = NULL;

	pthread_mutex_lock(&s->lock);
	if (s->npool > 0)
		h = s->pool[--s->npool];
	pthread_mutex_unlock(&s->lock);
	return h ? h : curl_easy_init();
}

/* Back to the pool (keeping its connection cache), or freed when the pool is full. */
static void handle_give(struct s3 *s, CURL *h)
{
	curl_easy_reset(h);
	pthread_mutex_lock(&s->lock);
	if (s->npool < S3_POOL_MAX) {
		s->pool[s->npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	if (h)
		curl_easy_cleanup(h);
}

static struct curl_slist *add_header(struct curl_slist *l, const char *name, const char *value,
				     int *failed)
{
	char line[4096];
	struct curl_slist *n;

	snprintf(line, sizeof line, "%s: %s", name, value);
	n = curl_slist_append(l, line);
	explicit_bzero(line, sizeof line); /* may be the session token */
	if (!n) {
		*failed = 1;
		return l;
	}
	return n;
}

void s3_resp_free(struct s3_resp *rs)
{
	free(rs->body);
	rs->body = NULL;
	rs->body_len = 0;
}

int s3_perform(struct s3 *s, const struct s3_req *rq, struct s3_resp *rs, sbx_err *err)
{
	struct xfer x = {.rq = rq, .rs = rs};
	struct curl_slist *hdrs = NULL;
	struct s3_src small = {0};
	char errbuf[CURL_ERROR_SIZE] = "", hash[65], md5[32];
	char *url = NULL, *full = NULL;
	int failed = 0, ret = 0;
	CURLcode cc;

	memset(rs, 0, sizeof *rs);
	rs->content_length = -1;
	x.h = handle_take(s);
	url = s3_url(s, rq->key);
	if (url && rq->query && *rq->query) {
		size_t n = strlen(url) + strlen(rq->query) + 2;

		full = malloc(n);
		if (full)
			snprintf(full, n, "%s?%s", url, rq->query);
	}
	if (!x.h || !url || (rq->query && *rq->query && !full)) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}

	if (rq->src) {
		hdrs = add_header(hdrs, "x-amz-content-sha256", "UNSIGNED-PAYLOAD", &failed);
	} else {
		hexsha256(rq->body ? rq->body : "", rq->body ? rq->body_len : 0, hash);
		hdrs = add_header(hdrs, "x-amz-content-sha256", hash, &failed);
	}
	if (s->session_token)
		hdrs = add_header(hdrs, "x-amz-security-token", s->session_token, &failed);
	if (rq->content_type)
		hdrs = add_header(hdrs, "Content-Type", rq->content_type, &failed);
	if (rq->content_md5 && rq->body) {
		b64md5(rq->body, rq->body_len, md5);
		hdrs = add_header(hdrs, "Content-MD5", md5, &failed);
	}
	/* No "Expect:" override here: libcurl would sign the empty header it never sends. */
	if (failed || !hdrs) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}

	curl_easy_setopt(x.h, CURLOPT_URL, full ? full : url);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85 */
	curl_easy_setopt(x.h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(x.h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(x.h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x.h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(x.h, CURLOPT_AWS_SIGV4, s->sigv4);
	curl_easy_setopt(x.h, CURLOPT_USERNAME, s->access_key);
	curl_easy_setopt(x.h, CURLOPT_PASSWORD, s->secret_key);
	curl_easy_setopt(x.h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(x.h, CURLOPT_CONNECTTIMEOUT, s->connect_timeout_s);
	if (rq->streaming) {
		curl_easy_setopt(x.h, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(x.h, CURLOPT_LOW_SPEED_TIME, s->timeout_s);
	} else {
		curl_easy_setopt(x.h, CURLOPT_TIMEOUT, s->timeout_s);
	}
	if (s->ca_file)
		curl_easy_setopt(x.h, CURLOPT_CAINFO, s->ca_file);
	if (!s->verify) {
		curl_easy_setopt(x.h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(x.h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	curl_easy_setopt(x.h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(x.h, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(x.h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(x.h, CURLOPT_WRITEDATA, &x);

	if (strcmp(rq->method, "HEAD") == 0) {
		curl_easy_setopt(x.h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(rq->method, "PUT") == 0) {
		struct s3_src *src = rq->src;

		if (!src) {
			small.buf = rq->body ? rq->body : "";
			small.remaining = rq->body ? (long long)rq->body_len : 0;
			src = &small;
		}
		curl_easy_setopt(x.h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(x.h, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(x.h, CURLOPT_READDATA, src);
		curl_easy_setopt(x.h, CURLOPT_INFILESIZE_LARGE,
				 (curl_off_t)(rq->src ? rq->src_len : small.remaining));
	} else if (strcmp(rq->method, "POST") == 0) {
		curl_easy_setopt(x.h, CURLOPT_POST, 1L);
		curl_easy_setopt(x.h, CURLOPT_POSTFIELDS, rq->body ? (const char *)rq->body : "");
		curl_easy_setopt(x.h, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)(rq->body ? rq->body_len : 0));
	} else if (strcmp(rq->method, "GET") != 0) {
		curl_easy_setopt(x.h, CURLOPT_CUSTOMREQUEST, rq->method);
	}

	cc = curl_easy_perform(x.h);
	curl_easy_getinfo(x.h, CURLINFO_RESPONSE_CODE, &rs->status);
	if (cc == CURLE_OK)
		goto out;
	if (rs->sink_failed || (rq->src && (rq->src->failed || rq->src->ended)))
		goto out; /* the caller reports its own reader's or writer's failure */
	if (x.too_big) {
		ret = sbx_err_set(err, SBX_E_UNAVAILABLE,
				  "storage '%s' (%s): %s response from endpoint '%s' exceeds %d "
				  "bytes",
				  s->name, s->module, rq->method, s->endpoint, BODY_MAX);
	} else if (cc == CURLE_OPERATION_TIMEDOUT) {
		ret = sbx_err_set(err, SBX_E_TIMEOUT,
				  "storage '%s' (%s): S3 endpoint '%s' timed out (%s); see "
				  "connect_timeout_s/timeout_s",
				  s->name, s->module, s->endpoint, errbuf[0] ? errbuf : "timeout");
	} else {
		int tls = cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CONNECT_ERROR ||
			  cc == CURLE_SSL_CACERT_BADFILE;

		ret =
		    sbx_err_set(err, SBX_E_UNAVAILABLE,
				"storage '%s' (%s): cannot reach S3 endpoint '%s': %s%s", s->name,
				s->module, s->endpoint, errbuf[0] ? errbuf : curl_easy_strerror(cc),
				tls ? " (check ca_file/verify)" : "");
	}
	rs->status = 0;
out:
	if (x.h)
		handle_give(s, x.h);
	curl_slist_free_all(hdrs);
	free(full);
	free(url);
	return ret;
}

/* ---- error mapping --------------------------------------------------------------- */

int s3_status_error(struct s3 *s, const struct s3_resp *rs, const char *what, const char *key,
		    sbx_err *err)
{
	char code[64] = "", msg[200] = "";
	const char *v, *end = rs->body ? rs->body + rs->body_len : NULL;
	size_t n;

	if ((v = s3_xml_find(rs->body, end, "Code", &n, NULL)) != NULL)
		s3_xml_copy(v, n < 63 ? n : 63, code, sizeof code);
	else if (rs->err_code[0])
		snprintf(code, sizeof code, "%s", rs->err_code);
	if ((v = s3_xml_find(rs->body, end, "Message", &n, NULL)) != NULL)
		s3_xml_copy(v, n < 199 ? n : 199, msg, sizeof msg);

	if (strcmp(code, "SignatureDoesNotMatch") == 0 || strcmp(code, "InvalidAccessKeyId") == 0 ||
	    strcmp(code, "InvalidToken") == 0 || strcmp(code, "ExpiredToken") == 0 ||
	    strcmp(code, "InvalidSecurity") == 0 ||
	    strcmp(code, "AuthorizationHeaderMalformed") == 0)
		return sbx_err_set(err, SBX_E_UNAVAILABLE,
				   "storage '%s' (%s): S3 rejected the credentials (%s) at '%s': "
				   "check access_key/secret_key (from %s)",
				   s->name, s->module, code, s->endpoint, s->cred_source);
	if (strcmp(code, "AccessDenied") == 0 || (!code[0] && rs->status == 403))
		return sbx_err_set(err, SBX_E_UNAVAILABLE,
				   "storage '%s' (%s): S3 denied %s on bucket '%s' (%s): the "
				   "credentials (from %s) lack permission",
				   s->name, s->module, what, s->bucket, code[0] ? code : "403",
				   s->cred_source);
	if (strcmp(code, "NoSuchBucket") == 0)
		return sbx_err_set(err, SBX_E_UNAVAILABLE,
				   "storage '%s' (%s): bucket '%s' does not exist at '%s' "
				   "(NoSuchBucket)",
				   s->name, s->module, s->bucket, s->endpoint);
	if (strcmp(code, "NoSuchKey") == 0 || (rs->status == 404 && key))
		return sbx_err_set(err, SBX_E_NOTFOUND, "object '%s' not found", key ? key : "");
	if (strcmp(code, "EntityTooLarge") == 0)
		return sbx_err_set(err, SBX_E_TOOLARGE, "storage '%s' (%s): %s '%s': %s", s->name,
				   s->module, what, key ? key : "", msg[0] ? msg : code);
	if (strcmp(code, "PermanentRedirect") == 0 ||
	    strcmp(code, "IllegalLocationConstraint") == 0 || rs->status == 301)
		return sbx_err_set(err, SBX_E_UNAVAILABLE,
				   "storage '%s' (%s): bucket '%s' is not in region '%s' at '%s' "
				   "(%s): set 'region'",
				   s->name, s->module, s->bucket, s->region, s->endpoint,
				   code[0] ? code : "301");
	return sbx_err_set(
	    err, rs->status >= 500 || rs->status == 429 ? SBX_E_UNAVAILABLE : SBX_E_INTERNAL,
	    "storage '%s' (%s): %s%s%s%s failed: HTTP %ld %s%s%s", s->name, s->module, what,
	    key ? " '" : "", key ? key : "", key ? "'" : "", rs->status, code[0] ? code : "",
	    msg[0] ? ": " : "", msg);
}
