/*
 * Status codes and the caller-owned error record every SDK call fills.
 * Part of the sbxd plugin ABI 1.0; see plugin.h for the version rules.
 */
#ifndef SANDBOX_ERR_H
#define SANDBOX_ERR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Return convention of every method in the ABI:
 *   0            success
 *   > 0          qualified success (SBX_DEFER: "not mine, ask the next plugin")
 *   < 0          error; the value is the negated sbx_errcode and err->message says why.
 * The core maps an sbx_errcode to an HTTP status in exactly one place.
 */
#define SBX_OK    0
#define SBX_DEFER 1

enum sbx_errcode {
	SBX_E_INTERNAL = 1,     /* a bug or an unexpected failure            -> 500 */
	SBX_E_INVALID = 2,      /* a value the caller sent is not acceptable -> 422 */
	SBX_E_NOTFOUND = 3,     /* the object does not exist (or is hidden)  -> 404 */
	SBX_E_CONFLICT = 4,     /* duplicate id, or a conditional update lost -> 409 */
	SBX_E_UNAVAILABLE = 5,  /* a dependency is down; retrying may work   -> 503 */
	SBX_E_TIMEOUT = 6,      /* a bounded wait ran out                    -> 408 */
	SBX_E_TOOLARGE = 7,     /* a size limit was exceeded                 -> 413 */
	SBX_E_UNAUTHORIZED = 8, /* no or bad credentials                     -> 401 */
	SBX_E_FORBIDDEN = 9,    /* authenticated but not allowed             -> 403 */
	SBX_E_LIMIT = 10,       /* quota or capacity exhausted               -> 429 */
	SBX_E_BADREQUEST = 11,  /* malformed request (bad JSON, bad path)    -> 400 */
	SBX_E_UNSUPPORTED = 12, /* the plugin does not offer this operation  -> 501 */
};

#define SBX_ERR_MSG_MAX 512

/*
 * Filled by the callee on error; owned (usually on the stack) by the caller.
 * `message` is for humans: say what failed and, where possible, how to fix it.
 * It must never contain secrets (passwords, tokens, keys).
 */
typedef struct sbx_err {
	int code;                      /* an sbx_errcode, 0 when unset */
	char message[SBX_ERR_MSG_MAX]; /* NUL-terminated */
} sbx_err;

/* Sets err (if non-NULL) and returns -code, so callers can `return sbx_err_set(...)`.
 * Header-only so that modules need not link anything for it. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static inline int
sbx_err_set(sbx_err *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof err->message, fmt, ap);
		va_end(ap);
	}
	return -code;
}

static inline void sbx_err_clear(sbx_err *err)
{
	if (err) {
		err->code = 0;
		err->message[0] = '\0';
	}
}

#ifdef __cplusplus
}
#endif
#endif
