"""Workspace files: upload (multipart), list, download, handler interplay, and refusal of
every path that escapes /workspace (.., absolute, symlinks)."""

import os
import uuid

import pytest

from sbxclient import assert_error


def rel(file_path):
    """Upload responses may name the file relative to /workspace or absolutely."""
    p = file_path
    if p.startswith("/workspace/"):
        p = p[len("/workspace/"):]
    return p.lstrip("/")


def names(api, sid, path=None):
    r = api.get("/sessions/%s/files" % sid, params={"path": path} if path else None)
    assert r.status == 200, r
    return {f["name"]: f for f in r.body["files"]}


def test_upload_defaults_path_to_file_name_and_download_returns_bytes(api, py_session):
    sid = py_session["id"]
    r = api.upload(sid, "hello.txt", b"hello, workspace\n")
    assert r.status in (200, 201), r
    assert r.body["session_id"] == sid, r
    assert rel(r.body["file_path"]) == "hello.txt", r
    assert r.body["size"] == len(b"hello, workspace\n"), r
    d = api.download(sid, "hello.txt")
    assert d.status == 200, d
    assert d.raw == b"hello, workspace\n"


def test_upload_with_path_renames_and_trailing_slash_names_a_directory(api, py_session):
    sid = py_session["id"]
    r = api.upload(sid, "orig.txt", b"renamed", path="renamed.bin")
    assert r.status in (200, 201) and rel(r.body["file_path"]) == "renamed.bin", r
    r = api.upload(sid, "inner.txt", b"in a dir", path="sub/dir/")
    assert r.status in (200, 201) and rel(r.body["file_path"]) == "sub/dir/inner.txt", r
    assert api.download(sid, "renamed.bin").raw == b"renamed"
    assert api.download(sid, "sub/dir/inner.txt").raw == b"in a dir"
    assert api.download(sid, "orig.txt").status == 404


def test_list_reports_name_size_modified_time_and_count(api, py_session):
    sid = py_session["id"]
    api.upload(sid, "a.txt", b"12345")
    api.upload(sid, "b.txt", b"", path="nested/")
    r = api.get("/sessions/%s/files" % sid)
    assert r.status == 200, r
    assert r.body["session_id"] == sid
    assert r.body["count"] == len(r.body["files"]), r
    files = {f["name"]: f for f in r.body["files"]}
    assert "a.txt" in files, r
    assert files["a.txt"]["size"] == 5, files
    assert isinstance(files["a.txt"]["modified_time"], (int, float, str)), files
    sub = names(api, sid, "nested")
    assert "b.txt" in sub and sub["b.txt"]["size"] == 0, sub


def test_list_limit_caps_the_number_of_entries(api, py_session):
    sid = py_session["id"]
    for i in range(5):
        api.upload(sid, "f%d.txt" % i, b"x")
    r = api.get("/sessions/%s/files" % sid, params={"limit": 2})
    assert r.status == 200 and len(r.body["files"]) == 2 and r.body["count"] == 2, r


def test_binary_5_mib_round_trips_exactly(api, py_session):
    sid = py_session["id"]
    blob = os.urandom(5 * 1024 * 1024) + bytes(range(256)) + b"\r\n--\x00"
    r = api.upload(sid, "blob.bin", blob)
    assert r.status in (200, 201) and r.body["size"] == len(blob), r
    d = api.download(sid, "blob.bin")
    assert d.status == 200 and len(d.raw) == len(blob) and d.raw == blob


def test_handler_sees_uploaded_file_and_its_written_file_is_downloadable(api, py_session):
    sid = py_session["id"]
    api.upload(sid, "input.txt", b"from the client")
    code = ("import os\n"
            "def handler(event):\n"
            "    data = open('/workspace/input.txt').read()\n"
            "    os.makedirs('/workspace/out', exist_ok=True)\n"
            "    with open('/workspace/out/result.bin', 'wb') as f:\n"
            "        f.write(b'\\x00\\xffwritten by handler')\n"
            "    return data\n")
    ex = api.execute_sync(sid, code)
    assert ex["status"] == "completed" and ex["return_value"] == "from the client", ex
    d = api.download(sid, "out/result.bin")
    assert d.status == 200 and d.raw == b"\x00\xffwritten by handler", d
    assert "result.bin" in names(api, sid, "out")


def test_download_missing_file_is_404(api, py_session):
    r = api.download(py_session["id"], "nope-%s.txt" % uuid.uuid4().hex)
    assert_error(r, 404)


def test_files_of_unknown_session_is_404(api):
    sid = "missing-" + uuid.uuid4().hex
    assert_error(api.get("/sessions/%s/files" % sid), 404, "Sandbox.SessionNotFound")
    assert_error(api.upload(sid, "x.txt", b"x"), 404, "Sandbox.SessionNotFound")


def test_upload_without_file_field_is_4xx(api, py_session):
    r = api.request("POST", "/sessions/%s/files/upload" % py_session["id"], data=b"plain",
                    headers={"Content-Type": "text/plain"})
    assert r.status in (400, 422), r
    assert_error(r, r.status)


# ---- escapes ----------------------------------------------------------------------------

def _nothing_written(api, sid, workspace_path, marker, before):
    """The marker appears nowhere reachable: not in the workspace listing, not on the
    host next to the workspace or in /etc, not at / or /etc inside the sandbox."""
    assert set(names(api, sid)) == before, "refused upload still changed the workspace"
    with open("/etc/passwd", "rb") as f:
        assert marker not in f.read()
    if workspace_path and os.path.isdir(workspace_path):
        parent = os.path.dirname(os.path.normpath(workspace_path))
        for cand in ("x", "passwd"):
            p = os.path.join(parent, cand)
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    assert marker not in f.read(), p
    code = ("import os\n"
            "def handler(event):\n"
            "    m = event['m'].encode()\n"
            "    hits = []\n"
            "    for p in ('/x', '/etc/passwd', '/etc/x', '/workspace/x'):\n"
            "        try:\n"
            "            if m in open(p, 'rb').read():\n"
            "                hits.append(p)\n"
            "        except OSError:\n"
            "            pass\n"
            "    return hits\n")
    ex = api.execute_sync(sid, code, event={"m": marker.decode()})
    assert ex["status"] == "completed" and ex["return_value"] == [], ex


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "a/../../x", "..",
                                  "../x", "./../x", "a/../../../../../etc/passwd"])
def test_upload_path_escaping_workspace_is_400_and_writes_nothing(api, py_session, path):
    sid = py_session["id"]
    before = set(names(api, sid))
    marker = ("ESCAPE-" + uuid.uuid4().hex).encode()
    r = api.upload(sid, "x", marker, path=path)
    assert_error(r, 400)
    _nothing_written(api, sid, py_session.get("workspace_path"), marker, before)


@pytest.mark.parametrize("filename", ["../x", "../../etc/passwd", "/etc/passwd"])
def test_upload_file_name_escaping_workspace_is_400(api, py_session, filename):
    sid = py_session["id"]
    before = set(names(api, sid))
    marker = ("ESCAPE-" + uuid.uuid4().hex).encode()
    r = api.upload(sid, filename, marker)
    assert_error(r, 400)
    _nothing_written(api, sid, py_session.get("workspace_path"), marker, before)


@pytest.mark.parametrize("path", ["%2e%2e/etc/passwd", "..%2Fetc%2Fpasswd",
                                  "%2Fetc%2Fpasswd", "a/%2e%2e/%2e%2e/etc/passwd",
                                  "%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd"])
def test_download_path_escaping_workspace_is_400(api, py_session, path):
    r = api.download(py_session["id"], path)
    assert b"root:" not in r.raw
    assert_error(r, 400)


@pytest.mark.parametrize("path", ["../../../../etc/passwd", "/etc/passwd"])
def test_download_with_literal_dot_segments_never_serves_outside_files(api, py_session, path):
    # Unencoded dot segments may be normalised by the HTTP layer before routing (then the
    # route is simply not found); either way nothing outside the workspace is served.
    r = api.download(py_session["id"], path)
    assert b"root:" not in r.raw
    assert r.status in (400, 404), r
    assert_error(r, r.status)


def test_list_path_escaping_workspace_is_400(api, py_session):
    for p in ("..", "../etc", "/etc"):
        assert_error(api.get("/sessions/%s/files" % py_session["id"], params={"path": p}), 400)


def _make_links(api, sid):
    code = ("import os\n"
            "def handler(event):\n"
            "    os.symlink('/etc', '/workspace/etclink')\n"
            "    os.symlink('/etc/passwd', '/workspace/pwlink')\n"
            "    os.symlink('..', '/workspace/uplink')\n"
            "    return sorted(os.listdir('/workspace'))\n")
    ex = api.execute_sync(sid, code)
    assert ex["status"] == "completed", ex
    assert {"etclink", "pwlink", "uplink"} <= set(ex["return_value"]), ex


def test_download_through_symlink_out_of_workspace_is_400(api, py_session):
    sid = py_session["id"]
    _make_links(api, sid)
    for p in ("etclink/passwd", "pwlink", "uplink/etc/passwd"):
        r = api.download(sid, p)
        assert b"root:" not in r.raw, p
        assert_error(r, 400)


def test_upload_through_symlink_out_of_workspace_is_400_and_writes_nothing(api, py_session):
    sid = py_session["id"]
    _make_links(api, sid)
    name = "sbx-escape-%s" % uuid.uuid4().hex
    marker = ("ESCAPE-" + uuid.uuid4().hex).encode()
    for p in ("etclink/" + name, "etclink/", "pwlink", "uplink/" + name):
        assert_error(api.upload(sid, name, marker, path=p), 400)
    assert not os.path.exists("/etc/" + name)
    with open("/etc/passwd", "rb") as f:
        assert marker not in f.read()
    code = ("import os\n"
            "def handler(event):\n"
            "    return [os.path.exists('/etc/' + event['n']), os.path.exists('/' + event['n']),\n"
            "            event['m'] in open('/etc/passwd').read()]\n")
    ex = api.execute_sync(sid, code, event={"n": name, "m": marker.decode()})
    assert ex["status"] == "completed" and ex["return_value"] == [False, False, False], ex


def test_another_session_cannot_see_the_file(api, make_session):
    a = make_session("python-basic")["id"]
    b = make_session("python-basic")["id"]
    name = "private-%s.txt" % uuid.uuid4().hex
    assert api.upload(a, name, b"secret of A").status in (200, 201)
    assert name not in names(api, b)
    assert api.download(b, name).status == 404
    code = ("import os\ndef handler(e):\n"
            "    return os.path.exists('/workspace/' + e['n'])\n")
    ex = api.execute_sync(b, code, event={"n": name})
    assert ex["status"] == "completed" and ex["return_value"] is False, ex
    assert api.download(a, name).raw == b"secret of A"
