"""Uploads and downloads stream: a file larger than any buffer goes through sbxd without
being held in memory, byte for byte, and the upload limit answers 413."""
import hashlib
import http.client
import os
import uuid

import pytest

from sbxclient import assert_error

SIZE = 90 * 1024 * 1024  # under the default max_upload, far over every buffer (1 MiB relay)


def sbxd_peak_rss_kb(sbxd):
    proc = getattr(sbxd, "proc", None)
    while proc is not None and not hasattr(proc, "pid"):  # harness wrappers
        proc = getattr(proc, "proc", None)
    if proc is None:
        return None
    with open("/proc/%d/status" % proc.pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def chunks(seed, total, size=1 << 20):
    """Deterministic pseudo-random data, generated on the fly."""
    block = hashlib.sha256(seed).digest() * (size // 32)
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield block[:n]
        sent += n
        block = block[1:] + block[:1]


def stream_upload(api, sid, name, total, seed):
    boundary = "sbx-" + uuid.uuid4().hex
    head = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n" % (boundary, name)).encode()
    tail = ("\r\n--%s--\r\n" % boundary).encode()
    conn = http.client.HTTPConnection(api.host, api.port, timeout=300)
    conn.putrequest("POST", "/api/v1/sessions/%s/files/upload" % sid)
    conn.putheader("Content-Type", "multipart/form-data; boundary=%s" % boundary)
    conn.putheader("Content-Length", str(len(head) + total + len(tail)))
    conn.endheaders()
    digest = hashlib.sha256()
    try:
        conn.send(head)
        for c in chunks(seed, total):
            digest.update(c)
            conn.send(c)
        conn.send(tail)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may answer (413) before the body ends
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body, digest.hexdigest()


def test_a_large_upload_and_download_stream_through_without_buffering(api, sbxd, make_session):
    sid = make_session("python-basic", memory="1Gi", disk="1Gi")["id"]
    status, body, want = stream_upload(api, sid, "big.bin", SIZE, b"up")
    assert status == 200, body[:300]
    conn = http.client.HTTPConnection(api.host, api.port, timeout=300)
    conn.request("GET", "/api/v1/sessions/%s/files/big.bin" % sid)
    resp = conn.getresponse()
    assert resp.status == 200
    got, n = hashlib.sha256(), 0
    while True:
        c = resp.read(1 << 20)
        if not c:
            break
        got.update(c)
        n += len(c)
    conn.close()
    assert n == SIZE and got.hexdigest() == want
    rss = sbxd_peak_rss_kb(sbxd)
    if rss is not None:  # sbxd never held the file: its peak stays far below its size
        assert rss < 96 * 1024, "sbxd peak RSS %d kB after a %d MiB round trip" % (rss, SIZE >> 20)


def test_an_upload_over_max_upload_is_413_and_nothing_is_stored(api, py_session):
    sid = py_session["id"]
    status, body, _ = stream_upload(api, sid, "too-big.bin", 101 * 1024 * 1024, b"big")
    assert status == 413, body[:300]
    r = api.get("/api/v1/sessions/%s/files" % sid)
    assert r.status == 200
    assert "too-big.bin" not in [f["name"] for f in r.body["files"]]
