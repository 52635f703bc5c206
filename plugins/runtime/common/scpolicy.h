/*
 * The sandbox's system-call policy, shared by the runtimes `linux` (compiled to BPF with
 * libseccomp, seccomp.c there) and `docker` (sent to the engine as a seccomp profile in
 * Docker's JSON format): everything is allowed except the calls listed here, which fail
 * with the errno given. One rule is one system call with at most one argument condition;
 * several rules for the same call deny it when any of them matches. Pure data: linked into
 * both modules as the convenience library libscpolicy.la, never installed.
 */
#ifndef SBX_SCPOLICY_H
#define SBX_SCPOLICY_H

#include <stddef.h>
#include <stdint.h>

enum sc_op {
	SC_ANY = 0,   /* no condition: every call is denied */
	SC_EQ,        /* argument == a */
	SC_MASKED_EQ, /* (argument & a) == b */
};

struct sc_rule {
	const char *name; /* the system call's name (libseccomp's and Docker's spelling) */
	int err;          /* errno the call fails with */
	enum sc_op op;
	unsigned arg; /* argument index 0..5 (with op != SC_ANY) */
	uint64_t a, b;
};

/* The rules, in order; calls unknown on the running architecture are skipped by both
 * runtimes (the kernel cannot have them either). */
extern const struct sc_rule sc_rules[];
extern const size_t sc_nrules;

#endif
