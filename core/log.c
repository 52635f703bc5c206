/*
 * Logging: one line per event, key=value, written with a single write(2) so lines from
 * different threads never interleave. The level is process-wide, set once at start-up.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int max_level = SBX_LOG_INFO;
static _Thread_local char req_id[72];

static const char *const names[] = {"error", "warn", "info", "debug"};

void log_set_level(int level)
{
	max_level = level;
}

int log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

void log_set_request_id(const char *id)
{
	if (!id)
		req_id[0] = '\0';
	else
		snprintf(req_id, sizeof req_id, "%s", id);
}

const char *log_request_id(void)
{
	return req_id[0] ? req_id : NULL;
}

void log_vmsg(int level, const char *who, const char *fmt, va_list ap)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	int n;

	if (level > max_level)
		return;
	if (level < 0)
		level = 0;
	if (level > 3)
		level = 3;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof line,
		     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s who=%s%s%s ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec / 1000000, names[level], who ? who : "sbxd",
		     req_id[0] ? " req=" : "", req_id);
	if (n < 0 || (size_t)n >= sizeof line)
		n = 0;
	n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	if ((size_t)n >= sizeof line - 1)
		n = sizeof line - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

void log_msg(int level, const char *who, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, who, fmt, ap);
	va_end(ap);
}
