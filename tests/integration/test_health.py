"""GET /health, /health/detailed and the X-Request-ID contract."""

import os
import re
import uuid

KNOWN_STATUSES = {"ok", "healthy", "up", "pass", "degraded", "warn", "down", "error",
                  "unhealthy", "fail", "failed"}


def test_health_reports_status_version_and_uptime(api):
    r = api.get("/health")
    assert r.status == 200, r
    assert r.body["status"] in ("ok", "healthy"), r
    assert isinstance(r.body["version"], str) and r.body["version"], r
    assert isinstance(r.body["uptime"], (int, float)) and r.body["uptime"] >= 0, r


def test_health_uptime_does_not_go_backwards(api):
    a = api.get("/health").body["uptime"]
    b = api.get("/health").body["uptime"]
    assert b >= a


def _plugin_entries(body):
    """Accept a list of {name, kind?, status} or a mapping name -> status|{status} under
    'plugins' (or 'checks'/'components'); the contract only says 'a real check of every
    loaded plugin'."""
    for key in ("plugins", "checks", "components"):
        if key in body:
            coll = body[key]
            break
    else:
        raise AssertionError("/health/detailed has no plugins/checks/components: %r" % body)
    entries = []
    if isinstance(coll, dict):
        for name, v in coll.items():
            st = v.get("status") if isinstance(v, dict) else v
            entries.append((name, v if isinstance(v, dict) else {}, st))
    else:
        for v in coll:
            assert isinstance(v, dict), coll
            name = v.get("name") or v.get("module") or v.get("id")
            entries.append((name, v, v.get("status")))
    return entries


def test_health_detailed_lists_every_default_plugin_with_a_status(api):
    r = api.get("/health/detailed")
    assert r.status == 200, r
    entries = _plugin_entries(r.body)
    assert entries, r
    text = " ".join("%s %s" % (name, v) for name, v, _ in entries)
    # Every module the configuration loads: the embedded default is linux + local + sqlite;
    # the production tier (SBXD_CONFIG) loads mariadb + minio instead.
    cfg = os.environ.get("SBXD_CONFIG")
    modules = (re.findall(r'module\s*=\s*"([^"]+)"', open(cfg).read())
               if cfg and os.path.exists(cfg) else ["linux", "local", "sqlite"])
    for module in modules:
        assert module in text, "plugin %r missing from /health/detailed: %r" % (module, r.body)
    for name, _, status in entries:
        assert isinstance(status, str) and status.lower() in KNOWN_STATUSES, (name, status)


def test_request_id_is_echoed_when_sent(api):
    rid = "it-" + uuid.uuid4().hex
    r = api.get("/health", headers={"X-Request-ID": rid})
    assert r.status == 200
    assert r.headers.get("x-request-id") == rid, r.headers


def test_request_id_is_echoed_on_error_responses(api):
    rid = "it-" + uuid.uuid4().hex
    r = api.get("/sessions/does-not-exist-" + uuid.uuid4().hex, headers={"X-Request-ID": rid})
    assert r.status == 404
    assert r.headers.get("x-request-id") == rid, r.headers


def test_request_id_is_generated_and_unique_when_absent(api):
    a = api.get("/health").headers.get("x-request-id")
    b = api.get("/health").headers.get("x-request-id")
    assert a and b, "no X-Request-ID generated"
    assert a != b
