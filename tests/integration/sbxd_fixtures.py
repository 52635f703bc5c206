"""pytest fixtures shared by tests/integration and tests/security (each directory's
conftest.py star-imports this module).  See sbxd_harness.py for the environment knobs."""

import os

import pytest

import sbxd_harness
from sbxclient import uid

MARKERS = (
    "slow: waits tens of seconds on purpose (idle timeout, sync timeout, restart)",
    "own_daemon: starts its own sbxd (skipped when SBXD_URL is set)",
    "linux_runtime: isolation probes for the default `linux` runtime",
)


def register_markers(config):
    for m in MARKERS:
        config.addinivalue_line("markers", m)


@pytest.fixture(scope="session")
def sbxd():
    """The daemon under test (started once per pytest process, or SBXD_URL)."""
    try:
        target = sbxd_harness.acquire_shared()
    except sbxd_harness.NotAvailable as e:
        pytest.skip(str(e))
    try:
        yield target
    finally:
        sbxd_harness.release_shared()


@pytest.fixture(scope="session")
def api(sbxd):
    return sbxd.client


def start_private(settings=None, data_dir=None, config=None, port=None):
    """Start a private sbxd (not the shared one) on the tier's config with `settings`
    ({group: {key: value}}, see sbxd_harness.apply_settings) and return it; skips when
    SBXD_URL is set or no daemon is available.  The caller calls cleanup() on it."""
    if os.environ.get("SBXD_URL"):
        pytest.skip("SBXD_URL set: cannot start a private sbxd")
    try:
        p = sbxd_harness.SbxdProcess(data_dir=data_dir, port=port, settings=settings,
                                     config=config)
    except sbxd_harness.NotAvailable as e:
        pytest.skip(str(e))
    try:
        return p.start()
    except Exception:
        p.cleanup()
        raise


@pytest.fixture
def private_sbxd():
    """Factory: private_sbxd(settings=None, data_dir=None, config=None) -> a started
    SbxdProcess of its own; every one is cleaned up (killed if still running) at teardown."""
    procs = []

    def start(settings=None, data_dir=None, config=None, port=None):
        p = start_private(settings, data_dir, config, port)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.cleanup()


@pytest.fixture
def make_session(api):
    """Factory: make_session(template_id="python-basic", **fields) -> Session dict.
    Every session made is deleted at teardown."""
    made = []

    def make(template_id="python-basic", expect=201, **fields):
        body = {"template_id": template_id}
        body.update(fields)
        r = api.post("/sessions", json=body)
        if expect is None:
            if r.status == 201:
                made.append(r.body["id"])
            return r
        assert r.status == expect, r
        made.append(r.body["id"])
        return r.body

    yield make
    for sid in made:
        try:
            api.delete("/sessions/%s" % sid, timeout=30)
        except OSError:
            pass


@pytest.fixture
def py_session(make_session):
    return make_session("python-basic")


@pytest.fixture
def make_template(api):
    """Factory: make_template(**overrides) -> Template dict; deleted at teardown."""
    made = []

    def make(expect=201, **overrides):
        body = {
            "id": uid("tpl"),
            "name": "integration template",
            "image_url": "sandbox-template-python-basic:latest",
            "runtime_type": "python3.11",
            "default_cpu_cores": 1,
            "default_memory_mb": 256,
            "default_disk_mb": 512,
            "default_timeout_sec": 120,
        }
        body.update(overrides)
        body = {k: v for k, v in body.items() if v is not _DROP}
        r = api.post("/templates", json=body)
        if r.status == 201:
            made.append(body.get("id"))
        if expect is None:
            return r
        assert r.status == expect, r
        return r.body

    yield make
    for tid in made:
        try:
            api.delete("/templates/%s" % tid, timeout=30)
        except OSError:
            pass


class _Drop:
    def __repr__(self):
        return "DROP"


# Pass a field as DROP to make_template to leave it out of the body.
_DROP = DROP = _Drop()
