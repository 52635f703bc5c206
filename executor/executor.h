/*
 * sbx-executor: the one context struct shared by every part of the agent, the execution
 * record, and the prototypes of each file's public functions (<file>_<verb>).
 */
#ifndef SBX_EXECUTOR_H
#define SBX_EXECUTOR_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <jansson.h>

#define EXEC_VERSION       "1"
#define EXEC_QUEUE_MAX     64
#define EXEC_RETAIN_MAX    1024
#define EXEC_RETAIN_BYTES  (256u << 20) /* result bytes kept for GET /executions/{id} */
#define EXEC_CODE_MAX      (1u << 20)
#define EXEC_EVENT_MAX     (1u << 20)
#define EXEC_BODY_MAX      (3u << 20) /* a whole POST /execute body */
#define EXEC_ENV_MAX       256
#define EXEC_ENV_NAME_MAX  128
#define EXEC_ENV_VALUE_MAX 32768
#define EXEC_ID_MAX        128
#define EXEC_PATH_MAX      4096
#define EXEC_WATCH_MAX     16
#define ARCHIVE_MAX        4 /* GET/PUT /archive tar processes at a time */

/* the base environment of every handler (HOME is the workspace); env entries override it */
#define EXEC_BASE_PATH   "/usr/local/bin:/usr/bin:/bin"
#define EXEC_BASE_TMPDIR "/tmp"
#define EXEC_BASE_LANG   "C.UTF-8"

enum lang { LANG_PYTHON, LANG_JAVASCRIPT, LANG_SHELL };
enum exec_state { ST_QUEUED, ST_RUNNING, ST_DONE };

struct execution {
	char id[EXEC_ID_MAX + 1];
	enum lang lang;
	char *code;
	json_t *event;      /* owned */
	json_t *env;        /* owned, object of strings */
	json_t *session_id; /* owned or NULL */
	long timeout_ms;
	size_t max_output;
	double artifacts_ms; /* spent on the two workspace walks and the hashing, for the log */
	enum exec_state state;
	json_t *result; /* owned once ST_DONE */
	size_t result_bytes;
	/* NDJSON stream for the POST /execute response; freed when done and unread */
	char *stream;
	size_t stream_len, stream_cap;
	int readers;
	pthread_cond_t cond;
	int refs;
	struct execution *next; /* queue link */
};

/* a direct child whose exit the reaper must report (bash/node handlers) */
struct watch {
	pid_t pid;
	int done;
	int status;
	struct rusage ru;
};

struct zygote {
	pid_t pid;      /* 0: not running */
	int sock;       /* -1: not running */
	char buf[4096]; /* partial line from the zygote */
	size_t len;
};

/* a pre-spawned `node node_runner.js --prespawned`, blocked reading its job (idlenode.c) */
struct idle_node {
	pid_t pid;  /* 0: none, or it exited (the reaper clears it) */
	int job;    /* write end of its fd 0: the job, then EOF */
	int ack;    /* read end of its fd 4: one byte once the job was read and applied */
	int out[3]; /* read ends of its stdout, stderr and fd 3 (the result line) */
};

struct ctx {
	/* options */
	const char *socket_path;
	const char *listen_addr;
	char *token;
	const char *workspace;
	char *shims;
	char *python;
	size_t max_output;
	uint64_t max_upload;
	uint64_t max_archive;
	size_t max_artifacts; /* 0: no artifact reporting */
	int preload_python;
	int preload_javascript;
	/* state */
	int ws_fd; /* O_PATH dirfd of the workspace */
	pid_t self;
	double started_at;
	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t queue_cond;
	pthread_cond_t reap_cond;
	pthread_cond_t watch_cond; /* broadcast by the reaper when a watched child exited */
	struct execution *queue_head, *queue_tail;
	int queued;
	struct execution *running;
	struct execution *retained[EXEC_RETAIN_MAX]; /* ring of finished ones */
	size_t retained_next, retained_bytes;
	unsigned long id_counter;
	struct watch watches[EXEC_WATCH_MAX];
	int children;       /* > 0 once something was spawned */
	int wake_r, wake_w; /* reaper -> runner: a watched child exited */
	struct zygote py;
	struct idle_node js;             /* the next javascript execution's process */
	pid_t archive_pids[ARCHIVE_MAX]; /* running tar processes (archive.c), 0 = free slot */
	int stopping;
};

/* request.c: a POST /execute body (any JSON value, borrowed) validated into e, whose code,
 * event, env and session_id it sets (owned by e, freed with it, also on refusal). Returns
 * NULL, or the message of a 400 (a constant, or written into why). Any thread. */
const char *request_parse_execute(const struct ctx *c, const json_t *body, struct execution *e,
				  char *why, size_t wn);

/* registry.c: queue, lookup, retention and the NDJSON stream of executions */
struct execution *registry_new(void);
int registry_submit(struct ctx *c, struct execution *e); /* 0, 409, 429 or 503 */
char *registry_describe(struct ctx *c, const char *id);  /* JSON text, NULL if unknown */
void registry_put(struct ctx *c, struct execution *e);
void registry_emit(struct ctx *c, struct execution *e, json_t *event); /* steals event */
ssize_t registry_stream_read(struct ctx *c, struct execution *e, uint64_t pos, char *buf,
			     size_t max);
void registry_stream_close(struct ctx *c, struct execution *e);
void *registry_worker(void *arg);

/* run.c: one execution from spawn to result */
void run_execution(struct ctx *c, struct execution *e);
char *run_which(const char *prog); /* malloc'd path of prog on the executor's PATH, or NULL */

/* zygote.c: the warm python interpreter */
int zygote_ensure(struct ctx *c);
void zygote_stop(struct ctx *c);

/* idlenode.c: the pre-spawned idle node (one execution per process) */
int idlenode_spawn(struct ctx *c);                       /* c->lock held */
int idlenode_take(struct ctx *c, struct idle_node *out); /* c->lock held */
int idlenode_handoff(struct idle_node *n, const char *job, size_t len, int wait_ms);
void idlenode_discard(struct ctx *c, struct idle_node *n); /* takes c->lock */

/* reaper.c: reaps every child; reports watched ones */
void *reaper_thread(void *arg);
int reaper_watch(struct ctx *c, pid_t pid); /* call with c->lock held */
void reaper_unwatch(struct ctx *c, pid_t pid);
int reaper_reported(struct ctx *c, pid_t pid); /* call with c->lock held */
/* 1 and *status once the watched pid's exit was recorded (the watch is released), else 0;
 * call with c->lock held */
int reaper_take(struct ctx *c, pid_t pid, int *status);

/* procs.c: the process tree below the executor */
int procs_kill_descendants(struct ctx *c, int keep_zygotes);

/* http.c: one HTTP request as seen by the handlers (MHD's con_cls) */
struct request {
	struct MHD_Connection *conn;
	char method[16];
	char *url;
	unsigned int code; /* the status queued, for the log line */
	double t0;
	int is_execute;
	char *body; /* POST /execute body being collected */
	size_t body_len;
	int body_too_big;
	struct upload *up;  /* PUT /files/content in progress (files.c) */
	struct archive *ar; /* GET or PUT /archive in progress (archive.c) */
};

/* files.c: the workspace files API; 0 = keep feeding the body, MHD result otherwise */
struct MHD_Connection;
struct MHD_Response;
struct upload;
int files_handle(struct ctx *c, struct request *rq, const char *data, size_t *size);
void files_upload_free(struct upload *u);

/* walk.c: the workspace tree, never through a symlink. fn gets each entry's path relative to
 * the workspace and lstat (it returns -1 to abort). Returns 0 when complete, 1 when the budget
 * (entries, milliseconds) or a path longer than EXEC_PATH_MAX cut it short, -1 on failure
 * (the workspace unreadable, or fn failed). Any thread. */
typedef int (*walk_fn)(void *arg, const char *rel, const struct stat *st);
int walk_workspace(struct ctx *c, size_t max_entries, double max_ms, walk_fn fn, void *arg);
/* openat2 of rel ("" = the workspace) beneath the workspace, refusing every symlink */
int walk_open(struct ctx *c, const char *rel, int flags);

/* artifacts.c: what an execution created or changed in the workspace. artifacts_snapshot
 * before the handler starts (NULL when --max-artifacts is 0); artifacts_report after the
 * leftover kill adds "artifacts" and "artifacts_truncated" to result and frees before. Runner
 * thread. artifacts_init once at start-up: 0 or -1 (libcrypto did not initialise). */
struct snapshot;
int artifacts_init(void);
struct snapshot *artifacts_snapshot(struct ctx *c);
void artifacts_report(struct ctx *c, struct snapshot *before, json_t *result);

/* archive.c: GET and PUT /archive (tar of the workspace); 0 = keep feeding the body, MHD
 * result otherwise. archive_release when the request ends (kills a tar still running). */
struct archive;
int archive_handle(struct ctx *c, struct request *rq, const char *data, size_t *size);
void archive_release(struct archive *a);

/* http.c */
int http_reply(struct request *rq, unsigned int code, struct MHD_Response *resp);
int http_json(struct request *rq, unsigned int code, json_t *body); /* steals body */
int http_error(struct request *rq, unsigned int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
struct MHD_Daemon *http_start(struct ctx *c, int listen_fd);

double now_ms(void);  /* wall clock (epoch ms) */
double mono_ms(void); /* monotonic clock, for intervals */

#endif
