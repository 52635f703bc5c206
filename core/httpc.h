/*
 * Outbound HTTP through libcurl for the core and for modules (sbx_core_api.http_request):
 * unix sockets, streamed bodies, SigV4 and TLS client options, bounded time and size.
 */
#ifndef SBXD_HTTPC_H
#define SBXD_HTTPC_H

#include <sandbox/core.h>

/* Once per process, before threads (curl_global_init). */
int httpc_global_init(void);
void httpc_global_cleanup(void);

/* The contract is the one documented on sbx_core_api.http_request in <sandbox/core.h>. */
int httpc_request(const json_t *req, const void *body, size_t body_len, sbx_read_fn read_fn,
		  void *read_ctx, sbx_write_fn sink, void *sink_ctx, json_t **resp, sbx_err *err);

#endif
