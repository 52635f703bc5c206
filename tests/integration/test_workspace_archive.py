"""Workspace persistence and artifacts: an execution reports the files it created or
changed; a session's /workspace is archived to the storage plugin when it ends, can be
downloaded, and a new session can start from it (restore_from)."""
import hashlib
import http.client
import io
import tarfile
import urllib.parse

from sbxclient import assert_error

WRITE = ("mkdir -p /workspace/d && echo hello > /workspace/d/a.txt && "
         "printf '{\"k\": 1}' > /workspace/data.json")


def fetch_archive(api, sid):
    """GET the archive, following a 307 to a presigned URL (s3/minio storage)."""
    conn = http.client.HTTPConnection(api.host, api.port, timeout=60)
    conn.request("GET", "/api/v1/sessions/%s/workspace-archive" % sid)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    if r.status == 307:
        u = urllib.parse.urlsplit(r.getheader("Location"))
        assert u.hostname in ("127.0.0.1", "localhost"), u
        c2 = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        c2.request("GET", u.path + ("?" + u.query if u.query else ""))
        r2 = c2.getresponse()
        body = r2.read()
        c2.close()
        assert r2.status == 200, (r2.status, body[:300])
        return body
    assert r.status == 200, (r.status, body[:300])
    return body


def test_an_execution_reports_the_files_it_created_or_changed_as_artifacts(api, py_session):
    sid = py_session["id"]
    ex = api.execute_sync(sid, "echo same > /workspace/keep.txt", language="shell")
    assert {a["path"] for a in ex["artifacts"]} == {"keep.txt"}
    ex = api.execute_sync(sid, WRITE, language="shell")
    arts = {a["path"]: a for a in ex["artifacts"]}
    assert set(arts) == {"d/a.txt", "data.json"}, arts  # keep.txt was not touched
    assert arts["d/a.txt"]["size"] == 6
    assert arts["d/a.txt"]["sha256"] == hashlib.sha256(b"hello\n").hexdigest()
    assert arts["data.json"]["mime_type"] == "application/json"
    r = api.download(sid, "d/a.txt")  # artifacts are workspace files: downloadable
    assert r.status == 200 and r.raw == b"hello\n"


def test_a_terminated_sessions_workspace_is_archived_and_restorable(api, make_session):
    src = make_session("python-basic")["id"]
    api.execute_sync(src, WRITE, language="shell")
    r = api.post("/api/v1/sessions/%s/terminate" % src)
    assert r.status == 200, r
    arch = r.body["workspace_archive"]
    assert arch and not arch.get("error") and arch["size"] > 0, r.body
    names = tarfile.open(fileobj=io.BytesIO(fetch_archive(api, src))).getnames()
    assert "./d/a.txt" in names and "./data.json" in names, names

    new = make_session("python-basic", restore_from=src)
    assert new["restored_from"] == src
    ex = api.execute_sync(new["id"], "cat /workspace/d/a.txt /workspace/data.json",
                          language="shell")
    assert ex["stdout"] == "hello\n{\"k\": 1}", ex


def test_restore_from_an_unknown_session_or_one_without_archive_is_422(api, make_session):
    r = make_session("python-basic", expect=None, restore_from="sess-nope")
    assert_error(r, 422)
    live = make_session("python-basic")["id"]  # running: not archived yet
    r = make_session("python-basic", expect=None, restore_from=live)
    assert_error(r, 422)
    assert "archive" in r.body["description"]


def test_a_deleted_sessions_archive_is_gone(api, make_session):
    sid = make_session("python-basic")["id"]
    api.execute_sync(sid, WRITE, language="shell")
    assert api.post("/api/v1/sessions/%s/terminate" % sid).status == 200
    assert api.delete("/api/v1/sessions/%s" % sid).status == 204
    assert_error(api.get("/api/v1/sessions/%s/workspace-archive" % sid), 404)
