/*
 * The instance's configuration: its libconfig group as JSON, unpacked strictly (an
 * unknown key is an error naming it), with the defaults documented in README.md.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linux.h"

static int get_uint(const json_t *v, const char *key, unsigned min, unsigned max, unsigned *out,
		    sbx_err *err)
{
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return sbx_err_set(err, SBX_E_INVALID,
				   "linux runtime: '%s' must be an integer in %u..%u", key, min,
				   max);
	*out = (unsigned)json_integer_value(v);
	return 0;
}

static int get_str(const json_t *v, const char *key, char **out, sbx_err *err)
{
	if (!json_is_string(v) || !json_string_length(v))
		return sbx_err_set(err, SBX_E_INVALID, "linux runtime: '%s' must be a string", key);
	free(*out);
	*out = strdup(json_string_value(v));
	return *out ? 0 : sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
}

static int parse_images(struct lx *lx, const json_t *v, sbx_err *err)
{
	size_t i;
	const json_t *img;

	if (!json_is_array(v))
		return sbx_err_set(err, SBX_E_INVALID,
				   "linux runtime: 'images' must be a list of {name, root}");
	json_array_foreach (v, i, img) {
		const char *name = NULL, *root = NULL;
		json_t *langs = NULL;
		json_error_t jerr;

		if (json_unpack_ex((json_t *)img, &jerr, JSON_STRICT, "{s:s, s:s, s?o}", "name",
				   &name, "root", &root, "languages", &langs) < 0)
			return sbx_err_set(err, SBX_E_INVALID, "linux runtime: images[%zu]: %s", i,
					   jerr.text);
		if (strcmp(root, "host") && root[0] != '/')
			return sbx_err_set(err, SBX_E_INVALID,
					   "linux runtime: images[%zu].root must be \"host\" or "
					   "an absolute directory",
					   i);
		if (langs && !json_is_array(langs))
			return sbx_err_set(err, SBX_E_INVALID,
					   "linux runtime: images[%zu].languages must be a list",
					   i);
		json_object_set_new(lx->images, name,
				    json_pack("{s:s, s:O}", "root", root, "languages",
					      langs ? langs : json_null()));
	}
	return 0;
}

int config_parse(struct lx *lx, const json_t *config, sbx_err *err)
{
	const char *key;
	json_t *v;
	int rc;

	lx->uid_base = 100000;
	lx->max_sessions = 256;
	lx->tmp_size_mb = 256;
	lx->images = json_object();
	if (!lx->images || catalogue_builtin(lx->images) < 0)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	if (config && !json_is_object(config))
		return sbx_err_set(err, SBX_E_INVALID, "linux runtime: config must be a group");
	if (!config)
		return 0;
	json_object_foreach ((json_t *)config, key, v) {
		if (!strcmp(key, "state_dir"))
			rc = get_str(v, key, &lx->state_dir, err);
		else if (!strcmp(key, "executor_dir"))
			rc = get_str(v, key, &lx->executor_dir, err);
		else if (!strcmp(key, "uid_base"))
			rc = get_uint(v, key, 1, 0xF0000000u, &lx->uid_base, err);
		else if (!strcmp(key, "max_sessions"))
			rc = get_uint(v, key, 1, 4096, &lx->max_sessions, err);
		else if (!strcmp(key, "tmp_size_mb"))
			rc = get_uint(v, key, 1, 1u << 20, &lx->tmp_size_mb, err);
		else if (!strcmp(key, "workspace")) {
			if (json_is_string(v) && !strcmp(json_string_value(v), "tmpfs"))
				lx->workspace_loop = 0, rc = 0;
			else if (json_is_string(v) && !strcmp(json_string_value(v), "loop"))
				rc = sbx_err_set(err, SBX_E_UNSUPPORTED,
						 "linux runtime: workspace \"loop\" is not "
						 "implemented yet; use \"tmpfs\"");
			else
				rc = sbx_err_set(err, SBX_E_INVALID,
						 "linux runtime: 'workspace' must be \"tmpfs\" "
						 "or \"loop\"");
		} else if (!strcmp(key, "images"))
			rc = parse_images(lx, v, err);
		else
			rc = sbx_err_set(err, SBX_E_INVALID,
					 "linux runtime: unknown config key '%s'", key);
		if (rc < 0)
			return rc;
	}
	if (lx->state_dir && lx->state_dir[0] != '/')
		return sbx_err_set(err, SBX_E_INVALID,
				   "linux runtime: 'state_dir' must be absolute");
	if (lx->executor_dir && lx->executor_dir[0] != '/')
		return sbx_err_set(err, SBX_E_INVALID,
				   "linux runtime: 'executor_dir' must be absolute");
	if ((unsigned long long)lx->uid_base +
		(unsigned long long)lx->max_sessions * LX_IDS_PER_SANDBOX >
	    0xFFFFFFFEull)
		return sbx_err_set(err, SBX_E_INVALID,
				   "linux runtime: uid_base + max_sessions*65536 exceeds the uid "
				   "space");
	return 0;
}
