"""Templates: defaults, CRUD, validation, in-use protection, inheritance by sessions."""

import pytest

from sbxclient import assert_error, parse_size, uid
from sbxd_fixtures import DROP

DEFAULTS = {"python-basic": "python3.11", "nodejs-basic": "nodejs20", "shell-basic": None}


def test_list_is_an_array_containing_the_three_seeded_defaults(api):
    r = api.get("/templates")
    assert r.status == 200, r
    assert isinstance(r.body, list), r
    by_id = {t["id"]: t for t in r.body}
    for tid, runtime in DEFAULTS.items():
        assert tid in by_id, "default template %s missing: %r" % (tid, sorted(by_id))
        if runtime:
            assert by_id[tid]["runtime_type"] == runtime, by_id[tid]
    assert by_id["python-basic"]["image_url"] == "sandbox-template-python-basic:latest"


def test_create_returns_201_and_get_returns_it(api, make_template):
    t = make_template(name="created", default_env_vars={"A": "1"})
    assert t["name"] == "created" and t["runtime_type"] == "python3.11", t
    r = api.get("/templates/%s" % t["id"])
    assert r.status == 200, r
    for k in ("id", "name", "image_url", "runtime_type", "default_cpu_cores",
              "default_memory_mb", "default_disk_mb", "default_timeout_sec"):
        assert r.body[k] == t[k], (k, r.body, t)
    assert r.body["default_env_vars"] == {"A": "1"}, r.body
    assert any(x["id"] == t["id"] for x in api.get("/templates").body)


def test_create_duplicate_id_is_409(make_template):
    t = make_template()
    assert_error(make_template(expect=None, id=t["id"]), 409, "Sandbox.Conflict")


@pytest.mark.parametrize("override", [
    {"image_url": ""},
    {"image_url": DROP},
    {"image_url": None},
    {"runtime_type": "cobol"},
    {"runtime_type": DROP},
    {"id": DROP},
    {"name": DROP},
    {"default_memory_mb": -1},
    {"default_cpu_cores": "many"},
    {"default_timeout_sec": 0},
    {"default_env_vars": "x"},
], ids=lambda o: "-".join("%s=%r" % kv for kv in o.items()))
def test_create_with_invalid_fields_is_422(make_template, override):
    assert_error(make_template(expect=None, **override), 422, "Sandbox.InvalidParameter")


@pytest.mark.parametrize("runtime", ["python3.11", "nodejs20", "java17", "go1.21"])
def test_create_accepts_every_known_runtime_type(make_template, runtime):
    assert make_template(runtime_type=runtime)["runtime_type"] == runtime


def test_create_with_malformed_json_is_400(api):
    r = api.request("POST", "/templates", data=b"{", headers={"Content-Type": "application/json"})
    assert_error(r, 400)


def test_put_is_a_partial_update(api, make_template):
    t = make_template(default_env_vars={"KEEP": "1"})
    r = api.put("/templates/%s" % t["id"], json={"name": "renamed", "default_timeout_sec": 77})
    assert r.status == 200, r
    assert r.body["name"] == "renamed" and r.body["default_timeout_sec"] == 77, r
    g = api.get("/templates/%s" % t["id"]).body
    assert g["name"] == "renamed" and g["default_timeout_sec"] == 77, g
    for k in ("image_url", "runtime_type", "default_memory_mb", "default_disk_mb",
              "default_cpu_cores"):
        assert g[k] == t[k], (k, g, t)
    assert g["default_env_vars"] == {"KEEP": "1"}, g


def test_put_with_invalid_value_is_422_and_changes_nothing(api, make_template):
    t = make_template()
    r = api.put("/templates/%s" % t["id"], json={"runtime_type": "cobol", "name": "x"})
    assert_error(r, 422)
    g = api.get("/templates/%s" % t["id"]).body
    assert g["runtime_type"] == t["runtime_type"] and g["name"] == t["name"], g


def test_get_put_delete_unknown_template_is_404(api):
    tid = uid("missing")
    assert_error(api.get("/templates/%s" % tid), 404)
    assert_error(api.put("/templates/%s" % tid, json={"name": "x"}), 404)
    assert_error(api.delete("/templates/%s" % tid), 404)


def test_delete_is_204_then_404(api, make_template):
    t = make_template()
    r = api.delete("/templates/%s" % t["id"])
    assert r.status == 204 and r.raw == b"", r
    assert_error(api.get("/templates/%s" % t["id"]), 404)
    assert all(x["id"] != t["id"] for x in api.get("/templates").body)


def test_delete_of_template_used_by_live_session_is_409(api, make_template, make_session):
    t = make_template()
    s = make_session(t["id"])
    assert_error(api.delete("/templates/%s" % t["id"]), 409, "Sandbox.Conflict")
    assert api.get("/templates/%s" % t["id"]).status == 200
    assert api.delete("/sessions/%s" % s["id"]).status == 204
    assert api.delete("/templates/%s" % t["id"]).status == 204


def test_session_inherits_template_env_resources_and_timeout(api, make_template, make_session):
    t = make_template(default_cpu_cores=1, default_memory_mb=384, default_disk_mb=640,
                      default_timeout_sec=123, default_env_vars={"TPL_VAR": "tpl"})
    s = make_session(t["id"])
    assert s["timeout"] == 123, s
    rl = s["resource_limit"]
    assert float(rl["cpu"]) == 1.0, rl
    assert parse_size(rl["memory"]) == 384 * 1024 ** 2, rl
    assert parse_size(rl["disk"]) == 640 * 1024 ** 2, rl
    code = "import os\ndef handler(e):\n    return os.environ.get('TPL_VAR')\n"
    ex = api.execute_sync(s["id"], code)
    assert ex["status"] == "completed" and ex["return_value"] == "tpl", ex


def test_session_fields_override_template_defaults(api, make_template, make_session):
    t = make_template(default_memory_mb=384, default_timeout_sec=123,
                      default_env_vars={"TPL_VAR": "tpl"})
    s = make_session(t["id"], memory="256Mi", timeout=200, env_vars={"TPL_VAR": "session"})
    assert s["timeout"] == 200 and parse_size(s["resource_limit"]["memory"]) == 256 * 1024 ** 2
    # Whether other template env vars are merged in is not pinned by the contract.
    code = "import os\ndef handler(e):\n    return os.environ.get('TPL_VAR')\n"
    ex = api.execute_sync(s["id"], code)
    assert ex["return_value"] == "session", ex
