/*
 * libFuzzer target: one HTTP request through the daemon's real front end (core/http.c),
 * router, JSON validation and multipart parsing, with the real sqlite db plugin and no
 * runtime (nothing reaches a sandbox: session creation answers 503). Two fixture sessions:
 * "fz-ended" has ended, so requests on it are validated, then refused 409; "fz-live" runs
 * against a fake executor in this process, so uploads stream through MHD's post processor.
 * Body limits are the smallest allowed (4 KiB) so that 413 is reachable.
 *
 * Input: raw HTTP bytes. When they hold a header block ("\r\n\r\n"), its Content-Length
 * and Connection headers are replaced by the true body length (unless the input is
 * chunked) and "Connection: close", so that mutated bodies stay well framed; otherwise the
 * bytes are sent as they are. Each input goes over a fresh socketpair handed to MHD; the
 * harness half-closes it once nothing has happened for 20 ms after the last byte was sent (MHD
 * polls edge-triggered and may miss a half-close that arrives together with the data, then
 * holds an unfinished request until its 120 s idle timeout; a malformed request may be
 * held so, and the harness gives up on it 2 s after the half-close).
 *
 * Invariants: the server answers or closes within 8 s; a request that is well formed
 * (request line, header syntax, Host) gets a reply; every reply of ours (it carries
 * X-Request-ID) has a documented status other than 500, and every 4xx/5xx of ours is a
 * JSON object with string error_code and description. Templates an input created are
 * deleted afterwards so that inputs do not depend on one another.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "execs.h"
#include "http.h"
#include "httpc.h"
#include "loader.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "quotas.h"
#include "server.h"
#include "services.h"
#include "sessions.h"

#ifndef FUZZ_DB_PLUGIN
#define FUZZ_DB_PLUGIN "plugins/db/sqlite/.libs/db_sqlite.so"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The server started once in LLVMFuzzerInitialize: state libFuzzer makes us keep. */
static struct server *fuzz_srv;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_http_request: %s\n", what);
	abort();
}

static void ensure_session(struct server *srv, const char *id, int live);
static void start_fake_executor(const char *path);

static void thread_hook(void *arg, int init)
{
	struct server *srv = arg;
	for (size_t i = 0; i < srv->n_plugins; i++) {
		const struct sbx_plugin *d = srv->plugins[i].d.any;
		if (init && d->life.thread_init)
			d->life.thread_init(srv->plugins[i].inst);
		else if (!init && d->life.thread_fini)
			d->life.thread_fini(srv->plugins[i].inst);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *plugin = getenv("SBXD_FUZZ_DB_PLUGIN"), *tmp = getenv("TMPDIR");
	char dir[256], conf[512], msg[1024], errbuf[4096];
	struct server *srv = calloc(1, sizeof *srv);
	struct plugin *db;
	FILE *f;
	sbx_err err;

	(void)argc;
	(void)argv;
	if (!plugin)
		plugin = FUZZ_DB_PLUGIN;
	snprintf(dir, sizeof dir, "%s/sbxd-fuzz-http-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!srv || !mkdtemp(dir))
		die("cannot create the data directory");
	snprintf(conf, sizeof conf, "%s/sbxd.conf", dir);
	f = fopen(conf, "w");
	if (!f)
		die("cannot write the configuration");
	fprintf(f,
		"server = { listen = \"127.0.0.1:0\"; data_dir = \"%s\"; workers = 2;\n"
		"  max_request_body = \"4Ki\"; max_upload = \"4Ki\"; log_level = \"error\"; };\n"
		"quotas = { requests_per_second = 0.0; };\n"
		"plugins = ( { kind = \"db\"; module = \"sqlite\"; path = \"%s\";\n"
		"  config = { path = \"sbxd.db\"; synchronous = \"normal\"; }; } );\n",
		dir, plugin);
	fclose(f);
	pthread_mutex_init(&srv->policy_mu, NULL);
	if (conf_load(&srv->cfg, conf, errbuf, sizeof errbuf) < 0) {
		fprintf(stderr, "%s\n", errbuf);
		die("the fuzz configuration does not load");
	}
	log_set_level(srv->cfg.log_level);
	signal(SIGPIPE, SIG_IGN);
	srv->started_ms = services_now_ms();
	services_new_id("", srv->instance_id, sizeof srv->instance_id);
	if (httpc_global_init() < 0 || loader_init() < 0 || !(srv->metrics = metrics_new()))
		die("cannot initialise libcurl/libltdl");
	services_init(srv);
	srv->plugins = calloc(1, sizeof *srv->plugins);
	srv->runtimes = calloc(1, sizeof *srv->runtimes);
	srv->auths = calloc(1, sizeof *srv->auths);
	if (!srv->plugins || !srv->runtimes || !srv->auths)
		die("out of memory");
	db = &srv->plugins[0];
	if (loader_open(&srv->cfg.plugins[0], srv->cfg.plugins_dir, db, msg, sizeof msg) < 0) {
		fprintf(stderr, "%s (set SBXD_FUZZ_DB_PLUGIN)\n", msg);
		die("cannot load the sqlite db plugin");
	}
	sbx_err_clear(&err);
	if (db->d.any->life.create(&srv->api, "sqlite", srv->cfg.plugins[0].config, &db->inst,
				   &err) < 0 ||
	    (db->d.any->life.start && db->d.any->life.start(db->inst, &err) < 0)) {
		fprintf(stderr, "%s\n", err.message);
		die("the sqlite db plugin does not start");
	}
	db->started = 1;
	srv->n_plugins = 1;
	srv->db = db;
	if (templates_seed(srv, &err) < 0)
		die("cannot seed the templates");
	snprintf(msg, sizeof msg, "%s/executor.sock", dir);
	start_fake_executor(msg);
	ensure_session(srv, "fz-ended", 0);
	ensure_session(srv, "fz-live", 1);
	if (quotas_start(srv) < 0 || execs_start(srv) < 0 || sessions_start(srv) < 0)
		die("cannot start the services");
	srv->pool = pool_new(srv->cfg.workers, thread_hook, srv);
	if (!srv->pool || http_start(srv, msg, sizeof msg) < 0)
		die("cannot start the HTTP server");
	fuzz_srv = srv;
	return 0;
}

/* The fake executor behind the live fixture session: MHD on a unix socket that drains
 * every body and answers each endpoint of docs/executor-protocol.md with a fixed reply. */
static enum MHD_Result fake_executor(void *cls, struct MHD_Connection *conn, const char *url,
				     const char *method, const char *version,
				     const char *upload_data, size_t *upload_data_size,
				     void **con_cls)
{
	static const char result[] =
	    "{\"type\":\"start\",\"id\":\"e-1\"}\n"
	    "{\"type\":\"stdout\",\"data\":\"x\"}\n"
	    "{\"type\":\"result\",\"status\":\"failed\",\"exit_code\":1,"
	    "\"error_message\":\"fuzz\",\"stdout\":\"x\",\"stderr\":\"\"}\n";
	static const char files[] = "{\"files\":[{\"name\":\"a\",\"path\":\"a\",\"size\":1,"
				    "\"type\":\"file\",\"modified_time\":1.5}]}";
	const char *body = "{}";
	unsigned status = 200;
	struct MHD_Response *resp;
	enum MHD_Result rc;

	(void)cls;
	(void)version;
	(void)upload_data;
	if (!*con_cls) {
		*con_cls = conn;
		return MHD_YES;
	}
	if (*upload_data_size) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (strcmp(url, "/execute") == 0)
		body = result;
	else if (strcmp(url, "/files") == 0)
		body = files;
	else if (strcmp(url, "/files/content") == 0)
		status = strcmp(method, "PUT") == 0 ? 201 : 200;
	else if (strncmp(url, "/executions/", 12) == 0)
		body = "{\"status\":\"running\"}";
	else if (strcmp(url, "/health") != 0)
		status = 404;
	resp = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
	rc = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return rc;
}

static void start_fake_executor(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0)
		die("cannot listen for the fake executor");
	/* the daemon lives as long as the process: nothing to stop */
	if (!MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
			      NULL, NULL, fake_executor, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
			      MHD_OPTION_END))
		die("cannot start the fake executor");
}

/* Case-insensitive: does the header line start with name (which ends in ':')? */
static int is_header(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);
	return len >= n && strncasecmp(line, name, n) == 0;
}

static int is_tchar(int c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

struct wire {
	char *buf;
	size_t len;
	int must_reply; /* well formed: a reply is owed */
	int head;       /* HEAD: replies carry no body */
};

/* Build the bytes to send (see the file comment). */
static void frame(const uint8_t *data, size_t size, struct wire *w)
{
	const char *in = (const char *)data;
	const char *end = memmem(in, size, "\r\n\r\n", 4);
	size_t hlen, blen, o = 0, pos, line_no = 0;
	int chunked = 0, host = 0, ok = 1;

	w->buf = malloc(size + 128);
	if (!w->buf)
		die("out of memory");
	w->must_reply = 0;
	w->head = size >= 5 && memcmp(in, "HEAD ", 5) == 0;
	if (!end) {
		memcpy(w->buf, in, size);
		w->len = size;
		return;
	}
	hlen = (size_t)(end - in) + 2; /* through the last header's CRLF */
	blen = size - hlen - 2;
	for (pos = 0; pos < hlen;) {
		const char *line = in + pos, *eol = memmem(line, hlen - pos, "\r\n", 2);
		size_t len = (size_t)(eol - line);
		if (line_no == 0) {
			/* METHOD SP /target SP HTTP/1.x */
			size_t i = 0;
			while (i < len && isupper((unsigned char)line[i]))
				i++;
			ok &=
			    i > 0 && i < len && line[i] == ' ' && i + 1 < len && line[i + 1] == '/';
			for (i++; ok && i < len && line[i] != ' '; i++)
				ok &= line[i] > ' ' && line[i] < 0x7f;
			ok &= len >= 9 && i == len - 9 &&
			      (memcmp(line + i, " HTTP/1.1", 9) == 0 ||
			       memcmp(line + i, " HTTP/1.0", 9) == 0);
		} else {
			size_t i = 0;
			while (i < len && is_tchar((unsigned char)line[i]))
				i++;
			ok &= i > 0 && i < len && line[i] == ':';
			for (i++; ok && i < len; i++)
				ok &= line[i] == '\t' || (line[i] >= ' ' && line[i] < 0x7f);
			chunked |= is_header(line, len, "transfer-encoding:");
			host |= is_header(line, len, "host:");
			if (is_header(line, len, "content-length:") ||
			    is_header(line, len, "connection:")) {
				pos += len + 2;
				line_no++;
				continue;
			}
		}
		memcpy(w->buf + o, line, len + 2);
		o += len + 2;
		pos += len + 2;
		line_no++;
	}
	if (!chunked)
		o += (size_t)sprintf(w->buf + o, "Content-Length: %zu\r\n", blen);
	o += (size_t)sprintf(w->buf + o, "Connection: close\r\n\r\n");
	memcpy(w->buf + o, end + 4, blen);
	w->len = o + blen;
	w->must_reply = ok && host && !chunked && line_no > 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Show what was sent and what came back, then fail. */
static void bad_reply(const struct wire *w, const char *out, size_t len, const char *what)
{
	fprintf(stderr, "--- sent (%zu bytes):\n%.*s\n--- received (%zu bytes):\n%.*s\n---\n",
		w->len, (int)(w->len > 4000 ? 4000 : w->len), w->buf, len,
		(int)(len > 4000 ? 4000 : len), out);
	die(what);
}

/* Send w and read until the server closes; returns the bytes read (malloc'd). */
static char *exchange(const struct wire *w, size_t *out_len)
{
	int sv[2];
	size_t sent = 0, len = 0, cap = 65536;
	char *out = malloc(cap);
	int64_t deadline = now_ms() + 8000;
	int half_closed = 0;

	if (!out || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair");
	if (http_add_connection(fuzz_srv, sv[0]) < 0)
		die("the server refused a connection");
	for (;;) {
		struct pollfd p = {.fd = sv[1], .events = POLLIN | (sent < w->len ? POLLOUT : 0)};
		int64_t left = deadline - now_ms();
		int rc;
		ssize_t n;
		if (left <= 0 && w->must_reply)
			bad_reply(w, out, len, "no reply and no close within 8 s");
		if (left <= 0)
			break; /* MHD missed the half-close of a malformed request (see above) */
		rc = poll(&p, 1, sent < w->len || half_closed ? (int)left : 20);
		if (rc == 0 && !half_closed && sent == w->len) {
			shutdown(sv[1], SHUT_WR);
			half_closed = 1;
			if (!w->must_reply)
				deadline = now_ms() + 2000;
		}
		if (rc <= 0)
			continue;
		if (p.revents & POLLOUT) {
			n = send(sv[1], w->buf + sent, w->len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && errno != EAGAIN && errno != EINTR)
				sent = w->len; /* the server closed: stop sending */
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			if (len == cap) {
				char *nb = realloc(out, cap *= 2);
				if (!nb)
					die("out of memory");
				out = nb;
			}
			n = recv(sv[1], out + len, cap - len, MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				break;
			if (n > 0)
				len += (size_t)n;
		}
	}
	close(sv[1]);
	*out_len = len;
	return out;
}

static int documented(unsigned st)
{
	static const unsigned ok[] = {200, 201, 202, 204, 400, 401, 403, 404, 405,
				      408, 409, 413, 422, 429, 501, 502, 503};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		if (st == ok[i])
			return 1;
	return 0;
}

/* Find header name (lower case, with ':') in the header block [h, h+len). */
static const char *find_header(const char *h, size_t len, const char *name, size_t *vlen)
{
	size_t n = strlen(name);
	for (const char *p = h; p < h + len;) {
		const char *eol = memmem(p, (size_t)(h + len - p), "\r\n", 2);
		size_t l = eol ? (size_t)(eol - p) : (size_t)(h + len - p);
		if (l > n && strncasecmp(p, name, n) == 0) {
			const char *v = p + n;
			while (v < p + l && *v == ' ')
				v++;
			*vlen = (size_t)(p + l - v);
			return v;
		}
		p += l + 2;
	}
	return NULL;
}

static void check_reply(const struct wire *w, const char *out, size_t len)
{
	const char *hend, *v;
	size_t hlen, vlen, body_len;
	unsigned st;
	json_t *j;

	if (len == 0) {
		if (w->must_reply)
			bad_reply(w, out, len, "a well-formed request got no reply");
		return;
	}
	if (len < 12 || memcmp(out, "HTTP/1.", 7) != 0 || sscanf(out + 9, "%3u", &st) != 1)
		bad_reply(w, out, len, "the reply does not start with a status line");
	hend = memmem(out, len, "\r\n\r\n", 4);
	if (!hend)
		bad_reply(w, out, len, "the reply has no complete header block");
	hlen = (size_t)(hend - out);
	if (!find_header(out, hlen, "x-request-id:", &vlen))
		return; /* MHD's own error page (malformed HTTP): not ours to check */
	if (!documented(st))
		bad_reply(w, out, len, "a reply with an undocumented status (or 500: a bug)");
	if (st < 400 || w->head)
		return;
	/* Only the first reply is checked: MHD may parse a malformed input as several. */
	v = find_header(out, hlen, "content-length:", &vlen);
	body_len = len - hlen - 4;
	if (v && (size_t)strtoul(v, NULL, 10) > body_len)
		bad_reply(w, out, len, "an error reply is shorter than its Content-Length");
	if (v)
		body_len = (size_t)strtoul(v, NULL, 10);
	j = json_loadb(hend + 4, body_len, 0, NULL);
	if (!json_is_object(j) || !json_is_string(json_object_get(j, "error_code")) ||
	    !json_is_string(json_object_get(j, "description")))
		bad_reply(w, out, len,
			  "an error reply is not a JSON object with error_code and description");
	json_decref(j);
}

/* Two fixture sessions, restored after every input: "fz-ended" has ended (failed), so that
 * requests on it are validated, then refused 409; "fz-live" runs, with the fake executor
 * above as its executor, so that uploads go through MHD's post processor and executions,
 * listings and downloads complete. */
static void ensure_session(struct server *srv, const char *id, int live)
{
	json_t *rec = NULL, *chg;
	int64_t now = services_now_ms();
	char sock[512];
	sbx_err err;

	sbx_err_clear(&err);
	if (srv->db->d.db->session_get(srv->db->inst, id, &rec, &err) == 0) {
		const char *st = json_string_value(json_object_get(rec, "status"));
		if (live && (!st || strcmp(st, "running") != 0)) {
			chg = json_pack("{s:s, s:n, s:n}", "status", "running", "completed_at",
					"error_message");
			srv->db->d.db->session_update(srv->db->inst, id, chg, NULL, NULL, &err);
			json_decref(chg);
		}
		json_decref(rec);
		return;
	}
	snprintf(sock, sizeof sock, "%s/executor.sock", srv->cfg.data_dir);
	rec = json_pack("{s:s, s:s, s:s, s:s, s:{s:f, s:i, s:i, s:i}, s:s, s:{s:s}, s:i, s:I, s:I,"
			" s:I, s:s, s:s, s:s, s:{s:{s:s, s:s, s:s}}}",
			"id", id, "tenant", "default", "template_id", "shell-basic", "status",
			live ? "running" : "failed", "resources", "cpu", 1.0, "memory_mb", 256,
			"disk_mb", 512, "max_processes", 256, "image",
			"sandbox-template-shell-basic:latest", "env_vars", "A", "1", "timeout", 300,
			"created_at", (json_int_t)now, "updated_at", (json_int_t)now,
			"last_activity_at", (json_int_t)now, "template_runtime_type", "shell",
			"runtime_instance", "none", "runtime_type", "none", "handle", "executor",
			"unix_socket", sock, "url", "http://sandbox", "token", "fuzz");
	if (!live)
		json_object_set_new(rec, "completed_at", json_integer(now));
	if (!rec || srv->db->d.db->session_insert(srv->db->inst, rec, &err) < 0) {
		fprintf(stderr, "%s\n", err.message);
		die("cannot insert a fixture session");
	}
	json_decref(rec);
}

/* Forget the templates an input created: the next input starts from the seeded three. */
static void reset_templates(struct server *srv)
{
	static const char *const seeded[] = {"python-basic", "nodejs-basic", "shell-basic"};
	json_t *q = json_object(), *items = NULL, *t;
	size_t i;
	sbx_err err;

	sbx_err_clear(&err);
	if (srv->db->d.db->template_list(srv->db->inst, q, &items, &err) < 0)
		die("template_list failed");
	json_array_foreach (items, i, t) {
		const char *id = json_string_value(json_object_get(t, "id"));
		int keep = 0;
		for (size_t k = 0; k < 3; k++)
			keep |= id && strcmp(id, seeded[k]) == 0;
		if (id && !keep)
			srv->db->d.db->template_delete(srv->db->inst, id, &err);
	}
	json_decref(items);
	json_decref(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wire w;
	size_t len;
	char *out;
	int64_t deadline;

	frame(data, size, &w);
	out = exchange(&w, &len);
	check_reply(&w, out, len);
	free(out);
	free(w.buf);
	/* The reply is out before on_completed frees the request: wait for it, so that leak
	 * checks and the next input see a quiet server. */
	deadline = now_ms() + 2000;
	while (http_inflight(fuzz_srv) > 0) {
		if (now_ms() > deadline)
			die("a request is still in flight 2 s after its connection closed");
		usleep(100);
	}
	reset_templates(fuzz_srv);
	ensure_session(fuzz_srv, "fz-ended", 0);
	ensure_session(fuzz_srv, "fz-live", 1);
	return 0;
}
