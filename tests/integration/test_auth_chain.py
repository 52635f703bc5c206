"""The auth chain over HTTP: apikey and jwt loaded together; the first plugin that
recognises a credential decides, a request no plugin recognises is refused (401)."""
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

import sbxd_harness
from auth_helpers import KeyClient, base_config_text
from sbxclient import Client, assert_error

pytestmark = pytest.mark.own_daemon


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(secret, claims, header=None):
    h = b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    p = b64(json.dumps(claims).encode())
    sig = hmac.new(secret, ("%s.%s" % (h, p)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (h, p, b64(sig))


@pytest.fixture(scope="module")
def chain():
    if os.environ.get("SBXD_URL"):
        pytest.skip("SBXD_URL set: cannot start a private sbxd")
    d = tempfile.mkdtemp(prefix="sbxd-chain-")
    os.chmod(d, 0o711)
    secret = os.urandom(48)
    with open(os.path.join(d, "jwt.secret"), "wb") as f:
        f.write(secret)
    os.chmod(os.path.join(d, "jwt.secret"), 0o600)
    groups = ('{ kind = "auth"; module = "apikey"; config = { keys_file = "%s/keys.json"; }; },\n'
              '  { kind = "auth"; module = "jwt"; config = { hs256_secret_file = "%s/jwt.secret";'
              ' issuer = "https://id.test/"; audience = "sbxd"; }; },\n' % (d, d))
    # the auth plugins are added to the daemon's own DerivedConfig (its own database)
    p = sbxd_harness.SbxdProcess(data_dir=os.path.join(d, "data"))
    try:
        text, n = re.subn(r"(?m)^plugins\s*=\s*\(", "plugins = (\n  " + groups,
                          base_config_text(p.config), count=1)
        assert n == 1
        conf = os.path.join(d, "sbxd.conf")
        with open(conf, "w") as f:
            f.write(text)
        out = subprocess.run([sbxd_harness.find_binary(), "keys", "create", "--tenant",
                              "keyco", "--role", "user", "--config", conf],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        key = json.loads(out.stdout)["key"]
        p.config = conf
        p.start()
        yield p, secret, key
        p.stop_and_check()
    finally:
        p.cleanup()
        shutil.rmtree(d, ignore_errors=True)


def claims(**over):
    c = {"iss": "https://id.test/", "aud": "sbxd", "sub": "alice", "tenant": "jwtco",
         "role": "user", "exp": int(time.time()) + 300}
    c.update(over)
    return c


def as_bearer(p, token):
    return KeyClient(p.url, token, "bearer")


def test_a_valid_jwt_authenticates_with_its_tenant_and_role(chain):
    p, secret, _ = chain
    api = as_bearer(p, hs256(secret, claims()))
    r = api.post("/sessions", json={"template_id": "python-basic"})
    assert r.status == 201, r
    sid = r.body["id"]
    # the api key's tenant cannot see the JWT tenant's session
    other = as_bearer(p, chain[2])
    assert_error(other.get("/sessions/%s" % sid), 404)
    assert api.delete("/sessions/%s" % sid).status == 204


def test_an_api_key_still_authenticates_next_to_jwt(chain):
    p, _, key = chain
    assert as_bearer(p, key).get("/sessions").status == 200


@pytest.mark.parametrize("why, token_fn", [
    ("expired", lambda s: hs256(s, claims(exp=int(time.time()) - 3600))),
    ("wrong issuer", lambda s: hs256(s, claims(iss="https://evil/"))),
    ("wrong audience", lambda s: hs256(s, claims(aud="other"))),
    ("wrong secret", lambda s: hs256(b"x" * 48, claims())),
    ("alg none", lambda s: hs256(s, claims(), header={"alg": "none"}).rsplit(".", 1)[0] + "."),
])
def test_an_invalid_jwt_is_401(chain, why, token_fn):
    p, secret, _ = chain
    r = as_bearer(p, token_fn(secret)).get("/sessions")
    assert_error(r, 401)
    assert r.headers.get("www-authenticate", "").startswith("Bearer"), (why, r.headers)


def test_a_jwt_with_an_unknown_role_is_403(chain):
    p, secret, _ = chain
    assert_error(as_bearer(p, hs256(secret, claims(role="superuser"))).get("/sessions"), 403)


def test_a_credential_no_plugin_recognises_is_refused(chain):
    p, _, _ = chain
    assert_error(as_bearer(p, "just-some-opaque-token").get("/sessions"), 401)
    assert_error(Client(p.url).get("/sessions"), 401)
