"""Starting and stopping a real sbxd for the integration and security suites.

Environment:
  SBXD         path of the daemon (default: `sbxd` on PATH, then /usr/local/sbin/sbxd)
  SBXD_CONFIG  config file (default: /usr/local/etc/sandbox/sbxd.conf, then the tree's
               etc/sbxd.conf)
  SBXD_URL     use this running server instead of starting one (tests that must start
               their own daemon -- shutdown, restart -- are skipped)
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from sbxclient import Client

DEFAULT_BINARY = "/usr/local/sbin/sbxd"
DEFAULT_CONFIG = "/usr/local/etc/sandbox/sbxd.conf"
# The embedded default in the source tree, used when nothing is installed.
TREE_CONFIG = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                            "..", "..", "etc", "sbxd.conf"))
HEALTH_TIMEOUT_S = 20
STOP_TIMEOUT_S = 30


class NotAvailable(Exception):
    """No daemon to test: the caller skips (or fails when the user asked for one)."""


def find_binary():
    env = os.environ.get("SBXD")
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            raise FileNotFoundError("SBXD=%s is not an executable file" % env)
        return env
    on_path = shutil.which("sbxd")
    if on_path:
        return on_path
    if os.access(DEFAULT_BINARY, os.X_OK):
        return DEFAULT_BINARY
    raise NotAvailable("sbxd not found (set SBXD=/path/to/sbxd or SBXD_URL=http://...)")


def find_config():
    env = os.environ.get("SBXD_CONFIG")
    if env:
        if not os.path.isfile(env):
            raise FileNotFoundError("SBXD_CONFIG=%s does not exist" % env)
        return env
    for cand in (DEFAULT_CONFIG, TREE_CONFIG):
        if os.path.isfile(cand):
            return cand
    raise NotAvailable("no sbxd config: set SBXD_CONFIG or `make install` (%s)"
                       % DEFAULT_CONFIG)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SbxdProcess:
    """One daemon: `sbxd --config C --listen 127.0.0.1:PORT --data-dir D`."""

    def __init__(self, data_dir=None, port=None):
        self.binary = find_binary()
        self.config = find_config()
        self.own_data_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="sbxd-it-data-")
        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_path = None
        self.proc = None
        self.clean_exit = False
        self.client = Client(self.url)

    def start(self):
        fd, self.log_path = tempfile.mkstemp(prefix="sbxd-it-", suffix=".log")
        log = os.fdopen(fd, "wb")
        argv = [self.binary, "--config", self.config,
                "--listen", "127.0.0.1:%d" % self.port, "--data-dir", self.data_dir]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        try:
            self.wait_healthy()
        except Exception:
            self.kill()
            raise
        return self

    def wait_healthy(self, timeout=HEALTH_TIMEOUT_S):
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError("sbxd exited with %s before becoming healthy\n%s"
                                     % (self.proc.returncode, self.log_tail()))
            try:
                r = self.client.get("/health", timeout=2)
                if r.status == 200:
                    return
                last = r
            except OSError as e:
                last = e
            time.sleep(0.1)
        raise AssertionError("sbxd not healthy within %ss (last: %r)\n%s"
                             % (timeout, last, self.log_tail()))

    def log_tail(self, n=200):
        if not self.log_path or not os.path.exists(self.log_path):
            return "(no log)"
        with open(self.log_path, "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
        return "---- sbxd log (%s, last %d lines) ----\n%s" % (
            self.log_path, n, "\n".join(lines[-n:]))

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM; return the exit status (None if it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop_and_check(self, timeout=STOP_TIMEOUT_S):
        rc = self.stop(timeout)
        assert rc == 0, ("sbxd did not exit 0 within %ss of SIGTERM (rc=%r)\n%s"
                         % (timeout, rc, self.log_tail()))
        self.clean_exit = True

    def cleanup(self):
        """Kill if still running; keep the log unless the daemon exited cleanly."""
        self.kill()
        if self.clean_exit and self.log_path:
            os.unlink(self.log_path)
        if self.own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


class Target:
    """What the tests talk to: a URL, a client, and the daemon when we started it."""

    def __init__(self, url, proc=None):
        self.url = url
        self.proc = proc
        self.client = Client(url)
        self.port = self.client.port

    @property
    def external(self):
        return self.proc is None


# One daemon per pytest process, shared by tests/integration and tests/security even
# though each directory's conftest declares the fixture (two fixture definitions, one
# server).  The last releaser stops it and checks the exit status.
_shared = {"target": None, "refs": 0, "error": None}


def acquire_shared():
    if _shared["error"] is not None:
        raise _shared["error"]
    if _shared["target"] is None:
        url = os.environ.get("SBXD_URL")
        try:
            if url:
                target = Target(url.rstrip("/"))
                r = target.client.get("/health", timeout=5)
                assert r.status == 200, "SBXD_URL %s: /health answered %r" % (url, r)
            else:
                proc = SbxdProcess()
                try:
                    proc.start()
                except Exception:
                    proc.cleanup()  # removes the temp data dir, keeps the log
                    raise
                target = Target(proc.url, proc)
        except Exception as e:
            _shared["error"] = e
            raise
        _shared["target"] = target
    _shared["refs"] += 1
    return _shared["target"]


def release_shared():
    _shared["refs"] -= 1
    if _shared["refs"] > 0:
        return
    target, _shared["target"] = _shared["target"], None
    if target is None or target.proc is None:
        return
    try:
        target.proc.stop_and_check()
    finally:
        target.proc.cleanup()
