/*
 * auth/jwt: the JWS layer: unpadded base64url (RFC 7515 §2) and verification of HS256,
 * RS256 and ES256 signatures with OpenSSL 3's EVP interfaces (RFC 7518 §3).
 */
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "plugins/auth/jwt/jwt.h"

#define HS256_LEN 32
#define ES256_LEN 64 /* R || S, 32 bytes each */

/* Value of a base64url character, or -1. */
static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int jws_is_b64url(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (b64url_value((unsigned char)s[i]) < 0)
			return 0;
	return 1;
}

int jws_b64url_decode(const char *in, size_t len, unsigned char **out, size_t *outlen)
{
	size_t pad = (4 - len % 4) % 4;
	char *t = NULL;
	unsigned char *buf = NULL;
	int n, ret = -1;

	/* One leftover character carries 6 bits: never a whole byte. Leftover bits of the
	 * last character must be zero, so that each byte string has a single encoding. */
	if (len % 4 == 1 || len > INT_MAX / 2 || !jws_is_b64url(in, len))
		goto out;
	if ((len % 4 == 2 && (b64url_value((unsigned char)in[len - 1]) & 0x0f) != 0) ||
	    (len % 4 == 3 && (b64url_value((unsigned char)in[len - 1]) & 0x03) != 0))
		goto out;
	t = malloc(len + pad + 1);
	buf = malloc((len + pad) / 4 * 3 + 1);
	if (!t || !buf)
		goto out;
	for (size_t i = 0; i < len; i++)
		t[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	memset(t + len, '=', pad);
	t[len + pad] = '\0';
	/* EVP_DecodeBlock decodes padding as zero bytes and counts them: drop them. */
	n = EVP_DecodeBlock(buf, (const unsigned char *)t, (int)(len + pad));
	if (n < 0 || (size_t)n < pad)
		goto out;
	n -= (int)pad;
	buf[n] = '\0';
	*out = buf;
	*outlen = (size_t)n;
	buf = NULL;
	ret = 0;
out:
	free(t);
	free(buf);
	return ret;
}

static int verify_hs256(const struct jwt_key *k, const unsigned char *input, size_t inlen,
			const unsigned char *sig, size_t siglen)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t maclen = 0;
	int ret;

	if (siglen != HS256_LEN)
		return 0;
	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, k->secret, k->secret_len, input, inlen,
		       mac, sizeof mac, &maclen))
		return -1;
	ret = maclen == HS256_LEN && CRYPTO_memcmp(mac, sig, HS256_LEN) == 0;
	OPENSSL_cleanse(mac, sizeof mac);
	return ret;
}

/* EVP_DigestVerify with SHA-256; `sig` is what the key type expects (PKCS#1 v1.5 for RSA,
 * DER ECDSA-Sig-Value for EC). */
static int verify_digest(EVP_PKEY *pkey, int rsa, const unsigned char *input, size_t inlen,
			 const unsigned char *sig, size_t siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	int ret = -1, r;

	if (!ctx)
		goto out;
	if (EVP_DigestVerifyInit_ex(ctx, &pctx, "SHA256", NULL, NULL, pkey, NULL) != 1)
		goto out;
	if (rsa && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
		goto out;
	r = EVP_DigestVerify(ctx, sig, siglen, input, inlen);
	ret = r == 1;
out:
	EVP_MD_CTX_free(ctx);
	ERR_clear_error(); /* a bad signature leaves entries we do not report */
	return ret;
}

/* JWS carries ECDSA signatures as fixed-size R||S; EVP wants the DER ECDSA-Sig-Value. */
static int verify_es256(const struct jwt_key *k, const unsigned char *input, size_t inlen,
			const unsigned char *sig, size_t siglen)
{
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *s = NULL;
	unsigned char *der = NULL;
	int derlen, ret = -1;

	if (siglen != ES256_LEN)
		return 0;
	es = ECDSA_SIG_new();
	r = BN_bin2bn(sig, ES256_LEN / 2, NULL);
	s = BN_bin2bn(sig + ES256_LEN / 2, ES256_LEN / 2, NULL);
	if (!es || !r || !s)
		goto out;
	if (ECDSA_SIG_set0(es, r, s) != 1)
		goto out;
	r = s = NULL; /* owned by es now */
	derlen = i2d_ECDSA_SIG(es, &der);
	if (derlen <= 0)
		goto out;
	ret = verify_digest(k->pkey, 0, input, inlen, der, (size_t)derlen);
out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	ERR_clear_error();
	return ret;
}

int jws_verify(const struct jwt_key *k, int alg, const unsigned char *input, size_t inlen,
	       const unsigned char *sig, size_t siglen)
{
	switch (alg) {
	case ALG_HS256:
		return k->type == KT_HMAC ? verify_hs256(k, input, inlen, sig, siglen) : 0;
	case ALG_RS256:
		if (k->type != KT_RSA || siglen != (size_t)EVP_PKEY_get_size(k->pkey))
			return 0;
		return verify_digest(k->pkey, 1, input, inlen, sig, siglen);
	case ALG_ES256:
		return k->type == KT_EC ? verify_es256(k, input, inlen, sig, siglen) : 0;
	default:
		return 0;
	}
}
