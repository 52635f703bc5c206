/*
 * libFuzzer target: the configuration loader (conf_load in core/conf.c: libconfig's parser
 * and our strict key checks) on the input as a configuration file.
 *
 * Invariants: conf_load returns 0, or -1 with a non-empty message; a loaded configuration
 * is coherent (listen host set, port 0..65535, every plugin with a kind, module, name and
 * a JSON object config); the outcome does not depend on the size of the error buffer
 * (a second load into a small one truncates the message and changes nothing else);
 * conf_free releases everything (LeakSanitizer). Inputs with "@include" are skipped: they
 * read other files, which is libconfig's business and not this target's.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int load(const char *path, size_t errlen, char **msg)
{
	struct config cfg;
	char *errbuf = malloc(errlen);
	int rc;

	if (!errbuf)
		abort();
	memset(&cfg, 0, sizeof cfg);
	rc = conf_load(&cfg, path, errbuf, errlen);
	if (rc != 0 && rc != -1)
		abort();
	if (strnlen(errbuf, errlen) == errlen) /* always terminated */
		abort();
	if (rc == -1 && errbuf[0] == '\0' && errlen > 1) /* a one-byte buffer holds "" */
		abort();
	if (rc == 0) {
		if (!cfg.listen_host || cfg.listen_port < 0 || cfg.listen_port > 65535 ||
		    !cfg.data_dir || !cfg.plugins_dir || cfg.max_body <= 0 || cfg.max_upload <= 0)
			abort();
		for (size_t i = 0; i < cfg.n_plugins; i++) {
			const struct plugin_spec *p = &cfg.plugins[i];
			if (!p->module || !p->name || !json_is_object(p->config) ||
			    strcmp(conf_kind_name(p->kind), "unknown") == 0)
				abort();
		}
		if (cfg.templates && !json_is_array(cfg.templates))
			abort();
	}
	conf_free(&cfg);
	*msg = errbuf;
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], *big, *small;
	size_t small_len = size % 97 + 1;
	int fd, rc;

	if (memmem(data, size, "@include", 8))
		return 0;
	fd = memfd_create("sbxd-fuzz.conf", MFD_CLOEXEC);
	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
		abort();
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	rc = load(path, 8192, &big);
	if (load(path, small_len, &small) != rc)
		abort();
	/* the small buffer holds a prefix of the same message */
	if (strncmp(big, small, strlen(small)) != 0 && strlen(big) < 8191)
		abort();
	free(big);
	free(small);
	close(fd);
	return 0;
}
