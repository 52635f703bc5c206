"""Production shape only (SBXD_PROD_DIR set by tests/run-all.sh's production tier, where
SBXD_CONFIG points at MariaDB + an S3 server): sessions, executions, files and templates
survive a MariaDB restart (503 Sandbox.Unavailable with Retry-After while it is down, back
by itself) and an sbxd restart; a terminated session's workspace is in the S3 server and
restores into a new session."""
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

import sbxd_harness
from sbxclient import wait_until

PROD = os.environ.get("SBXD_PROD_DIR")
SERVICES = os.path.join(os.path.dirname(__file__), "..", "production", "services.sh")

pytestmark = pytest.mark.skipif(not PROD, reason="needs the production tier (SBXD_PROD_DIR)")


def services(cmd):
    subprocess.run(["bash", SERVICES, cmd, PROD], check=True, timeout=60)


def check_everything(api, sid, eid, tid):
    s = api.get("/sessions/%s" % sid)
    assert s.status == 200 and s.body["status"] == "running", s
    e = api.get("/executions/%s" % eid)
    assert e.status == 200 and e.body["return_value"] == {"ok": 1}, e
    f = api.download(sid, "kept/notes.txt")
    assert f.status == 200 and f.raw == b"survives\n", f
    t = api.get("/templates/%s" % tid)
    assert t.status == 200, t
    ex = api.execute_sync(sid, "cat /workspace/kept/notes.txt", language="shell")
    assert ex["stdout"] == "survives\n", ex


def test_state_survives_a_mariadb_restart_and_an_sbxd_restart(tmp_path):
    data_dir = tempfile.mkdtemp(prefix="sbxd-prod-restart-")
    config = sbxd_harness.DerivedConfig()  # a database of its own, kept across the restart
    procs = []
    try:
        first = sbxd_harness.SbxdProcess(data_dir=data_dir, config=config)
        procs.append(first)
        api = first.start().client
        tid = "prod-" + uuid.uuid4().hex[:8]
        r = api.post("/templates", json={"id": tid, "name": "p", "image_url":
                                         "sandbox-template-python-basic:latest",
                                         "runtime_type": "python3.11"})
        assert r.status == 201, r
        sid = api.post("/sessions", json={"template_id": tid}).body["id"]
        assert api.upload(sid, "notes.txt", b"survives\n", path="kept/").status == 200
        ex = api.execute_sync(sid, "def handler(e):\n    return {'ok': 1}\n")
        eid = ex["id"]

        services("db-stop")
        r = api.get("/sessions/%s" % sid)
        assert r.status == 503, r
        assert r.body["error_code"] == "Sandbox.Unavailable" and r.headers.get("retry-after"), r
        assert api.post("/sessions", json={"template_id": tid}).status == 503
        services("db-start")
        wait_until(lambda: api.get("/sessions/%s" % sid).status == 200, 30,
                   interval=0.5, what="sbxd reconnected to MariaDB")
        check_everything(api, sid, eid, tid)

        first.stop_and_check()
        second = sbxd_harness.SbxdProcess(data_dir=data_dir, config=config)
        procs.append(second)
        api = second.start().client
        check_everything(api, sid, eid, tid)

        # the workspace goes to the S3 server on terminate and comes back on restore
        r = api.post("/sessions/%s/terminate" % sid)
        assert r.status == 200 and r.body["workspace_archive"]["size"] > 0, r
        assert not os.path.isdir(os.path.join(data_dir, "objects"))  # it is in S3, not local
        new = api.post("/sessions", json={"template_id": tid, "restore_from": sid})
        assert new.status == 201, new
        ex = api.execute_sync(new.body["id"], "cat /workspace/kept/notes.txt",
                              language="shell")
        assert ex["stdout"] == "survives\n", ex
        api.delete("/sessions/%s" % new.body["id"])
        api.delete("/sessions/%s" % sid)
        second.stop_and_check()
    finally:
        for p in procs:
            p.cleanup()
        config.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)
