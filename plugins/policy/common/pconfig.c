/*
 * Strict unpacking of a policy instance's config: every key is a number with bounds, an
 * unknown key is refused by name together with the keys that are accepted.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "polcommon.h"

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "a group";
	case JSON_ARRAY:
		return "a list";
	case JSON_STRING:
		return "a string";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	default:
		return "a number";
	}
}

int pol_config_numbers(const char *module, const char *who, const json_t *config,
		       const struct pol_key *keys, size_t n, sbx_err *err)
{
	const char *key;
	json_t *v;

	if (!config)
		return SBX_OK;
	if (!json_is_object(config))
		return sbx_err_set(err, SBX_E_INVALID,
				   "%s policy '%s': config must be a group, not %s", module, who,
				   type_name(config));
	json_object_foreach ((json_t *)config, key, v) {
		const struct pol_key *k = NULL;
		double d;

		for (size_t i = 0; i < n && !k; i++)
			if (!strcmp(keys[i].name, key))
				k = &keys[i];
		if (!k) {
			char list[256];
			size_t off = 0;

			list[0] = '\0';
			for (size_t i = 0; i < n && off < sizeof list; i++)
				off += (size_t)snprintf(list + off, sizeof list - off, "%s%s",
							i ? ", " : "", keys[i].name);
			return sbx_err_set(
			    err, SBX_E_INVALID,
			    "%s policy '%s': unknown config key '%.64s' (expected %s)", module, who,
			    key, list);
		}
		if (!json_is_number(v))
			return sbx_err_set(
			    err, SBX_E_INVALID,
			    "%s policy '%s': '%s' must be a number in %g..%g, not %s", module, who,
			    k->name, k->min, k->max, type_name(v));
		d = json_number_value(v);
		if (!isfinite(d) || d < k->min || d > k->max)
			return sbx_err_set(err, SBX_E_INVALID,
					   "%s policy '%s': '%s' must be in %g..%g, got %g", module,
					   who, k->name, k->min, k->max, d);
		*k->dst = d;
	}
	return SBX_OK;
}
