/*
 * A minimal TAP producer for the C tests (automake's tap-driver.sh reads it).
 * ok(cond, fmt, ...) records one test; tap_done() prints the plan and returns the exit code.
 */
#ifndef SBX_TESTS_TAP_H
#define SBX_TESTS_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_n;
static int tap_failed;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3), unused))
#endif
static int
ok(int cond, const char *fmt, ...)
{
	va_list ap;
	tap_n++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2), unused))
#endif
static void
diag(const char *fmt, ...)
{
	va_list ap;
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

#if defined(__GNUC__)
__attribute__((unused))
#endif
static int
tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
