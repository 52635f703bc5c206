/*
 * The sandbox's first process between clone() and execve() of the executor: mounts the
 * root, pivots into it, isolates the network, drops every privilege and loads seccomp.
 * It runs in a copy of a multithreaded daemon: only syscalls, no allocation, no stdio.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "linux.h"

static __attribute__((noreturn)) void die(const struct lx_child_args *a, const char *what)
{
	struct lx_child_err e = {what, errno};
	ssize_t n = write(a->err_fd, &e, sizeof e);
	(void)n;
	_exit(127);
}

#define TRY(a, call, what)                                                                         \
	do {                                                                                       \
		if ((call) < 0)                                                                    \
			die((a), (what));                                                          \
	} while (0)

static void bind_ro(const struct lx_child_args *a, const char *src, const char *dst,
		    unsigned long locked, const char *what)
{
	TRY(a, mount(src, dst, NULL, MS_BIND | MS_REC, NULL), what);
	TRY(a, mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | locked, NULL), what);
}

/* Bind a host file (a device node, or /dev/null over a /proc file); missing targets are
 * skipped only when `optional`. */
static void bind_file(const struct lx_child_args *a, const char *src, const char *dst, int create,
		      int optional, const char *what)
{
	if (create) {
		int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
		if (fd < 0)
			die(a, what);
		close(fd);
	}
	if (mount(src, dst, NULL, MS_BIND, NULL) < 0 && !(optional && errno == ENOENT))
		die(a, what);
}

static void proc_ro(const struct lx_child_args *a, const char *path, const char *what)
{
	if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) {
		if (errno == ENOENT)
			return;
		die(a, what);
	}
	TRY(a,
	    mount(NULL, path, NULL,
		  MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL),
	    what);
}

static void build_root(const struct lx_child_args *a)
{
	static const char *const devs[] = {"null", "zero", "full", "random", "urandom", "tty"};
	static const char *const masked[] = {"proc/kcore",       "proc/keys",
					     "proc/timer_list",  "proc/latency_stats",
					     "proc/sched_debug", "proc/sysrq-trigger"};
	static const char *const masked_dirs[] = {"proc/acpi", "proc/scsi", "proc/asound"};
	static const char *const ro[] = {"proc/sys", "proc/irq", "proc/bus", "proc/fs"};
	char path[64], src[64];
	size_t i;

	TRY(a, mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "make mounts private");
	TRY(a, mount("tmpfs", a->root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755"),
	    "mount root tmpfs");
	TRY(a, chdir(a->root), "chdir root");
	TRY(a, mkdir("etc", 0755), "mkdir /etc");
	TRY(a, mkdir("proc", 0555), "mkdir /proc");
	TRY(a, mkdir("dev", 0755), "mkdir /dev");
	TRY(a, mkdir("tmp", 01777), "mkdir /tmp");
	TRY(a, mkdir("workspace", 0755), "mkdir /workspace");
	TRY(a, mkdir("run", 0755), "mkdir /run");
	TRY(a, mkdir("opt", 0755), "mkdir /opt");
	TRY(a, mkdir("opt/sbx", 0755), "mkdir /opt/sbx");

	/* /usr and the merged-usr top level (or the image's own). */
	for (i = 0; i < (size_t)a->n_top; i++) {
		const struct lx_top *t = &a->top[i];
		if (t->is_link) {
			TRY(a, symlink(t->target, t->name), "symlink top-level directory");
		} else {
			TRY(a, mkdir(t->name, 0755), "mkdir top-level directory");
			bind_ro(a, t->target, t->name, a->usr_flags, t->what);
		}
	}
	/* The control plane's own configuration and state when they live under /usr
	 * (the /usr/local prefix): secrets and other tenants' data. */
	for (i = 0; i < (size_t)a->n_masks; i++)
		if (mount("tmpfs", a->masks[i] + 1, "tmpfs",
			  MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0755") < 0 &&
		    errno != ENOENT)
			die(a, "mask a control-plane directory under /usr");
	bind_ro(a, a->etc, "etc", a->state_flags, "mount /etc");
	bind_ro(a, a->executor_dir, "opt/sbx", a->exe_flags, "mount /opt/sbx");

	TRY(a, mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL),
	    "mount /proc");
	for (i = 0; i < sizeof masked / sizeof *masked; i++)
		bind_file(a, "/dev/null", masked[i], 0, 1, "mask /proc file");
	for (i = 0; i < sizeof masked_dirs / sizeof *masked_dirs; i++)
		if (mount("tmpfs", masked_dirs[i], "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV,
			  "size=0") < 0 &&
		    errno != ENOENT)
			die(a, "mask /proc directory");
	for (i = 0; i < sizeof ro / sizeof *ro; i++)
		proc_ro(a, ro[i], "make /proc/sys read-only");

	TRY(a, mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755"),
	    "mount /dev");
	for (i = 0; i < sizeof devs / sizeof *devs; i++) {
		memcpy(path, "dev/", 4);
		strcpy(path + 4, devs[i]);
		memcpy(src, "/dev/", 5);
		strcpy(src + 5, devs[i]);
		bind_file(a, src, path, 1, 0, "bind /dev node");
	}
	TRY(a, symlink("/proc/self/fd", "dev/fd"), "symlink /dev/fd");
	TRY(a, symlink("/proc/self/fd/0", "dev/stdin"), "symlink /dev/stdin");
	TRY(a, symlink("/proc/self/fd/1", "dev/stdout"), "symlink /dev/stdout");
	TRY(a, symlink("/proc/self/fd/2", "dev/stderr"), "symlink /dev/stderr");
	TRY(a, mkdir("dev/shm", 01777), "mkdir /dev/shm");
	TRY(a,
	    mount("tmpfs", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "size=64m,mode=1777"),
	    "mount /dev/shm");

	TRY(a, mount("tmpfs", "tmp", "tmpfs", MS_NOSUID | MS_NODEV, a->tmp_opts), "mount /tmp");
	if (a->ws_src[0])
		TRY(a, mount(a->ws_src, "workspace", NULL, MS_BIND, NULL), "mount /workspace");
	else
		TRY(a, mount("tmpfs", "workspace", "tmpfs", MS_NOSUID | MS_NODEV, a->ws_opts),
		    "mount /workspace");

	TRY(a,
	    mount("tmpfs", "run", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,mode=0755"),
	    "mount /run");
	TRY(a, mkdir("run/sbx", 0755), "mkdir /run/sbx");
	TRY(a, mount(a->run, "run/sbx", NULL, MS_BIND, NULL), "mount /run/sbx");
	TRY(a,
	    mount(NULL, "run/sbx", NULL,
		  MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC | a->state_flags, NULL),
	    "mount /run/sbx");

	TRY(a, syscall(SYS_pivot_root, ".", "."), "pivot_root");
	TRY(a, umount2(".", MNT_DETACH), "unmount the old root");
	TRY(a, chdir("/"), "chdir /");
	TRY(a,
	    mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL),
	    "make / read-only");
}

static void loopback_up(const struct lx_child_args *a)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die(a, "socket for lo");
	memset(&ifr, 0, sizeof ifr);
	memcpy(ifr.ifr_name, "lo", 3);
	TRY(a, ioctl(fd, SIOCGIFFLAGS, &ifr), "SIOCGIFFLAGS lo");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	TRY(a, ioctl(fd, SIOCSIFFLAGS, &ifr), "bring up lo");
	close(fd);
}

static void drop_privileges(const struct lx_child_args *a)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];
	int i;

	/* The daemon's supplementary groups (host root's) must not follow us in. */
	TRY(a, syscall(SYS_setgroups, 0, NULL), "setgroups");
	for (i = 0; i <= a->cap_last_cap; i++)
		TRY(a, prctl(PR_CAPBSET_DROP, i, 0, 0, 0), "drop the capability bounding set");
	TRY(a, prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient caps");
	TRY(a, syscall(SYS_setresgid, LX_SANDBOX_UID, LX_SANDBOX_UID, LX_SANDBOX_UID),
	    "setresgid 1000");
	TRY(a, syscall(SYS_setresuid, LX_SANDBOX_UID, LX_SANDBOX_UID, LX_SANDBOX_UID),
	    "setresuid 1000");
	memset(data, 0, sizeof data);
	TRY(a, syscall(SYS_capset, &hdr, data), "capset");
	for (i = 0; i < a->n_rl; i++) {
		struct rlimit rl = {a->rl[i].soft, a->rl[i].hard};
		TRY(a, syscall(SYS_prlimit64, 0, a->rl[i].res, &rl, NULL), "setrlimit");
	}
	TRY(a, prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs");
}

void child_main(const struct lx_child_args *a)
{
	char go;

	/* Wait until the parent wrote our id maps ('m'). If sbxd dies first (SIGKILL), the
	 * pipe reads EOF and this half-made sandbox goes away. */
	close(a->sync_wfd);
	if (read(a->sync_fd, &go, 1) != 1 || go != 'm')
		_exit(126);
	/* Become the namespace's root (host uid_base): files we create must be mappable. */
	TRY(a, syscall(SYS_setresgid, 0, 0, 0), "setresgid 0");
	TRY(a, syscall(SYS_setresuid, 0, 0, 0), "setresuid 0");
	/* The root is built while the parent moves us into the sandbox's cgroups (a v1
	 * memory-cgroup attach can take ~10 ms); nothing untrusted runs before 'g'. */
	build_root(a);
	TRY(a, sethostname("sandbox", 7), "sethostname");
	loopback_up(a);
	if (read(a->sync_fd, &go, 1) != 1 || go != 'g')
		_exit(126);
	TRY(a, unshare(CLONE_NEWCGROUP), "unshare cgroup namespace");
	drop_privileges(a);

	TRY(a, dup2(a->null_fd, 0), "dup2 stdin");
	TRY(a, dup2(a->log_fd, 1), "dup2 stdout");
	TRY(a, dup2(a->log_fd, 2), "dup2 stderr");
	/* Everything else closes at execve; err_fd stays usable until then. */
	TRY(a, syscall(SYS_close_range, 3, ~0u, CLOSE_RANGE_CLOEXEC), "close_range");
	TRY(a, prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &a->prog, 0, 0), "load seccomp");
	execve(a->argv[0], a->argv, a->envp);
	die(a, "execve the executor");
}
