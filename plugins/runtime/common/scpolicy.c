/*
 * The sandbox's seccomp policy (see scpolicy.h), in the spirit of Docker's default profile:
 * system calls that reach outside the sandbox fail with EPERM.
 */
#include "config.h"

#include <errno.h>
#include <sched.h>
#include <sys/socket.h>

#include "scpolicy.h"

/* The fields of one rule, for {...} in the table below. */
#define DENY(n)                 n, EPERM, SC_ANY, 0, 0, 0
#define DENY_IF(n, i, op, a, b) n, EPERM, op, i, a, b
#define DENY_FLAG(n, i, flag)   DENY_IF(n, i, SC_MASKED_EQ, flag, flag)

/* personality() bits that weaken the address-space layout. */
#define ADDR_NO_RANDOMIZE_  0x0040000
#define MMAP_PAGE_ZERO_     0x0100000
#define ADDR_COMPAT_LAYOUT_ 0x0200000
#define READ_IMPLIES_EXEC_  0x0400000

const struct sc_rule sc_rules[] = {
    {DENY("mount")},
    {DENY("umount2")},
    {DENY("pivot_root")},
    {DENY("chroot")},
    {DENY("ptrace")},
    {DENY("process_vm_readv")},
    {DENY("process_vm_writev")},
    {DENY("kexec_load")},
    {DENY("kexec_file_load")},
    {DENY("bpf")},
    {DENY("keyctl")},
    {DENY("add_key")},
    {DENY("request_key")},
    {DENY("unshare")},
    {DENY("setns")},
    {DENY("perf_event_open")},
    {DENY("userfaultfd")},
    {DENY("init_module")},
    {DENY("finit_module")},
    {DENY("delete_module")},
    {DENY("reboot")},
    {DENY("swapon")},
    {DENY("swapoff")},
    {DENY("acct")},
    {DENY("settimeofday")},
    {DENY("clock_settime")},
    {DENY("clock_adjtime")},
    {DENY("adjtimex")},
    {DENY("syslog")},
    {DENY("open_by_handle_at")},
    {DENY("name_to_handle_at")},
    {DENY("quotactl")},
    {DENY("quotactl_fd")},
    {DENY("lookup_dcookie")},
    {DENY("iopl")},
    {DENY("ioperm")},
    {DENY("fsopen")},
    {DENY("fsconfig")},
    {DENY("fsmount")},
    {DENY("fspick")},
    {DENY("move_mount")},
    {DENY("open_tree")},
    {DENY("mount_setattr")},
    {DENY("io_uring_setup")},
    {DENY("io_uring_enter")},
    {DENY("io_uring_register")},
    {DENY("vhangup")},
    {DENY("nfsservctl")},
    {DENY("kcmp")},
    {DENY("pidfd_getfd")},
    {DENY("fanotify_init")},
    {DENY("uselib")},
    {DENY("ustat")},
    {DENY("sysfs")},
    {DENY("_sysctl")},
    {DENY("create_module")},
    {DENY("get_kernel_syms")},
    {DENY("query_module")},
    {DENY("vm86")},
    {DENY("vm86old")},
    {DENY("landlock_create_ruleset")},

    /* Namespace-creating clone() flags. */
    {DENY_FLAG("clone", 0, CLONE_NEWUSER)},
    {DENY_FLAG("clone", 0, CLONE_NEWNS)},
    {DENY_FLAG("clone", 0, CLONE_NEWPID)},
    {DENY_FLAG("clone", 0, CLONE_NEWNET)},
    {DENY_FLAG("clone", 0, CLONE_NEWIPC)},
    {DENY_FLAG("clone", 0, CLONE_NEWUTS)},
    {DENY_FLAG("clone", 0, CLONE_NEWCGROUP)},
    /* clone3's flags live in memory seccomp cannot read: make libc fall back to clone. */
    {"clone3", ENOSYS, SC_ANY, 0, 0, 0},

    {DENY_FLAG("personality", 0, ADDR_NO_RANDOMIZE_)},
    {DENY_FLAG("personality", 0, MMAP_PAGE_ZERO_)},
    {DENY_FLAG("personality", 0, ADDR_COMPAT_LAYOUT_)},
    {DENY_FLAG("personality", 0, READ_IMPLIES_EXEC_)},

    /* Raw and packet sockets (the low 4 bits of the type; SOCK_CLOEXEC etc. above). */
    {DENY_IF("socket", 0, SC_EQ, AF_PACKET, 0)},
    {DENY_IF("socket", 1, SC_MASKED_EQ, 0xf, SOCK_RAW)},
    {DENY_IF("socket", 1, SC_MASKED_EQ, 0xf, SOCK_PACKET)},
};

const size_t sc_nrules = sizeof sc_rules / sizeof *sc_rules;
