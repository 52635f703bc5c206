/*
 * Durable record of each sandbox: <state_dir>/sandboxes/<id>/sandbox.json, written
 * atomically (temp + rename) so that sandbox_list survives a daemon restart. No fsync: a
 * sandbox cannot outlive a host crash, so the file only has to survive the daemon's.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linux.h"

int state_save(const char *dir, const json_t *handle, sbx_err *err)
{
	char p[512], tmp[520];
	char *text = json_dumps(handle, JSON_COMPACT);
	size_t n = text ? strlen(text) : 0;
	int fd, rc = 0;

	if (!text)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	snprintf(p, sizeof p, "%s/sandbox.json", dir);
	snprintf(tmp, sizeof tmp, "%s.tmp", p);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		goto fail;
	if (write(fd, text, n) != (ssize_t)n) {
		close(fd);
		goto fail;
	}
	if (close(fd) < 0 || rename(tmp, p) < 0)
		goto fail;
	goto out;
fail:
	rc = sbx_err_set(err, SBX_E_UNAVAILABLE, "write %s: %s", p, strerror(errno));
	unlink(tmp);
out:
	free(text);
	return rc;
}

json_t *state_load(const char *dir)
{
	char p[512];

	snprintf(p, sizeof p, "%s/sandbox.json", dir);
	return json_load_file(p, 0, NULL);
}
