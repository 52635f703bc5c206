/*
 * Configuration of the s3 and minio modules: strict unpacking of the instance's config,
 * credentials (config, an AWS credentials file, or the AWS_* environment variables), the
 * bucket URLs of either addressing style, and the instance's lifetime.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugins/storage/s3common/s3common.h"

#define MIB (1024LL * 1024LL)

enum opt_type { OPT_STR, OPT_BOOL, OPT_INT };

struct opt {
	const char *name;
	int type;
	int variants; /* bitmask of enum s3_variant */
};

#define BOTH (S3_VARIANT_AWS | S3_VARIANT_MINIO)

static const struct opt opts[] = {
    {"bucket", OPT_STR, BOTH},
    {"region", OPT_STR, BOTH},
    {"endpoint", OPT_STR, BOTH},
    {"public_endpoint", OPT_STR, BOTH},
    {"path_style", OPT_BOOL, S3_VARIANT_AWS},
    {"prefix", OPT_STR, BOTH},
    {"access_key", OPT_STR, BOTH},
    {"secret_key", OPT_STR, BOTH},
    {"session_token", OPT_STR, BOTH},
    {"credentials_file", OPT_STR, BOTH},
    {"profile", OPT_STR, BOTH},
    {"connect_timeout_s", OPT_INT, BOTH},
    {"timeout_s", OPT_INT, BOTH},
    {"ca_file", OPT_STR, BOTH},
    {"verify", OPT_BOOL, BOTH},
    {"multipart_threshold", OPT_INT, BOTH},
    {"part_size", OPT_INT, BOTH},
};

/* Every key known and of its type; the message names the key. */
static int check_config(const struct s3 *s, const json_t *config, sbx_err *err)
{
	const char *k;
	json_t *v;

	if (!json_is_object(config))
		return sbx_err_set(err, SBX_E_INVALID, "storage '%s' (%s): config must be a group",
				   s->name, s->module);
	json_object_foreach ((json_t *)config, k, v) {
		const struct opt *o = NULL;
		int typed;

		for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
			if (strcmp(opts[i].name, k) == 0 && (opts[i].variants & s->variant))
				o = &opts[i];
		if (!o)
			return sbx_err_set(err, SBX_E_INVALID,
					   "storage '%s' (%s): unknown config key '%.64s'", s->name,
					   s->module, k);
		typed = o->type == OPT_STR    ? json_is_string(v)
			: o->type == OPT_BOOL ? json_is_boolean(v)
					      : json_is_integer(v);
		if (!typed)
			return sbx_err_set(err, SBX_E_INVALID, "storage '%s' (%s): '%s' must be %s",
					   s->name, s->module, k,
					   o->type == OPT_STR    ? "a string"
					   : o->type == OPT_BOOL ? "a boolean"
								 : "an integer");
	}
	return 0;
}

static const char *cstr(const json_t *config, const char *key)
{
	const char *v = json_string_value(json_object_get(config, key));

	return v && *v ? v : NULL;
}

static char *trim(char *p)
{
	char *e;

	while (isspace((unsigned char)*p))
		p++;
	e = p + strlen(p);
	while (e > p && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return p;
}

/*
 * Reads profile `profile` of an AWS credentials file: "[name]" (or "[profile name]")
 * sections of "aws_access_key_id = ..." lines. Values are never put in messages.
 */
static int read_credentials_file(struct s3 *s, const char *path, const char *profile, sbx_err *err)
{
	char line[2048];
	int in = 0, found = 0, ret = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		return sbx_err_set(err, SBX_E_INVALID,
				   "storage '%s' (%s): cannot read credentials_file '%s': %s",
				   s->name, s->module, path, strerror(errno));
	while (fgets(line, sizeof line, f)) {
		char *p = trim(line), *eq, *k, *v, **slot = NULL;

		if (*p == '#' || *p == ';' || *p == '\0')
			continue;
		if (*p == '[') {
			char *end = strchr(p, ']');

			if (!end)
				continue;
			*end = '\0';
			p = trim(p + 1);
			if (strncmp(p, "profile ", 8) == 0)
				p = trim(p + 8);
			in = strcmp(p, profile) == 0;
			found |= in;
			continue;
		}
		eq = strchr(p, '=');
		if (!in || !eq)
			continue;
		*eq = '\0';
		k = trim(p);
		v = trim(eq + 1);
		if (strcmp(k, "aws_access_key_id") == 0)
			slot = &s->access_key;
		else if (strcmp(k, "aws_secret_access_key") == 0)
			slot = &s->secret_key;
		else if (strcmp(k, "aws_session_token") == 0)
			slot = &s->session_token;
		if (slot && *v) {
			free(*slot);
			*slot = strdup(v);
		}
	}
	fclose(f);
	explicit_bzero(line, sizeof line);
	if (!found)
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "storage '%s' (%s): credentials_file '%s' has no profile '%s'",
				  s->name, s->module, path, profile);
	else if (!s->access_key || !s->secret_key)
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "storage '%s' (%s): profile '%s' of credentials_file '%s' lacks "
				  "aws_access_key_id or aws_secret_access_key",
				  s->name, s->module, profile, path);
	return ret;
}

/* Order: access_key/secret_key in the config, else credentials_file, else environment. */
static int load_credentials(struct s3 *s, const json_t *config, sbx_err *err)
{
	const char *ak = cstr(config, "access_key"), *sk = cstr(config, "secret_key");
	const char *file = cstr(config, "credentials_file"), *profile = cstr(config, "profile");
	const char *tok = cstr(config, "session_token");

	if (ak || sk) {
		if (!ak || !sk)
			return sbx_err_set(err, SBX_E_INVALID,
					   "storage '%s' (%s): set both 'access_key' and "
					   "'secret_key' (or neither)",
					   s->name, s->module);
		s->access_key = strdup(ak);
		s->secret_key = strdup(sk);
		s->session_token = tok ? strdup(tok) : NULL;
		s->cred_source = "config";
		return 0;
	}
	if (file) {
		int ret;

		if (!profile)
			profile = getenv("AWS_PROFILE");
		ret =
		    read_credentials_file(s, file, profile && *profile ? profile : "default", err);
		if (ret == 0 && tok) {
			free(s->session_token);
			s->session_token = strdup(tok);
		}
		s->cred_source = "credentials_file";
		return ret;
	}
	ak = getenv("AWS_ACCESS_KEY_ID");
	sk = getenv("AWS_SECRET_ACCESS_KEY");
	if (ak && *ak && sk && *sk) {
		const char *etok = getenv("AWS_SESSION_TOKEN");

		s->access_key = strdup(ak);
		s->secret_key = strdup(sk);
		s->session_token = etok && *etok ? strdup(etok) : tok ? strdup(tok) : NULL;
		s->cred_source = "environment";
		return 0;
	}
	return sbx_err_set(err, SBX_E_INVALID,
			   "storage '%s' (%s): no credentials: set 'access_key' and 'secret_key', "
			   "or 'credentials_file', or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
			   "in the environment",
			   s->name, s->module);
}

/* Splits "scheme://authority[/]" into a normalised "scheme://authority" and the
 * authority; refuses paths, queries and user info. */
static int parse_endpoint(const struct s3 *s, const char *what, const char *url, char **norm,
			  char **scheme, char **authority, sbx_err *err)
{
	const char *p = strstr(url, "://"), *a;
	size_t alen;

	if (!p || !(strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0))
		goto bad;
	a = p + 3;
	alen = strcspn(a, "/?#@");
	if (alen == 0 || (a[alen] && !(a[alen] == '/' && a[alen + 1] == '\0')))
		goto bad;
	*scheme = strndup(url, (size_t)(p - url));
	*authority = strndup(a, alen);
	*norm = strndup(url, (size_t)(a - url) + alen);
	return 0;
bad:
	return sbx_err_set(err, SBX_E_INVALID,
			   "storage '%s' (%s): '%s' must be http(s)://host[:port] without a "
			   "path, not '%.128s'",
			   s->name, s->module, what, url);
}

/* "host:80" on http and "host:443" on https are sent by clients as plain "host". */
static char *client_host(const char *scheme, const char *authority)
{
	size_t n = strlen(authority);

	if (strcmp(scheme, "http") == 0 && n > 3 && strcmp(authority + n - 3, ":80") == 0)
		return strndup(authority, n - 3);
	if (strcmp(scheme, "https") == 0 && n > 4 && strcmp(authority + n - 4, ":443") == 0)
		return strndup(authority, n - 4);
	return strdup(authority);
}

/* a b c concatenated, malloc'd. */
static char *join3(const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char *r = malloc(la + lb + lc + 1);

	if (r) {
		memcpy(r, a, la);
		memcpy(r + la, b, lb);
		memcpy(r + la + lb, c, lc + 1);
	}
	return r;
}

/* Bucket URL of one endpoint in the instance's style. */
static int bucket_urls(struct s3 *s, const char *what, const char *endpoint, char **base,
		       char **host, sbx_err *err)
{
	char *norm = NULL, *scheme = NULL, *auth = NULL;
	int ret;

	ret = parse_endpoint(s, what, endpoint, &norm, &scheme, &auth, err);
	if (ret < 0)
		goto out;
	if (s->path_style) {
		*base = join3(norm, "/", s->bucket);
		*host = client_host(scheme, auth);
	} else {
		char *vauth = join3(s->bucket, ".", auth);

		*base = vauth ? join3(scheme, "://", vauth) : NULL;
		*host = vauth ? client_host(scheme, vauth) : NULL;
		free(vauth);
	}
	if (!*base || !*host)
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
out:
	free(norm);
	free(scheme);
	free(auth);
	return ret;
}

/* S3 bucket names: 3..63 of [a-z0-9.-], starting and ending with a letter or digit. */
static int bucket_check(const struct s3 *s, const char *b, sbx_err *err)
{
	size_t n = b ? strlen(b) : 0;
	int okc =
	    n >= 3 && n <= 63 && isalnum((unsigned char)b[0]) && isalnum((unsigned char)b[n - 1]);

	for (size_t i = 0; okc && i < n; i++)
		okc = (b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '.' ||
		      b[i] == '-';
	if (!b)
		return sbx_err_set(err, SBX_E_INVALID, "storage '%s' (%s): 'bucket' is required",
				   s->name, s->module);
	if (!okc)
		return sbx_err_set(
		    err, SBX_E_INVALID,
		    "storage '%s' (%s): bucket '%.70s' is not a valid S3 bucket name "
		    "(3..63 of a-z 0-9 . -)",
		    s->name, s->module, b);
	return 0;
}

void s3c_destroy(void *inst)
{
	struct s3 *s = inst;

	if (!s)
		return;
	for (int i = 0; i < s->npool; i++)
		curl_easy_cleanup(s->pool[i]);
	pthread_mutex_destroy(&s->lock);
	if (s->secret_key)
		explicit_bzero(s->secret_key, strlen(s->secret_key));
	if (s->session_token)
		explicit_bzero(s->session_token, strlen(s->session_token));
	free(s->secret_key);
	free(s->session_token);
	free(s->access_key);
	free(s->name);
	free(s->bucket);
	free(s->region);
	free(s->endpoint);
	free(s->base);
	free(s->public_base);
	free(s->public_host);
	free(s->public_bucket_path);
	free(s->prefix);
	free(s->sigv4);
	free(s->ca_file);
	free(s);
	curl_global_cleanup();
}

int s3c_create(const struct sbx_core_api *core, const char *instance_name, const json_t *config,
	       int variant, void **inst, sbx_err *err)
{
	struct s3 *s;
	json_t *empty = NULL;
	const char *v, *pub;
	char *dummy = NULL;
	int ret = 0;

	s = calloc(1, sizeof *s);
	if (!s)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	/* Reference-counted; the core initialised libcurl already, this keeps it alive. */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	pthread_mutex_init(&s->lock, NULL);
	s->core = core;
	s->variant = variant;
	s->module = variant == S3_VARIANT_MINIO ? "minio" : "s3";
	s->name = strdup(instance_name ? instance_name : s->module);
	if (!s->name) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	if (!config)
		config = empty = json_object();
	ret = check_config(s, config, err);
	if (ret < 0)
		goto out;

	v = cstr(config, "bucket");
	ret = bucket_check(s, v, err);
	if (ret < 0)
		goto out;
	s->bucket = strdup(v);
	v = cstr(config, "region");
	s->region = strdup(v ? v : "us-east-1");
	for (const char *p = s->region; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-') {
			ret = sbx_err_set(err, SBX_E_INVALID,
					  "storage '%s' (%s): 'region' '%.40s' is not a region "
					  "name",
					  s->name, s->module, s->region);
			goto out;
		}
	s->path_style =
	    variant == S3_VARIANT_MINIO || json_is_true(json_object_get(config, "path_style"));
	v = cstr(config, "endpoint");
	if (!v && variant == S3_VARIANT_MINIO) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "storage '%s' (minio): 'endpoint' is required (e.g. "
				  "\"http://minio.internal:9000\")",
				  s->name);
		goto out;
	}
	s->endpoint = v ? strdup(v) : join3("https://s3.", s->region, ".amazonaws.com");
	if (s->endpoint && strlen(s->endpoint) > 1 && s->endpoint[strlen(s->endpoint) - 1] == '/')
		s->endpoint[strlen(s->endpoint) - 1] = '\0';
	if (!s->endpoint) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	ret = bucket_urls(s, "endpoint", s->endpoint, &s->base, &dummy, err);
	if (ret < 0)
		goto out;
	pub = cstr(config, "public_endpoint");
	ret = bucket_urls(s, pub ? "public_endpoint" : "endpoint", pub ? pub : s->endpoint,
			  &s->public_base, &s->public_host, err);
	if (ret < 0)
		goto out;
	s->public_bucket_path = s->path_style ? join3("/", s->bucket, "") : strdup("");
	if (!s->path_style && strchr(s->bucket, '.') && strncmp(s->endpoint, "https:", 6) == 0)
		core->log(s->name, SBX_LOG_WARN,
			  "event=s3_config bucket=%s note=a dotted bucket name does not match the "
			  "TLS certificate of virtual-hosted URLs; set path_style = true",
			  s->bucket);

	v = cstr(config, "prefix");
	if (v) {
		size_t n = strlen(v);

		ret = s3_key_check(v, 1, err);
		if (ret < 0 || n > 512) {
			ret = sbx_err_set(err, SBX_E_INVALID,
					  "storage '%s' (%s): 'prefix' '%.64s' must be a storage "
					  "key prefix of at most 512 bytes",
					  s->name, s->module, v);
			goto out;
		}
		s->prefix = join3(v, v[n - 1] == '/' ? "" : "/", "");
	} else {
		s->prefix = strdup("");
	}

	ret = load_credentials(s, config, err);
	if (ret < 0)
		goto out;
	s->sigv4 = join3("aws:amz:", s->region, ":s3");

	s->verify = !json_is_false(json_object_get(config, "verify"));
	v = cstr(config, "ca_file");
	s->ca_file = v ? strdup(v) : NULL;
	s->connect_timeout_s = 10;
	s->timeout_s = 60;
	s->multipart_threshold = 16 * MIB;
	s->part_size = 8 * MIB;
	if (json_object_get(config, "connect_timeout_s"))
		s->connect_timeout_s =
		    (long)json_integer_value(json_object_get(config, "connect_timeout_s"));
	if (json_object_get(config, "timeout_s"))
		s->timeout_s = (long)json_integer_value(json_object_get(config, "timeout_s"));
	if (json_object_get(config, "multipart_threshold"))
		s->multipart_threshold =
		    json_integer_value(json_object_get(config, "multipart_threshold"));
	if (json_object_get(config, "part_size"))
		s->part_size = json_integer_value(json_object_get(config, "part_size"));
	if (s->connect_timeout_s < 1 || s->connect_timeout_s > 600 || s->timeout_s < 1 ||
	    s->timeout_s > 86400) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "storage '%s' (%s): 'connect_timeout_s' must be 1..600 and "
				  "'timeout_s' 1..86400",
				  s->name, s->module);
		goto out;
	}
	if (s->part_size < 5 * MIB || s->part_size > 5 * 1024 * MIB) {
		ret =
		    sbx_err_set(err, SBX_E_INVALID,
				"storage '%s' (%s): 'part_size' must be 5 MiB..5 GiB (S3 limits), "
				"not %lld",
				s->name, s->module, s->part_size);
		goto out;
	}
	if (s->multipart_threshold < s->part_size || s->multipart_threshold > 5 * 1024 * MIB) {
		ret = sbx_err_set(err, SBX_E_INVALID,
				  "storage '%s' (%s): 'multipart_threshold' must be part_size..5 "
				  "GiB, not %lld",
				  s->name, s->module, s->multipart_threshold);
		goto out;
	}
	if (!s->bucket || !s->region || !s->prefix || !s->sigv4 || !s->public_bucket_path ||
	    (v && !s->ca_file)) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto out;
	}
	core->log(s->name, SBX_LOG_INFO,
		  "event=storage_open module=%s bucket=%s endpoint=%s style=%s region=%s "
		  "prefix=%s credentials=%s",
		  s->module, s->bucket, s->endpoint, s->path_style ? "path" : "virtual-hosted",
		  s->region, *s->prefix ? s->prefix : "-", s->cred_source);
	*inst = s;
	s = NULL;
out:
	free(dummy);
	json_decref(empty);
	s3c_destroy(s);
	return ret;
}
