/*
 * The Docker Engine API client: one request through libcurl (a Unix socket, or TCP with
 * TLS client certificates), responses capped at DK_BODY_MAX and parsed as JSON, transport
 * failures turned into messages that name the host and the likely fix, and the API
 * version negotiation (GET /version).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "docker.h"

struct body {
	char *buf;
	size_t len, cap;
	int too_large;
};

static size_t on_write(char *data, size_t size, size_t n, void *ud)
{
	struct body *b = ud;
	size_t len = size * n;

	if (b->len + len > DK_BODY_MAX) {
		b->too_large = 1;
		return 0;
	}
	if (b->len + len + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 4096;
		char *nb;
		while (ncap < b->len + len + 1)
			ncap *= 2;
		if (!(nb = realloc(b->buf, ncap)))
			return 0;
		b->buf = nb;
		b->cap = ncap;
	}
	memcpy(b->buf + b->len, data, len);
	b->len += len;
	b->buf[b->len] = '\0';
	return len;
}

/* A failed transfer, in words an operator can act on. */
static int transport_error(struct dk *dk, CURL *c, CURLcode cc, const char *method,
			   const char *path, long timeout_ms, const struct body *b, sbx_err *err)
{
	long oserr = 0;

	if (b->too_large)
		return sbx_err_set(err, SBX_E_TOOLARGE,
				   "docker runtime '%s': %s %s: the engine's response exceeds %u "
				   "bytes",
				   dk->name, method, path, DK_BODY_MAX);
	if (cc == CURLE_OPERATION_TIMEDOUT)
		return sbx_err_set(err, SBX_E_TIMEOUT,
				   "docker runtime '%s': %s %s: no answer from %s within %ld ms",
				   dk->name, method, path, dk->host, timeout_ms);
	curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &oserr);
	if (cc == CURLE_COULDNT_CONNECT && (oserr == EACCES || oserr == EPERM))
		return sbx_err_set(err, SBX_E_UNAVAILABLE,
				   "docker runtime '%s': permission denied on %s: sbxd must run as "
				   "root or as a member of the socket's group (docker)",
				   dk->name, dk->host);
	if (cc == CURLE_COULDNT_CONNECT && oserr == ENOENT)
		return sbx_err_set(
		    err, SBX_E_UNAVAILABLE,
		    "docker runtime '%s': %s does not exist: is dockerd running, and "
		    "is 'host' right?",
		    dk->name, dk->host);
	if (!strncmp(dk->base_url, "https:", 6) &&
	    (cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR || cc == CURLE_GOT_NOTHING))
		return sbx_err_set(
		    err, SBX_E_UNAVAILABLE,
		    "docker runtime '%s': %s closed the TLS connection (%s): a daemon "
		    "with --tlsverify needs a client certificate (tls_cert, tls_key) "
		    "signed by its --tlscacert",
		    dk->name, dk->host, curl_easy_strerror(cc));
	if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
	    cc == CURLE_GOT_NOTHING || cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR)
		return sbx_err_set(err, SBX_E_UNAVAILABLE,
				   "docker runtime '%s': cannot reach the engine at %s (%s%s%s): "
				   "is dockerd running?",
				   dk->name, dk->host, curl_easy_strerror(cc), oserr ? ": " : "",
				   oserr ? strerror((int)oserr) : "");
	if (cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_PEER_FAILED_VERIFICATION ||
	    cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_SSL_CACERT_BADFILE || cc == CURLE_SSL_CIPHER)
		return sbx_err_set(
		    err, SBX_E_UNAVAILABLE,
		    "docker runtime '%s': TLS with %s failed (%s): check tls_ca, "
		    "tls_cert and tls_key against the daemon's --tlscacert/--tlscert",
		    dk->name, dk->host, curl_easy_strerror(cc));
	return sbx_err_set(err, SBX_E_UNAVAILABLE, "docker runtime '%s': %s %s on %s: %s", dk->name,
			   method, path, dk->host, curl_easy_strerror(cc));
}

int dk_call(struct dk *dk, const char *method, const char *path, int versioned, const json_t *body,
	    long timeout_ms, long *status, json_t **resp, sbx_err *err)
{
	struct body b = {0};
	struct curl_slist *hdrs = NULL;
	char url[2048], api[16];
	char *text = NULL;
	CURL *c;
	CURLcode cc;
	int rc = 0;

	*resp = NULL;
	*status = 0;
	api[0] = '\0';
	if (versioned) {
		pthread_mutex_lock(&dk->lock);
		memcpy(api, dk->api, sizeof api);
		pthread_mutex_unlock(&dk->lock);
	}
	if (snprintf(url, sizeof url, "%s%s%s%s", dk->base_url, api[0] ? "/v" : "", api, path) >=
	    (int)sizeof url)
		return sbx_err_set(err, SBX_E_INTERNAL, "docker runtime: URL too long");
	if (body && !(text = json_dumps(body, JSON_COMPACT)))
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	if (!(c = curl_easy_init())) {
		free(text);
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 10000 ? timeout_ms : 10000L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (dk->sock_path)
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, dk->sock_path);
	if (dk->tls_ca)
		curl_easy_setopt(c, CURLOPT_CAINFO, dk->tls_ca);
	if (dk->tls_cert)
		curl_easy_setopt(c, CURLOPT_SSLCERT, dk->tls_cert);
	if (dk->tls_key)
		curl_easy_setopt(c, CURLOPT_SSLKEY, dk->tls_key);
	if (!dk->tls_verify) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (text) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
	} else if (!strcmp(method, "POST")) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
	}
	if (!strcmp(method, "HEAD"))
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		rc = transport_error(dk, c, cc, method, path, timeout_ms, &b, err);
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	if (b.len) {
		*resp = json_loadb(b.buf, b.len, JSON_DECODE_ANY, NULL);
		/* Not JSON (plain-text errors of old engines, /_ping's "OK"): keep it as text. */
		if (!*resp)
			*resp = json_stringn_nocheck(b.buf, b.len);
	}
out:
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	free(text);
	free(b.buf);
	return rc;
}

const char *dk_message(const json_t *resp)
{
	const char *m = json_string_value(json_object_get(resp, "message"));

	if (!m && json_is_string(resp))
		m = json_string_value(resp);
	return m ? m : "";
}

int dk_fail(struct dk *dk, const char *what, long status, const json_t *resp, sbx_err *err)
{
	int code = status == 404                    ? SBX_E_NOTFOUND
		   : status == 409                  ? SBX_E_CONFLICT
		   : status == 401 || status == 403 ? SBX_E_UNAVAILABLE
		   : status >= 400 && status < 500  ? SBX_E_INVALID
						    : SBX_E_UNAVAILABLE;
	const char *m = dk_message(resp);
	int mlen = (int)strlen(m);

	if (mlen > 300)
		mlen = 300;
	while (mlen > 0 && (m[mlen - 1] == '\n' || m[mlen - 1] == ' '))
		mlen--;
	return sbx_err_set(err, code, "docker runtime '%s': %s: engine at %s answered %ld%s%.*s",
			   dk->name, what, dk->host, status, mlen ? ": " : "", mlen, m);
}

/* "1.41" -> 141; 0 when malformed. */
static int api_num(const char *v)
{
	unsigned maj, min;
	char tail;

	if (!v || sscanf(v, "%u.%u%c", &maj, &min, &tail) != 2 || maj > 9 || min > 999)
		return 0;
	return (int)(maj * 1000 + min);
}

int dk_negotiate(struct dk *dk, sbx_err *err)
{
	json_t *v = NULL;
	long status;
	const char *have, *oldest;
	int rc, n, lo, ours_min = api_num(DK_API_MIN), ours_max = api_num(DK_API_MAX);

	pthread_mutex_lock(&dk->lock);
	rc = dk->api[0] != '\0';
	pthread_mutex_unlock(&dk->lock);
	if (rc)
		return 0;
	if ((rc = dk_call(dk, "GET", "/version", 0, NULL, dk->create_timeout_ms, &status, &v,
			  err)) < 0)
		return rc;
	if (status != 200) {
		rc = dk_fail(dk, "GET /version", status, v, err);
		json_decref(v);
		return rc;
	}
	have = json_string_value(json_object_get(v, "ApiVersion"));
	oldest = json_string_value(json_object_get(v, "MinAPIVersion"));
	n = api_num(have);
	lo = api_num(oldest);
	if (!n) {
		rc = sbx_err_set(err, SBX_E_UNAVAILABLE,
				 "docker runtime '%s': %s did not report an API version", dk->name,
				 dk->host);
	} else if (n < ours_min) {
		rc = sbx_err_set(err, SBX_E_INVALID,
				 "docker runtime '%s': the engine at %s offers API %s, older "
				 "than the oldest this module supports (%s, Docker Engine 20.10): "
				 "upgrade the engine",
				 dk->name, dk->host, have, DK_API_MIN);
	} else if (lo > ours_max) {
		rc = sbx_err_set(err, SBX_E_INVALID,
				 "docker runtime '%s': the engine at %s no longer accepts API %s "
				 "(its oldest is %s)",
				 dk->name, dk->host, DK_API_MAX, oldest);
	} else {
		n = n < ours_max ? n : ours_max;
		pthread_mutex_lock(&dk->lock);
		snprintf(dk->api, sizeof dk->api, "%d.%d", n / 1000, n % 1000);
		pthread_mutex_unlock(&dk->lock);
		dk->core->log(dk->name, SBX_LOG_INFO,
			      "event=docker_api host=%s engine=%s api=%s using=v%d.%d", dk->host,
			      json_string_value(json_object_get(v, "Version")) ?: "?", have,
			      n / 1000, n % 1000);
	}
	json_decref(v);
	return rc;
}
