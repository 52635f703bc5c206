/*
 * The `linux` runtime module: descriptor, instance lifecycle and the runtime methods
 * (create, destroy, status, list, nodes, health), built on the other files of the module.
 */
#include "config.h"

#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sched.h>
#include <unistd.h>

#include "plugins/runtime/common/execready.h"
#include "linux.h"

#ifndef SBX_SYSCONF_DIR
#define SBX_SYSCONF_DIR "/usr/local/etc/sandbox"
#endif
#ifndef SBX_LOCALSTATE_DIR
#define SBX_LOCALSTATE_DIR "/usr/local/var/lib/sandbox"
#endif
#ifndef SBX_EXECUTOR_DIR
#define SBX_EXECUTOR_DIR "/usr/local/libexec/sbxd/executor"
#endif

#define LOCKED_FLAGS (ST_NOSUID | ST_NODEV | ST_NOEXEC)

static unsigned long locked_flags(const char *path)
{
	struct statvfs sv;
	return statvfs(path, &sv) == 0 ? (sv.f_flag & LOCKED_FLAGS) : 0;
}

/* Every ancestor of a directory the sandbox's root (a mapped, unprivileged id) must
 * traverse needs o+x. */
static int traversable(const char *path, sbx_err *err)
{
	char p[512];
	char *s;
	struct stat st;

	snprintf(p, sizeof p, "%s", path);
	for (;;) {
		if (stat(p[0] ? p : "/", &st) < 0)
			return sbx_err_set(err, SBX_E_UNAVAILABLE, "stat %s: %s", p,
					   strerror(errno));
		if (!(st.st_mode & S_IXOTH))
			return sbx_err_set(err, SBX_E_UNAVAILABLE,
					   "%s must be searchable by others (chmod o+x) for "
					   "sandboxes to mount from it",
					   p[0] ? p : "/");
		s = strrchr(p, '/');
		if (!s || !p[0])
			break;
		*s = '\0';
	}
	return 0;
}

static void lx_free(struct lx *lx)
{
	if (!lx)
		return;
	free(lx->name);
	free(lx->state_dir);
	free(lx->sbx_dir);
	free(lx->executor_dir);
	json_decref(lx->images);
	free(lx->bpf);
	free(lx->slots_dir);
	if (lx->slots_lock_fd >= 0)
		close(lx->slots_lock_fd);
	free(lx->kids);
	pthread_mutex_destroy(&lx->slot_lock);
	pthread_mutex_destroy(&lx->lock);
	free(lx);
}

static int lx_create(const struct sbx_core_api *core, const char *instance_name,
		     const json_t *config, void **inst, sbx_err *err)
{
	struct lx *lx = calloc(1, sizeof *lx);
	char buf[32];
	int rc, fd;

	if (!lx)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	pthread_mutex_init(&lx->lock, NULL);
	pthread_mutex_init(&lx->slot_lock, NULL);
	lx->slots_lock_fd = -1;
	lx->core = core;
	lx->name = strdup(instance_name ? instance_name : "linux");
	if ((rc = config_parse(lx, config, err)) < 0)
		goto fail;
	if (!lx->state_dir)
		lx->state_dir = rt_path_join(core->data_dir(), "linux");
	if (!lx->executor_dir)
		lx->executor_dir = strdup(SBX_EXECUTOR_DIR);
	lx->sbx_dir = lx->state_dir ? rt_path_join(lx->state_dir, "sandboxes") : NULL;
	lx->kids = calloc(lx->max_sessions, sizeof *lx->kids);
	if (!lx->name || !lx->state_dir || !lx->executor_dir || !lx->sbx_dir || !lx->kids) {
		rc = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto fail;
	}
	if ((mkdir(lx->state_dir, 0711) < 0 && errno != EEXIST) ||
	    (mkdir(lx->sbx_dir, 0711) < 0 && errno != EEXIST)) {
		rc = sbx_err_set(err, SBX_E_UNAVAILABLE, "linux runtime: mkdir %s: %s", lx->sbx_dir,
				 strerror(errno));
		goto fail;
	}
	chmod(lx->state_dir, 0711);
	chmod(lx->sbx_dir, 0711);
	if ((rc = traversable(lx->sbx_dir, err)) < 0 || (rc = rootfs_etc(lx, err)) < 0 ||
	    (rc = cgroup_detect(lx, err)) < 0 || (rc = seccomp_build(lx, err)) < 0 ||
	    (rc = slots_init(lx, err)) < 0)
		goto fail;
	lx->cap_last_cap = 40;
	if ((fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC)) >= 0) {
		ssize_t n = read(fd, buf, sizeof buf - 1);
		if (n > 0) {
			buf[n] = '\0';
			lx->cap_last_cap = atoi(buf);
		}
		close(fd);
	}
	if (gethostname(lx->node, sizeof lx->node) < 0 || !lx->node[0])
		strcpy(lx->node, "local");
	*inst = lx;
	return 0;
fail:
	lx_free(lx);
	return rc;
}

static void lx_destroy(void *inst)
{
	lx_free(inst);
}

/* The sandbox inits this process spawned stay its children whichever process destroys
 * them: reap those that exited (at most once a second; the list is short). */
static void kids_sweep(struct lx *lx, int force)
{
	time_t now = time(NULL);
	unsigned i;

	pthread_mutex_lock(&lx->lock);
	if (force || now != lx->kids_swept) {
		lx->kids_swept = now;
		for (i = 0; i < lx->n_kids;)
			if (waitpid(lx->kids[i], NULL, WNOHANG) != 0)
				lx->kids[i] = lx->kids[--lx->n_kids];
			else
				i++;
	}
	pthread_mutex_unlock(&lx->lock);
}

static void kids_add(struct lx *lx, pid_t pid)
{
	pthread_mutex_lock(&lx->lock);
	if (lx->n_kids < lx->max_sessions)
		lx->kids[lx->n_kids++] = pid;
	pthread_mutex_unlock(&lx->lock);
}

/* Reap a killed sandbox init if it is this process's child (waitpid fails at once with
 * ECHILD otherwise: another process's sandbox is left to it to reap). */
static void kids_reap(struct lx *lx, pid_t pid)
{
	unsigned i;

	pthread_mutex_lock(&lx->lock);
	for (i = 0; i < lx->n_kids; i++)
		if (lx->kids[i] == pid) {
			lx->kids[i] = lx->kids[--lx->n_kids];
			break;
		}
	pthread_mutex_unlock(&lx->lock);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static int wants_python(const json_t *spec, const char *image, const json_t *entry)
{
	const char *rt = json_string_value(json_object_get(spec, "runtime_type"));
	const json_t *langs = json_object_get(entry, "languages");
	const json_t *l;
	size_t i;

	if (rt && !strncmp(rt, "python", 6))
		return 1;
	if (image && strstr(image, "python"))
		return 1;
	json_array_foreach (langs, i, l)
		if (json_is_string(l) && !strcmp(json_string_value(l), "python"))
			return 1;
	return 0;
}

/* Fill the child's arguments; everything it touches is prepared here. */
static int child_args(struct lx *lx, struct lx_child_args *a, const char *dir, const char *root,
		      long disk_mb, int python, sbx_err *err)
{
	static const char *const tops[] = {"bin", "lib", "lib64", "sbin"};
	static char *const envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/workspace",
				     "LANG=C.UTF-8", NULL};
	static char *const argv[] = {"/opt/sbx/lib/ld-linux-x86-64.so.2", "--library-path",
				     "/opt/sbx/lib", "/opt/sbx/bin/sbx-executor", "--socket",
				     "/run/sbx/executor.sock", "--workspace", "/workspace",
				     "--shims", "/opt/sbx/shims",
				     /* the core enforces server.max_upload; the workspace's size
				      * limit bounds what the executor can store anyway */
				     "--max-upload", "1099511627776"};
	const char *base = strcmp(root, "host") ? root : "";
	struct rlimit nofile;
	size_t i, n;

	a->dir = dir;
	snprintf(a->root, sizeof a->root, "%s/root", dir);
	snprintf(a->etc, sizeof a->etc, "%s/etc", lx->state_dir);
	snprintf(a->run, sizeof a->run, "%s/run", dir);
	a->executor_dir = lx->executor_dir;
	a->exe_flags = locked_flags(lx->executor_dir);
	a->state_flags = locked_flags(lx->state_dir);

	/* /usr is always a bind; /bin ... follow the image (symlinks on merged-usr). */
	snprintf(a->top[0].name, sizeof a->top[0].name, "usr");
	snprintf(a->top[0].target, sizeof a->top[0].target, "%s/usr", base);
	a->top[0].what = "mount /usr";
	a->usr_flags = locked_flags(a->top[0].target);
	a->n_top = 1;
	for (i = 0; i < sizeof tops / sizeof *tops; i++) {
		struct lx_top *t = &a->top[a->n_top];
		char src[600];
		struct stat st;
		ssize_t l;

		snprintf(src, sizeof src, "%s/%s", base, tops[i]);
		if (lstat(src, &st) < 0)
			continue;
		snprintf(t->name, sizeof t->name, "%s", tops[i]);
		t->what = "mount a top-level directory";
		if (S_ISLNK(st.st_mode)) {
			l = readlink(src, t->target, sizeof t->target - 1);
			if (l <= 0)
				continue;
			t->target[l] = '\0';
			t->is_link = 1;
		} else if (S_ISDIR(st.st_mode)) {
			snprintf(t->target, sizeof t->target, "%s", src);
		} else {
			continue;
		}
		a->n_top++;
	}
	/* Hide sbxd's configuration and data directories if the host's /usr holds them. */
	a->n_masks = 0;
	if (!base[0]) {
		const char *hide[] = {SBX_SYSCONF_DIR, SBX_LOCALSTATE_DIR, lx->core->data_dir(),
				      lx->state_dir};
		for (i = 0; i < sizeof hide / sizeof *hide; i++) {
			char real[PATH_MAX];
			size_t j;
			int dup = 0;

			if (!hide[i] || !realpath(hide[i], real) || strncmp(real, "/usr/", 5) ||
			    strlen(real) >= sizeof a->masks[0])
				continue;
			for (j = 0; j < (size_t)a->n_masks; j++)
				dup |= !strcmp(a->masks[j], real);
			if (!dup && a->n_masks < (int)(sizeof a->masks / sizeof *a->masks))
				snprintf(a->masks[a->n_masks++], sizeof a->masks[0], "%s", real);
		}
	}
	if (base[0]) {
		struct stat st;
		if (stat(a->top[0].target, &st) < 0 || !S_ISDIR(st.st_mode))
			return sbx_err_set(err, SBX_E_INVALID, "image root %s has no usr directory",
					   root);
	}

	snprintf(a->tmp_opts, sizeof a->tmp_opts, "size=%um,mode=1777,nr_inodes=65536",
		 lx->tmp_size_mb);
	snprintf(a->ws_opts, sizeof a->ws_opts, "size=%ldm,mode=0755,uid=%u,gid=%u", disk_mb,
		 LX_SANDBOX_UID, LX_SANDBOX_UID);
	a->cap_last_cap = lx->cap_last_cap;
	a->prog.len = lx->bpf_len;
	a->prog.filter = lx->bpf;

	getrlimit(RLIMIT_NOFILE, &nofile);
	a->n_rl = 0;
	a->rl[a->n_rl++] =
	    (struct rlimit_pair){RLIMIT_NOFILE, nofile.rlim_max < 4096 ? nofile.rlim_max : 4096,
				 nofile.rlim_max < 4096 ? nofile.rlim_max : 4096};
	a->rl[a->n_rl++] = (struct rlimit_pair){RLIMIT_CORE, 0, 0};

	n = 0;
	for (i = 0; i < sizeof argv / sizeof *argv; i++)
		a->argv[n++] = argv[i];
	if (python) {
		a->argv[n++] = "--preload";
		a->argv[n++] = "python";
	}
	a->argv[n] = NULL;
	for (i = 0; envp[i]; i++)
		a->envp[i] = envp[i];
	a->envp[i] = NULL;
	return 0;
}

static double num(const json_t *o, const char *k, double def)
{
	const json_t *v = json_object_get(o, k);
	return json_is_number(v) ? json_number_value(v) : def;
}

static int lx_sandbox_create(void *inst, const json_t *spec, json_t **handle, sbx_err *err)
{
	struct lx *lx = inst;
	const char *image = json_string_value(json_object_get(spec, "image"));
	const char *session = json_string_value(json_object_get(spec, "session_id"));
	const json_t *res = json_object_get(spec, "resources");
	const char *root;
	struct lx_child_args a;
	unsigned char rnd[16];
	char id[40], dir[512], log_path[600], sock[600];
	double cpu = num(res, "cpu", 1.0);
	long mem = (long)num(res, "memory_mb", 512), disk = (long)num(res, "disk_mb", 1024);
	long procs = (long)num(res, "max_processes", 128);
	int slot = -1, claim_fd = -1, rc, cg = 0, dir_made = 0;
	pid_t pid = -1;
	json_t *h = NULL;
	size_t i;

	memset(&a, 0, sizeof a);
	a.log_fd = a.null_fd = -1;
	if (!(root = catalogue_lookup(lx, image, err)))
		return -SBX_E_INVALID;
	if (cpu <= 0 || cpu > 1024 || mem < 16 || disk < 1 || procs < 8)
		return sbx_err_set(
		    err, SBX_E_INVALID,
		    "resources out of range (cpu > 0, memory_mb >= 16, disk_mb >= 1, "
		    "max_processes >= 8)");
	if (lx->core->random_bytes(rnd, sizeof rnd) < 0)
		return sbx_err_set(err, SBX_E_INTERNAL, "random_bytes failed");
	memcpy(id, "lx-", 3);
	for (i = 0; i < sizeof rnd; i++)
		snprintf(id + 3 + 2 * i, 3, "%02x", rnd[i]);
	kids_sweep(lx, 0);
	/* The claim stays locked (claim_fd) until this create has recorded or removed the
	 * sandbox: no other process takes it for stale meanwhile. */
	if ((slot = slot_claim(lx, id, &claim_fd, err)) < 0)
		return slot;
	snprintf(dir, sizeof dir, "%s/%s", lx->sbx_dir, id);
	snprintf(log_path, sizeof log_path, "%s/executor.log", dir);
	snprintf(sock, sizeof sock, "%s/run/executor.sock", dir);
	a.id_base = lx->uid_base + (unsigned)slot * LX_IDS_PER_SANDBOX;

	if ((rc = rootfs_prepare(lx, dir, a.id_base, err)) < 0)
		goto fail;
	dir_made = 1;
	if ((rc = child_args(lx, &a, dir, root, disk,
			     wants_python(spec, image, json_object_get(lx->images, image)), err)) <
	    0)
		goto fail;
	a.log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	a.null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (a.log_fd < 0 || a.null_fd < 0) {
		rc = sbx_err_set(err, SBX_E_UNAVAILABLE, "open %s: %s", log_path, strerror(errno));
		goto fail;
	}
	if ((rc = cgroup_create(lx, id, cpu, mem, procs, err)) < 0)
		goto fail;
	cg = 1;
	if ((rc = spawn_sandbox(lx, &a, id, &pid, err)) < 0)
		goto fail;
	close(a.log_fd);
	close(a.null_fd);
	a.log_fd = a.null_fd = -1;

	h = json_pack("{s:s, s:s?, s:s, s:i, s:I, s:n, s:{s:s, s:s}, s:i, s:s, s:{s:f, s:I, "
		      "s:I, s:I}}",
		      "sandbox_id", id, "session_id", session, "node", lx->node, "pid", (int)pid,
		      "pid_start_time", (json_int_t)spawn_start_time(pid), "workspace_path",
		      "executor", "unix_socket", sock, "url", "http://sandbox", "slot", slot,
		      "image", image, "resources", "cpu", cpu, "memory_mb", (json_int_t)mem,
		      "disk_mb", (json_int_t)disk, "max_processes", (json_int_t)procs);
	if (!h) {
		rc = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		goto fail;
	}
	if (json_is_string(json_object_get(spec, "pool_owner"))) /* a warm-pool sandbox */
		json_object_set(h, "pool_owner", json_object_get(spec, "pool_owner"));
	/* Persist while the executor starts up (the fsyncs overlap its start-up). */
	if ((rc = state_save(dir, h, err)) < 0)
		goto fail;
	if ((rc = ready_wait(lx, sock, pid, log_path, err)) < 0)
		goto fail;
	/* The executor has made its socket; from now on nothing in the sandbox may add,
	 * replace or remove entries of this host directory (host disk use, or a symlink in
	 * place of the socket that the core would follow on the host). Host root is not
	 * mapped in the sandbox, so the sandbox user cannot chmod it back. */
	if (chown(a.run, 0, 0) < 0 || chmod(a.run, 0755) < 0) {
		rc = sbx_err_set(err, SBX_E_UNAVAILABLE, "lock %s: %s", a.run, strerror(errno));
		goto fail;
	}
	kids_add(lx, pid);
	close(claim_fd);
	*handle = h;
	lx->core->log(lx->name, SBX_LOG_INFO, "event=sandbox_created sandbox=%s session=%s pid=%d",
		      id, session ? session : "-", (int)pid);
	return 0;
fail:
	json_decref(h);
	if (a.log_fd >= 0)
		close(a.log_fd);
	if (a.null_fd >= 0)
		close(a.null_fd);
	if (cg)
		cgroup_kill_all(lx, id);
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (cg)
		cgroup_remove(lx, id);
	if (dir_made)
		rootfs_remove(dir);
	slot_release(lx, slot, id);
	close(claim_fd);
	return rc;
}

static int lx_sandbox_destroy(void *inst, const json_t *handle, sbx_err *err)
{
	struct lx *lx = inst;
	const char *id = json_string_value(json_object_get(handle, "sandbox_id"));
	pid_t pid = (pid_t)json_integer_value(json_object_get(handle, "pid"));
	unsigned long long start =
	    (unsigned long long)json_integer_value(json_object_get(handle, "pid_start_time"));
	char dir[512];
	json_t *saved;
	json_int_t slot = -1;
	int ours;

	if (!slot_id_valid(id))
		return sbx_err_set(err, SBX_E_INVALID, "not a linux runtime handle");
	snprintf(dir, sizeof dir, "%s/%s", lx->sbx_dir, id);
	/* The slot comes from our own record, not from the caller's copy. */
	if ((saved = state_load(dir))) {
		slot = json_integer_value(json_object_get(saved, "slot"));
		json_decref(saved);
	}
	ours = pid > 1 && start && spawn_start_time(pid) == start;
	if (cgroup_kill_all(lx, id) < 0 && ours)
		kill(pid, SIGKILL);
	if (ours) {
		kill(pid, SIGKILL);
		kids_reap(lx, pid); /* a sandbox another process made is its child to reap */
	}
	cgroup_remove(lx, id);
	if (rm_tree(dir) < 0)
		return sbx_err_set(err, SBX_E_INTERNAL, "remove %s: %s", dir, strerror(errno));
	/* After the directory: a claim without one is stale for every process. */
	if (saved)
		slot_release(lx, (int)slot, id);
	lx->core->log(lx->name, SBX_LOG_INFO, "event=sandbox_destroyed sandbox=%s", id);
	return 0;
}

/* Keep executor.log bounded: O_APPEND writers continue at the new end. */
static void trim_log(const char *dir)
{
	char p[600];
	struct stat st;

	snprintf(p, sizeof p, "%s/executor.log", dir);
	if (stat(p, &st) == 0 && st.st_size > (off_t)LX_LOG_MAX)
		truncate(p, 0);
}

static int lx_sandbox_status(void *inst, const json_t *handle, json_t **status, sbx_err *err)
{
	struct lx *lx = inst;
	const char *id = json_string_value(json_object_get(handle, "sandbox_id"));
	pid_t pid = (pid_t)json_integer_value(json_object_get(handle, "pid"));
	unsigned long long start =
	    (unsigned long long)json_integer_value(json_object_get(handle, "pid_start_time"));
	char dir[512], sock[600];
	struct stat st;
	const char *state = "running", *reason = NULL;
	int oom;

	if (!slot_id_valid(id))
		return sbx_err_set(err, SBX_E_INVALID, "not a linux runtime handle");
	snprintf(dir, sizeof dir, "%s/%s", lx->sbx_dir, id);
	snprintf(sock, sizeof sock, "%s/run/executor.sock", dir);
	if (stat(dir, &st) < 0) {
		state = "missing";
		reason = "the sandbox's directory is gone";
	} else if (pid <= 1 || spawn_start_time(pid) != start) {
		state = "exited";
		reason = "the sandbox's init process is gone";
	} else if (stat(sock, &st) < 0) {
		state = "exited";
		reason = "the executor socket is gone";
	} else {
		char p[64], buf[512], *s;
		int fd;
		ssize_t n;
		/* A zombie init is an exited sandbox: reap it if it is our child. */
		snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
		if ((fd = open(p, O_RDONLY | O_CLOEXEC)) >= 0) {
			n = read(fd, buf, sizeof buf - 1);
			close(fd);
			buf[n > 0 ? n : 0] = '\0';
			s = strrchr(buf, ')');
			if (s && s[1] == ' ' && (s[2] == 'Z' || s[2] == 'X')) {
				state = "exited";
				reason = "the executor exited";
			}
		}
		trim_log(dir);
	}
	oom = cgroup_oom_killed(lx, id);
	*status = json_pack("{s:s, s:s?}", "state", state, "reason", reason);
	if (*status && oom)
		json_object_set_new(*status, "oom_killed", json_true());
	return *status ? 0 : sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
}

static int lx_sandbox_list(void *inst, json_t **handles, sbx_err *err)
{
	struct lx *lx = inst;
	DIR *d = opendir(lx->sbx_dir);
	struct dirent *e;
	json_t *arr = json_array();

	kids_sweep(lx, 0);
	if (!arr || !d) {
		json_decref(arr);
		if (d)
			closedir(d);
		return sbx_err_set(err, SBX_E_UNAVAILABLE, "list %s: %s", lx->sbx_dir,
				   strerror(errno));
	}
	while ((e = readdir(d))) {
		char dir[512];
		json_t *h;

		if (!slot_id_valid(e->d_name))
			continue;
		snprintf(dir, sizeof dir, "%s/%s", lx->sbx_dir, e->d_name);
		if ((h = state_load(dir)))
			json_array_append_new(arr, h);
	}
	closedir(d);
	*handles = arr;
	return 0;
}

static long mem_total_mb(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[128];
	long kb = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "MemTotal: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb / 1024;
}

/* Can this process still make a user namespace? (fork-free: a bare clone that exits) */
static int userns_usable(void)
{
	int st;
	pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);

	if (pid == 0)
		_exit(0);
	if (pid < 0)
		return 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int lx_health(void *inst, json_t **detail, sbx_err *err)
{
	struct lx *lx = inst;
	json_t *d = json_object();
	char p[600];
	int fd, rc = 0;

	if (!d)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	rc = cgroup_check(lx, d, err);
	snprintf(p, sizeof p, "%s/.health-XXXXXX", lx->state_dir);
	if (rc == 0) {
		if ((fd = mkstemp(p)) < 0)
			rc = sbx_err_set(err, SBX_E_UNAVAILABLE, "state_dir %s not writable: %s",
					 lx->state_dir, strerror(errno));
		else {
			close(fd);
			unlink(p);
		}
	}
	snprintf(p, sizeof p, "%s/bin/sbx-executor", lx->executor_dir);
	if (rc == 0 && access(p, R_OK) < 0)
		rc = sbx_err_set(err, SBX_E_UNAVAILABLE, "executor bundle missing: %s", p);
	snprintf(p, sizeof p, "%s/lib/ld-linux-x86-64.so.2", lx->executor_dir);
	if (rc == 0 && access(p, R_OK) < 0)
		rc = sbx_err_set(err, SBX_E_UNAVAILABLE, "executor bundle has no loader: %s", p);
	if (rc == 0 && !userns_usable())
		rc = sbx_err_set(err, SBX_E_UNAVAILABLE, "user namespaces are not usable");
	json_object_set_new(d, "state_dir", json_string(lx->state_dir));
	json_object_set_new(d, "executor_dir", json_string(lx->executor_dir));
	json_object_set_new(d, "healthy", json_boolean(rc == 0));
	*detail = d;
	return rc;
}

static int lx_nodes(void *inst, json_t **nodes, sbx_err *err)
{
	struct lx *lx = inst;
	json_t *list = NULL, *h, *node, *images = json_array(), *v;
	const char *k;
	sbx_err herr;
	double cpu = 0;
	long mem = 0, n = 0;
	size_t i;
	int rc;

	if ((rc = lx_sandbox_list(lx, &list, err)) < 0) {
		json_decref(images);
		return rc;
	}
	json_object_foreach (lx->images, k, v) /* every catalogue image is "cached" here */
		json_array_append_new(images, json_string(k));
	json_array_foreach (list, i, h) {
		json_t *st = NULL;
		const json_t *res = json_object_get(h, "resources");
		if (lx_sandbox_status(lx, h, &st, &herr) == 0 &&
		    !strcmp(json_string_value(json_object_get(st, "state")), "running")) {
			cpu += num(res, "cpu", 0);
			mem += (long)num(res, "memory_mb", 0);
			n++;
		}
		json_decref(st);
	}
	json_decref(list);
	node = json_pack("{s:s, s:b, s:{s:I, s:I, s:I}, s:{s:f, s:I, s:I}, s:[], s:o}", "id",
			 lx->node, "healthy", lx_health(lx, &h, &herr) == 0, "capacity", "cpu",
			 (json_int_t)sysconf(_SC_NPROCESSORS_ONLN), "memory_mb",
			 (json_int_t)mem_total_mb(), "max_sessions", (json_int_t)lx->max_sessions,
			 "allocated", "cpu", cpu, "memory_mb", (json_int_t)mem, "sessions",
			 (json_int_t)n, "templates_warm", "images_cached", images);
	json_decref(h);
	if (!node)
		return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
	*nodes = json_pack("[o]", node);
	return *nodes ? 0 : sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
}

static const struct sbx_runtime_plugin descriptor = {
    .hdr = SBX_PLUGIN_HEADER(SBX_KIND_RUNTIME, struct sbx_runtime_plugin, "linux", "0.1.0",
			     "sandboxes from namespaces, cgroups and seccomp on this host"),
    .life = {.create = lx_create, .destroy = lx_destroy},
    .sandbox_create = lx_sandbox_create,
    .sandbox_destroy = lx_sandbox_destroy,
    .sandbox_status = lx_sandbox_status,
    .sandbox_list = lx_sandbox_list,
    .nodes = lx_nodes,
    .health = lx_health,
};

SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void);
SBX_EXPORT const struct sbx_plugin_header *sbx_plugin_entry(void)
{
	return &descriptor.hdr;
}
