# etc/: the embedded default configuration, with install paths substituted at build time.
sysconfsbx_DATA = etc/sbxd.conf etc/sbxd-production.conf.example
EXTRA_DIST += etc/sbxd.conf.in etc/sbxd-production.conf.in
EXTRA_DIST += etc/images/build.sh etc/images/README.md
CLEANFILES += etc/sbxd.conf etc/sbxd-production.conf.example
etc/sbxd.conf: $(top_srcdir)/etc/sbxd.conf.in Makefile
	$(AM_V_GEN)$(MKDIR_P) etc && sed \
		-e 's|@localstatedir[@]|$(localstatedir)|g' \
		-e 's|@libdir[@]|$(libdir)|g' \
		$(top_srcdir)/etc/sbxd.conf.in > $@.tmp && mv $@.tmp $@
etc/sbxd-production.conf.example: $(top_srcdir)/etc/sbxd-production.conf.in Makefile
	$(AM_V_GEN)$(MKDIR_P) etc && sed \
		-e 's|@localstatedir[@]|$(localstatedir)|g' \
		-e 's|@libdir[@]|$(libdir)|g' \
		$(top_srcdir)/etc/sbxd-production.conf.in > $@.tmp && mv $@.tmp $@
