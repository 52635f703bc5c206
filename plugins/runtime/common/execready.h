/*
 * Readiness of a sandbox's executor on its host-visible Unix socket, shared by the runtimes
 * whose executor listens there (linux, docker), and a path helper they both use. Each
 * runtime keeps its own wait loop: what "the sandbox died meanwhile" means differs (a pid,
 * a container).
 */
#ifndef SBX_RUNTIME_EXECREADY_H
#define SBX_RUNTIME_EXECREADY_H

#include <sandbox/core.h>
#include <sandbox/err.h>

/* "a/b", malloc'd (NULL when out of memory). */
char *rt_path_join(const char *a, const char *b);

/* 0 when something accepts connections on the socket at path, else -1 with errno. */
int rt_socket_listening(const char *path);

/* GET /health through the socket (2 s timeout): 0 on 200, else <0 with err saying why.
 * A core without http_request (older 1.x) counts as healthy: a listening socket is then the
 * best that can be known. */
int rt_executor_health(const struct sbx_core_api *core, const char *sock, sbx_err *err);

#endif
