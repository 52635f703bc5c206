/*
 * The objects the module sends: the per-sandbox Secret holding the executor's token and the
 * sandbox Pod (security context, limits, volumes, the executor delivered by an init
 * container), plus label values sanitised to the API's syntax.
 */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "k8s.h"

void label_value(const char *in, char *out, size_t cap)
{
	size_t o = 0, max = cap - 1 < K8S_LABEL_MAX ? cap - 1 : K8S_LABEL_MAX;

	for (; in && *in && o < max; in++) {
		unsigned char ch = (unsigned char)*in;
		out[o++] = (isalnum(ch) || ch == '-' || ch == '_' || ch == '.') && ch < 128
			       ? (char)ch
			       : '-';
	}
	out[o] = '\0';
	/* begin and end with an alphanumeric */
	while (o > 0 && !isalnum((unsigned char)out[o - 1]))
		out[--o] = '\0';
	{
		size_t s = 0;
		while (out[s] && !isalnum((unsigned char)out[s]))
			s++;
		memmove(out, out + s, strlen(out + s) + 1);
	}
	if (!out[0])
		snprintf(out, cap, "none");
}

json_t *build_secret(const struct k8s *k, const char *name, const char *token, const json_t *labels)
{
	return json_pack("{s:s, s:s, s:{s:s, s:s, s:O}, s:s, s:b, s:{s:s}}", "apiVersion", "v1",
			 "kind", "Secret", "metadata", "name", name, "namespace", k->namespace,
			 "labels", labels, "type", "Opaque", "immutable", 1, "stringData", "token",
			 token);
}

static int wants_python(const json_t *spec)
{
	const char *rt = json_string_value(json_object_get(spec, "runtime_type"));
	const char *image = json_string_value(json_object_get(spec, "image"));

	return (rt && !strncmp(rt, "python", 6)) || (image && strstr(image, "python"));
}

static double num(const json_t *o, const char *key, double def)
{
	const json_t *v = json_object_get(o, key);
	return json_is_number(v) ? json_number_value(v) : def;
}

/* The restricted security context of every container we run. */
static json_t *container_security(void)
{
	return json_pack("{s:b, s:b, s:b, s:b, s:{s:[s]}, s:{s:s}}", "allowPrivilegeEscalation", 0,
			 "readOnlyRootFilesystem", 1, "privileged", 0, "runAsNonRoot", 1,
			 "capabilities", "drop", "ALL", "seccompProfile", "type", "RuntimeDefault");
}

json_t *build_pod(const struct k8s *k, const char *name, const char *secret, const json_t *spec,
		  const json_t *labels, const char *session_id)
{
	const json_t *res = json_object_get(spec, "resources");
	const char *image = json_string_value(json_object_get(spec, "image"));
	const char *node = json_string_value(json_object_get(spec, "node"));
	long mcpu = (long)ceil(num(res, "cpu", 1.0) * 1000.0);
	long mem = (long)num(res, "memory_mb", 512), disk = (long)num(res, "disk_mb", 1024);
	char cpu_q[32], mem_q[32], eph_q[32], disk_q[32], tmp_q[32], listen[32], copy_src[600];
	json_t *pod, *podspec, *main_c, *init_c, *cmd, *quant;

	snprintf(cpu_q, sizeof cpu_q, "%ldm", mcpu);
	snprintf(mem_q, sizeof mem_q, "%ldMi", mem);
	snprintf(disk_q, sizeof disk_q, "%ldMi", disk);
	/* the workspace plus container logs and the writable layer's metadata */
	snprintf(eph_q, sizeof eph_q, "%ldMi", disk + 64);
	snprintf(tmp_q, sizeof tmp_q, "%uMi", k->tmp_size_mb);
	snprintf(listen, sizeof listen, "0.0.0.0:%u", k->executor_port);
	snprintf(copy_src, sizeof copy_src, "%s/.", k->executor_image_dir);

	cmd =
	    json_pack("[s, s, s, s, s, s, s, s, s, s, s, s, s, s]",
		      K8S_EXEC_MOUNT "/lib/ld-linux-x86-64.so.2", "--library-path",
		      K8S_EXEC_MOUNT "/lib", K8S_EXEC_MOUNT "/bin/sbx-executor", "--listen", listen,
		      "--token-file", K8S_TOKEN_MOUNT "/token", "--workspace", "/workspace",
		      "--shims", K8S_EXEC_MOUNT "/shims", "--max-upload", "1099511627776");
	if (cmd && wants_python(spec)) {
		json_array_append_new(cmd, json_string("--preload"));
		json_array_append_new(cmd, json_string("python"));
	}
	quant =
	    json_pack("{s:s, s:s, s:s}", "cpu", cpu_q, "memory", mem_q, "ephemeral-storage", eph_q);
	main_c = json_pack(
	    "{s:s, s:s?, s:o, s:s, s:[{s:s, s:s}, {s:s, s:s}], s:[{s:s, s:i, s:s}], "
	    "s:{s:O, s:O}, s:o, s:[{s:s, s:s}, {s:s, s:s}, {s:s, s:s, s:b}, {s:s, s:s, s:b}], "
	    "s:{s:{s:i}, s:i, s:i, s:i}, s:s}",
	    "name", "sandbox", "image", image, "command", cmd, "workingDir", "/workspace", "env",
	    "name", "HOME", "value", "/workspace", "name", "LANG", "value", "C.UTF-8", "ports",
	    "name", "executor", "containerPort", (int)k->executor_port, "protocol", "TCP",
	    "resources", "requests", quant, "limits", quant, "securityContext",
	    container_security(), "volumeMounts", "name", "workspace", "mountPath", "/workspace",
	    "name", "tmp", "mountPath", "/tmp", "name", "executor", "mountPath", K8S_EXEC_MOUNT,
	    "readOnly", 1, "name", "token", "mountPath", K8S_TOKEN_MOUNT, "readOnly", 1,
	    "readinessProbe", "tcpSocket", "port", (int)k->executor_port, "periodSeconds", 1,
	    "timeoutSeconds", 1, "failureThreshold", 3, "terminationMessagePolicy",
	    "FallbackToLogsOnError");
	init_c = json_pack("{s:s, s:s, s:[s, s, s, s], s:{s:{s:s, s:s}, s:{s:s, s:s}}, s:o, "
			   "s:[{s:s, s:s}]}",
			   "name", "executor-bundle", "image", k->executor_image, "command", "cp",
			   "-R", copy_src, K8S_EXEC_MOUNT "/", "resources", "requests", "cpu",
			   "50m", "memory", "32Mi", "limits", "cpu", "500m", "memory", "64Mi",
			   "securityContext", container_security(), "volumeMounts", "name",
			   "executor", "mountPath", K8S_EXEC_MOUNT);
	json_decref(quant);
	if (main_c && k->image_pull_policy)
		json_object_set_new(main_c, "imagePullPolicy", json_string(k->image_pull_policy));
	if (init_c && k->image_pull_policy)
		json_object_set_new(init_c, "imagePullPolicy", json_string(k->image_pull_policy));
	podspec = json_pack(
	    "{s:s, s:b, s:b, s:b, s:i, s:{s:b, s:i, s:i, s:i, s:s, s:{s:s}}, s:[o], s:[o], "
	    "s:[{s:s, s:{s:s}}, {s:s, s:{s:s, s:s}}, {s:s, s:{s:s}}, "
	    "{s:s, s:{s:s, s:i, s:[{s:s, s:s}]}}]}",
	    "restartPolicy", "Never", "automountServiceAccountToken", 0, "enableServiceLinks", 0,
	    "hostNetwork", 0, "terminationGracePeriodSeconds", (int)k->delete_grace_s,
	    "securityContext", "runAsNonRoot", 1, "runAsUser", 65534, "runAsGroup", 65534,
	    "fsGroup", 65534, "fsGroupChangePolicy", "OnRootMismatch", "seccompProfile", "type",
	    "RuntimeDefault", "initContainers", init_c, "containers", main_c, "volumes", "name",
	    "workspace", "emptyDir", "sizeLimit", disk_q, "name", "tmp", "emptyDir", "medium",
	    "Memory", "sizeLimit", tmp_q, "name", "executor", "emptyDir", "sizeLimit", "256Mi",
	    "name", "token", "secret", "secretName", secret, "defaultMode", 0440, "items", "key",
	    "token", "path", "token");
	if (!podspec)
		return NULL;
	if (k->runtime_class_name)
		json_object_set_new(podspec, "runtimeClassName",
				    json_string(k->runtime_class_name));
	if (k->service_account_name)
		json_object_set_new(podspec, "serviceAccountName",
				    json_string(k->service_account_name));
	/* A placement hint from the policy: prefer that Kubernetes node, never require it. The
	 * module's own inventory id is not a Kubernetes node name. */
	if (node && strcmp(node, k->node))
		json_object_set_new(
		    podspec, "affinity",
		    json_pack("{s:{s:[{s:i, s:{s:[{s:s, s:s, s:[s]}]}}]}}", "nodeAffinity",
			      "preferredDuringSchedulingIgnoredDuringExecution", "weight", 100,
			      "preference", "matchExpressions", "key", "kubernetes.io/hostname",
			      "operator", "In", "values", node));
	pod =
	    json_pack("{s:s, s:s, s:{s:s, s:s, s:O, s:{s:s}}, s:o}", "apiVersion", "v1", "kind",
		      "Pod", "metadata", "name", name, "namespace", k->namespace, "labels", labels,
		      "annotations", K8S_A_SESSION, session_id ? session_id : "", "spec", podspec);
	return pod;
}
