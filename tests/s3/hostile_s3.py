#!/usr/bin/python3
"""A hostile S3 server on loopback, and tally's answers to it (issue 15: D6, D7, D8, D12).

  hostile_s3.py TALLY     one line per check; exit 1 on a failure, 77 (skip) without a server

A proxy on 127.0.0.1 in front of radosgw (s3util.FaultProxy) answers chosen requests itself:
garbage instead of HTTP, a body dripped at 4 KiB/s, a stall after the headers, an endless body, a
Content-Length of 60 GiB, a body shorter than its length, a redirect to another server, a 403 whose
message echoes the request's Authorization header with control characters, 503 or 403 to every
existence check. Every answer must be exit 2 within a bound, with a message naming the key (and the
option that bounds it), no credential or control character in it, and nothing written.
"""
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from s3util import S3, FaultProxy, Results, require_server  # noqa: E402

require_server()
TALLY = sys.argv[1]
BUCKET = os.environ["TALLY_S3_BUCKET"]
PREFIX = f"tally-test/hostile-{os.getpid()}"
KEY_ID, SECRET = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
s3 = S3()
R = Results()
FAST = {"TALLY_S3_RETRIES": "1", "TALLY_S3_BACKOFF_MS": "10"}


class Hostile(FaultProxy):
    """The actions a hostile server takes; each is a plan's answer for one request."""

    def __init__(self, plan):
        super().__init__(os.environ["AWS_ENDPOINT_URL"], plan)
        self.stolen = []  # requests that reached the redirect's target
        self.thief = socket.socket()
        self.thief.bind(("127.0.0.1", 0))
        self.thief.listen(8)
        self.thief_port = self.thief.getsockname()[1]
        threading.Thread(target=self._steal, daemon=True).start()

    def _steal(self):
        while True:
            try:
                c, _ = self.thief.accept()
            except OSError:
                return
            c.settimeout(2)
            try:
                self.stolen.append(c.recv(65536))
            except OSError:
                pass
            c.close()

    def close(self):
        super().close()
        self.thief.close()

    @staticmethod
    def _until_gone(sock, seconds, step, send=None):
        """Send send() every step seconds (or nothing) until the client goes or seconds pass."""
        sock.settimeout(step)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                if send:
                    sock.sendall(send())
                elif sock.recv(1) == b"":
                    return
            except socket.timeout:
                continue
            except OSError:
                return
            if send:
                time.sleep(step)

    def act(self, action, sock, entry, headers, body):
        entry["status"] = action
        if action == "garbage":
            sock.sendall(random.Random(1).randbytes(4096))
            return False
        if action == "503":
            sock.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            return True
        if action == "403":
            sock.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return True
        if action == "drip":  # 4 KiB a second of a 1 MiB body: faster than any low-speed limit
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n")
            self._until_gone(sock, 60, 1.0, lambda: b" " * 4096)
            return False
        if action == "stall":  # the headers, then nothing
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
            self._until_gone(sock, 60, 0.5)
            return False
        if action == "endless":  # a fast body that never ends
            sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"10000\r\n" + b" " * 65536 + b"\r\n"
            self._until_gone(sock, 60, 0.0001, lambda: chunk)
            return False
        if action == "huge":  # a declared length nobody should allocate
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 64424509440\r\n\r\n{\"zarr_format\": 2")
            self._until_gone(sock, 60, 0.5)
            return False
        if action == "short":  # fewer bytes than declared (and than the range needs), then the connection closes
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10)
            return False
        if action == "redirect":
            loc = f"http://127.0.0.1:{self.thief_port}/{BUCKET}/stolen"
            sock.sendall(f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {loc}\r\nContent-Length: 0\r\n\r\n".encode())
            return True
        if action == "echo":  # a 403 whose message echoes the credentials, with control characters
            auth = headers.get("authorization", "")
            msg = (f"denied for {auth} \u009b31mred\u009b0m \x7f tab\there " + "x" * 3000).replace("&", "&amp;")
            xml = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied\u009b2J</Code>"
                   f"<Message>{msg}</Message><Key>{KEY_ID}</Key></Error>").encode()
            sock.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n"
                         % len(xml) + xml)
            return True
        return super().act(action, sock, entry, headers, body)


def tally(*args, env=None, timeout=60):
    if args and args[0] == "get":
        args = (*args, "--force")
    t0 = time.monotonic()
    try:
        p = subprocess.run([TALLY, *args], capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        p = subprocess.CompletedProcess(args, -9, "", f"still running after {timeout} s")
    p.seconds = time.monotonic() - t0
    return p


def url(name):
    return f"s3://{BUCKET}/{PREFIX}/{name}"


def clean(text):
    """No credential, signature or control character reached the terminal."""
    bad = [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f]
    return KEY_ID not in text and SECRET not in text and "Signature=" not in text.replace(
        "Signature=[redacted]", "") and not bad


def through(plan, *args, env_extra=None, timeout=60):
    proxy = Hostile(plan)
    env = dict(os.environ, AWS_ENDPOINT_URL=proxy.url)
    env.update(FAST)
    env.update(env_extra or {})
    try:
        p = tally(*args, env=env, timeout=timeout)
    finally:
        proxy.close()
    return p, proxy


def refused(name, p, names, within):
    R.check(f"{name}: exit 2", p.returncode == 2, (p.returncode, p.stderr[-300:]))
    R.check(f"{name}: the message names {', '.join(names)}", all(n in p.stderr for n in names), p.stderr[-400:])
    R.check(f"{name}: answered within {within} s", p.seconds < within, f"{p.seconds:.1f} s")
    R.check(f"{name}: no credential or control character in the output", clean(p.stdout + p.stderr),
            repr(p.stderr[-300:]))


def d6_existence(w):
    """An existence check that fails is an error, never "absent" (a 503 replaced an array, exit 0)."""
    a = np.arange(64, dtype=np.float32)
    np.save(f"{w}/a.npy", a)
    assert tally("put", f"{w}/a.npy", url("d6"), "--chunks", "16").returncode == 0
    before = sorted(s3.list_keys(f"{PREFIX}/d6/"))
    for answer in ("503", "403"):
        plan = lambda n, m, t, h: answer if m in ("HEAD", "GET") else None  # noqa: E731
        p, proxy = through(plan, "put", f"{w}/a.npy", url("d6"), "--chunks", "8")
        refused(f"D6 put onto an array whose existence checks answer {answer}", p, ["s3 HEAD", "d6/"], 30)
        writes = [(e["method"], e["target"]) for e in proxy.log if e["method"] in ("PUT", "POST", "DELETE")]
        R.check(f"D6 ({answer}): nothing was written or deleted", writes == [], writes[:3])
    R.check("D6 the array is untouched", sorted(s3.list_keys(f"{PREFIX}/d6/")) == before)
    g = tally("get", url("d6"), f"{w}/back.npy")
    R.check("D6 and reads back equal", g.returncode == 0 and np.array_equal(np.load(f"{w}/back.npy"), a), g.stderr)


def d7_bodies(w):
    """Metadata and XML bodies are capped: an endless body, a 60 GiB Content-Length."""
    meta = lambda what: lambda n, m, t, h: what if m == "GET" and t.split("?")[0].endswith(  # noqa: E731
        "/.zarray") else None
    for action, within in (("endless", 20), ("huge", 10)):
        p, _ = through(meta(action), "info", url("d7"), env_extra={"TALLY_META_LIMIT": "1M"})
        refused(f"D7 .zarray with {action} body", p, [".zarray", "TALLY_META_LIMIT"], within)
    p, _ = through(meta("endless"), "info", url("d7"))
    refused("D7 .zarray with an endless body, the default limit", p, [".zarray", "TALLY_META_LIMIT"], 40)
    listing = lambda n, m, t, h: "endless" if "list-type=2" in t or "uploads" in t else None  # noqa: E731
    p, _ = through(listing, "gc", url("d7"), env_extra={"TALLY_META_LIMIT": "1M"})
    refused("D7 an endless listing", p, ["ListMultipartUploads", "TALLY_META_LIMIT"], 20)


def d8_timeouts(w):
    """A body dripped faster than the low-speed limit, and a stall after the headers, end in time."""
    meta = lambda what: lambda n, m, t, h: what if m == "GET" and t.split("?")[0].endswith(  # noqa: E731
        "/.zarray") else None
    p, _ = through(meta("drip"), "info", url("d8"), env_extra={"TALLY_S3_TIMEOUT": "4"})
    refused("D8 .zarray dripped at 4 KiB/s, TALLY_S3_TIMEOUT=4", p, [".zarray", "TALLY_S3_TIMEOUT"], 15)
    p, _ = through(meta("stall"), "info", url("d8"), env_extra={"TALLY_S3_IDLE_TIMEOUT": "2"})
    refused("D8 .zarray stalled after its headers, TALLY_S3_IDLE_TIMEOUT=2", p,
            [".zarray", "TALLY_S3_IDLE_TIMEOUT"], 15)
    p, _ = through(lambda n, m, t, h: "stall", "info", url("d8"),
                   env_extra={"TALLY_S3_IDLE_TIMEOUT": "1", "TALLY_S3_TIMEOUT": "3", "TALLY_S3_RETRIES": "20"})
    refused("D8 every attempt stalls: the total bounds the retries", p, ["TALLY_S3_TIMEOUT"], 12)
    for bad in ("0", "x", "90000"):
        p = tally("info", url("d8"), env=dict(os.environ, TALLY_S3_TIMEOUT=bad))
        R.check(f"D8 TALLY_S3_TIMEOUT={bad}: exit 2 naming it", p.returncode == 2 and "TALLY_S3_TIMEOUT" in p.stderr,
                p.stderr)


def d12_text(w):
    """Server text reaches the terminal sanitised: no signature, key id or control characters, capped."""
    p, _ = through(lambda n, m, t, h: "echo", "info", url("d12"))
    refused("D12 a 403 echoing the Authorization header", p, ["AccessDenied", "[redacted]"], 20)
    R.check("D12 the server's message is capped", len(p.stderr) < 1200, len(p.stderr))


def hostile_answers(w):
    """Garbage, lying lengths and redirects: errors naming the key, no credential sent elsewhere."""
    a = np.arange(64, dtype=np.float32)
    np.save(f"{w}/a.npy", a)
    assert tally("put", f"{w}/a.npy", url("h"), "--chunks", "16").returncode == 0
    chunk = lambda what: lambda n, m, t, h: what if m == "GET" and t.split("?")[0].endswith(  # noqa: E731
        "/h/0") else None
    for action in ("garbage", "short", "redirect"):
        p, proxy = through(chunk(action), "get", url("h"), f"{w}/out.npy")
        refused(f"a chunk answered with {action}", p, ["chunk 0"], 30)
        R.check(f"a chunk answered with {action}: no output file", not os.path.exists(f"{w}/out.npy"))
        if action == "redirect":
            R.check("a redirect is not followed: nothing reached its target", proxy.stolen == [], proxy.stolen[:1])
    endless_put = lambda n, m, t, h: "endless" if m == "PUT" and t.split("?")[0].endswith("/e/0") else None  # noqa
    p, _ = through(endless_put, "put", f"{w}/a.npy", url("e"), "--chunks", "16")
    refused("a chunk's PUT answered with an endless body", p, ["chunk 0", "nobody asked for"], 20)
    p, _ = through(lambda n, m, t, h: "garbage", "put", f"{w}/a.npy", url("g"))
    refused("put to a server that answers garbage", p, ["s3 HEAD", "g/"], 30)
    R.check("nothing written under g/", s3.list_keys(f"{PREFIX}/g/") == [])


CASES = (d6_existence, d7_bodies, d8_timeouts, d12_text, hostile_answers)


def main():
    with tempfile.TemporaryDirectory() as w:
        try:
            for fn in CASES:
                try:
                    fn(w)
                except Exception as e:
                    R.check(fn.__name__, False, f"{type(e).__name__}: {e}")
        finally:
            s3.delete_prefix(PREFIX + "/")
    R.finish()


main()
