/*
 * Presigned GET URLs: AWS Signature Version 4 in the query string, as the AWS documentation
 * ("Authenticating Requests: Using Query Parameters") describes it: canonical request,
 * string to sign, signing key (HMAC-SHA256 chain), signature. libcurl signs only headers,
 * so this part is ours. URLs use public_endpoint so that they work from outside.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "plugins/storage/s3common/s3common.h"

#define TTL_MAX 604800 /* seven days: S3's limit for X-Amz-Expires */

static void hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
	unsigned int len = 32;

	HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &len);
}

static void hex(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", in[i]);
}

void s3_signing_key(const char *secret, const char *date, const char *region, const char *service,
		    unsigned char out[32])
{
	size_t n = strlen(secret) + 5;
	char *k = malloc(n);
	unsigned char a[32], b[32];

	if (!k) {
		memset(out, 0, 32);
		return;
	}
	snprintf(k, n, "AWS4%s", secret);
	hmac(k, strlen(k), date, a);
	hmac(a, 32, region, b);
	hmac(b, 32, service, a);
	hmac(a, 32, "aws4_request", out);
	explicit_bzero(k, n);
	explicit_bzero(a, sizeof a);
	explicit_bzero(b, sizeof b);
	free(k);
}

int s3_presign_at(const struct s3 *s, const char *full_key, int ttl_s, time_t now, char **url,
		  sbx_err *err)
{
	char amzdate[32], date[16], scope[128], hash[65], sig[65];
	unsigned char md[32], skey[32];
	unsigned int mdlen = 0;
	char *ekey = NULL, *cred = NULL, *etok = NULL, *query = NULL, *creq = NULL, *sts = NULL;
	size_t n;
	struct tm tm;
	int ret = 0;

	*url = NULL;
	if (ttl_s < 1 || ttl_s > TTL_MAX)
		return sbx_err_set(err, SBX_E_INVALID, "presign ttl must be 1..%d seconds, not %d",
				   TTL_MAX, ttl_s);
	gmtime_r(&now, &tm);
	strftime(amzdate, sizeof amzdate, "%Y%m%dT%H%M%SZ", &tm);
	strftime(date, sizeof date, "%Y%m%d", &tm);
	snprintf(scope, sizeof scope, "%s/%s/s3/aws4_request", date, s->region);

	ekey = s3_uri_encode(full_key, 1);
	n = strlen(s->access_key) + strlen(scope) + 2;
	cred = malloc(n);
	if (cred)
		snprintf(cred, n, "%s/%s", s->access_key, scope);
	{
		char *ecred = cred ? s3_uri_encode(cred, 0) : NULL;

		free(cred);
		cred = ecred;
	}
	if (s->session_token)
		etok = s3_uri_encode(s->session_token, 0);
	if (!ekey || !cred || (s->session_token && !etok)) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}

	/* Canonical query string: parameters sorted by name, names and values encoded. */
	n = strlen(cred) + (etok ? strlen(etok) : 0) + 256;
	query = malloc(n);
	if (!query) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	snprintf(query, n,
		 "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%s&X-Amz-Date=%s"
		 "&X-Amz-Expires=%d%s%s&X-Amz-SignedHeaders=host",
		 cred, amzdate, ttl_s, etok ? "&X-Amz-Security-Token=" : "", etok ? etok : "");

	/* Canonical request: method, URI, query, headers, signed headers, payload hash. */
	n = strlen(s->public_bucket_path) + strlen(ekey) + strlen(query) + strlen(s->public_host) +
	    128;
	creq = malloc(n);
	if (!creq) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	snprintf(creq, n, "GET\n%s/%s\n%s\nhost:%s\n\nhost\nUNSIGNED-PAYLOAD",
		 s->public_bucket_path, ekey, query, s->public_host);
	EVP_Digest(creq, strlen(creq), md, &mdlen, EVP_sha256(), NULL);
	hex(md, 32, hash);

	/* String to sign, signed with the derived key. */
	n = strlen(amzdate) + strlen(scope) + 128;
	sts = malloc(n);
	if (!sts) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	snprintf(sts, n, "AWS4-HMAC-SHA256\n%s\n%s\n%s", amzdate, scope, hash);
	s3_signing_key(s->secret_key, date, s->region, "s3", skey);
	hmac(skey, 32, sts, md);
	explicit_bzero(skey, sizeof skey);
	hex(md, 32, sig);

	n = strlen(s->public_base) + strlen(ekey) + strlen(query) + 128;
	*url = malloc(n);
	if (!*url) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	snprintf(*url, n, "%s/%s?%s&X-Amz-Signature=%s", s->public_base, ekey, query, sig);
out:
	free(ekey);
	free(cred);
	free(etok);
	free(query);
	free(creq);
	free(sts);
	return ret;
}

int s3_presign_get(void *inst, const char *key, int ttl_s, char **url, sbx_err *err)
{
	struct s3 *s = inst;
	char *fkey;
	size_t n;
	int ret;

	if (!url)
		return sbx_err_set(err, SBX_E_INTERNAL, "presign without an output");
	*url = NULL;
	ret = s3_key_check(key, 0, err);
	if (ret < 0)
		return ret;
	n = strlen(s->prefix) + strlen(key) + 1;
	if (n > 1025)
		return sbx_err_set(err, SBX_E_INVALID,
				   "storage key '%.64s...' is too long with the configured prefix",
				   key);
	fkey = malloc(n);
	if (!fkey)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	memcpy(fkey, s->prefix, strlen(s->prefix));
	memcpy(fkey + strlen(s->prefix), key, strlen(key) + 1);
	ret = s3_presign_at(s, fkey, ttl_s, (time_t)(s->core->now_ms() / 1000), url, err);
	free(fkey);
	return ret;
}
