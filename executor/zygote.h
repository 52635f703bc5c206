/*
 * zygote.c internals shared with run.c: job hand-over and report reading, and the signal
 * reset every forked child performs before exec.
 */
#ifndef SBX_EXECUTOR_ZYGOTE_H
#define SBX_EXECUTOR_ZYGOTE_H

#include "executor.h"

int zygote_send(struct ctx *c, int sock, const char *payload, size_t len, const int fds[3]);
int zygote_read(struct zygote *z, json_t **out);
void zygote_child_reset(void);

#endif
