# plugins/runtime/kubernetes: sandboxes as pods through the Kubernetes API (libcurl), tested
# against tests/plugins/k8s_standin.py, a stand-in API server (no real cluster runs here).
if PLUGIN_runtime_kubernetes
plugins_LTLIBRARIES += plugins/runtime/kubernetes/runtime_kubernetes.la
plugins_runtime_kubernetes_runtime_kubernetes_la_SOURCES = \
	plugins/runtime/kubernetes/k8s.h \
	plugins/runtime/kubernetes/plugin.c \
	plugins/runtime/kubernetes/config.c \
	plugins/runtime/kubernetes/api.c \
	plugins/runtime/kubernetes/objects.c
plugins_runtime_kubernetes_runtime_kubernetes_la_CFLAGS = $(SBX_PLUGIN_CFLAGS) $(CURL_CFLAGS)
plugins_runtime_kubernetes_runtime_kubernetes_la_LDFLAGS = $(SBX_PLUGIN_LINKFLAGS)
plugins_runtime_kubernetes_runtime_kubernetes_la_LIBADD = $(CURL_LIBS) $(JANSSON_LIBS) \
	$(PTHREAD_LIBS) -lm
endif
EXTRA_DIST += plugins/runtime/kubernetes/README.md etc/kubernetes/README.md \
	etc/kubernetes/namespace.yaml etc/kubernetes/rbac.yaml etc/kubernetes/configmap.yaml \
	etc/kubernetes/secrets.example.yaml etc/kubernetes/deployment.yaml \
	etc/kubernetes/service.yaml etc/kubernetes/networkpolicy.yaml

if PLUGIN_runtime_kubernetes
check_PROGRAMS += tests/plugins/runtime_kubernetes
tests_plugins_runtime_kubernetes_SOURCES = tests/plugins/runtime_kubernetes.c
tests_plugins_runtime_kubernetes_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)
tests_plugins_runtime_kubernetes_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CURL_CFLAGS)
tests_plugins_runtime_kubernetes_LDADD = tests/plugins/libfakecore.la $(JANSSON_LIBS) \
	$(CURL_LIBS) $(CRYPTO_LIBS) $(LTDL_LIBS) $(PTHREAD_LIBS)
TESTS += tests/plugins/runtime_kubernetes.sh
endif
TESTS += tests/plugins/k8s_manifests.py
EXTRA_DIST += tests/plugins/runtime_kubernetes.sh tests/plugins/k8s_standin.py \
	tests/plugins/k8s_manifests.py
