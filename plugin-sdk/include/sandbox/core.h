/*
 * Services the core offers to modules: one append-only table handed to create().
 * Modules never link against the core; everything they need from it is here.
 * New members are only ever appended (minor bump); check `size` before using a member
 * newer than 1.0 (SBX_CORE_HAS).
 */
#ifndef SANDBOX_CORE_H
#define SANDBOX_CORE_H

#include <stddef.h>
#include <stdint.h>

#include <sandbox/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

enum sbx_log_level {
	SBX_LOG_ERROR = 0,
	SBX_LOG_WARN = 1,
	SBX_LOG_INFO = 2,
	SBX_LOG_DEBUG = 3,
};

/*
 * Streaming callbacks for bodies. A write callback receives `len` bytes (borrowed, valid
 * during the call) and returns 0 to continue or <0 to abort the transfer. A read callback
 * fills up to `cap` bytes into `buf` and returns the count, 0 at end, <0 on error.
 */
typedef int (*sbx_write_fn)(void *ctx, const void *data, size_t len);
typedef long (*sbx_read_fn)(void *ctx, void *buf, size_t cap);

struct sbx_core_api {
	uint32_t size;      /* sizeof(struct sbx_core_api) in the running core */
	uint16_t abi_major; /* the running core's ABI */
	uint16_t abi_minor;

	/* Log one line as the core does: `who` is the instance name given to create(); the
	 * line carries the request id when the calling thread is serving a request. Never
	 * pass secrets or request bodies. Any thread. */
	void (*log)(const char *who, int level, const char *fmt, ...)
#if defined(__GNUC__)
	    __attribute__((format(printf, 3, 4)))
#endif
	    ;

	/* Wall clock in milliseconds since the epoch, and a monotonic clock in ms.
	 * Any thread. */
	int64_t (*now_ms)(void);
	int64_t (*monotonic_ms)(void);

	/* Fill buf with n cryptographically secure random bytes (OpenSSL). 0 or <0. Any
	 * thread. */
	int (*random_bytes)(void *buf, size_t n);

	/*
	 * Outbound HTTP through libcurl, blocking, bounded by timeout_ms.
	 * req (borrowed): {"method": "GET", "url": "http://x/y", "unix_socket"?: "/path",
	 *   "headers"?: {"Name": "value"}, "timeout_ms"?: 30000, "aws_sigv4"?: "aws:amz:r:s3",
	 *   "userpwd"?: "AK:SK", "cacert"?: path, "cert"?: path, "key"?: path}
	 * body/body_len (borrowed): request body, or read_fn/read_ctx for a streamed body of
	 *   body_len bytes (body must then be NULL).
	 * sink (may be NULL): receives the response body as it arrives; when NULL the body
	 *   is collected into *resp as "body" (capped at 16 MiB, SBX_E_TOOLARGE beyond).
	 * *resp (new reference): {"status": 200, "headers": {"lower-case-name": "v"}, "body"?}
	 * Returns 0 whenever an HTTP status was received (check resp.status), <0 with
	 * SBX_E_UNAVAILABLE for connection failures and SBX_E_TIMEOUT for timeouts.
	 * Worker or module threads; never the policy thread.
	 */
	int (*http_request)(const json_t *req, const void *body, size_t body_len,
			    sbx_read_fn read_fn, void *read_ctx, sbx_write_fn sink, void *sink_ctx,
			    json_t **resp, sbx_err *err);

	/* Metrics exported at /metrics. `name` is a Prometheus metric name (static string),
	 * `labels` (borrowed, may be NULL) an object of string values. Any thread. */
	void (*counter_add)(const char *name, const json_t *labels, double value);
	void (*gauge_set)(const char *name, const json_t *labels, double value);

	/* The daemon's data directory (absolute, static for the process lifetime). Modules
	 * put their default files under it. */
	const char *(*data_dir)(void);
};

#define SBX_CORE_HAS(api, member)                                                                  \
	((api)->size >= offsetof(struct sbx_core_api, member) + sizeof((api)->member))

#ifdef __cplusplus
}
#endif
#endif
