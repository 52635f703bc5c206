/*
 * One-line logging for the daemon: `ts=... level=... req=... msg` on stderr, with the
 * request id of the calling thread when it is serving a request.
 */
#ifndef SBXD_LOG_H
#define SBXD_LOG_H

#include <stdarg.h>

#include <sandbox/core.h>

void log_set_level(int level);
int log_level_parse(const char *s); /* -1 when unknown */
/* The calling thread's current request id (NULL to clear); the string is copied. */
void log_set_request_id(const char *id);
const char *log_request_id(void);

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void log_msg(int level, const char *who, const char *fmt, ...);
void log_vmsg(int level, const char *who, const char *fmt, va_list ap)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 0)))
#endif
    ;

#define LOG_E(...) log_msg(SBX_LOG_ERROR, "sbxd", __VA_ARGS__)
#define LOG_W(...) log_msg(SBX_LOG_WARN, "sbxd", __VA_ARGS__)
#define LOG_I(...) log_msg(SBX_LOG_INFO, "sbxd", __VA_ARGS__)
#define LOG_D(...) log_msg(SBX_LOG_DEBUG, "sbxd", __VA_ARGS__)

#endif
