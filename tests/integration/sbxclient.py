"""Tiny stdlib HTTP client for the sbxd REST API (DESIGN.md section 6) and the helpers the
integration and security suites share: error-shape checks, polling with deadlines,
multipart encoding, size/timestamp parsing.  No third-party packages."""

import datetime
import http.client
import json as jsonlib
import re
import time
import urllib.parse
import uuid

API_PREFIX = "/api/v1"

# Terminal statuses (DESIGN.md section 6).
EXEC_TERMINAL = {"completed", "failed", "timeout", "crashed"}
SESSION_TERMINAL = {"completed", "failed", "timeout", "terminated"}

ERROR_KEYS = ("error_code", "description", "error_detail", "solution", "detail")


class Response:
    """Unpacks as (status, headers, body).  body is parsed JSON when the server says the
    content is JSON, else bytes.  raw always holds the bytes."""

    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers  # dict with lower-cased names
        self.raw = raw
        ctype = headers.get("content-type", "")
        self.body = raw
        if "json" in ctype and raw:
            try:
                self.body = jsonlib.loads(raw)
            except ValueError:
                self.body = raw

    def __iter__(self):
        return iter((self.status, self.headers, self.body))

    def __repr__(self):
        shown = self.body
        if isinstance(shown, (bytes, bytearray)) and len(shown) > 300:
            shown = shown[:300] + b"..."
        elif not isinstance(shown, (bytes, bytearray)):
            shown = jsonlib.dumps(shown)[:2000]
        return "<Response %s %r>" % (self.status, shown)


def encode_multipart(field, filename, content, content_type="application/octet-stream"):
    """Return (body, content-type header) for one file part."""
    boundary = "sbxtest-" + uuid.uuid4().hex
    head = (
        "--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
        "Content-Type: %s\r\n\r\n" % (boundary, field, filename, content_type)
    ).encode()
    tail = ("\r\n--%s--\r\n" % boundary).encode()
    return head + content + tail, "multipart/form-data; boundary=" + boundary


class Client:
    def __init__(self, base_url, timeout=120.0):
        u = urllib.parse.urlsplit(base_url)
        self.base_url = base_url.rstrip("/")
        self.host = u.hostname
        self.port = u.port or 80
        self.timeout = timeout

    def url_path(self, path, params=None):
        if not path.startswith("/api/"):
            path = API_PREFIX + path
        if params:
            q = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
            path += ("&" if "?" in path else "?") + q
        return path

    def request(self, method, path, json=None, data=None, headers=None, params=None,
                timeout=None):
        """One request on a fresh connection.  json= is serialised; data= is sent as is
        (bytes or str).  Never raises on HTTP error statuses."""
        hdrs = dict(headers or {})
        body = None
        if json is not None:
            body = jsonlib.dumps(json).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif data is not None:
            body = data.encode() if isinstance(data, str) else data
        conn = http.client.HTTPConnection(self.host, self.port,
                                          timeout=timeout or self.timeout)
        try:
            try:
                conn.request(method, self.url_path(path, params), body=body,
                             headers=hdrs)
            except (BrokenPipeError, ConnectionResetError):
                # A server may answer (413) and close before reading a huge body;
                # the response is still readable.
                pass
            resp = conn.getresponse()
            raw = resp.read()
            headers_ = {k.lower(): v for k, v in resp.getheaders()}
            return Response(resp.status, headers_, raw)
        finally:
            conn.close()

    # Convenience wrappers -------------------------------------------------------
    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def put(self, path, json=None, **kw):
        return self.request("PUT", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def upload(self, session_id, filename, content, path=None, **kw):
        body, ctype = encode_multipart("file", filename, content)
        return self.request("POST", "/sessions/%s/files/upload" % session_id, data=body,
                            headers={"Content-Type": ctype},
                            params={"path": path} if path is not None else None, **kw)

    def download(self, session_id, path, **kw):
        return self.get("/sessions/%s/files/%s" % (session_id, path), **kw)

    def execute_sync(self, session_id, code, language="python", style="executions",
                     sync_timeout=120, expect=200, **fields):
        """Run code to completion; returns the Execution dict (asserts the status code
        unless expect is None, in which case the Response is returned)."""
        prefix = "/executions/sessions" if style == "executions" else "/sessions"
        body = {"code": code, "language": language}
        body.update(fields)
        r = self.post("%s/%s/execute-sync" % (prefix, session_id), json=body,
                      params={"sync_timeout": sync_timeout},
                      timeout=sync_timeout + 30)
        if expect is None:
            return r
        assert r.status == expect, r
        return r.body

    def wait_execution(self, execution_id, deadline_s=120, path_suffix=""):
        """Poll GET /executions/{id}[suffix] until the status is terminal."""
        end = time.monotonic() + deadline_s
        last = None
        while time.monotonic() < end:
            last = self.get("/executions/%s%s" % (execution_id, path_suffix))
            assert last.status == 200, last
            if last.body.get("status") in EXEC_TERMINAL:
                return last.body
            time.sleep(0.1)
        raise AssertionError("execution %s not terminal after %ss: %r"
                         % (execution_id, deadline_s, last))


def assert_error(resp, status, code=None):
    """The one error body shape of section 6, with the expected HTTP status."""
    assert resp.status == status, "expected %s, got %r" % (status, resp)
    assert isinstance(resp.body, dict), "error body is not JSON: %r" % resp
    for k in ERROR_KEYS:
        assert k in resp.body, "error body lacks %r: %r" % (k, resp)
    assert isinstance(resp.body["error_code"], str)
    assert resp.body["error_code"].startswith("Sandbox."), resp
    assert isinstance(resp.body["description"], str) and resp.body["description"], resp
    if code is not None:
        assert resp.body["error_code"] == code, resp


def wait_until(pred, deadline_s, interval=0.1, what="condition"):
    """Call pred() until it returns a truthy value; return that value or fail."""
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("%s not reached within %ss (last=%r)" % (what, deadline_s, last))


_UNITS = {"": 1, "k": 1000, "m": 1000 ** 2, "g": 1000 ** 3, "t": 1000 ** 4,
          "ki": 1024, "mi": 1024 ** 2, "gi": 1024 ** 3, "ti": 1024 ** 4}


def parse_size(v):
    """'512Mi' -> bytes.  A bare number is taken as MiB when small (the templates'
    default_*_mb fields) and as bytes when large: the contract does not say which unit a
    server echoes bare numbers in."""
    if isinstance(v, (int, float)):
        return int(v * 1024 ** 2) if v < 1 << 20 else int(v)
    m = re.fullmatch(r"\s*([0-9.]+)\s*([KkMmGgTt]i?|)[Bb]?\s*", str(v))
    assert m, "unparseable size %r" % (v,)
    n = float(m.group(1))
    unit = m.group(2).lower()
    if unit == "":
        return parse_size(n)
    return int(n * _UNITS[unit])


def parse_ts(v):
    """ISO 8601 string or epoch number (s or ms) -> aware datetime."""
    assert v is not None, "timestamp missing"
    if isinstance(v, (int, float)):
        if v > 1e11:
            v = v / 1000.0
        return datetime.datetime.fromtimestamp(v, datetime.timezone.utc)
    d = datetime.datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return d


def uid(prefix="t"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])
