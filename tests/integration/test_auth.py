"""Authentication, roles, tenants, quotas and secure defaults (issue 3; DESIGN.md sections 6
and 8), against private daemons configured with the `apikey` auth plugin.

Daemons (all on loopback, each with its own config, keys file and data dir):
  authd   -- apikey plugin, installed default quotas: authentication, roles, tenants, CORS
  quotad  -- small quotas (2 sessions, 1 running execution, 2 CPU, 1Gi) and a high rate
  a rate-limited one (5 requests/s, burst 5), one on 0.0.0.0, one with debug logging for
  the secrets checks.
Keys are made with `sbxd keys create` before a daemon starts, or through /api/v1/keys.
"""

import json
import os
import re
import subprocess
import tempfile
import threading
import time

import pytest

import sbxd_harness
from auth_helpers import KEY_RE, AuthSbxd, KeyClient, make_config
from sbxclient import Client, assert_error, uid, wait_until

pytestmark = [pytest.mark.own_daemon]

PICKUP_S = 10  # how long a running daemon may take to see a keys-file change by the CLI
HANDLER_OK = "def handler(event):\n    return 'ok'\n"
SLEEPER = "import time\ndef handler(event):\n    time.sleep(%d)\n    return 'slept'\n"


def _skip_if_external():
    if os.environ.get("SBXD_URL"):
        pytest.skip("SBXD_URL set: these tests start their own sbxd with an auth plugin")


def _start(**kw):
    _skip_if_external()
    listen_host = kw.pop("listen_host", "127.0.0.1")
    env = kw.pop("env", None)
    keys = kw.pop("keys", ())
    try:
        d = AuthSbxd(**kw)
    except sbxd_harness.NotAvailable as e:
        pytest.skip(str(e))
    try:
        for label, tenant, role in keys:
            d.create_key(label, tenant, role)
        d.start(listen_host=listen_host, env=env)
    except Exception:
        d.cleanup()
        raise
    return d


def _stop(d):
    try:
        d.stop_and_check()
    finally:
        d.cleanup()


def secret_parts(key):
    """The key string and its secret part (everything after the id)."""
    return [key, key[len("sbx_") + 16 + 1:]]


def assert_401(r):
    assert_error(r, 401, "Sandbox.Unauthorized")
    www = r.headers.get("www-authenticate", "")
    assert www.lower().startswith("bearer"), "401 without WWW-Authenticate: Bearer: %r %r" % (
        r.headers, r)


def delete_quietly(client, sid):
    try:
        client.delete("/sessions/%s" % sid, timeout=30)
    except OSError:
        pass


def new_session(client, expect=201, **fields):
    body = {"template_id": "python-basic"}
    body.update(fields)
    r = client.post("/sessions", json=body)
    if expect is not None:
        assert r.status == expect, r
    return r


# =========================================================================================
# authd: authentication, roles, tenants, CORS
# =========================================================================================

@pytest.fixture(scope="module")
def authd():
    d = _start(keys=[("admin", "ops", "admin"), ("userA", "tenant-a", "user"),
                     ("readA", "tenant-a", "read-only"), ("userB", "tenant-b", "user"),
                     ("userC", "tenant-c", "user")])
    yield d
    _stop(d)


@pytest.fixture(scope="module")
def A(authd):
    return authd.kc(label="userA")


@pytest.fixture(scope="module")
def B(authd):
    return authd.kc(label="userB")


@pytest.fixture(scope="module")
def admin(authd):
    return authd.kc(label="admin")


@pytest.fixture(scope="module")
def anon(authd):
    return Client(authd.url)


# ---- authentication ---------------------------------------------------------------------

@pytest.mark.parametrize("method,path", [
    ("GET", "/sessions"), ("POST", "/sessions"), ("GET", "/templates"),
    ("GET", "/executions/exec-nope"), ("GET", "/keys"), ("GET", "/health/detailed"),
    ("GET", "/metrics")])
def test_no_credential_is_401_with_www_authenticate_and_error_body(anon, method, path):
    r = anon.request(method, path, json={"template_id": "python-basic"}
                     if method == "POST" else None)
    assert_401(r)


def test_request_without_credential_creates_nothing(authd, anon, admin):
    sid = uid("anon")
    assert_401(anon.post("/sessions", json={"id": sid, "template_id": "python-basic"}))
    assert admin.get("/sessions/%s" % sid).status == 404


def test_unknown_or_garbled_key_is_401(authd, anon):
    real = authd.keys["userA"]["key"]
    kid = authd.keys["userA"]["id"]
    secret = real[len("sbx_") + 16 + 1:]
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    bad = [
        "sbx_garbage",
        "sbx_",
        "sbx_%s_%s" % ("0123456789abcdef", "A" * 43),            # well-formed, unknown id
        "sbx_%s_%s" % (kid, flipped),                              # real id, wrong secret
        "sbx_%s_%s" % (kid, "A" * 43),
        real + "x",                                                # trailing garbage
        real[:-1],                                                 # truncated
        "sbx_%s_%s" % (kid.upper(), secret),                       # id case changed
        "xyz_%s_%s" % (kid, secret),                               # wrong prefix
        "not-a-key",
    ]
    for k in bad:
        for style in ("bearer", "x-api-key"):
            c = KeyClient(authd.url, k, style)
            assert_401(c.get("/sessions"))
    # Malformed Authorization headers.
    for h in ("Bearer", "Bearer ", "Basic dXNlcjpwYXNz", real, "Token " + real):
        assert_401(anon.get("/sessions", headers={"Authorization": h}))


def test_bearer_and_x_api_key_both_authenticate(authd):
    for style in ("bearer", "x-api-key"):
        c = authd.kc(label="userA", style=style)
        r = c.get("/sessions")
        assert r.status == 200, (style, r)
        r = c.get("/templates")
        assert r.status == 200, (style, r)


def test_health_needs_no_credential_but_detailed_does(authd, anon, A):
    for p in ("/health", "/api/v1/health"):
        r = anon.get(p)
        assert r.status == 200 and r.body.get("status"), r
    assert_401(anon.get("/health/detailed"))
    r = A.get("/health/detailed")
    assert r.status == 200, r


def test_key_created_by_cli_while_running_is_accepted(authd):
    out = authd.create_key("late", "tenant-late", "user")
    c = authd.kc(out["key"])

    def ok():
        r = c.get("/sessions")
        return r if r.status == 200 else None
    r = wait_until(ok, PICKUP_S, interval=0.2, what="key created by the CLI accepted")
    assert r.body["total"] == 0, r


def test_key_revoked_by_cli_while_running_is_401(authd):
    out = authd.create_key("to-revoke-cli", "tenant-a", "user")
    c = authd.kc(out["key"])
    wait_until(lambda: c.get("/sessions").status == 200, PICKUP_S, interval=0.2,
               what="new key accepted")
    p = authd.cli("revoke", out["id"])
    assert p.returncode == 0, p.stderr
    wait_until(lambda: c.get("/sessions").status == 401, PICKUP_S, interval=0.2,
               what="key revoked by the CLI refused")
    assert_401(c.get("/sessions"))
    assert_401(authd.kc(out["key"], style="x-api-key").get("/sessions"))
    # The record says so, and never shows the secret.
    p = authd.cli("get", out["id"])
    assert p.returncode == 0, p.stderr
    rec = json.loads(p.stdout)
    assert rec.get("revoked") is True or rec.get("revoked_at"), rec
    for s in secret_parts(out["key"]):
        assert s not in p.stdout


def test_key_revoked_through_the_api_is_401_at_once(authd, admin):
    r = admin.post("/keys", json={"tenant": "tenant-a", "role": "user", "name": "api-revoke"})
    assert r.status == 201, r
    key, kid = r.body["key"], r.body["id"]
    c = authd.kc(key)
    assert c.get("/sessions").status == 200
    r = admin.delete("/keys/%s" % kid)
    assert r.status in (200, 204), r
    assert_401(c.get("/sessions"))
    assert_401(authd.kc(key, style="x-api-key").get("/sessions"))
    r = admin.get("/keys/%s" % kid)
    assert r.status == 200 and (r.body.get("revoked") is True or r.body.get("revoked_at")), r
    # revoking an unknown key
    r = admin.delete("/keys/0123456789abcdef")
    assert_error(r, 404)


def test_expired_key_is_401(authd, admin):
    now_ms = int(time.time() * 1000)
    # In the past: either refused at creation (422) or created and never accepted.
    r = admin.post("/keys", json={"tenant": "tenant-a", "role": "user",
                                  "expires_at": now_ms - 60000})
    if r.status == 201:
        assert_401(authd.kc(r.body["key"]).get("/sessions"))
    else:
        assert_error(r, 422)
    # A few seconds ahead (through the API, and with the CLI's --expires-in in days):
    # accepted now, refused after.
    r = admin.post("/keys", json={"tenant": "tenant-a", "role": "user",
                                  "expires_at": now_ms + 3000})
    assert r.status == 201, r
    c = authd.kc(r.body["key"])
    cli = authd.create_key("expiring", "tenant-a", "user", "--expires-in", "0.00004")  # 3.5 s
    c2 = authd.kc(cli["key"])
    first = c.get("/sessions")
    assert first.status == 200, first
    wait_until(lambda: c2.get("/sessions").status == 200, PICKUP_S, interval=0.1,
               what="CLI key with expiry accepted before it expires")
    time.sleep(max(0.0, (now_ms + 4500) / 1000.0 - time.time()))
    assert_401(c.get("/sessions"))
    assert_401(authd.kc(r.body["key"], style="x-api-key").get("/templates"))
    assert_401(c2.get("/sessions"))


def test_deleting_the_keys_file_removes_every_key():
    """plugins/auth/apikey/README.md: 'Deleting the file removes every key.'"""
    d = _start(keys=[("u", "tenant-x", "user")])
    try:
        c = d.kc(label="u")
        assert c.get("/sessions").status == 200
        os.unlink(d.keys_file)
        wait_until(lambda: c.get("/sessions").status == 401, PICKUP_S, interval=0.2,
                   what="keys refused after the keys file was deleted")
        assert_401(c.get("/templates"))
        # and a key created afterwards works
        out = d.create_key("new", "tenant-x", "user")
        wait_until(lambda: d.kc(out["key"]).get("/sessions").status == 200, PICKUP_S,
                   interval=0.2, what="key created after deletion accepted")
        assert_401(c.get("/sessions"))
    finally:
        _stop(d)


def test_keys_file_holds_only_hashes(authd):
    with open(authd.keys_file) as f:
        text = f.read()
    assert "sha256" in text, "keys file holds no hashes?"
    for out in authd.keys.values():
        for s in secret_parts(out["key"]):
            assert s not in text, "a key's secret is stored in clear in the keys file"
    mode = os.stat(authd.keys_file).st_mode & 0o777
    assert mode & 0o077 == 0, "keys file mode %o is readable by others" % mode


# ---- roles -------------------------------------------------------------------------------

def test_read_only_may_get_but_not_change(authd, A):
    ro = authd.kc(label="readA")
    assert ro.get("/sessions").status == 200
    assert ro.get("/templates").status == 200
    assert ro.get("/health/detailed").status == 200
    r = ro.post("/sessions", json={"template_id": "python-basic"})
    assert_error(r, 403, "Sandbox.Forbidden")
    assert ro.get("/sessions").body["total"] == A.get("/sessions").body["total"]
    # Its tenant's session is readable, not changeable.
    sid = new_session(A).body["id"]
    try:
        r = ro.get("/sessions/%s" % sid)
        assert r.status == 200, r
        for method, path, body in [
                ("POST", "/sessions/%s/execute" % sid, {"code": HANDLER_OK,
                                                        "language": "python"}),
                ("POST", "/sessions/%s/terminate" % sid, None),
                ("DELETE", "/sessions/%s" % sid, None),
                ("POST", "/templates", {"id": uid("tpl"), "name": "x",
                                        "image_url": "sandbox-template-python-basic:latest",
                                        "runtime_type": "python3.11"}),
                ("POST", "/keys", {"tenant": "tenant-a", "role": "admin"})]:
            r = ro.request(method, path, json=body)
            assert_error(r, 403, "Sandbox.Forbidden")
        assert A.get("/sessions/%s" % sid).body["status"] == "running"
        assert A.get("/sessions/%s/executions" % sid).body["total"] == 0
    finally:
        delete_quietly(A, sid)


def test_user_may_create_sessions_but_not_manage_keys(authd, A):
    r = new_session(A)
    delete_quietly(A, r.body["id"])
    r = A.post("/keys", json={"tenant": "tenant-a", "role": "admin"})
    assert_error(r, 403, "Sandbox.Forbidden")
    assert_error(A.get("/keys"), 403, "Sandbox.Forbidden")
    kid = authd.keys["userB"]["id"]
    assert_error(A.get("/keys/%s" % kid), 403, "Sandbox.Forbidden")
    assert_error(A.delete("/keys/%s" % kid), 403, "Sandbox.Forbidden")
    assert authd.kc(label="userB").get("/sessions").status == 200


def test_admin_creates_a_key_shown_once_and_never_listed(authd, admin):
    r = admin.post("/keys", json={"tenant": "tenant-k", "role": "user", "name": "made-by-api"})
    assert r.status == 201, r
    key, kid = r.body.get("key", ""), r.body.get("id")
    assert KEY_RE.match(key), r
    assert kid and kid in key, r
    assert "sha256" not in r.raw.decode(), "create response carries the hash: %r" % r
    secrets = secret_parts(key)
    listed = admin.get("/keys")
    assert listed.status == 200, listed
    got = admin.get("/keys/%s" % kid)
    assert got.status == 200, got
    filtered = admin.get("/keys", params={"tenant": "tenant-k"})
    assert filtered.status == 200, filtered
    for resp in (listed, got, filtered):
        text = resp.raw.decode()
        assert kid in text, resp
        for s in secrets:
            assert s not in text, "key secret in %r" % resp
        assert "sha256" not in text, "key hash in %r" % resp
        for other in authd.keys.values():
            assert other["key"] not in text
    for args in (("list",), ("get", kid)):
        p = authd.cli(*args)
        assert p.returncode == 0, p.stderr
        assert kid in p.stdout
        assert "sha256" not in p.stdout and not any(s in p.stdout for s in secrets)
    # The key works, as tenant-k, user.
    c = authd.kc(key)
    r = c.get("/sessions")
    assert r.status == 200 and r.body["total"] == 0, r
    assert_error(c.get("/keys"), 403, "Sandbox.Forbidden")
    admin.delete("/keys/%s" % kid)


def test_admin_key_creation_rejects_bad_fields(admin):
    for body in ({"role": "user"}, {"tenant": "t", "role": "root"},
                 {"tenant": "", "role": "user"}, {"tenant": "t", "role": "user",
                                                  "quotas": {"nonsense": 1}},
                 {"tenant": "t", "role": "user", "quotas": {"max_sessions": -1}}):
        r = admin.post("/keys", json=body)
        assert r.status in (400, 422), (body, r)


# ---- tenants -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def a_objects(authd, A):
    """Tenant A's session (with a file and a finished execution) and private template."""
    sid = new_session(A).body["id"]
    r = A.upload(sid, "secret.txt", b"tenant a data")
    assert r.status in (200, 201), r
    ex = A.execute_sync(sid, "def handler(event):\n    return 'a-result'\n")
    assert ex["status"] == "completed", ex
    tid = uid("tpl-a")
    r = A.post("/templates", json={
        "id": tid, "name": "tenant a private", "image_url":
        "sandbox-template-python-basic:latest", "runtime_type": "python3.11",
        "default_cpu_cores": 1, "default_memory_mb": 256, "default_disk_mb": 512,
        "default_timeout_sec": 120})
    assert r.status == 201, r
    yield {"sid": sid, "eid": ex["id"], "tid": tid}
    delete_quietly(A, sid)
    A.delete("/templates/%s" % tid)


def test_other_tenant_gets_404_for_session_executions_files_and_template(a_objects, B):
    sid, eid, tid = a_objects["sid"], a_objects["eid"], a_objects["tid"]
    code = {"code": HANDLER_OK, "language": "python"}
    reqs = [
        ("GET", "/sessions/%s" % sid, None),
        ("POST", "/sessions/%s/execute" % sid, code),
        ("POST", "/executions/sessions/%s/execute" % sid, code),
        ("POST", "/sessions/%s/execute-sync" % sid, code),
        ("POST", "/executions/sessions/%s/execute-sync" % sid, code),
        ("GET", "/sessions/%s/executions" % sid, None),
        ("GET", "/executions/sessions/%s/executions" % sid, None),
        ("GET", "/executions/%s" % eid, None),
        ("GET", "/executions/%s/status" % eid, None),
        ("GET", "/executions/%s/result" % eid, None),
        ("GET", "/executions/%s/stream" % eid, None),
        ("GET", "/sessions/%s/files" % sid, None),
        ("GET", "/sessions/%s/files/secret.txt" % sid, None),
        ("DELETE", "/sessions/%s/files/secret.txt" % sid, None),
        ("POST", "/sessions/%s/terminate" % sid, None),
        ("DELETE", "/sessions/%s" % sid, None),
        ("GET", "/templates/%s" % tid, None),
        ("PUT", "/templates/%s" % tid, {"name": "taken over"}),
        ("DELETE", "/templates/%s" % tid, None),
    ]
    for method, path, body in reqs:
        r = B.request(method, path, json=body, timeout=30)
        assert_error(r, 404)
        assert "a-result" not in r.raw.decode() and "tenant a" not in r.raw.decode(), r
    r = B.upload(sid, "evil.txt", b"from b")
    assert_error(r, 404)
    r = B.post("/sessions", json={"template_id": tid})
    assert r.status in (400, 404), r
    assert r.status != 201


def test_other_tenant_cannot_touch_a_session_it_cannot_see(a_objects, A, B):
    """After all of B's attempts, A's objects are intact."""
    sid, eid, tid = a_objects["sid"], a_objects["eid"], a_objects["tid"]
    B.post("/sessions/%s/terminate" % sid)
    B.delete("/sessions/%s/files/secret.txt" % sid)
    B.put("/templates/%s" % tid, json={"name": "taken over"})
    r = A.get("/sessions/%s" % sid)
    assert r.status == 200 and r.body["status"] == "running", r
    r = A.download(sid, "secret.txt")
    assert r.status == 200 and r.raw == b"tenant a data", r
    assert A.get("/sessions/%s/executions" % sid).body["total"] == 1
    r = A.get("/templates/%s" % tid)
    assert r.status == 200 and r.body["name"] == "tenant a private", r
    r = A.get("/executions/%s/result" % eid)
    assert r.status == 200 and r.body["return_value"] == "a-result", r


def test_other_tenant_lists_do_not_show_tenant_a(authd, a_objects, A):
    sid, tid = a_objects["sid"], a_objects["tid"]
    c = authd.kc(label="userC")  # tenant-c makes nothing in this module
    r = c.get("/sessions")
    assert r.status == 200 and r.body["total"] == 0 and r.body["items"] == [], r
    for params in ({"status": "running"}, {"template_id": "python-basic"},
                   {"limit": 200}):
        r = c.get("/sessions", params=params)
        assert r.status == 200 and r.body["total"] == 0, (params, r)
    tpls = {t["id"] for t in c.get("/templates").body}
    assert tid not in tpls and "python-basic" in tpls, tpls
    r = A.get("/sessions", params={"limit": 200})
    assert sid in {s["id"] for s in r.body["items"]}, r
    assert tid in {t["id"] for t in A.get("/templates").body}


def test_admin_sees_other_tenants_objects(a_objects, admin):
    sid, eid, tid = a_objects["sid"], a_objects["eid"], a_objects["tid"]
    r = admin.get("/sessions/%s" % sid)
    assert r.status == 200 and r.body["id"] == sid, r
    r = admin.get("/sessions", params={"limit": 200})
    assert sid in {s["id"] for s in r.body["items"]}, r
    r = admin.get("/executions/%s" % eid)
    assert r.status == 200, r
    assert admin.get("/sessions/%s/executions" % sid).body["total"] == 1
    r = admin.download(a_objects["sid"], "secret.txt")
    assert r.status == 200, r
    assert admin.get("/templates/%s" % tid).status == 200
    assert tid in {t["id"] for t in admin.get("/templates").body}


def test_global_templates_are_usable_by_every_tenant(authd, admin, A, B):
    made = []
    gid = uid("tpl-global")
    r = admin.post("/templates", json={
        "id": gid, "name": "global by admin", "image_url":
        "sandbox-template-python-basic:latest", "runtime_type": "python3.11",
        "default_cpu_cores": 1, "default_memory_mb": 256, "default_disk_mb": 512,
        "default_timeout_sec": 120})
    assert r.status == 201, r
    try:
        for c in (A, B):
            assert {"python-basic", gid} <= {t["id"] for t in c.get("/templates").body}
            assert c.get("/templates/%s" % gid).status == 200
            for tpl in ("python-basic", gid):
                s = new_session(c, template_id=tpl).body
                made.append((c, s["id"]))
                ex = c.execute_sync(s["id"], HANDLER_OK)
                assert ex["status"] == "completed" and ex["return_value"] == "ok", ex
        # Each tenant sees its own, not the other's.
        a_ids = {s["id"] for s in A.get("/sessions", params={"limit": 200}).body["items"]}
        b_ids = {s["id"] for s in B.get("/sessions", params={"limit": 200}).body["items"]}
        assert not (a_ids & b_ids)
    finally:
        for c, sid in made:
            delete_quietly(c, sid)
        admin.delete("/templates/%s" % gid)


def test_admin_template_for_a_named_tenant_is_private_to_it(admin, A, B):
    tid = uid("tpl-for-b")
    r = admin.post("/templates", json={
        "id": tid, "name": "for tenant b", "tenant": "tenant-b", "image_url":
        "sandbox-template-python-basic:latest", "runtime_type": "python3.11",
        "default_cpu_cores": 1, "default_memory_mb": 256, "default_disk_mb": 512,
        "default_timeout_sec": 120})
    assert r.status == 201, r
    try:
        assert B.get("/templates/%s" % tid).status == 200
        assert tid in {t["id"] for t in B.get("/templates").body}
        assert_error(A.get("/templates/%s" % tid), 404)
        assert tid not in {t["id"] for t in A.get("/templates").body}
        r = A.post("/sessions", json={"template_id": tid})
        assert r.status in (400, 404), r
    finally:
        admin.delete("/templates/%s" % tid)


def test_user_template_is_private_to_its_tenant(authd, A, B):
    tid = uid("tpl-priv")
    r = A.post("/templates", json={
        "id": tid, "name": "mine", "image_url": "sandbox-template-python-basic:latest",
        "runtime_type": "python3.11", "default_cpu_cores": 1, "default_memory_mb": 256,
        "default_disk_mb": 512, "default_timeout_sec": 120})
    assert r.status == 201, r
    try:
        assert A.get("/templates/%s" % tid).status == 200
        assert_error(B.get("/templates/%s" % tid), 404)
        assert tid not in {t["id"] for t in B.get("/templates").body}
        r = B.post("/sessions", json={"template_id": tid})
        assert r.status in (400, 404), r
        s = new_session(A, template_id=tid).body
        delete_quietly(A, s["id"])
        r = A.put("/templates/%s" % tid, json={"name": "mine, renamed"})
        assert r.status == 200 and r.body["name"] == "mine, renamed", r
    finally:
        r = A.delete("/templates/%s" % tid)
        assert r.status == 204, r


def test_user_cannot_change_a_global_template(authd, A, admin):
    before = admin.get("/templates/python-basic").body
    r = A.put("/templates/python-basic", json={"name": "hijacked"})
    assert_error(r, 403, "Sandbox.Forbidden")
    r = A.delete("/templates/python-basic")
    assert_error(r, 403, "Sandbox.Forbidden")
    after = A.get("/templates/python-basic")
    assert after.status == 200 and after.body["name"] == before["name"], after
    # read-only cannot either
    ro = authd.kc(label="readA")
    assert_error(ro.put("/templates/python-basic", json={"name": "x"}), 403)


# ---- CORS --------------------------------------------------------------------------------

def test_cors_is_off_by_default(authd, A, anon):
    hdr = {"Origin": "http://evil.example"}
    responses = [
        anon.get("/health", headers=hdr),
        anon.get("/sessions", headers=hdr),
        A.get("/sessions", headers=hdr),
        A.request("OPTIONS", "/sessions", headers=dict(
            hdr, **{"Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization"})),
    ]
    for r in responses:
        for h in r.headers:
            assert not h.startswith("access-control-"), "CORS header on %r: %r" % (
                r, r.headers)


# =========================================================================================
# quotas
# =========================================================================================

QUOTAS = {"max_sessions": 2, "max_running_executions": 1, "max_cpu": 2.0,
          "max_memory": "1Gi", "requests_per_second": 1000.0, "burst": 2000}


@pytest.fixture(scope="module")
def quotad():
    d = _start(quotas=QUOTAS, keys=[("admin", "ops", "admin")] + [
        ("q%d" % i, "quota-%d" % i, "user") for i in range(1, 8)])
    yield d
    _stop(d)


@pytest.fixture
def cleanup_sessions():
    made = []
    yield made
    for c, sid in made:
        delete_quietly(c, sid)


def assert_429(r):
    assert_error(r, 429, "Sandbox.TooManyRequests")
    ra = r.headers.get("retry-after")
    assert ra is not None, "429 without Retry-After: %r" % r.headers
    assert int(ra) >= 1, ra


def create_into(c, made, expect=201, **fields):
    r = new_session(c, expect=None, **fields)
    if r.status == 201:
        made.append((c, r.body["id"]))
    if expect == 429:
        assert_429(r)
    elif expect is not None:
        assert r.status == expect, r
    return r


def test_third_live_session_is_429_and_nothing_is_created(quotad, cleanup_sessions):
    c = quotad.kc(label="q1")
    made = cleanup_sessions
    create_into(c, made)
    create_into(c, made)
    sid3 = uid("over")
    assert c.get("/sessions").body["total"] == 2
    r = create_into(c, made, expect=429, id=sid3)
    assert "max_sessions" in r.body["description"] or "session" in r.body["description"], r
    assert_error(c.get("/sessions/%s" % sid3), 404)
    body = c.get("/sessions", params={"limit": 200}).body
    assert body["total"] == 2, body
    assert all(s["status"] == "running" for s in body["items"]), body
    assert c.get("/sessions", params={"status": "creating"}).body["total"] == 0
    admin = quotad.kc(label="admin")
    assert_error(admin.get("/sessions/%s" % sid3), 404)
    # The id is free: a later create with it (after room is made) succeeds.
    r = c.post("/sessions/%s/terminate" % made[0][1])
    assert r.status == 200, r
    r = create_into(c, made, id=sid3)
    assert r.body["id"] == sid3


def test_terminating_a_session_frees_its_slot(quotad, cleanup_sessions):
    c = quotad.kc(label="q2")
    made = cleanup_sessions
    create_into(c, made)
    create_into(c, made)
    create_into(c, made, expect=429)
    r = c.post("/sessions/%s/terminate" % made[0][1])
    assert r.status == 200, r
    create_into(c, made)
    create_into(c, made, expect=429)
    r = c.delete("/sessions/%s" % made[1][1])
    assert r.status == 204, r
    create_into(c, made)
    # Another tenant is not affected by q2's use.
    other = quotad.kc(label="q3")
    create_into(other, made)


def test_second_running_execution_in_a_tenant_is_429(quotad, cleanup_sessions):
    c = quotad.kc(label="q4")
    made = cleanup_sessions
    s1 = create_into(c, made).body["id"]
    s2 = create_into(c, made).body["id"]
    r = c.post("/sessions/%s/execute" % s1, json={"code": SLEEPER % 4, "language": "python"})
    assert r.status == 201, r
    eid = r.body["execution_id"]

    def running():
        return c.get("/executions/%s" % eid).body["status"] == "running"
    wait_until(running, 20, interval=0.05, what="first execution running")
    assert_429(c.post("/sessions/%s/execute" % s2,
                      json={"code": HANDLER_OK, "language": "python"}))
    assert_429(c.post("/executions/sessions/%s/execute-sync" % s2,
                      json={"code": HANDLER_OK, "language": "python"},
                      params={"sync_timeout": 30}, timeout=60))
    assert_429(c.post("/sessions/%s/execute" % s1,
                      json={"code": HANDLER_OK, "language": "python"}))
    # Nothing half-created.
    assert c.get("/sessions/%s/executions" % s2).body["total"] == 0
    assert c.get("/sessions/%s/executions" % s1).body["total"] == 1
    # Another tenant may run meanwhile.
    other = quotad.kc(label="q5")
    so = create_into(other, made).body["id"]
    ex = other.execute_sync(so, HANDLER_OK)
    assert ex["status"] == "completed", ex
    # When the first finishes, the tenant may run again.
    ex1 = c.wait_execution(eid, 30)
    assert ex1["status"] == "completed", ex1
    ex = c.execute_sync(s2, HANDLER_OK)
    assert ex["status"] == "completed" and ex["return_value"] == "ok", ex


def test_cpu_and_memory_totals_are_enforced(quotad, cleanup_sessions):
    c = quotad.kc(label="q6")
    made = cleanup_sessions
    # alone over the quota
    create_into(c, made, expect=429, cpu=3)
    create_into(c, made, expect=429, memory="2Gi")
    assert c.get("/sessions").body["total"] == 0
    # summed over live sessions
    s1 = create_into(c, made, cpu=1.5, memory="256Mi").body["id"]
    create_into(c, made, expect=429, cpu=1, memory="256Mi")
    create_into(c, made, cpu=0.5, memory="256Mi")
    c.delete("/sessions/%s" % s1)
    create_into(c, made, cpu=0.5, memory="768Mi")       # 0.5+0.5 cpu, 256+768 = 1Gi
    assert c.get("/sessions").body["total"] == 2
    c2 = quotad.kc(label="q7")
    create_into(c2, made, cpu=0.5, memory="768Mi")
    create_into(c2, made, expect=429, cpu=0.5, memory="512Mi")   # 768+512 > 1024
    create_into(c2, made, cpu=0.5, memory="256Mi")
    assert c2.get("/sessions").body["total"] == 2


def test_per_key_quota_override_applies_to_that_keys_requests(quotad, cleanup_sessions):
    admin = quotad.kc(label="admin")
    made = cleanup_sessions
    r = admin.post("/keys", json={"tenant": "quota-low", "role": "user",
                                  "quotas": {"max_sessions": 1}})
    assert r.status == 201, r
    low = quotad.kc(r.body["key"])
    create_into(low, made)
    create_into(low, made, expect=429)     # the config default (2) would allow it
    assert low.get("/sessions").body["total"] == 1
    # ... and raising: 3 small sessions where the default allows 2.
    r = admin.post("/keys", json={"tenant": "quota-high", "role": "user",
                                  "quotas": {"max_sessions": 3}})
    assert r.status == 201, r
    high = quotad.kc(r.body["key"])
    for _ in range(3):
        create_into(high, made, cpu=0.5, memory="256Mi")
    create_into(high, made, expect=429, cpu=0.5, memory="256Mi")
    # A per-key rate override.
    r = admin.post("/keys", json={"tenant": "quota-rate", "role": "user",
                                  "quotas": {"requests_per_second": 1, "burst": 2}})
    assert r.status == 201, r
    slow = quotad.kc(r.body["key"])
    statuses = [slow.get("/templates") for _ in range(6)]
    assert any(s.status == 429 for s in statuses), [s.status for s in statuses]
    for s in statuses:
        if s.status == 429:
            assert_429(s)


def _parallel(fn, n):
    out = [None] * n
    errs = []

    def run(i):
        try:
            out[i] = fn(i)
        except Exception as e:  # reported below
            errs.append(e)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "requests still running after 120 s"
    assert not errs, errs
    return out


def test_concurrent_creates_never_exceed_max_sessions(quotad, cleanup_sessions):
    admin = quotad.kc(label="admin")
    r = admin.post("/keys", json={"tenant": "quota-race", "role": "user"})
    assert r.status == 201, r
    c = quotad.kc(r.body["key"])
    made = cleanup_sessions
    got = _parallel(lambda i: c.post("/sessions", json={
        "template_id": "python-basic", "cpu": 0.25, "memory": "128Mi"}), 6)
    for resp in got:
        if resp.status == 201:
            made.append((c, resp.body["id"]))
    codes = sorted(resp.status for resp in got)
    assert codes == [201, 201, 429, 429, 429, 429], [(x.status, x.body) for x in got]
    for resp in got:
        if resp.status == 429:
            assert_429(resp)
    body = c.get("/sessions", params={"limit": 200}).body
    assert body["total"] == 2, body
    assert admin.get("/sessions", params={"status": "creating"}).body["total"] == 0


def test_concurrent_executions_never_exceed_max_running(quotad, cleanup_sessions):
    admin = quotad.kc(label="admin")
    r = admin.post("/keys", json={"tenant": "quota-exec-race", "role": "user"})
    assert r.status == 201, r
    c = quotad.kc(r.body["key"])
    made = cleanup_sessions
    sids = [create_into(c, made, cpu=0.5, memory="256Mi").body["id"] for _ in range(2)]
    got = _parallel(lambda i: c.post("/sessions/%s/execute" % sids[i % 2], json={
        "code": SLEEPER % 2, "language": "python"}), 6)
    ok = [x for x in got if x.status == 201]
    assert len(ok) == 1, [(x.status, x.body) for x in got]
    for x in got:
        if x.status != 201:
            assert_429(x)
    total = sum(c.get("/sessions/%s/executions" % s).body["total"] for s in sids)
    assert total == 1, total
    ex = c.wait_execution(ok[0].body["execution_id"], 30)
    assert ex["status"] == "completed", ex


def test_per_key_overrides_of_cpu_memory_and_running_executions(quotad, cleanup_sessions):
    admin = quotad.kc(label="admin")
    made = cleanup_sessions
    r = admin.post("/keys", json={"tenant": "quota-cpu", "role": "user",
                                  "quotas": {"max_cpu": 0.5}})
    assert r.status == 201, r
    c = quotad.kc(r.body["key"])
    create_into(c, made, expect=429, cpu=1)              # config allows 2
    create_into(c, made, cpu=0.5, memory="256Mi")
    r = admin.post("/keys", json={"tenant": "quota-mem", "role": "user",
                                  "quotas": {"max_memory_mb": 300}})
    assert r.status == 201, r
    c = quotad.kc(r.body["key"])
    create_into(c, made, expect=429, cpu=0.5, memory="512Mi")   # config allows 1Gi
    create_into(c, made, cpu=0.5, memory="256Mi")
    r = admin.post("/keys", json={"tenant": "quota-run", "role": "user",
                                  "quotas": {"max_running_executions": 2}})
    assert r.status == 201, r
    c = quotad.kc(r.body["key"])
    sids = [create_into(c, made, cpu=0.5, memory="256Mi").body["id"] for _ in range(2)]
    r1 = c.post("/sessions/%s/execute" % sids[0], json={"code": SLEEPER % 3,
                                                           "language": "python"})
    assert r1.status == 201, r1
    wait_until(lambda: c.get("/executions/%s" % r1.body["execution_id"]).body["status"]
               == "running", 20, interval=0.05, what="first execution running")
    r2 = c.post("/sessions/%s/execute" % sids[1], json={"code": HANDLER_OK,
                                                           "language": "python"})
    assert r2.status == 201, r2                           # config allows only 1
    c.wait_execution(r1.body["execution_id"], 30)


def test_request_rate_over_the_bucket_is_429_then_recovers():
    d = _start(quotas=dict(QUOTAS, requests_per_second=5.0, burst=5),
               keys=[("r1", "rate-1", "user"), ("r2", "rate-2", "user")])
    try:
        c = d.kc(label="r1")
        got = [c.get("/sessions") for _ in range(20)]
        codes = [r.status for r in got]
        assert set(codes) <= {200, 429}, codes
        assert codes.count(429) >= 5, codes
        assert codes[:3] == [200, 200, 200], codes
        wait = 0
        for r in got:
            if r.status == 429:
                assert_429(r)
                wait = max(wait, int(r.headers["retry-after"]))
        assert wait <= 5, wait
        # Another tenant has its own bucket.
        assert d.kc(label="r2").get("/sessions").status == 200
        # /health is not counted.
        assert all(Client(d.url).get("/health").status == 200 for _ in range(10))
        time.sleep(wait)
        r = c.get("/sessions")
        assert r.status == 200, r
        # The bucket holds at most `burst` tokens and refills at 5/s: after 2 s idle, a
        # quick run of 15 gets about 5 through (plus what refills meanwhile), not 10.
        time.sleep(2.0)
        t0 = time.monotonic()
        later = [c.get("/sessions").status for _ in range(15)]
        elapsed = time.monotonic() - t0
        assert later[:4] == [200] * 4, later
        assert later.count(200) <= 5 + int(elapsed * 5) + 2, (later, elapsed)
        assert 429 in later, later
    finally:
        _stop(d)


# =========================================================================================
# secure defaults
# =========================================================================================

def _run_sbxd(args, timeout=20):
    """Run sbxd with args; a daemon that starts is killed after `timeout` (the test then
    fails on the exit status)."""
    p = subprocess.Popen([sbxd_harness.find_binary()] + args, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return None, out, err
    return p.returncode, out, err


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]"])
def test_non_loopback_listen_without_auth_is_refused(host):
    _skip_if_external()
    work = tempfile.mkdtemp(prefix="sbxd-it-noauth-")
    os.chmod(work, 0o711)  # sandboxes mount from the data dir below it
    try:
        data = os.path.join(work, "data")
        os.mkdir(data)
        conf = make_config(os.path.join(work, "sbxd.conf"), data, with_auth=False)
        port = sbxd_harness.free_port()
        listen = "%s:%d" % (host, port)
        for extra in ([], ["--check-config"]):
            rc, out, err = _run_sbxd(["--config", conf, "--listen", listen,
                                      "--data-dir", data] + extra)
            assert rc not in (None, 0), "sbxd %s accepted --listen %s without auth (rc=%r)" \
                % (extra, listen, rc)
            msg = (out + err).lower()
            assert "auth" in msg and ("127.0.0.1" in msg or "loopback" in msg), (out, err)
            # nothing listens there
            with pytest.raises(OSError):
                Client("http://127.0.0.1:%d" % port).get("/health", timeout=2)
        # The same config on loopback is fine.
        rc, out, err = _run_sbxd(["--config", conf, "--listen", "127.0.0.1:%d" % port,
                                  "--data-dir", data, "--check-config"])
        assert rc == 0, (out, err)
    finally:
        import shutil
        shutil.rmtree(work, ignore_errors=True)


def test_non_loopback_listen_in_the_config_file_without_auth_is_refused():
    _skip_if_external()
    import shutil
    work = tempfile.mkdtemp(prefix="sbxd-it-noauth-")
    os.chmod(work, 0o711)
    try:
        data = os.path.join(work, "data")
        os.mkdir(data)
        port = sbxd_harness.free_port()
        conf = make_config(os.path.join(work, "sbxd.conf"), data, with_auth=False,
                           listen="0.0.0.0:%d" % port)
        for extra in ([], ["--check-config"]):
            rc, out, err = _run_sbxd(["--config", conf, "--data-dir", data] + extra)
            assert rc not in (None, 0), (extra, rc, out, err)
            assert "auth" in (out + err).lower(), (out, err)
        # `sbxd keys` with no key-managing plugin says what to add.
        p = subprocess.run([sbxd_harness.find_binary(), "keys", "create", "--tenant", "t",
                            "--role", "user", "--config", conf], capture_output=True,
                           text=True, timeout=30)
        assert p.returncode != 0 and "apikey" in p.stderr, p
        assert not KEY_RE.search(p.stdout or ""), p
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_cors_only_for_configured_origins():
    good = "http://good.example"
    d = _start(server_extra={"cors_origins": good}, keys=[("u", "tenant-x", "user")])
    try:
        c = d.kc(label="u")
        r = c.get("/sessions", headers={"Origin": good})
        assert r.status == 200 and r.headers.get("access-control-allow-origin") == good, r.headers
        r = c.get("/sessions", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in r.headers, r.headers
        r = Client(d.url).get("/sessions", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in r.headers, r.headers
    finally:
        _stop(d)


def test_cors_preflight_for_an_authenticated_request_is_answered_when_configured():
    """A browser sends `Authorization` cross-origin only after an OPTIONS preflight that
    allows it; without one, configuring cors_origins cannot serve an authenticated API."""
    good = "http://good.example"
    d = _start(server_extra={"cors_origins": good})
    try:
        r = Client(d.url).request("OPTIONS", "/sessions", headers={
            "Origin": good, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert r.status in (200, 204), "CORS preflight refused: %r" % r
        assert r.headers.get("access-control-allow-origin") == good, r.headers
        allow_h = r.headers.get("access-control-allow-headers", "").lower()
        assert "authorization" in allow_h, r.headers
        assert "POST" in r.headers.get("access-control-allow-methods", ""), r.headers
    finally:
        _stop(d)


def test_a_key_pasted_into_a_url_is_not_logged_or_echoed():
    """An operator who pastes a whole key where an id belongs (GET|DELETE /keys/{id}),
    or a client that puts it in the path, must not get it written to the log (DESIGN.md
    section 8: secrets never appear in logs)."""
    d = _start(keys=[("admin", "ops", "admin"), ("u", "tenant-x", "user")])
    try:
        admin = d.kc(label="admin")
        key = d.keys["u"]["key"]
        for method in ("GET", "DELETE"):
            r = admin.request(method, "/keys/%s" % key)
            assert r.status in (400, 404, 422), r
            assert key not in r.raw.decode() and key[21:] not in r.raw.decode(), r
        r = d.kc(label="u").get("/sessions/%s" % key)   # echoed to its sender: fine
        assert r.status == 404, r
        assert d.kc(label="u").get("/sessions").status == 200   # the key was not revoked
        d.stop_and_check()
        log = d.log_text()
        assert key[21:] not in log, "a key pasted into a URL is written to the log:\n%s" % (
            "\n".join(l for l in log.splitlines() if key[21:] in l))
    finally:
        if d.proc.poll() is None:
            _stop(d)
        else:
            d.cleanup()


def test_non_loopback_listen_with_auth_starts():
    d = _start(listen_host="0.0.0.0", keys=[("u", "tenant-x", "user")])
    try:
        anon = Client(d.url)  # 127.0.0.1
        assert anon.get("/health").status == 200
        assert_401(anon.get("/sessions"))
        r = d.kc(label="u").get("/sessions")
        assert r.status == 200, r
        rc, out, err = _run_sbxd(["--config", d.config, "--listen",
                                  "0.0.0.0:%d" % sbxd_harness.free_port(), "--data-dir",
                                  d.data_dir, "--check-config"])
        assert rc == 0, (out, err)
    finally:
        _stop(d)


# ---- secrets: logs, responses, health, sandbox environment -------------------------------

DAEMON_ENV_SECRETS = {
    "SBXD_TEST_API_TOKEN": "daemon-env-token-" + os.urandom(8).hex(),
    "AWS_SECRET_ACCESS_KEY": "daemon-env-aws-" + os.urandom(8).hex(),
}


@pytest.fixture(scope="module")
def secretd():
    env = dict(os.environ)
    env.update(DAEMON_ENV_SECRETS)
    d = _start(log_level="debug", env=env,
               keys=[("admin", "ops", "admin"), ("u", "tenant-s", "user"),
                     ("ro", "tenant-s", "read-only")])
    yield d
    if d.proc.poll() is None:
        _stop(d)
    else:
        d.cleanup()


def all_secrets(d):
    out = []
    for v in d.keys.values():
        out += secret_parts(v["key"])
    return out


def test_handler_environment_holds_no_secret(secretd):
    c = secretd.kc(label="u")
    s = c.post("/sessions", json={"template_id": "python-basic",
                                  "env_vars": {"MY_API_KEY": "set-by-test"}})
    assert s.status == 201, s
    sid = s.body["id"]
    try:
        ex = c.execute_sync(sid, "import os, json\ndef handler(event):\n"
                                 "    return json.dumps(dict(os.environ))\n",
                            env_vars={"RUN_TOKEN": "also-set-by-test"})
        assert ex["status"] == "completed", ex
        env = json.loads(ex["return_value"])
        assert env.get("MY_API_KEY") == "set-by-test" and env.get(
            "RUN_TOKEN") == "also-set-by-test", env
        dump = json.dumps(env)
        for s_ in all_secrets(secretd) + list(DAEMON_ENV_SECRETS.values()):
            assert s_ not in dump, "secret reached the handler's environment: %r" % env
        suspicious = [k for k in env if re.search(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL", k,
                                                  re.I)
                      and k not in ("MY_API_KEY", "RUN_TOKEN")]
        assert not suspicious, "handler environment has %r" % {k: env[k]
                                                               for k in suspicious}
        # The shell view of the environment too.
        ex = c.execute_sync(sid, "env; cat /proc/1/environ 2>/dev/null | tr '\\0' '\\n'",
                            language="shell")
        for s_ in all_secrets(secretd) + list(DAEMON_ENV_SECRETS.values()):
            assert s_ not in (ex.get("stdout") or ""), ex
        # sbxd's keys file is not reachable from the sandbox.
        probe = ("import os\ndef handler(event):\n    try:\n"
                 "        return open(%r).read()\n    except Exception as e:\n"
                 "        return 'no: %%s' %% type(e).__name__\n" % secretd.keys_file)
        ex = c.execute_sync(sid, probe)
        assert "sha256" not in str(ex.get("return_value")), ex
    finally:
        delete_quietly(c, sid)


def test_no_secret_in_logs_health_or_responses_after_a_run(secretd):
    """Runs last on secretd: exercises the keys every way, stops the daemon, reads its log."""
    d = secretd
    admin = d.kc(label="admin")
    r = admin.post("/keys", json={"tenant": "tenant-s", "role": "user", "name": "api"})
    assert r.status == 201, r
    api_key = r.body["key"]
    d.keys["api"] = r.body
    create_resp = r
    late = d.create_key("late", "tenant-s", "user")
    for label in ("u", "ro", "admin"):
        for style in ("bearer", "x-api-key"):
            c = d.kc(label=label, style=style)
            c.get("/sessions")
            c.get("/health/detailed")
            c.get("/metrics")
            c.get("/keys")
    c = d.kc(api_key)
    sid = c.post("/sessions", json={"template_id": "python-basic"}).body["id"]
    c.execute_sync(sid, HANDLER_OK)
    c.get("/sessions/%s/executions" % sid)
    wait_until(lambda: d.kc(late["key"]).get("/sessions").status == 200, PICKUP_S,
               interval=0.2, what="CLI key picked up")
    # Failing attempts that carry (near-)secrets: not echoed, not logged either.
    near = [api_key[:-1] + ("Q" if api_key[-1] != "Q" else "R"), api_key + "extra",
            api_key[len("sbx_") + 17:], "sbx_%s_%s" % ("f" * 16, api_key[-43:])]
    for k in near:
        for style in ("bearer", "x-api-key"):
            d.kc(k, style=style).get("/sessions")
            d.kc(k, style=style).post("/sessions", json={"template_id": "python-basic"})
    d.kc(label="u").post("/keys", json={"tenant": "x", "role": "admin"})
    admin.get("/keys/%s" % r.body["id"])
    admin.delete("/keys/%s" % r.body["id"])
    d.kc(api_key).get("/sessions")  # revoked
    c2 = d.kc(label="u")
    c2.delete("/sessions/%s" % sid)
    hd = admin.get("/health/detailed")
    assert hd.status == 200, hd
    secrets = all_secrets(d) + near
    for s_ in secrets + ["sha256"]:
        assert s_ not in hd.raw.decode(), "secret in /health/detailed: %r" % hd
    for method, path, resp in d.record:
        if resp is create_resp:
            continue
        text = resp.raw.decode(errors="replace")
        for s_ in secrets:
            assert s_ not in text, "secret in the response to %s %s: %r" % (method, path,
                                                                           resp)
        for h, v in resp.headers.items():
            assert not any(s_ in v for s_ in secrets), (method, path, h)
    d.stop_and_check()
    log = d.log_text()
    assert "debug" in log.lower() or len(log) > 0
    for s_ in secrets:
        assert s_ not in log, "a key secret appears in the daemon log (%s)" % d.log_path
    for v in DAEMON_ENV_SECRETS.values():
        assert v not in log


# ---- workspace archives across tenants -----------------------------------------------------

def test_another_tenant_can_neither_download_nor_restore_an_archive(A, B):
    """Archive keys come from the session's own tenant and id, never from the client: tenant
    B cannot read tenant A's archive nor start a session from it, whatever id it sends."""
    r = A.post("/sessions", json={"template_id": "python-basic"})
    assert r.status == 201, r
    sid = r.body["id"]
    ex = A.post("/sessions/%s/execute-sync" % sid, json={
        "language": "shell", "code": "echo tenant-a-secret > /workspace/secret.txt"})
    assert ex.status == 200, ex
    r = A.post("/sessions/%s/terminate" % sid)
    assert r.status == 200 and r.body["workspace_archive"]["size"] > 0, r
    # the owner gets it: the bytes, or a 307 to a presigned URL (s3/minio storage)
    assert A.get("/sessions/%s/workspace-archive" % sid).status in (200, 307)
    assert_error(B.get("/sessions/%s/workspace-archive" % sid), 404)
    r = B.post("/sessions", json={"template_id": "python-basic", "restore_from": sid})
    assert_error(r, 422)
    for bad in ("../%s" % sid, "workspaces/tenant-a/%s.tar" % sid, sid + "/../x"):
        r = B.post("/sessions", json={"template_id": "python-basic", "restore_from": bad})
        assert_error(r, 422)
    A.delete("/sessions/%s" % sid)
