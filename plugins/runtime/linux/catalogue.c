/*
 * The image catalogue: which root filesystem an image name stands for. The built-in
 * entries map the template images clients already use to the host's /usr.
 */
#include "config.h"

#include <string.h>

#include "linux.h"

static const struct {
	const char *name;
	const char *lang;
} builtin[] = {
    {"sandbox-template-python-basic:latest", "python"},
    {"sandbox-template-python-basic", "python"},
    {"sandbox-template-nodejs-basic:latest", "javascript"},
    {"sandbox-template-nodejs-basic", "javascript"},
    {"sandbox-template-shell-basic:latest", "shell"},
    {"sandbox-template-shell-basic", "shell"},
    {"python:3.11", "python"},
    {"node:20", "javascript"},
};

int catalogue_builtin(json_t *images)
{
	size_t i;

	for (i = 0; i < sizeof builtin / sizeof *builtin; i++)
		if (json_object_set_new(images, builtin[i].name,
					json_pack("{s:s, s:[s]}", "root", "host", "languages",
						  builtin[i].lang)) < 0)
			return -1;
	return 0;
}

const char *catalogue_lookup(const struct lx *lx, const char *image, sbx_err *err)
{
	json_t *e = image ? json_object_get(lx->images, image) : NULL;

	if (!e) {
		sbx_err_set(err, SBX_E_INVALID,
			    "image '%s' is not in the linux runtime's catalogue; add it to images "
			    "in the runtime's config",
			    image ? image : "(none)");
		return NULL;
	}
	return json_string_value(json_object_get(e, "root"));
}
