# sbx-executor's warm Python interpreter: imports the common standard library once, then
# fork()s one child per job received on fd 3 (8-byte length + JSON, with the stdout, stderr
# and result pipe fds attached); reports the child's pid, then its wait status and rusage.
import base64, collections, datetime, functools, hashlib, inspect, io, itertools, json
import math, os, random, re, signal, socket, string, struct, sys, textwrap, time
import traceback, types, typing, uuid, decimal, fractions, statistics, copy, heapq
import bisect, operator, pathlib, tempfile, shutil, csv, gc



def recv_exact(sock, n):
    chunks = []
    while n > 0:
        b = sock.recv(min(n, 1 << 20))
        if not b:
            raise EOFError
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def recv_job(sock):
    hdr = b""
    fds = []
    while len(hdr) < 8:
        msg, got, _flags, _addr = socket.recv_fds(sock, 8 - len(hdr), 8)
        if not msg:
            raise EOFError
        hdr += msg
        fds += got
    n = int.from_bytes(hdr, "big")
    return json.loads(recv_exact(sock, n)), fds


def user_tb(tb):
    here = user_tb.__code__.co_filename
    while tb is not None and tb.tb_frame.f_code.co_filename == here:
        tb = tb.tb_next
    return tb


def wants_context(fn):
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    n = 0
    for p in params:
        if p.kind == p.VAR_POSITIONAL:
            return True
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            n += 1
    return n >= 2


class Context(dict):
    """The context argument: a dict that also answers attribute access."""

    def __getattr__(self, name):
        if name == "remaining_time_ms":
            return max(0, int(self["deadline"] - time.time() * 1000))
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def get_remaining_time_in_millis(self):
        return self.remaining_time_ms


def run_child(job, fds):
    out_fd, err_fd, res_fd = fds
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    nul = os.open("/dev/null", os.O_RDONLY)
    os.dup2(nul, 0)
    for fd in (out_fd, err_fd, nul):
        if fd > 2:
            os.close(fd)
    os.set_inheritable(res_fd, False)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8",
                                  errors="backslashreplace", line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                  errors="backslashreplace", line_buffering=True)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    os.environ.clear()
    os.environ.update(job["env"])
    try:
        os.chdir(job["cwd"])
    except OSError:
        pass
    cap = job["max_output"]
    ctx = Context(job["context"])
    ctx["deadline"] = time.time() * 1000 + job["timeout_ms"]
    ctx["remaining_time_ms"] = job["timeout_ms"]
    code = 0
    try:
        mod = types.ModuleType("handler_module")
        mod.__file__ = "<handler>"
        sys.modules["handler_module"] = mod
        exec(compile(job["code"], "<handler>", "exec"), mod.__dict__)
        fn = mod.__dict__.get("handler")
        if fn is None:
            raise NameError("name 'handler' is not defined: the code must define "
                            "handler(event) or handler(event, context)")
        if not callable(fn):
            raise TypeError("handler is not callable")
        value = fn(job["event"], ctx) if wants_context(fn) else fn(job["event"])
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        data = text.encode("utf-8", "surrogatepass")
        if len(data) > cap:
            line = b'{"ok":true,"truncated":true}\n'
        else:
            line = b'{"ok":true,"value":' + data + b"}\n"
    except BaseException as e:  # noqa: B902 - SystemExit and KeyboardInterrupt fail too
        code = 1
        if isinstance(e, SystemExit) and (e.code is None or e.code == 0):
            code = 0
        try:
            traceback.print_exception(type(e), e, user_tb(e.__traceback__))
        except Exception:
            pass
        msg = str(e)
        if len(msg) > 4096:
            msg = msg[:4096] + "..."
        line = (json.dumps({"ok": code == 0, "value": None, "error_type": type(e).__name__,
                            "error_message": msg}) + "\n").encode()
    try:
        sys.stdout.flush()
    except Exception:
        pass
    try:
        sys.stderr.flush()
    except Exception:
        pass
    try:
        os.write(res_fd, line)
    except OSError:
        pass
    os._exit(code)


def main():
    sock = socket.socket(fileno=int(sys.argv[1]))
    sock.set_inheritable(False)
    gc.collect()
    gc.freeze()  # keep the warm heap shared with children (no refcount-driven copies)
    while True:
        try:
            job, fds = recv_job(sock)
        except EOFError:
            return
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                run_child(job, fds)
            finally:
                os._exit(70)
        for fd in fds:
            os.close(fd)
        sock.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        while True:
            try:
                _, status, ru = os.wait4(pid, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                status, ru = 0, None
                break
        rep = {"pid": pid, "status": status,
               "utime": ru.ru_utime if ru else 0.0, "stime": ru.ru_stime if ru else 0.0,
               "maxrss_kb": ru.ru_maxrss if ru else 0}
        sock.sendall(json.dumps(rep).encode() + b"\n")


if __name__ == "__main__":
    main()
