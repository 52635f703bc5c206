"""The Docker Engine API over its Unix socket, for the tests of the docker runtime
(tests/integration/test_docker_runtime.py, the docker-equivalent host-side checks of
tests/security): SBXD_DOCKER_HOST=unix:///path names the engine the tier started."""

import http.client
import json
import os
import socket
import urllib.parse

SHELL_IMAGE = "sandbox-template-shell-basic:latest"


def runtime():
    """The runtime under test: SBXD_RUNTIME (default linux)."""
    return os.environ.get("SBXD_RUNTIME", "linux")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Engine:
    """A few Engine API calls over the engine's Unix socket."""

    def __init__(self, host):
        if not host.startswith("unix://"):
            raise ValueError("SBXD_DOCKER_HOST must be unix:///path, got %r" % host)
        self.path = host[len("unix://"):]

    def call(self, method, path, body=None, query=None, timeout=60):
        if query:
            path += "?" + urllib.parse.urlencode(query)
        conn = _UnixConnection(self.path, timeout)
        try:
            headers = {}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            raw = r.read()
        finally:
            conn.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        assert r.status < 500, "engine %s %s: %d %r" % (method, path, r.status, parsed)
        return r.status, parsed

    def containers(self):
        st, body = self.call("GET", "/containers/json", query={"all": "1"})
        assert st == 200, body
        return body

    def exists(self, cid):
        st, _ = self.call("GET", "/containers/%s/json" % cid)
        return st == 200

    def state(self, cid):
        st, body = self.call("GET", "/containers/%s/json" % cid)
        assert st == 200, body
        return body["State"]

    def run(self, name, labels):
        """A detached, networkless container that sleeps; returns its id."""
        st, body = self.call("POST", "/containers/create", query={"name": name}, body={
            "Image": SHELL_IMAGE, "Cmd": ["sleep", "600"], "Labels": labels,
            "HostConfig": {"NetworkMode": "none", "AutoRemove": False}})
        assert st == 201, body
        cid = body["Id"]
        st, body = self.call("POST", "/containers/%s/start" % cid)
        assert st == 204, body
        return cid

    def remove(self, cid):
        self.call("DELETE", "/containers/%s" % cid, query={"force": "1", "v": "1"})


def engine_from_env():
    """The Engine of SBXD_DOCKER_HOST, or None when it is not set."""
    host = os.environ.get("SBXD_DOCKER_HOST")
    return Engine(host) if host else None


def labelled(c, sandbox_id=None, session_id=None):
    """Does container c (from engine.containers()) carry the sandbox's label (a sandbox
    from a warm pool was built before its session, so its labels name no session), or
    else the session's?"""
    labels = c.get("Labels") or {}
    if sandbox_id:
        return any(k.endswith(".sandbox") and v == sandbox_id for k, v in labels.items())
    return session_id in labels.values()


def container_of(engine, session_id, sandbox_id=None):
    """Inspect data of the one container of the session (found by its sandbox_id when
    given, as the API shows it), or None."""
    found = [c for c in engine.containers() if labelled(c, sandbox_id, session_id)]
    if len(found) != 1:
        return None
    st, info = engine.call("GET", "/containers/%s/json" % found[0]["Id"])
    return info if st == 200 else None
