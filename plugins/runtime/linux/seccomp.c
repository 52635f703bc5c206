/*
 * The sandbox's seccomp filter, in the spirit of Docker's default profile: system calls
 * that reach outside the sandbox fail with EPERM. Compiled once per instance to BPF so
 * that the cloned child only has to hand it to prctl().
 */
#include "config.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "linux.h"

static const char *const denied[] = {
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kexec_load",
    "kexec_file_load",
    "bpf",
    "keyctl",
    "add_key",
    "request_key",
    "unshare",
    "setns",
    "perf_event_open",
    "userfaultfd",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "syslog",
    "open_by_handle_at",
    "name_to_handle_at",
    "quotactl",
    "quotactl_fd",
    "lookup_dcookie",
    "iopl",
    "ioperm",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "vhangup",
    "nfsservctl",
    "kcmp",
    "pidfd_getfd",
    "fanotify_init",
    "uselib",
    "ustat",
    "sysfs",
    "_sysctl",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "vm86",
    "vm86old",
    "landlock_create_ruleset",
};

/* Namespace-creating clone() flags (and CLONE_NEWTIME, which shares a bit with CSIGNAL
 * semantics only for clone3). */
static const unsigned long ns_flags[] = {CLONE_NEWUSER, CLONE_NEWNS,  CLONE_NEWPID,   CLONE_NEWNET,
					 CLONE_NEWIPC,  CLONE_NEWUTS, CLONE_NEWCGROUP};

/* personality() bits that weaken the address-space layout. */
static const unsigned long bad_persona[] = {
    0x0040000 /* ADDR_NO_RANDOMIZE */, 0x0100000 /* MMAP_PAGE_ZERO */,
    0x0200000 /* ADDR_COMPAT_LAYOUT */, 0x0400000 /* READ_IMPLIES_EXEC */};

int seccomp_build(struct lx *lx, sbx_err *err)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	const char *what = "seccomp_init";
	char *buf = NULL;
	int fd = -1, rc = -1, sc;
	off_t len;
	size_t i;

	if (!ctx)
		goto out;
	what = "seccomp rule";
	for (i = 0; i < sizeof denied / sizeof *denied; i++) {
		sc = seccomp_syscall_resolve_name(denied[i]);
		if (sc == __NR_SCMP_ERROR || sc < 0)
			continue; /* not on this architecture */
		if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), sc, 0)) < 0)
			goto out;
	}
	for (i = 0; i < sizeof ns_flags / sizeof *ns_flags; i++)
		if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
					   SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]))) <
		    0)
			goto out;
	/* clone3's flags live in memory seccomp cannot read: make libc fall back to clone. */
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) < 0)
		goto out;
	for (i = 0; i < sizeof bad_persona / sizeof *bad_persona; i++)
		if ((rc = seccomp_rule_add(
			 ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1,
			 SCMP_A0(SCMP_CMP_MASKED_EQ, bad_persona[i], bad_persona[i]))) < 0)
			goto out;
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
				   SCMP_A0(SCMP_CMP_EQ, AF_PACKET, 0))) < 0 ||
	    (rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
				   SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_RAW))) < 0 ||
	    (rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
				   SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_PACKET))) < 0)
		goto out;

	/* Export the BPF program once; the child installs it with a bare prctl(). */
	what = "export seccomp filter";
	fd = memfd_create("sbx-seccomp", MFD_CLOEXEC);
	if (fd < 0 || (rc = seccomp_export_bpf(ctx, fd)) < 0)
		goto out;
	len = lseek(fd, 0, SEEK_END);
	if (len <= 0 || len % (off_t)sizeof(struct sock_filter) || len > 65535 * 8)
		goto out;
	buf = malloc((size_t)len);
	if (!buf || pread(fd, buf, (size_t)len, 0) != len)
		goto out;
	lx->bpf = (struct sock_filter *)(void *)buf;
	lx->bpf_len = (unsigned short)(len / (off_t)sizeof(struct sock_filter));
	buf = NULL;
	rc = 0;
out:
	if (rc < 0)
		rc = sbx_err_set(err, SBX_E_INTERNAL, "linux runtime: %s: %s", what,
				 strerror(rc < -1 ? -rc
					  : errno ? errno
						  : EINVAL));
	free(buf);
	if (fd >= 0)
		close(fd);
	if (ctx)
		seccomp_release(ctx);
	return rc;
}
