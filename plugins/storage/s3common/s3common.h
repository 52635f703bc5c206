/*
 * The code shared by the storage modules `s3` (AWS, virtual-hosted URLs) and `minio`
 * (path-style URLs, bucket bootstrap): configuration and credentials, the libcurl transport
 * with S3 error mapping, the storage.h methods, and SigV4 query presigning. Linked into
 * both modules as the convenience library libs3common.la; never installed.
 */
#ifndef SBX_S3COMMON_H
#define SBX_S3COMMON_H

#include <pthread.h>
#include <time.h>

#include <curl/curl.h>

#include <sandbox/core.h>
#include <sandbox/storage.h>

enum s3_variant {
	S3_VARIANT_AWS = 1,   /* module s3: region required, vhost style unless path_style */
	S3_VARIANT_MINIO = 2, /* module minio: endpoint required, path style, bucket bootstrap */
};

#define S3_POOL_MAX 16

/* One configured instance. Immutable after create() except the handle pool. */
struct s3 {
	const struct sbx_core_api *core;
	char *name;         /* the operator's instance name */
	const char *module; /* "s3" or "minio" (static) */
	int variant;

	char *bucket;
	char *region;
	char *endpoint;           /* scheme://host[:port], as configured or the AWS default */
	char *base;               /* URL of the bucket: scheme://bucket.host or endpoint/bucket */
	char *public_base;        /* the same for presigned URLs (public_endpoint or endpoint) */
	char *public_host;        /* the Host a client sends to public_base */
	char *public_bucket_path; /* "" (vhost) or "/bucket" (path style) */
	int path_style;
	char *prefix; /* "" or "some/prefix/": every object key is prefix + key */

	char *access_key;
	char *secret_key;
	char *session_token; /* NULL unless set */
	const char *cred_source;
	char *sigv4; /* "aws:amz:REGION:s3" */

	char *ca_file;
	int verify;
	long connect_timeout_s;
	long timeout_s;
	long long multipart_threshold;
	long long part_size;

	pthread_mutex_t lock; /* guards pool */
	CURL *pool[S3_POOL_MAX];
	int npool;
};

/* ---- s3conf.c: create/destroy -------------------------------------------------- */

/* As sbx_plugin_lifecycle.create, for the given variant. Main thread. */
int s3c_create(const struct sbx_core_api *core, const char *instance_name, const json_t *config,
	       int variant, void **inst, sbx_err *err);
void s3c_destroy(void *inst);

/* ---- s3http.c: one request ------------------------------------------------------- */

/* A streamed request body: from a buffer, or pulled from read_fn up to `remaining` bytes. */
struct s3_src {
	sbx_read_fn fn;
	void *ctx;
	const char *buf;
	long long remaining;
	int failed; /* read_fn returned <0 or too much */
	int ended;  /* read_fn returned 0 before `remaining` was reached */
};

struct s3_req {
	const char *method; /* GET HEAD PUT POST DELETE */
	const char *key;    /* full object key (prefix included), NULL: the bucket */
	const char *query;  /* sorted, encoded "a=b&c=d", or NULL */
	const void *body;   /* small body signed with its SHA-256, or NULL */
	size_t body_len;
	struct s3_src *src; /* streamed body of src_len bytes (UNSIGNED-PAYLOAD), or NULL */
	long long src_len;
	const char *content_type;
	int content_md5;   /* send Content-MD5 of body (DeleteObjects requires it) */
	sbx_write_fn sink; /* receives a 2xx body; NULL: collect it (bounded) */
	void *sink_ctx;
	int streaming; /* long transfer: timeout_s is a stall limit, not a total */
};

struct s3_resp {
	long status;
	char *body; /* collected body (NUL-terminated), or NULL */
	size_t body_len;
	int sink_failed;
	long long content_length; /* -1 when absent */
	char etag[130];
	char content_type[256];
	char last_modified[64];
	char err_code[64]; /* x-amz-error-code / x-minio-error-code header, if any */
};

/* Performs one signed request. Returns 0 when an HTTP status arrived (check rs->status),
 * <0 with err naming the endpoint for transport failures. rs is cleared first; free it
 * with s3_resp_free. Any thread. */
int s3_perform(struct s3 *s, const struct s3_req *rq, struct s3_resp *rs, sbx_err *err);
void s3_resp_free(struct s3_resp *rs);

/* Maps a non-2xx response to an error: which credentials, which bucket, which key.
 * `what` is the operation ("get", "put", ...), `key` the caller's key or NULL. */
int s3_status_error(struct s3 *s, const struct s3_resp *rs, const char *what, const char *key,
		    sbx_err *err);

/* The URL of the bucket (key NULL) or of a full object key; malloc'd. */
char *s3_url(const struct s3 *s, const char *key);

/* Percent-encodes src as SigV4 wants (unreserved kept; '/' kept iff keep_slash). */
char *s3_uri_encode(const char *src, int keep_slash);

/* Bounded XML helpers: finds <tag>value</tag> in [p, end), returns its start and length
 * and sets *next past the closing tag; NULL when absent. No general XML parsing. */
const char *s3_xml_find(const char *p, const char *end, const char *tag, size_t *len,
			const char **next);
/* Copies a found value into out (capacity cap), decoding the five XML entities. */
void s3_xml_copy(const char *v, size_t len, char *out, size_t cap);

/* ---- s3ops.c: the storage.h methods ---------------------------------------------- */

int s3_put(void *inst, const char *key, sbx_read_fn read_fn, void *read_ctx, long long size,
	   const char *content_type, sbx_err *err);
int s3_get(void *inst, const char *key, sbx_write_fn write_fn, void *write_ctx, sbx_err *err);
int s3_head(void *inst, const char *key, json_t **meta, sbx_err *err);
int s3_list(void *inst, const char *prefix, const char *cursor, int limit, json_t **page,
	    sbx_err *err);
int s3_del(void *inst, const char *key, sbx_err *err);
int s3_del_prefix(void *inst, const char *prefix, sbx_err *err);
int s3_health(void *inst, json_t **detail, sbx_err *err);
/* HEAD bucket, then PUT bucket when it is missing (minio start). */
int s3_ensure_bucket(struct s3 *s, sbx_err *err);

/* Key rules of storage.h (is_prefix: may end in '/' or mid-component). */
int s3_key_check(const char *key, int is_prefix, sbx_err *err);

/* ---- s3presign.c: SigV4 query signing -------------------------------------------- */

int s3_presign_get(void *inst, const char *key, int ttl_s, char **url, sbx_err *err);
/* The same at a given time (tests pin it to AWS's published example). `full_key` is the
 * object key inside the bucket (prefix included). */
int s3_presign_at(const struct s3 *s, const char *full_key, int ttl_s, time_t now, char **url,
		  sbx_err *err);
/* The SigV4 signing key: HMAC chain over date (YYYYMMDD), region, service. */
void s3_signing_key(const char *secret, const char *date, const char *region, const char *service,
		    unsigned char out[32]);

#endif
