/*
 * The sbx_core_api table handed to modules, and the small clock/random helpers the core
 * itself uses.
 */
#ifndef SBXD_SERVICES_H
#define SBXD_SERVICES_H

#include <stdint.h>

#include "server.h"

void services_init(struct server *srv);
int64_t services_now_ms(void);
int64_t services_mono_ms(void);
int services_random(void *buf, size_t n);
/* Every plugin instance's thread_init (init = 1) or thread_fini (0) on the calling thread;
 * every core thread that calls plugins runs it at its start and end. */
void services_thread_plugins(struct server *srv, int init);
/* A random id: prefix + 24 hex characters, into out (>= strlen(prefix) + 25 bytes). */
void services_new_id(const char *prefix, char *out, size_t len);
/* Sets spec's "executor_token" to 128 random bits in hex (runtime.h); -1 when the random
 * source fails (the spec then has none, which runtimes on a private socket do not need). */
int services_set_token(json_t *spec);
/* Millisecond timestamp → "2026-11-26T03:20:25.123Z" (json null for <= 0). */
json_t *services_iso(json_t *ms);

#endif
