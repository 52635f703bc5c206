#!/usr/bin/python3
"""Checks of etc/kubernetes/*.yaml without a cluster (none can run here): every document
parses, the Deployment's pod template passes the API stand-in's Pod validation and the
"restricted" Pod Security Standard, and the objects agree with each other and with the
sbxd.conf in the ConfigMap (namespaces, service account, Role verbs the kubernetes runtime
uses, executor port in the NetworkPolicy, an auth module since sbxd listens beyond
loopback). TAP; skips when PyYAML is not installed."""

import os
import re
import sys

top_srcdir = os.environ.get("top_srcdir", ".")
sys.path.insert(0, os.path.join(top_srcdir, "tests", "plugins"))
n = 0
failed = 0


def ok(cond, msg):
    global n, failed
    n += 1
    failed += not cond
    print(f"{'' if cond else 'not '}ok {n} - {msg}")
    return cond


try:
    import yaml
except ImportError:
    print("1..0 # SKIP PyYAML is not installed")
    sys.exit(0)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import k8s_standin as api  # noqa: E402 (the stand-in's validators)

mdir = os.path.join(top_srcdir, "etc", "kubernetes")
objs = {}
for f in sorted(os.listdir(mdir)):
    if not f.endswith(".yaml"):
        continue
    try:
        docs = [d for d in yaml.safe_load_all(open(os.path.join(mdir, f))) if d]
        good = all(d.get("apiVersion") and d.get("kind") and d["metadata"].get("name")
                   for d in docs)
    except (yaml.YAMLError, AttributeError, KeyError) as e:
        docs, good = [], False
        print(f"# {f}: {e}")
    ok(good and docs, f"{f} parses; every document has apiVersion, kind, metadata.name")
    for d in docs:
        objs[(d["kind"], d["metadata"]["name"])] = d

dep = objs.get(("Deployment", "sbxd"))
cm = objs.get(("ConfigMap", "sbxd-config"))
role = objs.get(("Role", "sbxd-sandboxes"))
rb = objs.get(("RoleBinding", "sbxd-sandboxes"))
sa = objs.get(("ServiceAccount", "sbxd"))
np_ = objs.get(("NetworkPolicy", "sandboxes-isolated"))
svc = objs.get(("Service", "sbxd"))
if not ok(all((dep, cm, role, rb, sa, np_, svc)), "all the expected objects are there"):
    print(f"1..{n}")
    sys.exit(1)
conf = cm["data"]["sbxd.conf"]

# The Deployment
tmpl = dep["spec"]["template"]
pod = {"apiVersion": "v1", "kind": "Pod",
       "metadata": dict(tmpl["metadata"], name="sbxd-0", namespace=dep["metadata"]["namespace"]),
       "spec": tmpl["spec"]}
try:
    api.validate_pod(pod, dep["metadata"]["namespace"])
    why = "valid"
except api.BadRequest as e:
    why = f"400 {e}"
except api.Invalid as e:
    why = "422 " + "; ".join(f"{f}: {m}" for _, f, m in e.causes)
ok(why == "valid", f"the Deployment's pod template passes the stand-in's Pod validation ({why})")
bad = api.restricted_violations(tmpl["spec"])
ok(not bad, f"... and the restricted Pod Security Standard ({bad or 'ok'})")
ok(dep["spec"]["replicas"] >= 3, f"{dep['spec']['replicas']} replicas")
c = tmpl["spec"]["containers"][0]
ok(c["readinessProbe"]["httpGet"]["path"] == "/health" and
   c["livenessProbe"]["httpGet"]["path"] == "/health", "liveness and readiness probe /health")
ok(dep["spec"]["selector"]["matchLabels"].items() <= tmpl["metadata"]["labels"].items() and
   svc["spec"]["selector"].items() <= tmpl["metadata"]["labels"].items(),
   "the Deployment's selector and the Service select the pod template's labels")
mounts = {m["mountPath"] for m in c["volumeMounts"]}
files = set(re.findall(r'"/etc/sandbox/secrets/([^"]+)"', conf))
example = objs.get(("Secret", "sbxd-secrets"), {}).get("stringData", {})
secret_vol = [v for v in tmpl["spec"]["volumes"] if "secret" in v]
ok(files and files <= set(example) and "/etc/sandbox/secrets" in mounts and
   "/etc/sandbox/sbxd.conf" in mounts and
   secret_vol and secret_vol[0]["secret"]["secretName"] == "sbxd-secrets",
   f"the config and the secret files {sorted(files)} are mounted where sbxd.conf expects them")

# Identity and RBAC
ok(tmpl["spec"]["serviceAccountName"] == sa["metadata"]["name"] and
   rb["subjects"][0]["name"] == sa["metadata"]["name"] and
   rb["subjects"][0]["namespace"] == sa["metadata"]["namespace"] == dep["metadata"]["namespace"],
   "the RoleBinding binds the Deployment's service account")
verbs = {}
for r in role["rules"]:
    for res in r["resources"]:
        verbs.setdefault(res, set()).update(r["verbs"])
need = {"pods": {"create", "get", "list", "watch", "delete"}, "secrets": {"create", "delete",
                                                                      "patch"}}
ok(all(v <= verbs.get(res, set()) for res, v in need.items()) and
   not any(r["apiGroups"] != [""] for r in role["rules"]),
   "the Role grants what the kubernetes runtime uses (pods; secrets incl. patch), core group only")
m = re.search(r'module = "kubernetes";.*?namespace = "([^"]+)"', conf, re.S)
sandbox_ns = m and m.group(1)
ok(sandbox_ns == role["metadata"]["namespace"] == np_["metadata"]["namespace"],
   f"the runtime's namespace ({sandbox_ns}) is the Role's and the NetworkPolicy's")

# Isolation
m = re.search(r"executor_port = (\d+);", conf)
ports = [p["port"] for i in np_["spec"]["ingress"] for p in i["ports"]]
ok(m and ports == [int(m.group(1))], f"the NetworkPolicy admits only the executor port {ports}")
frm = np_["spec"]["ingress"][0]["from"][0]
ok(np_["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/managed-by": "sbxd"} and
   frm["podSelector"]["matchLabels"].items() <= tmpl["metadata"]["labels"].items() and
   frm["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] ==
   dep["metadata"]["namespace"],
   "sandbox pods accept traffic only from sbxd's pods in sbxd's namespace")
ok(np_["spec"]["egress"] == [] and set(np_["spec"]["policyTypes"]) == {"Ingress", "Egress"},
   "sandbox pods have no egress at all")
ok(re.search(r'listen = "0\.0\.0\.0:', conf) and
   re.search(r'kind = "auth"; module = "(jwt|apikey)"', conf),
   "sbxd listens beyond loopback with an auth module configured")
ok(re.search(r'kind = "db"; module = "mariadb"', conf) and
   re.search(r'kind = "storage"; module = "(s3|minio)"', conf),
   "MariaDB and S3 storage are configured (several replicas share them)")
print(f"1..{n}")
sys.exit(1 if failed else 0)
