/*
 * The storage.h methods over S3: streamed put (one PUT up to multipart_threshold, else a
 * multipart upload that is aborted on failure), streamed get, head, ListObjectsV2 pages,
 * delete, DeleteObjects batches, health and the bucket bootstrap of the minio module.
 * Every object key on the wire is the configured prefix followed by the caller's key.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plugins/storage/s3common/s3common.h"

#define KEY_MAX   1024
#define CT_MAX    255
#define MIB       (1024LL * 1024LL)
#define PARTS_MAX 10000

/* The rules of storage.h (sbx_storage_key_check), as every storage module applies them. */
int s3_key_check(const char *key, int is_prefix, sbx_err *err)
{
	return sbx_storage_key_check(key, is_prefix, err);
}

/* prefix + key, checked against S3's 1024-byte limit. */
static int full_key(const struct s3 *s, const char *key, int is_prefix, char **out, sbx_err *err)
{
	size_t n;
	int ret = s3_key_check(key, is_prefix, err);

	*out = NULL;
	if (ret < 0)
		return ret;
	n = strlen(s->prefix) + strlen(key);
	if (n > KEY_MAX)
		return sbx_err_set(err, SBX_E_INVALID,
				   "storage key '%.64s...' is too long with the configured prefix "
				   "(%zu > 1024 bytes)",
				   key, n);
	*out = malloc(n + 1);
	if (!*out)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	snprintf(*out, n + 1, "%s%s", s->prefix, key);
	return 0;
}

static int ok2xx(const struct s3_resp *rs)
{
	return rs->status >= 200 && rs->status < 300;
}

/* A HEAD has no body: say which bucket when S3 answers 404/403 without an error code. */
static int bucket_error(struct s3 *s, const struct s3_resp *rs, const char *what, sbx_err *err)
{
	if (!rs->err_code[0] && rs->status == 404)
		return sbx_err_set(err, SBX_E_UNAVAILABLE,
				   "storage '%s' (%s): bucket '%s' does not exist at '%s' "
				   "(NoSuchBucket)",
				   s->name, s->module, s->bucket, s->endpoint);
	if (!rs->err_code[0] && rs->status == 403) {
		/* A GET has a body with the reason: wrong credentials or no permission. */
		struct s3_req rq = {.method = "GET", .query = "list-type=2&max-keys=1"};
		struct s3_resp prs = {0};
		int ret = s3_perform(s, &rq, &prs, err);

		if (ret == 0 && !ok2xx(&prs) && (prs.err_code[0] || prs.body))
			ret = s3_status_error(s, &prs, what, NULL, err);
		s3_resp_free(&prs);
		if (ret < 0)
			return ret;
		return sbx_err_set(err, SBX_E_UNAVAILABLE,
				   "storage '%s' (%s): S3 refused %s on bucket '%s' (HTTP 403): "
				   "check the credentials (access_key/secret_key from %s) and the "
				   "bucket's policy",
				   s->name, s->module, what, s->bucket, s->cred_source);
	}
	return s3_status_error(s, rs, what, NULL, err);
}

/* ---- put ------------------------------------------------------------------------- */

static int src_error(const struct s3 *s, const struct s3_src *src, const char *key, long long done,
		     long long want, sbx_err *err)
{
	(void)s;
	if (src->failed)
		return sbx_err_set(err, SBX_E_INTERNAL,
				   "put '%s': reading the body failed after %lld bytes", key, done);
	return sbx_err_set(err, SBX_E_INVALID, "put '%s': body ended after %lld of %lld bytes", key,
			   done, want);
}

static char *query_upload(const char *part, const char *upload_id)
{
	char *enc = s3_uri_encode(upload_id, 0), *q;
	size_t n;

	if (!enc)
		return NULL;
	n = strlen(enc) + 64;
	q = malloc(n);
	if (q) {
		if (part)
			snprintf(q, n, "partNumber=%s&uploadId=%s", part, enc);
		else
			snprintf(q, n, "uploadId=%s", enc);
	}
	free(enc);
	return q;
}

struct mp {
	char *upload_id;
	char **etags;
	int n, cap;
};

static int mp_init(struct s3 *s, const char *fkey, const char *key, const char *ct, struct mp *mp,
		   sbx_err *err)
{
	struct s3_req rq = {.method = "POST",
			    .key = fkey,
			    .query = "uploads=",
			    .content_type = ct ? ct : "application/octet-stream"};
	struct s3_resp rs;
	const char *v;
	size_t n;
	int ret;

	ret = s3_perform(s, &rq, &rs, err);
	if (ret < 0)
		goto out;
	if (!ok2xx(&rs)) {
		ret = s3_status_error(s, &rs, "starting a multipart upload of", key, err);
		goto out;
	}
	v = s3_xml_find(rs.body, rs.body ? rs.body + rs.body_len : NULL, "UploadId", &n, NULL);
	if (!v || n == 0 || n > 1024) {
		ret = sbx_err_set(err, SBX_E_UNAVAILABLE,
				  "storage '%s' (%s): no UploadId in the answer to a multipart "
				  "upload of '%s'",
				  s->name, s->module, key);
		goto out;
	}
	mp->upload_id = malloc(n + 1);
	if (!mp->upload_id) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	s3_xml_copy(v, n, mp->upload_id, n + 1);
out:
	s3_resp_free(&rs);
	return ret;
}

static int mp_part(struct s3 *s, const char *fkey, const char *key, struct mp *mp,
		   struct s3_src *src, long long len, long long done, sbx_err *err)
{
	struct s3_req rq = {
	    .method = "PUT", .key = fkey, .src = src, .src_len = len, .streaming = 1};
	struct s3_resp rs;
	char num[16];
	char *q = NULL;
	int ret;

	if (mp->n == mp->cap) {
		int cap = mp->cap ? mp->cap * 2 : 64;
		char **ne = realloc(mp->etags, (size_t)cap * sizeof *ne);

		if (!ne)
			return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		mp->etags = ne;
		mp->cap = cap;
	}
	snprintf(num, sizeof num, "%d", mp->n + 1);
	q = query_upload(num, mp->upload_id);
	if (!q)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	rq.query = q;
	ret = s3_perform(s, &rq, &rs, err);
	if (ret < 0)
		goto out;
	if (src->failed || src->ended) {
		ret = src_error(s, src, key, done + len - src->remaining, -1, err);
		goto out;
	}
	if (!ok2xx(&rs)) {
		ret = s3_status_error(s, &rs, "uploading a part of", key, err);
		goto out;
	}
	if (!rs.etag[0]) {
		ret = sbx_err_set(err, SBX_E_UNAVAILABLE,
				  "storage '%s' (%s): part %s of '%s' was stored without an ETag",
				  s->name, s->module, num, key);
		goto out;
	}
	mp->etags[mp->n] = strdup(rs.etag);
	if (!mp->etags[mp->n]) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	mp->n++;
out:
	s3_resp_free(&rs);
	free(q);
	return ret;
}

static int mp_complete(struct s3 *s, const char *fkey, const char *key, struct mp *mp, sbx_err *err)
{
	struct s3_req rq = {.method = "POST", .key = fkey, .content_type = "application/xml"};
	struct s3_resp rs = {0};
	size_t cap = 64 + (size_t)mp->n * 200, len = 0;
	char *xml = malloc(cap), *q = query_upload(NULL, mp->upload_id);
	int ret = 0;

	if (!xml || !q) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	len += (size_t)snprintf(xml + len, cap - len, "<CompleteMultipartUpload>");
	for (int i = 0; i < mp->n; i++) {
		const char *e = mp->etags[i];
		size_t el = strlen(e);

		if (el >= 2 && e[0] == '"' && e[el - 1] == '"') {
			e++;
			el -= 2;
		}
		len += (size_t)snprintf(xml + len, cap - len,
					"<Part><PartNumber>%d</PartNumber><ETag>&quot;%.*s&quot;"
					"</ETag></Part>",
					i + 1, (int)(el < 128 ? el : 128), e);
	}
	len += (size_t)snprintf(xml + len, cap - len, "</CompleteMultipartUpload>");
	rq.query = q;
	rq.body = xml;
	rq.body_len = len;
	ret = s3_perform(s, &rq, &rs, err);
	if (ret < 0)
		goto out;
	/* S3 may answer 200 and put the error in the body. */
	if (!ok2xx(&rs) || (rs.body && strstr(rs.body, "<Error>")))
		ret = s3_status_error(s, &rs, "completing the multipart upload of", key, err);
out:
	s3_resp_free(&rs);
	free(xml);
	free(q);
	return ret;
}

/* Best effort: the upload's parts would otherwise be billed until a lifecycle rule. */
static void mp_abort(struct s3 *s, const char *fkey, const char *key, struct mp *mp)
{
	struct s3_req rq = {.method = "DELETE", .key = fkey};
	struct s3_resp rs = {0};
	sbx_err e = {0};
	char *q = query_upload(NULL, mp->upload_id);

	rq.query = q;
	if (!q || s3_perform(s, &rq, &rs, &e) < 0 || !ok2xx(&rs))
		s->core->log(s->name, SBX_LOG_WARN,
			     "event=s3_multipart_abort_failed key=%s status=%ld note=%s", key,
			     rs.status,
			     e.message[0] ? e.message : "see the bucket's lifecycle rules");
	else
		s->core->log(s->name, SBX_LOG_INFO, "event=s3_multipart_aborted key=%s parts=%d",
			     key, mp->n);
	s3_resp_free(&rs);
	free(q);
}

static void mp_free(struct mp *mp)
{
	for (int i = 0; i < mp->n; i++)
		free(mp->etags[i]);
	free(mp->etags);
	free(mp->upload_id);
}

/* Fills buf with up to cap bytes from read_fn; *eof when it returned 0. */
static long long fill(sbx_read_fn fn, void *ctx, char *buf, long long cap, int *eof, int *bad)
{
	long long got = 0;

	*eof = *bad = 0;
	while (got < cap) {
		long n = fn(ctx, buf + got, (size_t)(cap - got));

		if (n < 0 || n > cap - got) {
			*bad = 1;
			break;
		}
		if (n == 0) {
			*eof = 1;
			break;
		}
		got += n;
	}
	return got;
}

static int put_single(struct s3 *s, const char *fkey, const char *key, struct s3_src *src,
		      long long size, const char *ct, sbx_err *err)
{
	struct s3_req rq = {.method = "PUT",
			    .key = fkey,
			    .src = src,
			    .src_len = size,
			    .content_type = ct,
			    .streaming = 1};
	struct s3_resp rs;
	int ret;

	ret = s3_perform(s, &rq, &rs, err);
	if (ret == 0 && (src->failed || src->ended))
		ret = src_error(s, src, key, size - src->remaining, size, err);
	else if (ret == 0 && !ok2xx(&rs))
		ret = s3_status_error(s, &rs, "put", key, err);
	s3_resp_free(&rs);
	return ret;
}

int s3_put(void *inst, const char *key, sbx_read_fn read_fn, void *read_ctx, long long size,
	   const char *content_type, sbx_err *err)
{
	struct s3 *s = inst;
	struct mp mp = {0};
	struct s3_src src = {.fn = read_fn, .ctx = read_ctx};
	char *fkey = NULL, *buf = NULL;
	long long part = s->part_size, done = 0, got = 0;
	int ret, eof = 0, bad = 0;

	ret = full_key(s, key, 0, &fkey, err);
	if (ret < 0)
		goto out;
	if (!read_fn || size < -1) {
		ret = sbx_err_set(err, SBX_E_INVALID, "put '%s': no reader or bad size", key);
		goto out;
	}
	if (content_type && (strlen(content_type) > CT_MAX || strpbrk(content_type, "\r\n"))) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "put '%s': content type longer than %d or "
				  "not one line",
				  key, CT_MAX);
		goto out;
	}
	if (content_type && !*content_type)
		content_type = NULL;
	if (size >= 0 && size <= s->multipart_threshold) {
		src.remaining = size;
		ret = put_single(s, fkey, key, &src, size, content_type, err);
		goto out;
	}
	if (size < 0) {
		/* Unknown length: one part in memory decides between one PUT and multipart. */
		buf = malloc((size_t)part);
		if (!buf) {
			ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
			goto out;
		}
		got = fill(read_fn, read_ctx, buf, part, &eof, &bad);
		if (bad) {
			ret = sbx_err_set(err, SBX_E_INTERNAL,
					  "put '%s': reading the body failed after %lld bytes", key,
					  got);
			goto out;
		}
		if (eof) {
			src.buf = buf;
			src.remaining = got;
			ret = put_single(s, fkey, key, &src, got, content_type, err);
			goto out;
		}
	} else if ((size + part - 1) / part > PARTS_MAX) {
		part = ((size + PARTS_MAX - 1) / PARTS_MAX + MIB - 1) / MIB * MIB;
	}

	ret = mp_init(s, fkey, key, content_type, &mp, err);
	if (ret < 0)
		goto out;
	for (;;) {
		long long len;

		if (size >= 0) {
			if (done == size)
				break;
			len = size - done < part ? size - done : part;
			src = (struct s3_src){.fn = read_fn, .ctx = read_ctx, .remaining = len};
		} else {
			if (got == 0 && mp.n > 0)
				break;
			if (mp.n == PARTS_MAX) {
				ret = sbx_err_set(err, SBX_E_TOOLARGE,
						  "put '%s': more than %d parts of %lld bytes; "
						  "raise part_size",
						  key, PARTS_MAX, part);
				goto abort;
			}
			len = got;
			src = (struct s3_src){.buf = buf, .remaining = len};
		}
		ret = mp_part(s, fkey, key, &mp, &src, len, done, err);
		if (ret < 0)
			goto abort;
		done += len;
		if (size < 0) {
			if (eof)
				break;
			got = fill(read_fn, read_ctx, buf, part, &eof, &bad);
			if (bad) {
				ret = sbx_err_set(err, SBX_E_INTERNAL,
						  "put '%s': reading the body failed after %lld "
						  "bytes",
						  key, done + got);
				goto abort;
			}
		}
	}
	ret = mp_complete(s, fkey, key, &mp, err);
	if (ret == 0) {
		s->core->log(s->name, SBX_LOG_DEBUG,
			     "event=s3_multipart_done key=%s parts=%d "
			     "bytes=%lld",
			     key, mp.n, done);
		goto out;
	}
abort:
	mp_abort(s, fkey, key, &mp);
out:
	mp_free(&mp);
	free(buf);
	free(fkey);
	return ret;
}

/* ---- get, head, del -------------------------------------------------------------- */

int s3_get(void *inst, const char *key, sbx_write_fn write_fn, void *write_ctx, sbx_err *err)
{
	struct s3 *s = inst;
	struct s3_req rq = {
	    .method = "GET", .sink = write_fn, .sink_ctx = write_ctx, .streaming = 1};
	struct s3_resp rs = {0};
	char *fkey = NULL;
	int ret;

	ret = full_key(s, key, 0, &fkey, err);
	if (ret < 0)
		goto out;
	if (!write_fn) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "get without a writer");
		goto out;
	}
	rq.key = fkey;
	ret = s3_perform(s, &rq, &rs, err);
	if (ret < 0)
		goto out;
	if (rs.sink_failed)
		ret = sbx_err_set(err, SBX_E_INTERNAL, "get '%s': the receiver aborted", key);
	else if (!ok2xx(&rs))
		ret = s3_status_error(s, &rs, "get", key, err);
out:
	s3_resp_free(&rs);
	free(fkey);
	return ret;
}

static int head_bucket(struct s3 *s, struct s3_resp *rs, sbx_err *err)
{
	struct s3_req rq = {.method = "HEAD"};

	return s3_perform(s, &rq, rs, err);
}

static json_int_t http_date_ms(const char *v)
{
	time_t t = v[0] ? curl_getdate(v, NULL) : -1;

	return t < 0 ? 0 : (json_int_t)t * 1000;
}

static json_t *meta_new(const char *key, long long size, json_int_t mtime, const char *etag,
			const char *ct)
{
	json_t *m = json_pack("{s:s, s:I, s:I}", "key", key, "size", (json_int_t)size,
			      "modified_at", mtime);
	size_t el = strlen(etag);

	if (m && el >= 2 && etag[0] == '"' && etag[el - 1] == '"')
		json_object_set_new(m, "etag", json_stringn(etag + 1, el - 2));
	else if (m && el)
		json_object_set_new(m, "etag", json_string(etag));
	if (m && ct && *ct)
		json_object_set_new(m, "content_type", json_string(ct));
	return m;
}

int s3_head(void *inst, const char *key, json_t **meta, sbx_err *err)
{
	struct s3 *s = inst;
	struct s3_req rq = {.method = "HEAD"};
	struct s3_resp rs = {0}, brs = {0};
	char *fkey = NULL;
	int ret;

	ret = full_key(s, key, 0, &fkey, err);
	if (ret < 0)
		goto out;
	rq.key = fkey;
	ret = s3_perform(s, &rq, &rs, err);
	if (ret < 0)
		goto out;
	if (rs.status == 404 && !rs.err_code[0]) {
		/* No body to tell a missing key from a missing bucket: ask about the bucket. */
		ret = head_bucket(s, &brs, err);
		if (ret == 0 && brs.status == 404)
			ret = bucket_error(s, &brs, "head", err);
		if (ret < 0)
			goto out;
	}
	if (!ok2xx(&rs)) {
		ret = s3_status_error(s, &rs, "head", key, err);
		goto out;
	}
	*meta = meta_new(key, rs.content_length < 0 ? 0 : rs.content_length,
			 http_date_ms(rs.last_modified), rs.etag, rs.content_type);
	if (!*meta)
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
out:
	s3_resp_free(&rs);
	s3_resp_free(&brs);
	free(fkey);
	return ret;
}

int s3_del(void *inst, const char *key, sbx_err *err)
{
	struct s3 *s = inst;
	struct s3_req rq = {.method = "DELETE"};
	struct s3_resp rs = {0};
	char *fkey = NULL;
	sbx_err e = {0};
	int ret;

	ret = full_key(s, key, 0, &fkey, err);
	if (ret < 0)
		goto out;
	rq.key = fkey;
	ret = s3_perform(s, &rq, &rs, err);
	if (ret < 0 || ok2xx(&rs))
		goto out;
	ret = s3_status_error(s, &rs, "delete", key, &e);
	if (e.code == SBX_E_NOTFOUND)
		ret = 0; /* idempotent */
	else if (err)
		*err = e;
out:
	s3_resp_free(&rs);
	free(fkey);
	return ret;
}

/* ---- list, del_prefix ------------------------------------------------------------ */

/* "2009-10-12T17:50:30.000Z" -> ms since the epoch (0 when unparsable). */
static json_int_t iso_ms(const char *v)
{
	struct tm tm = {0};
	int ms = 0, n = 0;

	if (sscanf(v, "%d-%d-%dT%d:%d:%d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec, &n) != 6)
		return 0;
	if (v[n] == '.')
		sscanf(v + n + 1, "%3d", &ms);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (json_int_t)timegm(&tm) * 1000 + ms;
}

struct listing {
	char **keys; /* raw full keys */
	json_t *items;
	int n;
	int truncated;
	char *token; /* NextContinuationToken */
};

static void listing_free(struct listing *L)
{
	for (int i = 0; i < L->n; i++)
		free(L->keys[i]);
	free(L->keys);
	json_decref(L->items);
	free(L->token);
}

/*
 * One ListObjectsV2 page under full prefix `fprefix`, after `token` or `after` (full key).
 * With `items`, valid storage keys become meta objects with the configured prefix removed.
 */
static int list_page(struct s3 *s, const char *fprefix, const char *token, const char *after,
		     int max, int want_items, struct listing *L, sbx_err *err)
{
	struct s3_req rq = {.method = "GET"};
	struct s3_resp rs = {0};
	char *etok = token ? s3_uri_encode(token, 0) : NULL;
	char *epre = s3_uri_encode(fprefix, 0);
	char *eaft = after ? s3_uri_encode(after, 0) : NULL;
	char *q = NULL;
	const char *p, *end, *blk, *v;
	size_t qn, bl, n, plen = strlen(s->prefix);
	int ret = 0;

	memset(L, 0, sizeof *L);
	qn =
	    (etok ? strlen(etok) : 0) + (epre ? strlen(epre) : 0) + (eaft ? strlen(eaft) : 0) + 128;
	q = malloc(qn);
	L->items = want_items ? json_array() : NULL;
	if (!q || !epre || (token && !etok) || (after && !eaft) || (want_items && !L->items)) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	/* Parameters in the sorted order SigV4's canonical query string uses. */
	snprintf(q, qn, "%s%s%slist-type=2&max-keys=%d%s%s%s%s", etok ? "continuation-token=" : "",
		 etok ? etok : "", etok ? "&" : "", max, *epre ? "&prefix=" : "", epre,
		 eaft ? "&start-after=" : "", eaft ? eaft : "");
	rq.query = q;
	ret = s3_perform(s, &rq, &rs, err);
	if (ret < 0)
		goto out;
	if (!ok2xx(&rs)) {
		ret = s3_status_error(s, &rs, "list", NULL, err);
		goto out;
	}
	p = rs.body;
	end = rs.body ? rs.body + rs.body_len : NULL;
	while ((blk = s3_xml_find(p, end, "Contents", &bl, &p)) != NULL) {
		char key[KEY_MAX * 6 + 1], etag[130] = "", size[32] = "0", mod[64] = "";

		v = s3_xml_find(blk, blk + bl, "Key", &n, NULL);
		if (!v || n > sizeof key - 1)
			continue;
		s3_xml_copy(v, n, key, sizeof key);
		if ((L->n & (L->n - 1)) == 0) {
			char **nk = realloc(L->keys, (size_t)(L->n ? L->n * 2 : 1) * sizeof *nk);

			if (!nk) {
				ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
				goto out;
			}
			L->keys = nk;
		}
		L->keys[L->n] = strdup(key);
		if (!L->keys[L->n]) {
			ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
			goto out;
		}
		L->n++;
		if (!want_items || strncmp(key, s->prefix, plen) != 0 ||
		    s3_key_check(key + plen, 0, NULL) < 0)
			continue; /* not an object this module could have stored */
		if ((v = s3_xml_find(blk, blk + bl, "ETag", &n, NULL)) != NULL)
			s3_xml_copy(v, n, etag, sizeof etag);
		if ((v = s3_xml_find(blk, blk + bl, "Size", &n, NULL)) != NULL)
			s3_xml_copy(v, n, size, sizeof size);
		if ((v = s3_xml_find(blk, blk + bl, "LastModified", &n, NULL)) != NULL)
			s3_xml_copy(v, n, mod, sizeof mod);
		if (json_array_append_new(L->items, meta_new(key + plen, strtoll(size, NULL, 10),
							     iso_ms(mod), etag, NULL)) != 0) {
			ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
			goto out;
		}
	}
	v = s3_xml_find(rs.body, end, "IsTruncated", &n, NULL);
	L->truncated = v && n == 4 && memcmp(v, "true", 4) == 0;
	v = s3_xml_find(rs.body, end, "NextContinuationToken", &n, NULL);
	if (L->truncated && v && n > 0 && n < 4096) {
		L->token = malloc(n + 1);
		if (L->token)
			s3_xml_copy(v, n, L->token, n + 1);
	}
out:
	s3_resp_free(&rs);
	free(q);
	free(etok);
	free(epre);
	free(eaft);
	if (ret < 0) {
		listing_free(L);
		memset(L, 0, sizeof *L);
	}
	return ret;
}

#define TOKEN_MARK "ct:" /* ':' is no key character: a cursor is a token or a key */

int s3_list(void *inst, const char *prefix, const char *cursor, int limit, json_t **page,
	    sbx_err *err)
{
	struct s3 *s = inst;
	struct listing L = {0};
	char *fprefix = NULL, *after = NULL;
	const char *token = NULL;
	int ret;

	if (prefix && *prefix) {
		ret = full_key(s, prefix, 1, &fprefix, err);
		if (ret < 0)
			goto out;
	} else {
		fprefix = strdup(s->prefix);
	}
	if (limit < 1 || limit > 1000) {
		ret = sbx_err_set(err, SBX_E_INVALID, "list limit must be 1..1000, not %d", limit);
		goto out;
	}
	if (!page || !fprefix) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory or no output page");
		goto out;
	}
	if (cursor && strncmp(cursor, TOKEN_MARK, strlen(TOKEN_MARK)) == 0 &&
	    strlen(cursor) < 4096) {
		token = cursor + strlen(TOKEN_MARK);
	} else if (cursor) {
		/* A key resumes after that key (the cursor the local module hands out). */
		ret = full_key(s, cursor, 0, &after, NULL);
		if (ret < 0) {
			ret = sbx_err_set(err, SBX_E_INVALID,
					  "list cursor is neither a key nor a "
					  "cursor this module returned");
			goto out;
		}
	}
	ret = list_page(s, fprefix, token, after, limit, 1, &L, err);
	if (ret < 0)
		goto out;
	*page = json_pack("{s:O}", "items", L.items);
	if (*page && L.truncated && L.token) {
		size_t n = strlen(L.token) + sizeof TOKEN_MARK;
		char *next = malloc(n);

		if (next) {
			snprintf(next, n, TOKEN_MARK "%s", L.token);
			json_object_set_new(*page, "next", json_string(next));
		}
		free(next);
	}
	if (!*page)
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
out:
	listing_free(&L);
	free(fprefix);
	free(after);
	return ret;
}

struct sbuf {
	char *p;
	size_t len, cap;
	int failed;
};

/* Appends str (XML-escaped when esc). */
static void sbuf_add(struct sbuf *b, const char *str, int esc)
{
	size_t need = b->len + strlen(str) * 6 + 1;

	if (b->failed)
		return;
	if (need > b->cap) {
		char *np = realloc(b->p, need * 2);

		if (!np) {
			b->failed = 1;
			return;
		}
		b->p = np;
		b->cap = need * 2;
	}
	for (; *str; str++) {
		const char *e = !esc           ? NULL
				: *str == '&'  ? "&amp;"
				: *str == '<'  ? "&lt;"
				: *str == '>'  ? "&gt;"
				: *str == '"'  ? "&quot;"
				: *str == '\'' ? "&apos;"
					       : NULL;

		if (e) {
			memcpy(b->p + b->len, e, strlen(e));
			b->len += strlen(e);
		} else {
			b->p[b->len++] = *str;
		}
	}
	b->p[b->len] = '\0';
}

static int del_one_raw(struct s3 *s, const char *fkey, sbx_err *err)
{
	struct s3_req rq = {.method = "DELETE", .key = fkey};
	struct s3_resp rs = {0};
	int ret = s3_perform(s, &rq, &rs, err);

	if (ret == 0 && !ok2xx(&rs) && rs.status != 404)
		ret = s3_status_error(s, &rs, "delete", fkey, err);
	s3_resp_free(&rs);
	return ret;
}

/* DeleteObjects for one listed batch; per-object deletes if the service lacks it. */
static int del_batch(struct s3 *s, struct listing *L, const char *prefix, sbx_err *err)
{
	struct s3_req rq = {.method = "POST",
			    .query = "delete=",
			    .content_type = "application/xml",
			    .content_md5 = 1};
	struct s3_resp rs = {0};
	struct sbuf x = {0};
	const char *v;
	size_t n;
	int ret = 0;

	sbuf_add(&x, "<Delete><Quiet>true</Quiet>", 0);
	for (int i = 0; i < L->n; i++) {
		sbuf_add(&x, "<Object><Key>", 0);
		sbuf_add(&x, L->keys[i], 1);
		sbuf_add(&x, "</Key></Object>", 0);
	}
	sbuf_add(&x, "</Delete>", 0);
	if (x.failed) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	rq.body = x.p;
	rq.body_len = x.len;
	ret = s3_perform(s, &rq, &rs, err);
	if (ret < 0)
		goto out;
	if (rs.status == 501 || (rs.body && strstr(rs.body, "<Code>NotImplemented</Code>"))) {
		for (int i = 0; ret == 0 && i < L->n; i++)
			ret = del_one_raw(s, L->keys[i], err);
		goto out;
	}
	if (!ok2xx(&rs)) {
		ret = s3_status_error(s, &rs, "delete_prefix", prefix, err);
		goto out;
	}
	if ((v = s3_xml_find(rs.body, rs.body + rs.body_len, "Error", &n, NULL)) != NULL) {
		char key[256] = "", code[64] = "";
		const char *f;
		size_t fl;

		if ((f = s3_xml_find(v, v + n, "Key", &fl, NULL)) != NULL)
			s3_xml_copy(f, fl, key, sizeof key);
		if ((f = s3_xml_find(v, v + n, "Code", &fl, NULL)) != NULL)
			s3_xml_copy(f, fl, code, sizeof code);
		ret = sbx_err_set(
		    err, strcmp(code, "AccessDenied") == 0 ? SBX_E_UNAVAILABLE : SBX_E_INTERNAL,
		    "storage '%s' (%s): delete_prefix '%s': S3 did not delete '%s' "
		    "(%s)",
		    s->name, s->module, prefix, key, code);
	}
out:
	s3_resp_free(&rs);
	free(x.p);
	return ret;
}

int s3_del_prefix(void *inst, const char *prefix, sbx_err *err)
{
	struct s3 *s = inst;
	struct listing L = {0};
	char *fprefix = NULL, *after = NULL;
	int ret;

	ret = full_key(s, prefix, 1, &fprefix, err);
	while (ret == 0) {
		ret = list_page(s, fprefix, NULL, after, 1000, 0, &L, err);
		if (ret < 0 || L.n == 0)
			break;
		ret = del_batch(s, &L, prefix, err);
		free(after);
		after = L.truncated ? strdup(L.keys[L.n - 1]) : NULL;
		listing_free(&L);
		memset(&L, 0, sizeof L);
		if (!after)
			break;
	}
	listing_free(&L);
	free(after);
	free(fprefix);
	return ret;
}

/* ---- health and bootstrap -------------------------------------------------------- */

int s3_health(void *inst, json_t **detail, sbx_err *err)
{
	struct s3 *s = inst;
	struct s3_resp rs = {0};
	int64_t t0 = s->core->monotonic_ms();
	int ret;

	ret = head_bucket(s, &rs, err);
	if (ret == 0 && !ok2xx(&rs))
		ret = bucket_error(s, &rs, "HEAD", err);
	if (ret == 0 && detail) {
		*detail = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "module", s->module,
				    "bucket", s->bucket, "endpoint", s->endpoint, "style",
				    s->path_style ? "path" : "virtual-hosted", "region", s->region,
				    "credentials", s->cred_source, "latency_ms",
				    (json_int_t)(s->core->monotonic_ms() - t0));
		if (*detail && *s->prefix)
			json_object_set_new(*detail, "prefix", json_string(s->prefix));
	}
	s3_resp_free(&rs);
	return ret;
}

int s3_ensure_bucket(struct s3 *s, sbx_err *err)
{
	struct s3_resp rs = {0};
	struct s3_req rq = {.method = "PUT"};
	char body[256];
	int ret;

	ret = head_bucket(s, &rs, err);
	if (ret < 0 || ok2xx(&rs))
		goto out;
	if (rs.status != 404) {
		ret = bucket_error(s, &rs, "HEAD", err);
		goto out;
	}
	s3_resp_free(&rs);
	if (strcmp(s->region, "us-east-1") != 0) {
		rq.body_len = (size_t)snprintf(
		    body, sizeof body,
		    "<CreateBucketConfiguration><LocationConstraint>%s</LocationConstraint>"
		    "</CreateBucketConfiguration>",
		    s->region);
		rq.body = body;
	}
	ret = s3_perform(s, &rq, &rs, err);
	if (ret < 0)
		goto out;
	if (ok2xx(&rs)) {
		s->core->log(s->name, SBX_LOG_INFO, "event=s3_bucket_created bucket=%s endpoint=%s",
			     s->bucket, s->endpoint);
		goto out;
	}
	if (rs.body && strstr(rs.body, "<Code>BucketAlreadyOwnedByYou</Code>"))
		goto out; /* created meanwhile by another instance: fine */
	if (rs.body && strstr(rs.body, "<Code>BucketAlreadyExists</Code>")) {
		/* Exists now: ours (created meanwhile) if we can reach it, else taken. */
		s3_resp_free(&rs);
		ret = head_bucket(s, &rs, err);
		if (ret == 0 && !ok2xx(&rs))
			ret = sbx_err_set(err, SBX_E_UNAVAILABLE,
					  "storage '%s' (%s): bucket '%s' exists at '%s' but "
					  "belongs to someone else (BucketAlreadyExists)",
					  s->name, s->module, s->bucket, s->endpoint);
		goto out;
	}
	ret = s3_status_error(s, &rs, "creating the bucket", NULL, err);
	if (err && strstr(err->message, "failed: HTTP"))
		ret = sbx_err_set(err, -ret,
				  "storage '%s' (%s): cannot create bucket '%s' at "
				  "'%s': HTTP %ld",
				  s->name, s->module, s->bucket, s->endpoint, rs.status);
out:
	s3_resp_free(&rs);
	return ret;
}
