# executor/: sbx-executor, the agent inside every sandbox, built as a program and packed into a
# self-contained bundle (its own dynamic loader and libraries) installed in
# $(pkglibexecdir)/executor, plus a $(bindir) wrapper that starts the bundle through its loader.
noinst_PROGRAMS += executor/sbx-executor
executor_sbx_executor_SOURCES = executor/main.c executor/http.c executor/request.c \
	executor/registry.c executor/run.c executor/idlenode.c executor/zygote.c executor/zygote.h \
	executor/reaper.c executor/procs.c executor/files.c executor/walk.c executor/artifacts.c \
	executor/archive.c executor/executor.h
executor_sbx_executor_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS) $(JANSSON_CFLAGS) $(CRYPTO_CFLAGS)
executor_sbx_executor_LDADD = $(MHD_LIBS) $(JANSSON_LIBS) $(CRYPTO_LIBS) $(PTHREAD_LIBS)

EXECUTOR_SHIMS = executor/shims/python_zygote.py executor/shims/node_runner.js
EXTRA_DIST += $(EXECUTOR_SHIMS) executor/mkbundle.sh executor/sbx-executor.in

bin_SCRIPTS = executor/wrap/sbx-executor
CLEANFILES += executor/wrap/sbx-executor

executor/wrap/sbx-executor: $(srcdir)/executor/sbx-executor.in Makefile
	$(AM_V_GEN)$(MKDIR_P) executor/wrap && \
	sed -e 's|@EXECUTOR_DIR@|$(pkglibexecdir)/executor|g' \
		$(srcdir)/executor/sbx-executor.in > $@.tmp && chmod 0755 $@.tmp && mv $@.tmp $@

executor/bundle/.stamp: executor/sbx-executor$(EXEEXT) $(srcdir)/executor/mkbundle.sh \
		$(EXECUTOR_SHIMS:%=$(srcdir)/%)
	$(AM_V_GEN)$(SHELL) $(srcdir)/executor/mkbundle.sh executor/sbx-executor$(EXEEXT) \
		$(srcdir)/executor/shims executor/bundle && touch $@

# Prerequisite-only hooks, so other areas may hang their own targets on the same names.
all-local: executor/bundle/.stamp
install-exec-local: executor-install-bundle
uninstall-local: executor-uninstall-bundle
clean-local: executor-clean-bundle

# Installed side by side and swapped in with renames: running sandboxes keep the old tree
# (their bind mounts hold it) and copying over its busy loader would fail (ETXTBSY).
executor-install-bundle: executor/bundle/.stamp
	$(MKDIR_P) $(DESTDIR)$(pkglibexecdir)
	rm -rf $(DESTDIR)$(pkglibexecdir)/executor.new $(DESTDIR)$(pkglibexecdir)/executor.old
	$(MKDIR_P) $(DESTDIR)$(pkglibexecdir)/executor.new
	cp -R executor/bundle/bin executor/bundle/lib executor/bundle/shims \
		$(DESTDIR)$(pkglibexecdir)/executor.new/
	if test -d $(DESTDIR)$(pkglibexecdir)/executor; then \
		mv $(DESTDIR)$(pkglibexecdir)/executor $(DESTDIR)$(pkglibexecdir)/executor.old; fi
	mv $(DESTDIR)$(pkglibexecdir)/executor.new $(DESTDIR)$(pkglibexecdir)/executor
	rm -rf $(DESTDIR)$(pkglibexecdir)/executor.old

executor-uninstall-bundle:
	rm -rf $(DESTDIR)$(pkglibexecdir)/executor

executor-clean-bundle:
	rm -rf executor/bundle executor/bundle.tmp

.PHONY: executor-install-bundle executor-uninstall-bundle executor-clean-bundle

TESTS += tests/executor/api.sh
EXTRA_DIST += tests/executor/api.sh tests/executor/lib.sh
