/*
 * Executor readiness checks and a path helper (execready.h).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "execready.h"

char *rt_path_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 2);

	if (s) {
		memcpy(s, a, la);
		s[la] = '/';
		memcpy(s + la + 1, b, lb + 1);
	}
	return s;
}

int rt_socket_listening(const char *path)
{
	struct sockaddr_un sa;
	int fd, rc;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	close(fd);
	return rc;
}

int rt_executor_health(const struct sbx_core_api *core, const char *sock, sbx_err *err)
{
	json_t *req, *resp = NULL;
	int rc, status;

	if (!SBX_CORE_HAS(core, http_request) || !core->http_request)
		return 0;
	req = json_pack("{s:s, s:s, s:s, s:i}", "method", "GET", "url", "http://sandbox/health",
			"unix_socket", sock, "timeout_ms", 2000);
	if (!req)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	rc = core->http_request(req, NULL, 0, NULL, NULL, NULL, NULL, &resp, err);
	json_decref(req);
	if (rc < 0)
		return rc;
	status = (int)json_integer_value(json_object_get(resp, "status"));
	json_decref(resp);
	if (status != 200)
		return sbx_err_set(err, SBX_E_UNAVAILABLE, "executor /health answered %d", status);
	return 0;
}
