/*
 * The sandbox's seccomp filter: the policy shared with the docker runtime
 * (plugins/runtime/common/scpolicy.c), compiled once per instance to BPF so that the
 * cloned child only has to hand it to prctl().
 */
#include "config.h"

#include <errno.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "linux.h"
#include "plugins/runtime/common/scpolicy.h"

static const enum scmp_compare sc_cmp[] = {
    [SC_EQ] = SCMP_CMP_EQ, [SC_MASKED_EQ] = SCMP_CMP_MASKED_EQ};

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
	for (i = 0; i < sc_nrules; i++) {
		const struct sc_rule *r = &sc_rules[i];

		sc = seccomp_syscall_resolve_name(r->name);
		if (sc == __NR_SCMP_ERROR || sc < 0)
			continue; /* not on this architecture */
		if (r->op == SC_ANY)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO((unsigned)r->err), sc, 0);
		else
			rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO((unsigned)r->err), sc, 1,
					      (struct scmp_arg_cmp){.arg = r->arg,
								    .op = sc_cmp[r->op],
								    .datum_a = r->a,
								    .datum_b = r->b});
		if (rc < 0)
			goto out;
	}

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
