/*
 * Key management: `sbxd keys ...` loads only the configured auth instances and calls the
 * key-owning one's manage(); the running daemon notices the change through the plugin's
 * own store. The HTTP side (admin role) is in api_keys.c.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpc.h"
#include "keys.h"
#include "loader.h"
#include "log.h"
#include "metrics.h"
#include "services.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: sbxd keys create --tenant T --role admin|user|read-only [--name N]\n"
		   "                        [--expires-in DAYS] [--config FILE]\n"
		   "       sbxd keys list [--tenant T] [--config FILE]\n"
		   "       sbxd keys get ID [--config FILE]\n"
		   "       sbxd keys revoke ID [--config FILE]\n"
		   "The new key is printed once, by create; only its hash is stored.\n");
}

int keys_cli_main(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
					     {"tenant", required_argument, NULL, 't'},
					     {"role", required_argument, NULL, 'r'},
					     {"name", required_argument, NULL, 'n'},
					     {"expires-in", required_argument, NULL, 'e'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *config = NULL, *tenant = NULL, *role = NULL, *name = NULL, *cmd;
	char cfgpath[4096], errbuf[8192], msg[1024];
	struct server srv;
	struct plugin *mgr = NULL;
	json_t *op = NULL, *res = NULL;
	double days = 0;
	int c, rc = 1;
	sbx_err err;

	memset(&srv, 0, sizeof srv);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "c:t:r:n:e:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 't':
			tenant = optarg;
			break;
		case 'r':
			role = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'e':
			days = strtod(optarg, NULL);
			if (days <= 0) {
				fprintf(
				    stderr,
				    "sbxd keys: --expires-in takes a positive number of days\n");
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (strcmp(cmd, "create") == 0) {
		if (!tenant || !role) {
			fprintf(stderr, "sbxd keys create: --tenant and --role are required\n");
			return 2;
		}
		op = json_pack("{s:s, s:s, s:s}", "op", "create", "tenant", tenant, "role", role);
		if (name)
			json_object_set_new(op, "name", json_string(name));
		if (days > 0)
			json_object_set_new(
			    op, "expires_at",
			    json_integer(services_now_ms() + (json_int_t)(days * 86400000.0)));
	} else if (strcmp(cmd, "list") == 0) {
		op = json_pack("{s:s}", "op", "list");
		if (tenant)
			json_object_set_new(op, "tenant", json_string(tenant));
	} else if ((strcmp(cmd, "revoke") == 0 || strcmp(cmd, "get") == 0) && optind < argc) {
		op = json_pack("{s:s, s:s}", "op", cmd, "id", argv[optind]);
	} else {
		usage(stderr);
		return 2;
	}
	if (!config) {
		snprintf(cfgpath, sizeof cfgpath, "%s/sbxd.conf", SBX_SYSCONF_DIR);
		config = cfgpath;
	}
	if (conf_load(&srv.cfg, config, errbuf, sizeof errbuf) < 0) {
		fprintf(stderr, "sbxd: configuration errors:\n%s\n", errbuf);
		goto out;
	}
	log_set_level(SBX_LOG_WARN);
	srv.metrics = metrics_new();
	if (httpc_global_init() < 0 || loader_init() < 0 || !srv.metrics)
		goto out;
	services_init(&srv);
	for (size_t i = 0; i < srv.cfg.n_plugins && !mgr; i++) {
		const struct plugin_spec *ps = &srv.cfg.plugins[i];
		struct plugin *p;
		if (ps->kind != SBX_KIND_AUTH)
			continue;
		p = calloc(1, sizeof *p);
		if (!p || loader_open(ps, srv.cfg.plugins_dir, p, msg, sizeof msg) < 0) {
			fprintf(stderr, "sbxd: %s\n", p ? msg : "out of memory");
			free(p);
			goto out;
		}
		if (!SBX_HAS_MEMBER(p->d.auth, struct sbx_auth_plugin, manage)) {
			loader_close(p);
			free(p);
			continue;
		}
		sbx_err_clear(&err);
		if (p->d.any->life.create(&srv.api, ps->name, ps->config, &p->inst, &err) < 0) {
			fprintf(stderr, "sbxd: plugin '%s': create failed: %s\n", ps->name,
				err.message);
			loader_close(p);
			free(p);
			goto out;
		}
		mgr = p;
	}
	if (!mgr) {
		fprintf(stderr,
			"sbxd keys: %s configures no auth plugin that manages keys; add "
			"{ kind = \"auth\"; module = \"apikey\"; } to plugins\n",
			config);
		goto out;
	}
	sbx_err_clear(&err);
	if (mgr->d.auth->manage(mgr->inst, op, &res, &err) < 0) {
		fprintf(stderr, "sbxd keys %s: %s\n", cmd, err.message);
	} else {
		char *s = json_dumps(res, JSON_INDENT(2));
		printf("%s\n", s ? s : "{}");
		if (strcmp(cmd, "create") == 0)
			fprintf(stderr, "sbxd keys: store the key now; it is not shown again "
					"(only its hash is kept)\n");
		free(s);
		rc = 0;
	}
out:
	if (mgr) {
		mgr->d.any->life.destroy(mgr->inst);
		loader_close(mgr);
		free(mgr);
	}
	json_decref(op);
	json_decref(res);
	metrics_free(srv.metrics);
	conf_free(&srv.cfg);
	return rc;
}
