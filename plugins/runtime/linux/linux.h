/*
 * Internal interface of the `linux` runtime module: the per-instance state and the
 * functions each file of the module offers the others. Nothing here is exported.
 */
#ifndef SBX_RUNTIME_LINUX_H
#define SBX_RUNTIME_LINUX_H

#include <linux/filter.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <sandbox/core.h>
#include <sandbox/runtime.h>

#define LX_IDS_PER_SANDBOX  65536u
#define LX_SANDBOX_UID      1000u
#define LX_LOG_MAX          (4u << 20) /* executor.log is truncated beyond this */
#define LX_READY_TIMEOUT_MS 10000
#define LX_ID_LEN           35    /* "lx-" + 32 hex */
#define LX_SLOTS_MAX        4096u /* the bound of max_sessions */

enum lx_cg_mode { LX_CG_V1 = 1, LX_CG_V2 = 2 };

/* cgroup layout detected at start-up (cgroup.c). */
struct lx_cgroup {
	int mode;
	char v2_root[256]; /* v2: the unified mount; v1: the unified mount if any (kill) */
	char memory[256];  /* v1 hierarchies (empty when absent) */
	char pids[256];
	char cpu[256];
	char freezer[256];
	int has_memsw; /* v1 memory.memsw.* / v2 memory.swap.max */
};

/* One instance of the module (several may be loaded: no globals). */
struct lx {
	const struct sbx_core_api *core;
	char *name;
	char *state_dir; /* <state_dir> */
	char *sbx_dir;   /* <state_dir>/sandboxes */
	char *executor_dir;
	unsigned uid_base;
	unsigned max_sessions;
	unsigned tmp_size_mb;
	int workspace_loop; /* 0 tmpfs (loop ext4: not implemented) */
	json_t *images;     /* object: image name -> {"root": ..., "languages": [...]} */
	struct lx_cgroup cg;
	struct sock_filter *bpf; /* the compiled seccomp filter */
	unsigned short bpf_len;
	int cap_last_cap;
	char node[256];

	/* Slots are claimed on disk (slots.c): every process on the state dir sees them. */
	char *slots_dir;           /* <state_dir>/slots */
	int slots_lock_fd;         /* <state_dir>/slots/.lock: flock serialises removals */
	pthread_mutex_t slot_lock; /* ... between this process's threads */

	pthread_mutex_t lock; /* guards slot_next and kids */
	unsigned slot_next;   /* where the next claim starts looking */
	pid_t *kids;          /* max_sessions entries: sandbox inits this process spawned */
	unsigned n_kids;
	time_t kids_swept;
};

/* config.c */
int config_parse(struct lx *lx, const json_t *config, sbx_err *err);

/* catalogue.c: root (borrowed from lx->images, "host" or an absolute dir) for an image. */
int catalogue_builtin(json_t *images);
const char *catalogue_lookup(const struct lx *lx, const char *image, sbx_err *err);

/* cgroup.c */
int cgroup_detect(struct lx *lx, sbx_err *err);
int cgroup_create(const struct lx *lx, const char *id, double cpu, long memory_mb,
		  long max_processes, sbx_err *err);
int cgroup_attach(const struct lx *lx, const char *id, pid_t pid, sbx_err *err);
int cgroup_kill_all(const struct lx *lx, const char *id);
void cgroup_remove(const struct lx *lx, const char *id);
int cgroup_oom_killed(const struct lx *lx, const char *id);
long cgroup_memory_usage_mb(const struct lx *lx, const char *id);
int cgroup_check(const struct lx *lx, json_t *detail, sbx_err *err);

/* seccomp.c: build lx->bpf once per instance. */
int seccomp_build(struct lx *lx, sbx_err *err);

/* rootfs.c: host-side files of a sandbox. */
int rootfs_etc(const struct lx *lx, sbx_err *err);
int rootfs_prepare(const struct lx *lx, const char *dir, unsigned host_uid, sbx_err *err);
void rootfs_remove(const char *dir);

/* Everything the child needs, prepared before clone() (no allocation after it). */
struct lx_child_args {
	const char *dir; /* <sbx_dir>/<id> */
	char root[1024]; /* <dir>/root */
	char etc[1024];
	char run[1024];
	char ws_src[1024]; /* a host directory to bind as /workspace, or "": tmpfs */
	struct lx_top {    /* /usr, /bin, ...: bind of a directory or a symlink */
		char name[16];
		char target[1024];
		int is_link;
		const char *what;
	} top[6];
	int n_top;
	char masks[4][1024]; /* host directories under the bound /usr hidden by an empty tmpfs */
	int n_masks;
	const char *executor_dir;
	unsigned long usr_flags;   /* locked mount flags of the image's mount (MS_NOSUID ...) */
	unsigned long exe_flags;   /* ... of executor_dir's mount */
	unsigned long state_flags; /* ... of state_dir's mount */
	char tmp_opts[128];
	char ws_opts[128];
	int cap_last_cap;
	unsigned id_base; /* host uid/gid that container 0 maps to */
	struct rlimit_pair {
		int res;
		unsigned long soft, hard;
	} rl[4];
	int n_rl;
	struct sock_fprog prog;
	int sync_fd;  /* read end: parent says go */
	int sync_wfd; /* its write end: the child closes it, so that the parent's death reads
		       * as EOF instead of leaving the child blocked forever */
	int err_fd;   /* write end, O_CLOEXEC: child reports a failure */
	int log_fd;   /* executor stderr/stdout */
	int null_fd;  /* stdin */
	char *argv[16];
	char *envp[4];
};

/* A failure reported by the child: what failed and errno. `what` points into the
 * module's static strings, valid in the parent as well (same image). */
struct lx_child_err {
	const char *what;
	int err;
};

/* child.c: runs in the cloned child; never returns. */
void child_main(const struct lx_child_args *a) __attribute__((noreturn));

/* spawn.c */
int spawn_sandbox(const struct lx *lx, struct lx_child_args *a, const char *id, pid_t *pid,
		  sbx_err *err);
unsigned long long spawn_start_time(pid_t pid);

/* ready.c */
int ready_wait(const struct lx *lx, const char *sock, pid_t pid, const char *log_path,
	       sbx_err *err);

/* slots.c: a claim is held (its lock_fd open) until the create returns; release and
 * reclaim remove a claim only if it still names the sandbox. */
int slot_id_valid(const char *id);
int slots_init(struct lx *lx, sbx_err *err);
int slot_claim(struct lx *lx, const char *id, int *lock_fd, sbx_err *err);
void slot_release(struct lx *lx, int slot, const char *id);

/* state.c */
int state_save(const char *dir, const json_t *handle, sbx_err *err);
json_t *state_load(const char *dir);
int rm_tree(const char *path);

#endif
