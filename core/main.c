/*
 * sbxd: parse arguments, load the configuration and plugins, recover state, serve the API
 * until SIGTERM/SIGINT, then shut down in order (stop accepting, let requests finish,
 * stop services, stop and destroy plugins).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "execs.h"
#include "http.h"
#include "httpc.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "quotas.h"
#include "leases.h"
#include "probe.h"
#include "recovery.h"
#include "warm.h"
#include "server.h"
#include "services.h"
#include "sessions.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sbxd --config FILE [--listen HOST:PORT] [--data-dir DIR] [--check-config]\n"
		"            [--version]\n"
		"  --config FILE      libconfig file (default %s/sbxd.conf)\n"
		"  --listen HOST:PORT override server.listen\n"
		"  --data-dir DIR     override server.data_dir\n"
		"  --check-config     load and vet the configuration and every plugin, then exit\n"
		"  --version          print the version and the plugin ABI, then exit\n",
		SBX_SYSCONF_DIR);
}

static int mkdir_p(const char *path)
{
	char tmp[4096];
	size_t n = strlen(path);
	if (n >= sizeof tmp)
		return -1;
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	return mkdir(tmp, 0711) < 0 && errno != EEXIST ? -1 : 0;
}

static int is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (strcmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

static void thread_hook(void *arg, int init)
{
	services_thread_plugins(arg, init);
}

/* Load, vet and create every configured instance. Prints every problem found. */
static int load_plugins(struct server *srv)
{
	char msg[1024];
	int bad = 0;

	srv->plugins = calloc(srv->cfg.n_plugins + 1, sizeof *srv->plugins);
	srv->runtimes = calloc(srv->cfg.n_plugins + 1, sizeof *srv->runtimes);
	srv->auths = calloc(srv->cfg.n_plugins + 1, sizeof *srv->auths);
	if (!srv->plugins || !srv->runtimes || !srv->auths)
		return -1;
	for (size_t i = 0; i < srv->cfg.n_plugins; i++) {
		const struct plugin_spec *ps = &srv->cfg.plugins[i];
		struct plugin *p = &srv->plugins[srv->n_plugins];
		sbx_err err;
		int rc;

		if (loader_open(ps, srv->cfg.plugins_dir, p, msg, sizeof msg) < 0) {
			fprintf(stderr, "sbxd: %s\n", msg);
			bad++;
			continue;
		}
		sbx_err_clear(&err);
		rc = p->d.any->life.create(&srv->api, ps->name, ps->config, &p->inst, &err);
		if (rc < 0) {
			fprintf(stderr, "sbxd: plugin '%s' (%s): create failed: %s\n", ps->name,
				p->path, err.message[0] ? err.message : "no reason given");
			loader_close(p);
			bad++;
			continue;
		}
		srv->n_plugins++;
		switch (ps->kind) {
		case SBX_KIND_DB:
			if (srv->db) {
				fprintf(stderr,
					"sbxd: %s:%d: a second db plugin ('%s') is configured; "
					"exactly one is allowed\n",
					srv->cfg.file, ps->line, ps->name);
				bad++;
			} else
				srv->db = p;
			break;
		case SBX_KIND_STORAGE:
			if (!srv->storage)
				srv->storage = p;
			break;
		case SBX_KIND_POLICY:
			if (!srv->policy)
				srv->policy = p;
			break;
		case SBX_KIND_RUNTIME:
			srv->runtimes[srv->n_runtimes++] = p;
			break;
		case SBX_KIND_AUTH:
			srv->auths[srv->n_auths++] = p;
			break;
		}
	}
	if (!bad && !srv->db) {
		fprintf(stderr,
			"sbxd: %s: no db plugin is configured; add { kind = \"db\"; module = "
			"\"sqlite\"; } to plugins\n",
			srv->cfg.file);
		bad++;
	}
	if (!bad && srv->n_runtimes == 0) {
		fprintf(stderr,
			"sbxd: %s: no runtime plugin is configured; add { kind = \"runtime\"; "
			"module = \"linux\"; } to plugins\n",
			srv->cfg.file);
		bad++;
	}
	return bad ? -1 : 0;
}

static void unload_plugins(struct server *srv)
{
	for (size_t i = srv->n_plugins; i-- > 0;) {
		struct plugin *p = &srv->plugins[i];
		if (p->started && p->d.any->life.stop)
			p->d.any->life.stop(p->inst);
		if (p->inst)
			p->d.any->life.destroy(p->inst);
		loader_close(p);
	}
	free(srv->plugins);
	free(srv->runtimes);
	free(srv->auths);
	srv->plugins = NULL;
	srv->n_plugins = 0;
}

/* On shutdown with shutdown_sandboxes = "destroy": terminate every live session. */
static void destroy_live_sessions(struct server *srv)
{
	json_t *q = json_pack("{s:[s,s], s:i, s:i}", "statuses", "running", "creating", "limit",
			      1000, "offset", 0);
	json_t *page = NULL, *it;
	size_t i;
	sbx_err err;

	if (srv->db->d.db->session_list(srv->db->inst, q, &page, &err) == 0)
		json_array_foreach (json_object_get(page, "items"), i, it)
			sessions_finish(
			    srv, json_string_value(json_object_get(it, "id")), "terminated",
			    "sbxd was stopped with shutdown_sandboxes = destroy", NULL, &err);
	json_decref(q);
	json_decref(page);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
					     {"listen", required_argument, NULL, 'l'},
					     {"data-dir", required_argument, NULL, 'd'},
					     {"check-config", no_argument, NULL, 'C'},
					     {"version", no_argument, NULL, 'V'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	struct server srv;
	char errbuf[8192], msg[512], cfgpath[4096];
	const char *config = NULL, *listen = NULL, *data_dir = NULL;
	int check = 0, c, rc = 1, sig;
	sigset_t set;
	sbx_err err;

	if (argc >= 2 && strcmp(argv[1], "keys") == 0)
		return keys_cli_main(argc - 1, argv + 1);
	memset(&srv, 0, sizeof srv);
	pthread_mutex_init(&srv.policy_mu, NULL);
	while ((c = getopt_long(argc, argv, "c:l:d:CVh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case 'd':
			data_dir = optarg;
			break;
		case 'C':
			check = 1;
			break;
		case 'V':
			printf("sbxd %s (plugin ABI %d.%d)\n", PACKAGE_VERSION, SBX_ABI_MAJOR,
			       SBX_ABI_MINOR);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sbxd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!config) {
		snprintf(cfgpath, sizeof cfgpath, "%s/sbxd.conf", SBX_SYSCONF_DIR);
		config = cfgpath;
	}
	if (conf_load(&srv.cfg, config, errbuf, sizeof errbuf) < 0) {
		fprintf(stderr, "sbxd: configuration errors:\n%s\n", errbuf);
		conf_free(&srv.cfg);
		return 1;
	}
	if (listen) {
		free(srv.cfg.listen_host);
		srv.cfg.listen_host = NULL;
		if (conf_parse_listen(listen, &srv.cfg.listen_host, &srv.cfg.listen_port) < 0) {
			fprintf(stderr, "sbxd: --listen '%s' is not HOST:PORT\n", listen);
			goto out_cfg;
		}
	}
	if (data_dir) {
		free(srv.cfg.data_dir);
		srv.cfg.data_dir = strdup(data_dir);
	}
	if (srv.cfg.data_dir[0] != '/') {
		char *abs = realpath(".", NULL);
		char buf[4096];
		snprintf(buf, sizeof buf, "%s/%s", abs ? abs : ".", srv.cfg.data_dir);
		free(abs);
		free(srv.cfg.data_dir);
		srv.cfg.data_dir = strdup(buf);
	}
	log_set_level(srv.cfg.log_level);
	if (mkdir_p(srv.cfg.data_dir) < 0) {
		fprintf(stderr,
			"sbxd: cannot create the data directory %s: %s (set server.data_dir or "
			"--data-dir)\n",
			srv.cfg.data_dir, strerror(errno));
		goto out_cfg;
	}
	{
		/* Sandboxes run as unprivileged mapped ids and mount from under the data dir, so
		 * it must be searchable (not readable) by others. */
		struct stat st;
		if (stat(srv.cfg.data_dir, &st) == 0 && !(st.st_mode & S_IXOTH) &&
		    chmod(srv.cfg.data_dir, (st.st_mode & 07777) | S_IXOTH) == 0)
			LOG_I("data_dir %s made searchable by others (o+x) for the sandboxes",
			      srv.cfg.data_dir);
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread inherits; main waits below */

	srv.started_ms = services_now_ms();
	services_new_id("", srv.instance_id, sizeof srv.instance_id);
	if (httpc_global_init() < 0 || loader_init() < 0 || !(srv.metrics = metrics_new())) {
		fprintf(stderr, "sbxd: cannot initialise libcurl/libltdl\n");
		goto out_cfg;
	}
	services_init(&srv);
	if (!is_loopback(srv.cfg.listen_host)) {
		int has_auth = 0;
		for (size_t i = 0; i < srv.cfg.n_plugins; i++)
			has_auth |= srv.cfg.plugins[i].kind == SBX_KIND_AUTH;
		if (!has_auth) {
			fprintf(stderr,
				"sbxd: refusing to listen on %s:%d without an auth plugin: anyone "
				"who can reach it "
				"could run code. Listen on 127.0.0.1 (behind an authenticating "
				"proxy if it must be "
				"reachable), or configure an auth plugin ({ kind = \"auth\"; ... "
				"}) in plugins.\n",
				srv.cfg.listen_host, srv.cfg.listen_port);
			goto out_lib;
		}
	}
	if (load_plugins(&srv) < 0)
		goto out_plugins;
	if (check) {
		printf("configuration OK: %zu plugin instance(s)\n", srv.n_plugins);
		rc = 0;
		goto out_plugins;
	}
	for (size_t i = 0; i < srv.n_plugins; i++) {
		struct plugin *p = &srv.plugins[i];
		sbx_err_clear(&err);
		if (p->d.any->life.start && p->d.any->life.start(p->inst, &err) < 0) {
			fprintf(stderr, "sbxd: plugin '%s' failed to start: %s\n", p->spec->name,
				err.message);
			goto out_plugins;
		}
		p->started = 1;
	}
	thread_hook(&srv, 1);
	sbx_err_clear(&err);
	if (templates_seed(&srv, &err) < 0) {
		fprintf(stderr, "sbxd: cannot seed the default templates: %s\n", err.message);
		goto out_thread;
	}
	if (leases_start(&srv) < 0 || recovery_start(&srv) < 0 || quotas_start(&srv) < 0 ||
	    execs_start(&srv) < 0 || sessions_start(&srv) < 0 || probe_start(&srv) < 0 ||
	    warm_start(&srv) < 0)
		goto out_services;
	srv.pool = pool_new(srv.cfg.workers, thread_hook, &srv);
	if (!srv.pool)
		goto out_services;
	if (http_start(&srv, msg, sizeof msg) < 0) {
		fprintf(stderr, "sbxd: %s\n", msg);
		goto out_services;
	}
	LOG_I("listening on http://%s:%d data_dir=%s plugins=%zu workers=%d version=%s",
	      srv.cfg.listen_host, srv.cfg.listen_port, srv.cfg.data_dir, srv.n_plugins,
	      srv.cfg.workers, PACKAGE_VERSION);

	do {
		if (sigwait(&set, &sig) != 0)
			sig = SIGTERM;
	} while (sig != SIGTERM && sig != SIGINT);
	LOG_I("signal %d: shutting down (grace %d s)", sig, srv.cfg.shutdown_grace_s);
	srv.stopping = 1;
	rc = 0;
	http_stop(&srv, srv.cfg.shutdown_grace_s);
out_services:
	srv.stopping = 1;
	execs_stop(&srv);
	if (srv.httpd)
		http_stop(&srv, 0);
	pool_free(srv.pool);
	probe_stop(&srv);
	recovery_stop(&srv);
	warm_stop(&srv);
	sessions_stop(&srv);
	if (srv.cfg.shutdown_destroy && srv.db)
		destroy_live_sessions(&srv);
	leases_stop(&srv);
	quotas_stop(&srv);
out_thread:
	thread_hook(&srv, 0);
out_plugins:
	unload_plugins(&srv);
out_lib:
	metrics_free(srv.metrics);
	loader_exit();
	httpc_global_cleanup();
out_cfg:
	conf_free(&srv.cfg);
	if (rc == 0 && !check)
		LOG_I("stopped");
	return rc;
}
