"""Shared by the S3 integration tests: an independent S3 client (SigV4 from the standard library, to
check what tally wrote without trusting tally) and a fault-injecting HTTP proxy on loopback.

The environment is scripts/s3-server's (`eval "$(scripts/s3-server env)"`); without it the tests
exit with SKIP (77).
"""
import datetime
import hashlib
import hmac
import http.client
import os
import socket
import ssl
import struct
import sys
import threading
import urllib.parse
import xml.etree.ElementTree as ET

SKIP = 77
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def require_server():
    missing = [v for v in ("AWS_ENDPOINT_URL", "TALLY_S3_BUCKET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
               if not os.environ.get(v)]
    if missing:
        print(f"SKIP: no S3 server ({', '.join(missing)} not set; scripts/test starts one: "
              "eval \"$(scripts/s3-server env)\")")
        sys.exit(SKIP)


class Results:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok or detail == '' else ': ' + str(detail)}", flush=True)
        return ok

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed else 0)


def _quote(s, safe="/"):
    return urllib.parse.quote(s, safe=safe + "-_.~")


class S3:
    """A minimal path-style S3 client: enough to list, inspect and delete what the tests wrote."""

    def __init__(self, endpoint=None, key=None, secret=None, region=None, bucket=None):
        self.endpoint = urllib.parse.urlsplit(endpoint or os.environ["AWS_ENDPOINT_URL"])
        self.key = key or os.environ["AWS_ACCESS_KEY_ID"]
        self.secret = secret or os.environ["AWS_SECRET_ACCESS_KEY"]
        self.region = region or os.environ.get("AWS_REGION", "us-east-1")
        self.bucket = bucket or os.environ["TALLY_S3_BUCKET"]

    def request(self, method, key=None, query=None, body=b"", headers=None):
        path = f"/{self.bucket}" + (f"/{_quote(key)}" if key is not None else "")
        query = query or {}
        qs = "&".join(f"{_quote(k, '')}={_quote(v, '')}" for k, v in sorted(query.items()))
        now = datetime.datetime.now(datetime.timezone.utc)
        amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        payload = hashlib.sha256(body).hexdigest()
        hdrs = {"host": self.endpoint.netloc, "x-amz-date": amz_date, "x-amz-content-sha256": payload}
        hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
        signed = ";".join(sorted(hdrs))
        creq = "\n".join([method, path, qs, "".join(f"{k}:{hdrs[k].strip()}\n" for k in sorted(hdrs)), signed,
                          payload])
        scope = f"{day}/{self.region}/s3/aws4_request"
        sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
        k = ("AWS4" + self.secret).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        hdrs["authorization"] = f"AWS4-HMAC-SHA256 Credential={self.key}/{scope}, SignedHeaders={signed}, Signature={sig}"
        conn = http.client.HTTPConnection(self.endpoint.hostname, self.endpoint.port, timeout=30)
        try:
            conn.request(method, path + (f"?{qs}" if qs else ""), body=body, headers=hdrs)
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            conn.close()

    def head(self, key):
        return self.request("HEAD", key)[0]

    def list_keys(self, prefix):
        keys, token = [], None
        while True:
            q = {"list-type": "2", "prefix": prefix}
            if token:
                q["continuation-token"] = token
            status, _, body = self.request("GET", query=q)
            assert status == 200, (status, body)
            root = ET.fromstring(body)
            keys += [c.findtext(f"{NS}Key") for c in root.iter(f"{NS}Contents")]
            if root.findtext(f"{NS}IsTruncated") != "true":
                return keys
            token = root.findtext(f"{NS}NextContinuationToken")

    def list_uploads(self, prefix):
        status, _, body = self.request("GET", query={"uploads": "", "prefix": prefix})
        assert status == 200, (status, body)
        root = ET.fromstring(body)
        return [(u.findtext(f"{NS}Key"), u.findtext(f"{NS}UploadId")) for u in root.iter(f"{NS}Upload")]

    def delete_prefix(self, prefix):
        """Delete every object and abort every upload under prefix (memstore keeps them in RAM)."""
        for key, upload in self.list_uploads(prefix):
            self.request("DELETE", key, {"uploadId": upload})
        for key in self.list_keys(prefix):
            self.request("DELETE", key)


# ---- the fault-injecting proxy ----

SLOWDOWN = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>"
            b"<Message>Please reduce your request rate.</Message></Error>")


def _rst(sock):
    """Close with a TCP reset (SO_LINGER 0), as a crashed peer or a middlebox does."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()


class _Conn:
    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def read_until(self, sep):
        while sep not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_n(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(max(65536, n - len(self.buf)))
            if not data:
                raise ConnectionError("closed mid-body")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_all(self):
        while True:
            data = self.sock.recv(65536)
            if not data:
                out, self.buf = self.buf, b""
                return out
            self.buf += data


def _headers(head):
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    return lines[0], hdrs


class FaultProxy:
    """An HTTP/1.1 proxy on 127.0.0.1 in front of the S3 server, keep-alive on both sides.

    plan(n, method, target, headers) -> None (forward), "slowdown" (answer 503 SlowDown without
    forwarding), "reset" (reset the connection before answering), "cut" (forward the answer's head
    and half its body, then reset), or another action a subclass answers in act(). n counts requests from 0. Every request is logged as a dict:
    n, method, target, headers, action, status, body_bytes.
    """

    def __init__(self, upstream, plan=None, tls=None):
        self.upstream = urllib.parse.urlsplit(upstream)
        self.plan = plan or (lambda n, method, target, headers: None)
        self.log, self.lock, self.n = [], threading.Lock(), 0
        self.connections = 0  # client connections accepted (keep-alive: far fewer than requests)
        self.tls = None
        if tls:  # (certificate, key): serve HTTPS
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(*tls)
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = self.server.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                sock, _ = self.server.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def close(self):
        self.server.close()

    def act(self, action, sock, entry, headers, body):
        """Answer a request by an action of a subclass's own; True when the connection stays open."""
        raise ValueError(f"FaultProxy: unknown action {action!r}")

    def _serve(self, sock):
        up = None
        try:
            if self.tls:
                sock = self.tls.wrap_socket(sock, server_side=True)
            client = _Conn(sock)
            while True:
                head = client.read_until(b"\r\n\r\n")
                if head is None:
                    return
                start, hdrs = _headers(head)
                method, target = start.split(" ")[0], start.split(" ")[1]
                body = client.read_n(int(hdrs.get("content-length", "0")))
                with self.lock:
                    n = self.n
                    self.n += 1
                action = self.plan(n, method, target, hdrs)
                entry = {"n": n, "method": method, "target": target, "headers": hdrs, "action": action,
                         "status": None, "body_bytes": 0}
                with self.lock:
                    self.log.append(entry)
                if action == "slowdown":
                    sock.sendall(b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                                 b"Content-Length: %d\r\n\r\n" % len(SLOWDOWN) + SLOWDOWN)
                    entry["status"] = 503
                    continue
                if action == "reset":
                    _rst(sock)
                    return
                if action not in (None, "cut"):
                    # another action: a subclass answers it (act), and says whether the connection lives on
                    if not self.act(action, sock, entry, hdrs, body):
                        sock.close()
                        return
                    continue
                if up is None:
                    up = _Conn(socket.create_connection((self.upstream.hostname, self.upstream.port)))
                up.sock.sendall(head + body)
                rhead = up.read_until(b"\r\n\r\n")
                if rhead is None:
                    sock.close()
                    return
                status_line, rh = _headers(rhead)
                status = int(status_line.split(" ")[1])
                entry["status"] = status
                if method == "HEAD" or status in (204, 304) or status < 200:
                    rbody = b""
                elif rh.get("transfer-encoding", "").lower() == "chunked":
                    rbody = b""
                    while True:
                        size_line = up.read_until(b"\r\n")
                        size = int(size_line.split(b";")[0], 16)
                        rbody += size_line + up.read_n(size + 2)
                        if size == 0:
                            break
                elif "content-length" in rh:
                    rbody = up.read_n(int(rh["content-length"]))
                else:
                    rbody = up.read_all()
                entry["body_bytes"] = len(rbody)
                if action == "cut" and len(rbody) > 1:
                    sock.sendall(rhead + rbody[: len(rbody) // 2])
                    _rst(sock)
                    return
                sock.sendall(rhead + rbody)
                if rh.get("connection", "").lower() == "close" or hdrs.get("connection", "").lower() == "close":
                    sock.close()
                    return
        except (ConnectionError, OSError, ssl.SSLError):
            try:
                sock.close()
            except OSError:
                pass
        finally:
            if up is not None:
                up.sock.close()
