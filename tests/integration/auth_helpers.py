"""Helpers for test_auth.py: a private sbxd configured with the `apikey` auth plugin
(and optional small quotas), the `sbxd keys` CLI, and a client that sends a credential
(AuthSbxd.kc)."""

import json
import os
import re
import shutil
import subprocess
import tempfile

import sbxd_harness
from sbxclient import Client

KEY_RE = re.compile(r"^sbx_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$")
CLI_TIMEOUT_S = 30


def base_config_text(base=None):
    """The text of `base` (a config file path; default: the tier's config)."""
    with open(base or sbxd_harness.find_config()) as f:
        return f.read()


def _strip_group(text, name):
    """Remove a top-level `name = { ... };` group (no nested braces in the ones we drop)."""
    return re.sub(r"(?ms)^%s\s*=\s*\{.*?\}\s*;?\s*$" % re.escape(name), "", text)


def _fmt(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int):
        return "%d" % v
    return json.dumps(str(v))


def make_config(path, data_dir, keys_file=None, quotas=None, log_level=None,
                with_auth=True, listen=None, server_extra=None, base=None):
    """Write a config derived from `base` (default: the tier's config; a daemon that runs
    passes its DerivedConfig's file): data_dir set, the apikey auth plugin prepended to the
    plugins list (keys_file absolute), `quotas` replaced when given, server.listen replaced
    and `server_extra` settings ({name: value}) added when given."""
    text = base_config_text(base)
    if listen:
        text, n = re.subn(r'(?m)^(\s*listen\s*=\s*)"[^"]*"', r'\g<1>"%s"' % listen, text)
        assert n == 1, "no server.listen in the base config"
    if server_extra:
        lines = "".join("  %s = %s;\n" % (k, _fmt(v)) for k, v in server_extra.items())
        text, n = re.subn(r"(?m)^server\s*=\s*\{\s*\n", lambda m: m.group(0) + lines, text,
                          count=1)
        assert n == 1, "no server group in the base config"
    text = re.sub(r'(?m)^(\s*data_dir\s*=\s*)"[^"]*"', r'\g<1>"%s"' % data_dir, text)
    if log_level:
        text = re.sub(r'(?m)^(\s*log_level\s*=\s*)"[^"]*"', r'\g<1>"%s"' % log_level, text)
    if with_auth:
        group = ('{ kind = "auth"; module = "apikey"; name = "keys"; '
                 'config = { keys_file = %s; }; },' % _fmt(keys_file))
        text, n = re.subn(r"(?m)^plugins\s*=\s*\(", "plugins = (\n  " + group, text, count=1)
        assert n == 1, "no plugins list in the base config"
    if quotas is not None:
        text = _strip_group(text, "quotas")
        text += "\nquotas = {\n%s};\n" % "".join(
            "  %s = %s;\n" % (k, _fmt(v)) for k, v in quotas.items())
    with open(path, "w") as f:
        f.write(text)
    return path


def run_cli(config, *args, timeout=CLI_TIMEOUT_S):
    """`sbxd keys ARGS --config CONFIG` -> CompletedProcess (text)."""
    argv = [sbxd_harness.find_binary(), "keys"] + list(args) + ["--config", config]
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


class KeyClient(Client):
    """A Client that sends a credential with every request (Authorization: Bearer by
    default, or X-API-Key), and optionally records every response it gets."""

    def __init__(self, base_url, key=None, style="bearer", record=None):
        super().__init__(base_url)
        self.key = key
        self.style = style
        self.record = record

    def request(self, method, path, json=None, data=None, headers=None, params=None,
                timeout=None):
        hdrs = dict(headers or {})
        if self.key is not None:
            if self.style == "bearer":
                hdrs.setdefault("Authorization", "Bearer " + self.key)
            else:
                hdrs.setdefault("X-API-Key", self.key)
        r = super().request(method, path, json=json, data=data, headers=hdrs, params=params,
                            timeout=timeout)
        if self.record is not None:
            self.record.append((method, path, r))
        return r


class AuthSbxd(sbxd_harness.SbxdProcess):
    """A private daemon with its own config (apikey plugin, keys file in its work dir),
    made from its DerivedConfig (its own database; cleanup() drops it)."""

    def __init__(self, quotas=None, log_level=None, with_auth=True, server_extra=None):
        super().__init__()
        self.workdir = tempfile.mkdtemp(prefix="sbxd-it-auth-")
        self.keys_file = os.path.join(self.workdir, "apikeys.json")
        try:
            self.config = make_config(os.path.join(self.workdir, "sbxd.conf"), self.data_dir,
                                      self.keys_file, quotas=quotas, log_level=log_level,
                                      with_auth=with_auth, server_extra=server_extra,
                                      base=self.derived.path)
        except Exception:
            self.cleanup()
            raise
        self.keys = {}  # label -> {"id", "key", ...}
        self.record = []  # (method, path, Response) of every client made by kc()

    def cli(self, *args):
        return run_cli(self.config, *args)

    def create_key(self, label, tenant, role, *extra):
        p = self.cli("create", "--tenant", tenant, "--role", role, *extra)
        assert p.returncode == 0, "sbxd keys create failed (%s): %s" % (p.returncode,
                                                                        p.stderr)
        out = json.loads(p.stdout)
        assert KEY_RE.match(out.get("key", "")), "unexpected key format: %r" % out
        self.keys[label] = out
        return out

    def kc(self, key=None, style="bearer", label=None):
        if label is not None:
            key = self.keys[label]["key"]
        return KeyClient(self.url, key, style, record=self.record)

    def start(self, listen_host="127.0.0.1", env=None):
        fd, self.log_path = tempfile.mkstemp(prefix="sbxd-it-auth-", suffix=".log")
        log = os.fdopen(fd, "wb")
        argv = [self.binary, "--config", self.config,
                "--listen", "%s:%d" % (listen_host, self.port), "--data-dir", self.data_dir]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     env=env)
        log.close()
        try:
            self.wait_healthy()
        except Exception:
            self.kill()
            raise
        return self

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def cleanup(self):
        super().cleanup()
        shutil.rmtree(self.workdir, ignore_errors=True)
