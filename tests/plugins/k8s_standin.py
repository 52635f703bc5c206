#!/usr/bin/python3
"""A stand-in Kubernetes API server for the tests of the `kubernetes` runtime module.

No real API server, kubelet or cluster can run on the test machine, so this program plays
all three for the few endpoints the module uses: pods and secrets in one namespace (create,
get, list with label and field selectors, watch, delete, merge-patch of secrets), /version.
Every request is validated as the API server would validate it: bearer token (401), strict
field validation (unknown fields: 400 "strict decoding error"), JSON types (400), and the
API's own rules for names, labels, quantities, containers, volumes and security contexts
(422 Invalid with details.causes); pods must also meet the "restricted" Pod Security
Standard, as in a namespace that enforces it (403 otherwise). Answers are API objects and Status objects; watches are
streams of {"type", "object"} lines with 410 Expired for compacted resource versions.

The "kubelet" schedules a created pod, runs its init container (checks that it copies the
executor bundle), then really starts the sbx-executor bundle of the build tree for the main
container, with every path of its command mapped onto the pod's volumes (the executor volume
is the bundle, the token Secret volume a directory with the Secret's keys, emptyDirs are
directories), listening on the pod's IP: each pod gets its own loopback address 127.0.0.N,
so every pod can use the same port. A tcpSocket readiness probe makes it Ready.

Scripted failures, by the main container's image name (before the first ':' or '/'):
  missing*        ErrImagePull, then ImagePullBackOff (stays Pending)
  unschedulable*  PodScheduled False, reason Unschedulable
  crash*          the container terminates at once (Error, exit code 1)
  oom*            runs and becomes Ready, then is killed after 1 s: OOMKilled, exit 137
  evict*          runs and becomes Ready, then the pod is Evicted after 1 s
  conflict*       the pod create answers 409 AlreadyExists (a name collision)
Test hooks (no auth): GET /_standin/requests (every request with its JSON body),
GET /_standin/stats, POST /_standin/config {"compact_after_create": bool}.

Usage: k8s_standin.py --bundle DIR --token-file FILE --namespace NS --workdir DIR
                      --port-file FILE [--forbidden-token-file FILE]
                      [--tls-cert FILE --tls-key FILE]
The port file gets the HTTP port, and with --tls-cert the HTTPS port after a space (both
listeners serve the same state).
Python 3 standard library only.
"""

import argparse
import base64
import copy
import ctypes
import datetime
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

# ---- validation rules (written from the API's documented rules) ---------------------

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
QUANTITY = re.compile(r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
IANA_SVC = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def dns_subdomain(s):
    return isinstance(s, str) and 0 < len(s) <= 253 and all(
        DNS_LABEL.match(p) and len(p) <= 63 for p in s.split("."))


class Invalid(Exception):
    """422: field validation errors (causes)."""

    def __init__(self, causes):
        super().__init__("invalid")
        self.causes = causes


class BadRequest(Exception):
    """400: decoding errors (unknown fields, wrong JSON types)."""


# Schema: a dict of field -> type. Types: "str", "int", "bool", "quantity", "strmap",
# "quantmap", "intorstr", ("list", T), a nested dict, or ("enum", values...).
SELINUX = {"user": "str", "role": "str", "type": "str", "level": "str"}
SECCOMP = {"type": ("enum", "RuntimeDefault", "Unconfined", "Localhost"),
           "localhostProfile": "str"}
CAPS = {"add": ("list", "str"), "drop": ("list", "str")}
SEC_CTX = {"capabilities": CAPS, "privileged": "bool", "seLinuxOptions": SELINUX,
           "runAsUser": "int", "runAsGroup": "int", "runAsNonRoot": "bool",
           "readOnlyRootFilesystem": "bool", "allowPrivilegeEscalation": "bool",
           "procMount": ("enum", "Default", "Unmasked"), "seccompProfile": SECCOMP}
POD_SEC_CTX = {"seLinuxOptions": SELINUX, "runAsUser": "int", "runAsGroup": "int",
               "runAsNonRoot": "bool", "supplementalGroups": ("list", "int"),
               "fsGroup": "int", "fsGroupChangePolicy": ("enum", "OnRootMismatch", "Always"),
               "seccompProfile": SECCOMP, "sysctls": ("list", {"name": "str", "value": "str"})}
KEY_PATH = {"key": "str", "path": "str", "mode": "int"}
VOLUME = {"name": "str",
          "emptyDir": {"medium": ("enum", "", "Memory"), "sizeLimit": "quantity"},
          "secret": {"secretName": "str", "items": ("list", KEY_PATH), "defaultMode": "int",
                     "optional": "bool"},
          "configMap": {"name": "str", "items": ("list", KEY_PATH), "defaultMode": "int",
                        "optional": "bool"}}
PROBE = {"exec": {"command": ("list", "str")},
         "httpGet": {"path": "str", "port": "intorstr", "host": "str",
                     "scheme": ("enum", "HTTP", "HTTPS"),
                     "httpHeaders": ("list", {"name": "str", "value": "str"})},
         "tcpSocket": {"port": "intorstr", "host": "str"},
         "initialDelaySeconds": "int", "timeoutSeconds": "int", "periodSeconds": "int",
         "successThreshold": "int", "failureThreshold": "int",
         "terminationGracePeriodSeconds": "int"}
CONTAINER = {"name": "str", "image": "str", "command": ("list", "str"),
             "args": ("list", "str"), "workingDir": "str",
             "ports": ("list", {"name": "str", "hostPort": "int", "containerPort": "int",
                                "protocol": ("enum", "TCP", "UDP", "SCTP"), "hostIP": "str"}),
             "env": ("list", {"name": "str", "value": "str"}),
             "resources": {"limits": "quantmap", "requests": "quantmap"},
             "volumeMounts": ("list", {"name": "str", "readOnly": "bool", "mountPath": "str",
                                       "subPath": "str",
                                       "mountPropagation": ("enum", "None", "HostToContainer",
                                                            "Bidirectional")}),
             "livenessProbe": PROBE, "readinessProbe": PROBE, "startupProbe": PROBE,
             "terminationMessagePath": "str",
             "terminationMessagePolicy": ("enum", "File", "FallbackToLogsOnError"),
             "imagePullPolicy": ("enum", "Always", "IfNotPresent", "Never"),
             "securityContext": SEC_CTX, "stdin": "bool", "stdinOnce": "bool", "tty": "bool"}
MATCH_EXPR = {"key": "str", "operator": ("enum", "In", "NotIn", "Exists", "DoesNotExist",
                                         "Gt", "Lt"),
              "values": ("list", "str")}
NODE_TERM = {"matchExpressions": ("list", MATCH_EXPR), "matchFields": ("list", MATCH_EXPR)}
AFFINITY = {"nodeAffinity": {
    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": ("list", NODE_TERM)},
    "preferredDuringSchedulingIgnoredDuringExecution": ("list", {"weight": "int",
                                                                  "preference": NODE_TERM})}}
TOLERATION = {"key": "str", "operator": ("enum", "Exists", "Equal"), "value": "str",
              "effect": ("enum", "", "NoSchedule", "PreferNoSchedule", "NoExecute"),
              "tolerationSeconds": "int"}
POD_SPEC = {"containers": ("list", CONTAINER), "initContainers": ("list", CONTAINER),
            "volumes": ("list", VOLUME),
            "restartPolicy": ("enum", "Always", "OnFailure", "Never"),
            "terminationGracePeriodSeconds": "int", "activeDeadlineSeconds": "int",
            "dnsPolicy": ("enum", "ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"),
            "nodeSelector": "strmap", "serviceAccountName": "str",
            "automountServiceAccountToken": "bool", "nodeName": "str", "hostNetwork": "bool",
            "hostPID": "bool", "hostIPC": "bool", "securityContext": POD_SEC_CTX,
            "imagePullSecrets": ("list", {"name": "str"}), "hostname": "str",
            "affinity": AFFINITY, "schedulerName": "str", "tolerations": ("list", TOLERATION),
            "priorityClassName": "str", "runtimeClassName": "str",
            "enableServiceLinks": "bool", "shareProcessNamespace": "bool",
            "topologySpreadConstraints": ("list", {
                "maxSkew": "int", "topologyKey": "str", "minDomains": "int",
                "whenUnsatisfiable": ("enum", "DoNotSchedule", "ScheduleAnyway"),
                "labelSelector": {"matchLabels": "strmap",
                                  "matchExpressions": ("list", MATCH_EXPR)}})}
OWNER_REF = {"apiVersion": "str", "kind": "str", "name": "str", "uid": "str",
             "controller": "bool", "blockOwnerDeletion": "bool"}
META = {"name": "str", "generateName": "str", "namespace": "str", "labels": "strmap",
        "annotations": "strmap", "ownerReferences": ("list", OWNER_REF),
        "finalizers": ("list", "str"), "uid": "str", "resourceVersion": "str",
        "creationTimestamp": "str"}
POD = {"apiVersion": "str", "kind": "str", "metadata": META, "spec": POD_SPEC,
       "status": {"phase": "str"}}
SECRET = {"apiVersion": "str", "kind": "str", "metadata": META, "type": "str",
          "data": "strmap", "stringData": "strmap", "immutable": "bool"}

TYPE_NAMES = {"str": "string", "int": "int32/int64", "bool": "bool"}


def decode(obj, schema, path):
    """Strict decoding: unknown fields and wrong JSON types are 400, as the API does."""
    if isinstance(schema, dict):
        if not isinstance(obj, dict):
            raise BadRequest(f"json: cannot unmarshal {jtype(obj)} into Go struct field "
                             f"{path or 'object'} of type object")
        for k, v in obj.items():
            if k not in schema:
                raise BadRequest(f'strict decoding error: unknown field "{path + "." if path else ""}{k}"')
            decode(v, schema[k], f"{path}.{k}" if path else k)
        return
    if isinstance(schema, tuple) and schema[0] == "list":
        if not isinstance(obj, list):
            raise BadRequest(f"json: cannot unmarshal {jtype(obj)} into Go struct field "
                             f"{path} of type array")
        for i, v in enumerate(obj):
            decode(v, schema[1], f"{path}[{i}]")
        return
    if isinstance(schema, tuple) and schema[0] == "enum":
        if not isinstance(obj, str):
            raise BadRequest(f"json: cannot unmarshal {jtype(obj)} into Go struct field "
                             f"{path} of type string")
        return  # the value itself is checked by validate (422 NotSupported)
    ok = {"str": lambda v: isinstance(v, str),
          "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
          "bool": lambda v: isinstance(v, bool),
          "quantity": lambda v: isinstance(v, (str, int)) and not isinstance(v, bool),
          "intorstr": lambda v: isinstance(v, (str, int)) and not isinstance(v, bool),
          "strmap": lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
          "quantmap": lambda v: isinstance(v, dict) and all(
              isinstance(x, (str, int)) and not isinstance(x, bool) for x in v.values())}[schema]
    if not ok(obj):
        raise BadRequest(f"json: cannot unmarshal {jtype(obj)} into Go struct field {path} "
                         f"of type {TYPE_NAMES.get(schema, schema)}")


def jtype(v):
    return {dict: "object", list: "array", str: "string", bool: "bool", int: "number",
            float: "number", type(None): "null"}[type(v)]


def enums(obj, schema, path, causes):
    """422 NotSupported for enum values outside their set."""
    if isinstance(schema, dict) and isinstance(obj, dict):
        for k, v in obj.items():
            enums(v, schema[k], f"{path}.{k}" if path else k, causes)
    elif isinstance(schema, tuple) and schema[0] == "list":
        for i, v in enumerate(obj):
            enums(v, schema[1], f"{path}[{i}]", causes)
    elif isinstance(schema, tuple) and schema[0] == "enum" and obj not in schema[1:]:
        causes.append(("FieldValueNotSupported", path, f'Unsupported value: "{obj}": '
                       "supported values: " + ", ".join(f'"{x}"' for x in schema[1:])))


def quantity_ok(q):
    return isinstance(q, int) and q >= 0 or isinstance(q, str) and bool(QUANTITY.match(q))


def quantity_value(q):
    """A quantity as a float (bytes or cores)."""
    if isinstance(q, int):
        return float(q)
    m = QUANTITY.match(q)
    num = float(m.group(1))
    suf = m.group(3) or ""
    bin_ = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50,
            "Ei": 2 ** 60}
    dec = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
           "P": 1e15, "E": 1e18}
    if suf in bin_:
        return num * bin_[suf]
    if suf in dec:
        return num * dec[suf]
    return num * 10 ** int(suf[1:])


def qualified_name(k):
    """A label or annotation key: [prefix/]name."""
    if "/" in k:
        prefix, name = k.split("/", 1)
        if not dns_subdomain(prefix):
            return "prefix part must be a lowercase RFC 1123 subdomain"
    else:
        name = k
    if not name or len(name) > 63 or not LABEL_NAME.match(name):
        return ("name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                "start and end with an alphanumeric character, at most 63 characters")
    return None


def validate_meta(meta, ns, causes, pod):
    name = meta.get("name")
    if not name:
        causes.append(("FieldValueRequired", "metadata.name", "Required value: name or "
                       "generateName is required"))
    elif pod and (len(name) > 63 or not DNS_LABEL.match(name)):
        # Pod names are DNS subdomains in the API; the stand-in requires a label (hostname).
        causes.append(("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": a '
                       "lowercase RFC 1123 label must consist of lower case alphanumeric "
                       "characters or '-', at most 63 characters"))
    elif not dns_subdomain(name):
        causes.append(("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": a '
                       "lowercase RFC 1123 subdomain"))
    if "namespace" in meta and meta["namespace"] != ns:
        raise BadRequest("the namespace of the provided object does not match the namespace "
                         "sent on the request")
    for k, v in (meta.get("labels") or {}).items():
        why = qualified_name(k)
        if why:
            causes.append(("FieldValueInvalid", "metadata.labels", f'Invalid value: "{k}": {why}'))
        if v and (len(v) > 63 or not LABEL_NAME.match(v)):
            causes.append(("FieldValueInvalid", "metadata.labels",
                           f'Invalid value: "{v}": a valid label must be an empty string or '
                           "consist of alphanumeric characters, '-', '_' or '.', and must start "
                           "and end with an alphanumeric character, at most 63 characters"))
    total = 0
    for k, v in (meta.get("annotations") or {}).items():
        why = qualified_name(k)
        if why:
            causes.append(("FieldValueInvalid", "metadata.annotations",
                           f'Invalid value: "{k}": {why}'))
        total += len(k) + len(v)
    if total > 256 * 1024:
        causes.append(("FieldValueTooLong", "metadata.annotations", "Too long: must have at "
                       "most 262144 bytes"))
    for i, o in enumerate(meta.get("ownerReferences") or []):
        for f in ("apiVersion", "kind", "name", "uid"):
            if not o.get(f):
                causes.append(("FieldValueRequired", f"metadata.ownerReferences[{i}].{f}",
                               "Required value"))


def validate_sec(sc, path, causes):
    for f in ("runAsUser", "runAsGroup", "fsGroup"):
        if f in sc and not 0 <= sc[f] <= 2147483647:
            causes.append(("FieldValueInvalid", f"{path}.{f}", f"Invalid value: {sc[f]}: must "
                           "be between 0 and 2147483647, inclusive"))
    sp = sc.get("seccompProfile")
    if sp is not None:
        if "type" not in sp:
            causes.append(("FieldValueRequired", f"{path}.seccompProfile.type", "Required value"))
        elif sp["type"] == "Localhost" and not sp.get("localhostProfile"):
            causes.append(("FieldValueRequired", f"{path}.seccompProfile.localhostProfile",
                           "Required value: must be set when seccomp type is Localhost"))
        elif sp["type"] != "Localhost" and "localhostProfile" in sp:
            causes.append(("FieldValueInvalid", f"{path}.seccompProfile.localhostProfile",
                           "Invalid value: can only be set when seccomp type is Localhost"))
    if sc.get("privileged") and sc.get("allowPrivilegeEscalation") is False:
        causes.append(("FieldValueInvalid", f"{path}", "Invalid value: cannot set "
                       "`allowPrivilegeEscalation` to false and `privileged` to true"))


def validate_container(c, path, vols, causes, init):
    name = c.get("name")
    if not name:
        causes.append(("FieldValueRequired", f"{path}.name", "Required value"))
    elif not DNS_LABEL.match(name) or len(name) > 63:
        causes.append(("FieldValueInvalid", f"{path}.name", f'Invalid value: "{name}": a '
                       "lowercase RFC 1123 label"))
    img = c.get("image")
    if not img:
        causes.append(("FieldValueRequired", f"{path}.image", "Required value"))
    elif img != img.strip():
        causes.append(("FieldValueInvalid", f"{path}.image", f'Invalid value: "{img}": must '
                       "not have leading or trailing whitespace"))
    if init and any(p in c for p in ("readinessProbe", "livenessProbe", "startupProbe")):
        causes.append(("FieldValueForbidden", f"{path}.readinessProbe",
                       "Forbidden: may not be set for init containers without restartPolicy "
                       "Always"))
    ports = set()
    for i, p in enumerate(c.get("ports") or []):
        cp = p.get("containerPort")
        if cp is None:
            causes.append(("FieldValueRequired", f"{path}.ports[{i}].containerPort",
                           "Required value"))
        elif not 1 <= cp <= 65535:
            causes.append(("FieldValueInvalid", f"{path}.ports[{i}].containerPort",
                           f"Invalid value: {cp}: must be between 1 and 65535, inclusive"))
        if "name" in p and (len(p["name"]) > 15 or not IANA_SVC.match(p["name"]) or
                            not re.search("[a-z]", p["name"])):
            causes.append(("FieldValueInvalid", f"{path}.ports[{i}].name",
                           f'Invalid value: "{p["name"]}": must be an IANA_SVC_NAME'))
        ports.add(p.get("name"))
    for i, e in enumerate(c.get("env") or []):
        if not e.get("name") or not ENV_NAME.match(e["name"]):
            causes.append(("FieldValueInvalid", f"{path}.env[{i}].name",
                           "Invalid value: a valid environment variable name"))
    res = c.get("resources") or {}
    for kind in ("requests", "limits"):
        for rname, q in (res.get(kind) or {}).items():
            if rname not in ("cpu", "memory", "ephemeral-storage") and "/" not in rname and \
                    not rname.startswith("hugepages-"):
                causes.append(("FieldValueInvalid", f"{path}.resources.{kind}[{rname}]",
                               f'Invalid value: "{rname}": must be a standard resource type '
                               "or fully qualified"))
            elif not quantity_ok(q):
                causes.append(("FieldValueInvalid", f"{path}.resources.{kind}[{rname}]",
                               f'Invalid value: "{q}": quantities must match the regular '
                               "expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"))
    for rname, q in (res.get("requests") or {}).items():
        lim = (res.get("limits") or {}).get(rname)
        if lim is not None and quantity_ok(q) and quantity_ok(lim) and \
                quantity_value(q) > quantity_value(lim):
            causes.append(("FieldValueInvalid", f"{path}.resources.requests",
                           f'Invalid value: "{q}": must be less than or equal to {rname} limit'))
    paths = set()
    for i, m in enumerate(c.get("volumeMounts") or []):
        if not m.get("name"):
            causes.append(("FieldValueRequired", f"{path}.volumeMounts[{i}].name", "Required value"))
        elif m["name"] not in vols:
            causes.append(("FieldValueNotFound", f"{path}.volumeMounts[{i}].name",
                           f'Not found: "{m["name"]}"'))
        mp = m.get("mountPath")
        if not mp:
            causes.append(("FieldValueRequired", f"{path}.volumeMounts[{i}].mountPath",
                           "Required value"))
        elif mp in paths:
            causes.append(("FieldValueInvalid", f"{path}.volumeMounts[{i}].mountPath",
                           f'Invalid value: "{mp}": must be unique'))
        paths.add(mp)
    for pn in ("readinessProbe", "livenessProbe", "startupProbe"):
        pr = c.get(pn)
        if pr is None:
            continue
        handlers = [h for h in ("exec", "httpGet", "tcpSocket") if h in pr]
        if len(handlers) != 1:
            causes.append(("FieldValueRequired" if not handlers else "FieldValueForbidden",
                           f"{path}.{pn}", "must specify exactly one handler type"))
        for h in ("httpGet", "tcpSocket"):
            port = (pr.get(h) or {}).get("port")
            if h in pr and (port is None or isinstance(port, int) and not 1 <= port <= 65535
                            or isinstance(port, str) and port not in ports):
                causes.append(("FieldValueInvalid", f"{path}.{pn}.{h}.port",
                               f"Invalid value: {port!r}: must be a port number or a "
                               "declared port name"))
        for f in ("periodSeconds", "timeoutSeconds", "successThreshold", "failureThreshold"):
            if f in pr and pr[f] < 1:
                causes.append(("FieldValueInvalid", f"{path}.{pn}.{f}",
                               f"Invalid value: {pr[f]}: must be greater than or equal to 1"))
    if "securityContext" in c:
        validate_sec(c["securityContext"], f"{path}.securityContext", causes)


def validate_pod(pod, ns):
    decode(pod, POD, "")
    if pod.get("apiVersion") != "v1" or pod.get("kind") != "Pod":
        raise BadRequest(f'the API version in the data ({pod.get("apiVersion")}) or kind '
                         f'({pod.get("kind")}) does not match the expected Pod v1')
    causes = []
    enums(pod, POD, "", causes)
    validate_meta(pod.get("metadata") or {}, ns, causes, True)
    spec = pod.get("spec")
    if spec is None:
        raise Invalid([("FieldValueRequired", "spec", "Required value")])
    if not spec.get("containers"):
        causes.append(("FieldValueRequired", "spec.containers", "Required value"))
    vols = {}
    for i, v in enumerate(spec.get("volumes") or []):
        n = v.get("name")
        if not n or not DNS_LABEL.match(n) or len(n) > 63:
            causes.append(("FieldValueInvalid", f"spec.volumes[{i}].name",
                           f'Invalid value: "{n}": a lowercase RFC 1123 label'))
        elif n in vols:
            causes.append(("FieldValueDuplicate", f"spec.volumes[{i}].name", f'Duplicate value: "{n}"'))
        srcs = [s for s in ("emptyDir", "secret", "configMap") if s in v]
        if len(srcs) != 1:
            causes.append(("FieldValueRequired" if not srcs else "FieldValueForbidden",
                           f"spec.volumes[{i}]", "must specify exactly 1 volume type"))
        ed = v.get("emptyDir")
        if ed and "sizeLimit" in ed and not quantity_ok(ed["sizeLimit"]):
            causes.append(("FieldValueInvalid", f"spec.volumes[{i}].emptyDir.sizeLimit",
                           "Invalid value: not a quantity"))
        sec = v.get("secret")
        if sec is not None:
            if not sec.get("secretName"):
                causes.append(("FieldValueRequired", f"spec.volumes[{i}].secret.secretName",
                               "Required value"))
            if "defaultMode" in sec and not 0 <= sec["defaultMode"] <= 0o777:
                causes.append(("FieldValueInvalid", f"spec.volumes[{i}].secret.defaultMode",
                               "Invalid value: must be a number between 0 and 0777 (octal), "
                               "both inclusive"))
            for j, it in enumerate(sec.get("items") or []):
                p = it.get("path", "")
                if not it.get("key") or not p or p.startswith("/") or ".." in p.split("/"):
                    causes.append(("FieldValueInvalid", f"spec.volumes[{i}].secret.items[{j}]",
                                   "Invalid value: key required; path must be relative "
                                   "without '..'"))
        vols[n] = v
    names = set()
    for kind in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(kind) or []):
            validate_container(c, f"spec.{kind}[{i}]", vols, causes, kind == "initContainers")
            if c.get("name") in names:
                causes.append(("FieldValueDuplicate", f"spec.{kind}[{i}].name",
                               f'Duplicate value: "{c.get("name")}"'))
            names.add(c.get("name"))
    if "securityContext" in spec:
        validate_sec(spec["securityContext"], "spec.securityContext", causes)
    if spec.get("terminationGracePeriodSeconds", 0) < 0:
        causes.append(("FieldValueInvalid", "spec.terminationGracePeriodSeconds",
                       "Invalid value: must be greater than or equal to 0"))
    for n in ("serviceAccountName", "runtimeClassName"):
        if n in spec and not dns_subdomain(spec[n]):
            causes.append(("FieldValueInvalid", f"spec.{n}", "Invalid value: a lowercase RFC "
                           "1123 subdomain"))
    na = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    for i, p in enumerate(na.get("preferredDuringSchedulingIgnoredDuringExecution") or []):
        if not 1 <= p.get("weight", 0) <= 100:
            causes.append(("FieldValueInvalid", "spec.affinity.nodeAffinity."
                           f"preferredDuringSchedulingIgnoredDuringExecution[{i}].weight",
                           "Invalid value: must be in the range 1-100"))
        for j, e in enumerate((p.get("preference") or {}).get("matchExpressions") or []):
            if not e.get("key") or qualified_name(e["key"]):
                causes.append(("FieldValueInvalid", "spec.affinity.nodeAffinity.preferred"
                               f"[{i}].preference.matchExpressions[{j}].key",
                               "Invalid value: a qualified name"))
            if e.get("operator") in ("In", "NotIn") and not e.get("values"):
                causes.append(("FieldValueRequired", "spec.affinity.nodeAffinity.preferred"
                               f"[{i}].preference.matchExpressions[{j}].values",
                               "Required value: must be specified when `operator` is 'In' "
                               "or 'NotIn'"))
    if causes:
        raise Invalid(causes)


def restricted_violations(spec):
    """The Pod Security Standard "restricted" (as enforced by Pod Security admission)."""
    out = []
    psc = spec.get("securityContext") or {}
    for f in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(f):
            out.append(f"{f}=true")
    for v in spec.get("volumes") or []:
        kinds = [k for k in v if k != "name"]
        if any(k not in ("configMap", "emptyDir", "secret", "projected", "downwardAPI",
                         "persistentVolumeClaim", "ephemeral", "csi") for k in kinds):
            out.append(f'restricted volume types (volume "{v.get("name")}")')
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        sc = c.get("securityContext") or {}
        n = c.get("name")
        if sc.get("privileged"):
            out.append(f'privileged (container "{n}")')
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f'allowPrivilegeEscalation != false (container "{n}")')
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f'unrestricted capabilities (container "{n}" must drop ALL)')
        if any(a != "NET_BIND_SERVICE" for a in caps.get("add") or []):
            out.append(f'unrestricted capabilities (container "{n}" adds {caps["add"]})')
        if not sc.get("runAsNonRoot", psc.get("runAsNonRoot")):
            out.append(f'runAsNonRoot != true (container "{n}")')
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(f'runAsUser=0 (container "{n}")')
        prof = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if prof not in ("RuntimeDefault", "Localhost"):
            out.append(f'seccompProfile (container "{n}" must set RuntimeDefault or Localhost)')
        if any(p.get("hostPort") for p in c.get("ports") or []):
            out.append(f'hostPort (container "{n}")')
    return out


def validate_secret(sec, ns):
    decode(sec, SECRET, "")
    if sec.get("apiVersion") != "v1" or sec.get("kind") != "Secret":
        raise BadRequest(f'the API version in the data ({sec.get("apiVersion")}) or kind '
                         f'({sec.get("kind")}) does not match the expected Secret v1')
    causes = []
    validate_meta(sec.get("metadata") or {}, ns, causes, False)
    size = 0
    for field in ("data", "stringData"):
        for k, v in (sec.get(field) or {}).items():
            if not CONFIG_KEY.match(k) or len(k) > 253:
                causes.append(("FieldValueInvalid", f"{field}[{k}]", f'Invalid value: "{k}": '
                               "a valid config key must consist of alphanumeric characters, "
                               "'-', '_' or '.'"))
            if field == "data":
                try:
                    size += len(base64.b64decode(v, validate=True))
                except ValueError:
                    raise BadRequest(f"illegal base64 data in data[{k}]")
            else:
                size += len(v.encode())
    if size > 1024 * 1024:
        causes.append(("FieldValueTooLong", "data", "Too long: must have at most 1048576 bytes"))
    if causes:
        raise Invalid(causes)


# ---- selectors ------------------------------------------------------------------------


def parse_selector(sel):
    """Equality/existence requirements of a label or field selector: [(key, op, value)]."""
    reqs = []
    for part in filter(None, (sel or "").split(",")):
        part = part.strip()
        m = re.match(r"^(!?)([^=!]+)(?:(==|=|!=)(.*))?$", part)
        if not m:
            raise BadRequest(f'unable to parse requirement: "{part}"')
        neg, key, op, val = m.groups()
        if op is None:
            reqs.append((key, "!exists" if neg else "exists", None))
        else:
            reqs.append((key, "!=" if op == "!=" else "=", val))
    return reqs


def matches(reqs, get):
    for key, op, val in reqs:
        v = get(key)
        if op == "exists" and v is None or op == "!exists" and v is not None:
            return False
        if op == "=" and v != val or op == "!=" and v == val:
            return False
    return True


def field_of(obj, key):
    return {"metadata.name": obj["metadata"]["name"],
            "metadata.namespace": obj["metadata"]["namespace"],
            "status.phase": obj.get("status", {}).get("phase")}.get(key)


# ---- the server -------------------------------------------------------------------------


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Condition()
        self.rv = 1000
        self.min_rv = 0  # watches from below this resourceVersion are 410 Expired
        self.pods = {}
        self.secrets = {}
        self.events = []  # (rv, type, pod copy)
        self.requests = []
        self.procs = {}  # pod name -> Popen
        self.next_ip = 2
        self.config = {"compact_after_create": False}
        self.stats = {"expired_watches": 0, "watches": 0, "executors_started": 0}

    def bump(self):
        self.rv += 1
        return str(self.rv)

    def emit(self, typ, pod):
        """Record a pod event (lock held)."""
        pod["metadata"]["resourceVersion"] = self.bump()
        self.events.append((self.rv, typ, copy.deepcopy(pod)))
        del self.events[:-2000]
        self.lock.notify_all()


def status_obj(code, reason, message, details=None):
    st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
          "message": message, "reason": reason, "code": code}
    if details:
        st["details"] = details
    return st


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "k8s-standin/1"

    def log_message(self, fmt, *a):
        sys.stderr.write("standin: " + (fmt % a) + "\n")

    @property
    def st(self):
        return self.server.state

    def send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def fail(self, code, reason, message, details=None):
        self.send_json(code, status_obj(code, reason, message, details))

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > 3 * 1024 * 1024:
            raise BadRequest("request entity too large")
        return self.rfile.read(n) if n else b""

    def record(self, body):
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = body.decode("utf-8", "replace")
        with self.st.lock:
            self.st.requests.append({"method": self.command, "path": self.path,
                                     "content_type": self.headers.get("Content-Type"),
                                     "body": parsed})

    def authorized(self):
        """401 without the right token; 'forbidden' for the forbidden token."""
        auth = self.headers.get("Authorization") or ""
        tok = auth[7:] if auth.startswith("Bearer ") else None
        want = open(self.st.args.token_file).read().strip()
        if tok and tok == want:
            return "ok"
        if tok and self.st.args.forbidden_token_file and \
                tok == open(self.st.args.forbidden_token_file).read().strip():
            return "forbidden"
        self.fail(401, "Unauthorized", "Unauthorized")
        return None

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_DELETE(self):
        self.route("DELETE")

    def do_PATCH(self):
        self.route("PATCH")

    def do_PUT(self):
        self.route("PUT")

    def route(self, method):
        res = "pods"
        try:
            body = self.read_body()
            u = urlsplit(self.path)
            q = {k: v[-1] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
            parts = [unquote(p) for p in u.path.strip("/").split("/")]
            if parts[0] == "_standin":
                return self.control(method, parts, body)
            self.record(body)
            who = self.authorized()
            if not who:
                return
            if parts == ["version"] and method == "GET":
                return self.send_json(200, {"major": "1", "minor": "30",
                                            "gitVersion": "v1.30.0-sbxd-standin",
                                            "platform": "linux/amd64"})
            if len(parts) < 5 or parts[:3] != ["api", "v1", "namespaces"] or \
                    parts[4] not in ("pods", "secrets") or len(parts) > 6:
                return self.fail(404, "NotFound", "the server could not find the requested "
                                 "resource")
            ns, res = parts[3], parts[4]
            name = parts[5] if len(parts) == 6 else None
            if who == "forbidden" and method != "GET":
                verb = {"POST": "create", "DELETE": "delete", "PATCH": "patch",
                        "PUT": "update"}[method]
                return self.fail(403, "Forbidden", f'{res} is forbidden: User "system:'
                                 f'serviceaccount:{ns}:readonly" cannot {verb} resource '
                                 f'"{res}" in API group "" in the namespace "{ns}"',
                                 {"kind": res})
            if ns != self.st.args.namespace:
                return self.fail(404, "NotFound", f'namespaces "{ns}" not found',
                                 {"name": ns, "kind": "namespaces"})
            if q.get("fieldValidation", "Strict") not in ("Strict", "Warn", "Ignore"):
                return self.fail(400, "BadRequest", "fieldValidation must be Strict, Warn or "
                                 "Ignore")
            if method == "POST" and name is None:
                return self.create(res, ns, body)
            if method == "GET" and name is None:
                if q.get("watch") in ("1", "true"):
                    return self.watch(res, q)
                return self.list(res, q)
            if method == "GET":
                return self.get(res, name)
            if method == "DELETE" and name:
                return self.delete(res, name, q)
            if method == "PATCH" and name and res == "secrets":
                return self.patch_secret(name, body)
            return self.fail(405, "MethodNotAllowed", f"{method} is not supported by the "
                             "stand-in for this resource")
        except BadRequest as e:
            self.fail(400, "BadRequest", str(e))
        except Invalid as e:
            self.invalid(e, res)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def invalid(self, e, res, name=""):
        kind = "Pod" if res == "pods" else "Secret"
        msgs = [f"{f}: {m}" for _, f, m in e.causes]
        self.fail(422, "Invalid", f'{kind} "{name}" is invalid: [' + ", ".join(msgs) + "]",
                  {"name": name, "kind": res[:-1],
                   "causes": [{"reason": r, "message": m, "field": f} for r, f, m in e.causes]})

    def control(self, method, parts, body):
        st = self.st
        with st.lock:
            if parts[1:] == ["requests"] and method == "GET":
                return self.send_json(200, st.requests)
            if parts[1:] == ["stats"] and method == "GET":
                return self.send_json(200, dict(st.stats, pods=sorted(st.pods),
                                                secrets=sorted(st.secrets)))
            if parts[1:] == ["config"] and method == "POST":
                st.config.update(json.loads(body or b"{}"))
                return self.send_json(200, st.config)
        self.fail(404, "NotFound", "no such stand-in hook")

    # -- objects --

    def create(self, res, ns, body):
        st = self.st
        try:
            obj = json.loads(body)
        except ValueError as e:
            raise BadRequest(f"invalid JSON: {e}")
        name = (obj.get("metadata") or {}).get("name", "") if isinstance(obj, dict) else ""
        try:
            (validate_pod if res == "pods" else validate_secret)(obj, ns)
        except Invalid as e:
            return self.invalid(e, res, name)
        if res == "pods":  # Pod Security admission, the namespace enforcing "restricted"
            bad = restricted_violations(obj["spec"])
            if bad:
                return self.fail(403, "Forbidden", f'pods "{name}" is forbidden: violates '
                                 f'PodSecurity "restricted:latest": ' + ", ".join(bad),
                                 {"name": name, "kind": "pods"})
        meta = obj["metadata"]
        store = st.pods if res == "pods" else st.secrets
        image = ((obj.get("spec") or {}).get("containers") or [{}])[0].get("image", "")
        with st.lock:
            if name in store or (res == "pods" and scripted(image) == "conflict"):
                return self.fail(409, "AlreadyExists", f'{res} "{name}" already exists',
                                 {"name": name, "kind": res})
            meta.update(namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=now_iso())
            if res == "secrets":
                data = obj.setdefault("data", {})
                for k, v in obj.pop("stringData", {}).items():
                    data[k] = base64.b64encode(v.encode()).decode()
                obj.setdefault("type", "Opaque")
                meta["resourceVersion"] = st.bump()
                store[name] = obj
                return self.send_json(201, obj)
            spec = obj["spec"]
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("dnsPolicy", "ClusterFirst")
            spec.setdefault("schedulerName", "default-scheduler")
            spec.setdefault("terminationGracePeriodSeconds", 30)
            obj["status"] = {"phase": "Pending", "qosClass": qos(spec)}
            store[name] = obj
            st.emit("ADDED", obj)
            created = copy.deepcopy(obj)
            if st.config.get("compact_after_create"):
                # the scheduler's update and a compaction happen before the client watches
                obj["status"]["conditions"] = [{"type": "PodScheduled", "status": "Unknown"}]
                st.emit("MODIFIED", obj)
                st.min_rv = st.rv
        threading.Thread(target=kubelet, args=(st, name), daemon=True).start()
        self.send_json(201, created)

    def get(self, res, name):
        st = self.st
        with st.lock:
            obj = (st.pods if res == "pods" else st.secrets).get(name)
            obj = copy.deepcopy(obj)
        if obj is None:
            return self.fail(404, "NotFound", f'{res} "{name}" not found',
                             {"name": name, "kind": res})
        self.send_json(200, obj)

    def list(self, res, q):
        st = self.st
        lsel = parse_selector(q.get("labelSelector"))
        fsel = parse_selector(q.get("fieldSelector"))
        with st.lock:
            store = st.pods if res == "pods" else st.secrets
            items = [copy.deepcopy(o) for o in store.values()
                     if matches(lsel, lambda k, o=o: (o["metadata"].get("labels") or {}).get(k))
                     and matches(fsel, lambda k, o=o: field_of(o, k))]
            rv = str(st.rv)
        self.send_json(200, {"kind": "PodList" if res == "pods" else "SecretList",
                             "apiVersion": "v1", "metadata": {"resourceVersion": rv},
                             "items": items})

    def watch(self, res, q):
        st = self.st
        if res != "pods":
            return self.fail(405, "MethodNotAllowed", "the stand-in watches pods only")
        lsel = parse_selector(q.get("labelSelector"))
        fsel = parse_selector(q.get("fieldSelector"))
        timeout = min(int(q.get("timeoutSeconds") or 30), 60)
        rv = q.get("resourceVersion") or "0"
        if not rv.isdigit():
            return self.fail(400, "BadRequest", f'invalid resource version "{rv}"')
        since = int(rv)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(ev):
            data = json.dumps(ev).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def ok(pod):
            return matches(lsel, lambda k: (pod["metadata"].get("labels") or {}).get(k)) and \
                matches(fsel, lambda k: field_of(pod, k))

        with st.lock:
            st.stats["watches"] += 1
            if since and since < st.min_rv:
                st.stats["expired_watches"] += 1
                send({"type": "ERROR", "object": status_obj(
                    410, "Expired", f"too old resource version: {since} ({st.min_rv})")})
                self.wfile.write(b"0\r\n\r\n")
                return
            pending = []
            if since == 0:  # "any": the current state first, as ADDED
                pending = [{"type": "ADDED", "object": copy.deepcopy(p)}
                           for p in st.pods.values() if ok(p)]
                since = st.rv
        deadline = time.monotonic() + timeout
        try:
            for ev in pending:
                send(ev)
            while True:
                with st.lock:
                    new = [(r, t, p) for r, t, p in st.events if r > since]
                    if not new:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        st.lock.wait(min(left, 0.5))
                        continue
                for r, t, p in new:
                    since = r
                    if ok(p):
                        send({"type": t, "object": copy.deepcopy(p)})
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def delete(self, res, name, q):
        st = self.st
        grace = q.get("gracePeriodSeconds")
        with st.lock:
            store = st.pods if res == "pods" else st.secrets
            obj = store.get(name)
            if obj is None:
                return self.fail(404, "NotFound", f'{res} "{name}" not found',
                                 {"name": name, "kind": res})
            if res == "secrets":
                del store[name]
                return self.send_json(200, {"kind": "Status", "apiVersion": "v1",
                                            "metadata": {}, "status": "Success",
                                            "details": {"name": name, "kind": "secrets",
                                                        "uid": obj["metadata"]["uid"]}})
            g = int(grace) if grace is not None else obj["spec"]["terminationGracePeriodSeconds"]
            if "deletionTimestamp" not in obj["metadata"]:
                obj["metadata"]["deletionTimestamp"] = now_iso()
                obj["metadata"]["deletionGracePeriodSeconds"] = g
                st.emit("MODIFIED", obj)
            out = copy.deepcopy(obj)
        threading.Thread(target=terminate, args=(st, name, g), daemon=True).start()
        self.send_json(200, out)

    def patch_secret(self, name, body):
        st = self.st
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/merge-patch+json":
            return self.fail(415, "UnsupportedMediaType", f'the body of the request was in an '
                             f'unknown format - accepted media types include: '
                             f'application/json-patch+json, application/merge-patch+json, '
                             f'application/apply-patch+yaml (got "{ctype}")')
        try:
            patch = json.loads(body)
        except ValueError as e:
            raise BadRequest(f"invalid JSON: {e}")
        with st.lock:
            cur = st.secrets.get(name)
            if cur is None:
                return self.fail(404, "NotFound", f'secrets "{name}" not found',
                                 {"name": name, "kind": "secrets"})
            new = merge_patch(copy.deepcopy(cur), patch)
            validate_secret(new, self.st.args.namespace)
            if cur.get("immutable") and (new.get("data") != cur.get("data") or
                                         "stringData" in new):
                raise Invalid([("FieldValueForbidden", "data",
                                "Forbidden: field is immutable when `immutable` is set")])
            for f in ("uid", "name", "namespace", "creationTimestamp"):
                new["metadata"][f] = cur["metadata"][f]
            new["metadata"]["resourceVersion"] = st.bump()
            st.secrets[name] = new
            out = copy.deepcopy(new)
        self.send_json(200, out)


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = merge_patch(target.get(k), v)
    return target


def qos(spec):
    cs = spec.get("containers", [])
    if all((c.get("resources") or {}).get("limits") and
           (c.get("resources") or {}).get("limits") == (c.get("resources") or {}).get("requests")
           for c in cs):
        return "Guaranteed"
    return "Burstable" if any(c.get("resources") for c in cs) else "BestEffort"


def scripted(image):
    base = re.split("[:/@]", image.strip(), 1)[0]
    for word in ("missing", "unschedulable", "crash", "oom", "evict", "conflict"):
        if base.startswith(word):
            return word
    return None


# ---- the kubelet ------------------------------------------------------------------------


def update(st, name, fn):
    """Apply fn(pod) under the lock and emit MODIFIED; False when the pod is gone."""
    with st.lock:
        pod = st.pods.get(name)
        if pod is None:
            return False
        fn(pod)
        st.emit("MODIFIED", pod)
        return True


def cond(pod, typ, status, reason=None, message=None):
    conds = pod["status"].setdefault("conditions", [])
    conds[:] = [c for c in conds if c["type"] != typ]
    c = {"type": typ, "status": status, "lastTransitionTime": now_iso()}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    conds.append(c)


def cstatus(c, state, ready=False):
    return {"name": c["name"], "image": c["image"], "imageID": "", "ready": ready,
            "restartCount": 0, "started": "running" in state, "state": state}


def set_failed(pod, reason, code, message=None, pod_reason=None):
    term = {"exitCode": code, "reason": reason, "startedAt": now_iso(), "finishedAt": now_iso()}
    if message:
        term["message"] = message
    c = pod["spec"]["containers"][0]
    pod["status"]["containerStatuses"] = [cstatus(c, {"terminated": term})]
    pod["status"]["phase"] = "Failed"
    if pod_reason:
        pod["status"]["reason"] = pod_reason
        pod["status"]["message"] = message
    cond(pod, "Ready", "False", "PodFailed")
    cond(pod, "ContainersReady", "False", "PodFailed")


def host_path(st, name, pod, mounts, path):
    """A container path mapped onto the pod's volumes on this host, or None."""
    best = None
    for m in mounts:
        mp = m["mountPath"].rstrip("/")
        if (path == mp or path.startswith(mp + "/")) and (best is None or
                                                          len(mp) > len(best["mountPath"])):
            best = m
    if best is None:
        return None
    rel = path[len(best["mountPath"].rstrip("/")):].lstrip("/")
    root = volume_dir(st, name, pod, best["name"])
    return os.path.join(root, rel) if rel else root


def volume_dir(st, name, pod, vol):
    v = next(x for x in pod["spec"].get("volumes", []) if x["name"] == vol)
    if "emptyDir" in v and vol in st.bundle_volumes.get(name, ()):
        return st.args.bundle
    d = os.path.join(st.args.workdir, name, vol)
    os.makedirs(d, exist_ok=True)
    if "secret" in v:
        with st.lock:
            sec = st.secrets.get(v["secret"]["secretName"])
        if sec is None:
            return None
        items = v["secret"].get("items") or [{"key": k, "path": k} for k in sec.get("data", {})]
        for it in items:
            fp = os.path.join(d, it["path"])
            with open(fp, "wb") as f:
                f.write(base64.b64decode(sec["data"][it["key"]]))
            os.chmod(fp, it.get("mode", v["secret"].get("defaultMode", 0o644)) & 0o777)
    return d


def pdeathsig():
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def kubelet(st, name):
    time.sleep(0.02)
    with st.lock:
        pod = st.pods.get(name)
        if pod is None:
            return
        spec = copy.deepcopy(pod["spec"])
        ip = f"127.0.0.{st.next_ip}"
        st.next_ip = st.next_ip + 1 if st.next_ip < 250 else 2
    main = spec["containers"][0]
    mode = scripted(main["image"])
    if mode == "unschedulable":
        update(st, name, lambda p: cond(p, "PodScheduled", "False", "Unschedulable",
                                        "0/3 nodes are available: 3 Insufficient cpu. "
                                        "preemption: 0/3 nodes are available: 3 No preemption "
                                        "victims found for incoming pod."))
        return

    def scheduled(p):
        p["spec"]["nodeName"] = "standin-node-1"
        p["status"]["hostIP"] = "127.0.0.1"
        cond(p, "PodScheduled", "True")
        p["status"]["initContainerStatuses"] = [
            cstatus(c, {"waiting": {"reason": "PodInitializing"}})
            for c in p["spec"].get("initContainers", [])]
        p["status"]["containerStatuses"] = [
            cstatus(c, {"waiting": {"reason": "PodInitializing"}}) for c in p["spec"]["containers"]]
    if not update(st, name, scheduled):
        return
    # the secret volume must exist before anything starts (kubelet: FailedMount, retried)
    for _ in range(100):
        with st.lock:
            pod = st.pods.get(name)
            if pod is None:
                return
            missing = [v["secret"]["secretName"] for v in spec.get("volumes", [])
                       if "secret" in v and v["secret"]["secretName"] not in st.secrets]
        if not missing:
            break
        time.sleep(0.05)
    else:
        return
    # init containers: the executor bundle copy into the executor volume
    st.bundle_volumes.setdefault(name, set())
    for c in spec.get("initContainers", []):
        cmd = c.get("command", []) + c.get("args", [])
        ok = len(cmd) == 4 and cmd[:2] == ["cp", "-R"] and not scripted(c["image"])
        dst = [m for m in c.get("volumeMounts", []) if cmd and ok and
               cmd[3].rstrip("/") == m["mountPath"].rstrip("/")]
        if scripted(c["image"]) == "missing":
            update(st, name, lambda p, c=c: p["status"].__setitem__("initContainerStatuses", [
                cstatus(c, {"waiting": {"reason": "ErrImagePull", "message":
                                        f'rpc error: pulling image "{c["image"]}": not found'}})]))
            return
        if ok and dst:
            st.bundle_volumes[name].add(dst[0]["name"])

            def done(p, c=c):
                p["status"]["initContainerStatuses"] = [cstatus(c, {"terminated": {
                    "exitCode": 0, "reason": "Completed"}})]
            update(st, name, done)
        else:
            def failed(p, c=c):
                p["status"]["initContainerStatuses"] = [cstatus(c, {"terminated": {
                    "exitCode": 1, "reason": "Error"}})]
                p["status"]["phase"] = "Failed"
            update(st, name, failed)
            return
    if mode == "missing":
        for reason in ("ErrImagePull", "ImagePullBackOff"):
            update(st, name, lambda p, r=reason: p["status"].__setitem__("containerStatuses", [
                cstatus(main, {"waiting": {"reason": r, "message":
                                           f'Back-off pulling image "{main["image"]}"'
                                           if r == "ImagePullBackOff" else
                                           f'rpc error: code = NotFound desc = failed to pull '
                                           f'and unpack image "{main["image"]}": not found'}})]))
            time.sleep(0.1)
        return
    if mode == "crash":
        update(st, name, lambda p: set_failed(p, "Error", 1, "exec format error"))
        return
    # start the main container
    with st.lock:
        pod = st.pods.get(name)
        if pod is None:
            return
    cmd = main.get("command", []) + main.get("args", [])
    argv = []
    for a in cmd:
        if argv and argv[-1] == "--listen":  # the pod's own address, as in its netns
            a = f"{ip}:{a.rpartition(':')[2]}"
        elif a.startswith("/"):
            hp = host_path(st, name, pod, main.get("volumeMounts", []), a)
            a = hp if hp else a
        argv.append(a)
    executor = bool(cmd) and cmd[0].startswith("/") and \
        host_path(st, name, pod, main.get("volumeMounts", []), cmd[0]) is not None
    proc = None
    if executor:
        log = open(os.path.join(st.args.workdir, name + ".log"), "ab")
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        env.update({e["name"]: e.get("value", "") for e in main.get("env", [])})
        env["HOME"] = os.path.join(st.args.workdir, name, "workspace")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                preexec_fn=pdeathsig, close_fds=True, start_new_session=True)
        log.close()
        with st.lock:
            st.procs[name] = proc
            st.stats["executors_started"] += 1

    def running(p):
        p["status"]["phase"] = "Running"
        p["status"]["podIP"] = ip
        p["status"]["podIPs"] = [{"ip": ip}]
        p["status"]["startTime"] = now_iso()
        cond(p, "Initialized", "True")
        cond(p, "Ready", "False", "ContainersNotReady")
        p["status"]["containerStatuses"] = [cstatus(main, {"running": {"startedAt": now_iso()}})]
    if not update(st, name, running):
        return
    # the readiness probe (tcpSocket)
    probe = main.get("readinessProbe", {}).get("tcpSocket")
    port = probe and probe.get("port")
    if isinstance(port, str):
        port = next(p["containerPort"] for p in main.get("ports", []) if p.get("name") == port)
    for _ in range(200):
        if proc is not None and proc.poll() is not None:
            update(st, name, lambda p: set_failed(p, "Error", proc.returncode))
            return
        if not port:
            break
        try:
            socket.create_connection((ip, port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        return

    def ready(p):
        cond(p, "Ready", "True")
        cond(p, "ContainersReady", "True")
        p["status"]["containerStatuses"][0]["ready"] = True
    if not update(st, name, ready):
        return
    if mode in ("oom", "evict"):
        time.sleep(1.0)
        if proc is not None:
            kill_tree(proc)
        if mode == "oom":
            update(st, name, lambda p: set_failed(p, "OOMKilled", 137))
        else:
            update(st, name, lambda p: set_failed(p, "Error", 137, "The node was low on "
                                                  "resource: memory.", "Evicted"))
        return
    if proc is not None:  # the container's end, unless deleted first
        proc.wait()
        with st.lock:
            pod = st.pods.get(name)
            deleting = pod is None or "deletionTimestamp" in pod["metadata"]
        if not deleting:
            update(st, name, lambda p: set_failed(p, "Error", proc.returncode))


def kill_tree(proc):
    """SIGKILL the container's process group (the executor and what it started)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    proc.wait()


def terminate(st, name, grace):
    with st.lock:
        proc = st.procs.pop(name, None)
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(timeout=min(grace, 2))
        except subprocess.TimeoutExpired:
            pass
        kill_tree(proc)
    with st.lock:
        pod = st.pods.pop(name, None)
        if pod is None:
            return
        st.emit("DELETED", pod)
        uid = pod["metadata"]["uid"]
        # the garbage collector: dependents owned by the pod go with it
        for sname in [n for n, s in st.secrets.items()
                      if any(o.get("uid") == uid for o in s["metadata"].get("ownerReferences", []))]:
            del st.secrets[sname]
    shutil.rmtree(os.path.join(st.args.workdir, name), ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--forbidden-token-file")
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    args = ap.parse_args()
    state = State(args)
    state.bundle_volumes = {}
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.state = state
    ports = str(srv.server_address[1])
    if args.tls_cert:
        tls = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        tls.daemon_threads = True
        tls.state = state
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
        threading.Thread(target=tls.serve_forever, daemon=True).start()
        ports += f" {tls.server_address[1]}"

    def stop(*_):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(ports)
    os.rename(args.port_file + ".tmp", args.port_file)
    try:
        srv.serve_forever()
    finally:
        with state.lock:
            procs = list(state.procs.values())
        for p in procs:
            kill_tree(p)


if __name__ == "__main__":
    main()
