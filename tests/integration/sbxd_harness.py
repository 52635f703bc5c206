"""Starting and stopping a real sbxd for the integration and security suites.

Environment:
  SBXD         path of the daemon (default: `sbxd` on PATH, then /usr/local/sbin/sbxd)
  SBXD_CONFIG  config file (default: /usr/local/etc/sandbox/sbxd.conf, then the tree's
               etc/sbxd.conf)
  SBXD_URL     use this running server instead of starting one (tests that must start
               their own daemon -- shutdown, restart -- are skipped)
  SBXD_PROD_DIR  the production tier's services (tests/production/services.sh): every
               private daemon gets a MariaDB database of its own there

Every daemon but the suite's shared one runs on a DerivedConfig (a database and a docker
instance name of its own), with other settings if asked (short probe interval, warm
pools...): SbxdProcess(settings={"sessions": {"probe_interval_ms": 300}}).  Incarnations of
one daemon across a restart share one: SbxdProcess(data_dir=d, config=DerivedConfig()).
"""

import hashlib
import json
import os
import re
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


def conf_value(v):
    """A Python value as a libconfig value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return "%d" % v
    if isinstance(v, float):
        return repr(v)
    return json.dumps(str(v))


def _group_span(text, name):
    """(start of the body, index of the closing brace) of top-level group `name = { ... }`,
    or None.  Braces inside strings and comments are not expected in these configs."""
    m = re.search(r"(?m)^%s\s*=\s*\{" % re.escape(name), text)
    if not m:
        return None
    depth, i = 1, m.end()
    while i < len(text):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return m.end(), i
        i += 1
    raise ValueError("group %s is not closed in the config" % name)


def apply_settings(text, settings):
    """The config text with settings ({group: {key: value}}) applied: a key already in its
    top-level group is replaced, a missing one is added to it, a missing group is appended.
    Keys are scalars (conf_value)."""
    for group, keys in (settings or {}).items():
        span = _group_span(text, group)
        if span is None:
            text += "\n%s = {\n%s};\n" % (group, "".join(
                "  %s = %s;\n" % (k, conf_value(v)) for k, v in keys.items()))
            continue
        start, end = span
        body = text[start:end]
        for k, v in keys.items():
            body, n = re.subn(r"(?m)^(\s*)%s\s*=[^;\n]*;" % re.escape(k),
                              lambda m: "%s%s = %s;" % (m.group(1), k, conf_value(v)), body)
            if n == 0:
                body = "\n  %s = %s;%s" % (k, conf_value(v), body)
        text = text[:start] + body + text[end:]
    return text


def _mariadb_root(sql):
    prod = os.environ["SBXD_PROD_DIR"]
    subprocess.run(["mariadb", "--no-defaults", "--socket=%s/mariadb/sock" % prod, "-uroot",
                    "-e", sql], check=True, timeout=30, stdin=subprocess.DEVNULL,
                   capture_output=True)


class DerivedConfig:
    """A config file derived from the tier's (find_config()) with settings applied (see
    apply_settings), in a temp dir of its own.  When the config uses the mariadb db plugin
    and SBXD_PROD_DIR is set, the daemon gets a database of its own on the tier's MariaDB
    server: sharing the suite's database would make it a second replica, whose sessions the
    shared daemon's health probe (it holds the probe lease, with another linux state dir)
    would judge.  A docker runtime instance gets a name of its own (its containers are
    labelled with it).  Outlives the daemons that use it (a restart keeps the database)."""

    def __init__(self, settings=None, own_database=True, base=None, docker_tag=None):
        """base: the config file to derive from (default: find_config()); docker_tag: the
        suffix of the docker instance's name (default: random)."""
        with open(base or find_config()) as f:
            text = apply_settings(f.read(), settings)
        self.dir = tempfile.mkdtemp(prefix="sbxd-it-conf-")
        self.database = None
        try:
            if own_database and os.environ.get("SBXD_PROD_DIR") and re.search(
                    r'kind = "db"; module = "mariadb";', text):
                name = "sbxd_it_" + os.urandom(5).hex()
                text, n = re.subn(r'(kind = "db"; module = "mariadb";[^\n]*database = )"[^"]*"',
                                  r'\1"%s"' % name, text)
                if n != 1:
                    raise AssertionError("the production config's mariadb line has no "
                                         "database = \"...\"")
                _mariadb_root("CREATE DATABASE %s; GRANT ALL ON %s.* TO 'sbxd'@'127.0.0.1';"
                              % (name, name))
                self.database = name
            # A docker instance lists and adopts every container labelled with its name on
            # the engine: a private daemon on the docker tier's engine gets a name of its
            # own, so that its state sync and the shared daemon's leave each other's alone.
            text = re.sub(r'(kind = "runtime"; module = "docker"; name = ")([^"]*)"',
                          lambda m: '%s%s-%s"' % (m.group(1), m.group(2),
                                                  docker_tag or os.urandom(3).hex()),
                          text)
            self.path = os.path.join(self.dir, "sbxd.conf")
            with open(self.path, "w") as f:
                f.write(text)
        except Exception:
            self.cleanup()
            raise

    def cleanup(self):
        try:
            if self.database:
                _mariadb_root("DROP DATABASE IF EXISTS %s;" % self.database)
                self.database = None
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class SbxdProcess:
    """One daemon: `sbxd --config C --listen 127.0.0.1:PORT --data-dir D`."""

    def __init__(self, data_dir=None, port=None, settings=None, config=None,
                 tier_config=False):
        """The daemon's config: `config`, a DerivedConfig shared with other daemons (the
        incarnations of one daemon across a restart, replicas; the caller cleans it up);
        with tier_config, the tier's config as is (the suite's shared daemon only);
        otherwise a DerivedConfig of its own with `settings` applied, removed by cleanup():
        a private daemon never shares the suite's database or docker instance name.  Its
        docker instance name follows from the data dir, the same again on a restart."""
        self.binary = find_binary()
        self.derived = None
        self.own_data_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="sbxd-it-data-")
        if config is not None:
            self.config = config.path
        elif tier_config:
            self.config = find_config()
        else:
            try:
                self.derived = DerivedConfig(settings, docker_tag=hashlib.sha1(
                    os.path.abspath(self.data_dir).encode()).hexdigest()[:8])
            except Exception:
                if self.own_data_dir:
                    shutil.rmtree(self.data_dir, ignore_errors=True)
                raise
            self.config = self.derived.path
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
        if self.derived is not None:
            self.derived.cleanup()
            self.derived = None


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
                proc = SbxdProcess(tier_config=True)
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
