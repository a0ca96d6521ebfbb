"""What every Python adapter of harness/impl shares: the adapter protocol of docs/impl-protocol.md.

An adapter module defines a subclass of Adapter (its stack's calls only) and ends with

    if __name__ == "__main__":
        sys.exit(tally_adapter.main(MyAdapter()))

and this module does the rest, the same way for every stack:

  ADAPTER --probe        {"impl", "available", "version" | "reason"} on stdout, exit 0
  ADAPTER --cell FILE    loads and checks the cell, asks the adapter whether it skips it, loads the data
                         (.npy) before the window, runs the write or the read between the marks
                         (tly_mark_begin/end through ctypes when the preload is there, unmarked when
                         not), verifies against the data file outside the window, removes what it wrote
                         (the local directory, or every S3 object under the prefix), prints one result
                         line; exit 0 when it ran or was skipped, 1 when it failed (the reason on
                         stderr and in the line; secrets never appear in it)

An Adapter subclass provides:
  name                       the impl's name ("zarr-python")
  probe()                    -> the stack's version string; raise Unavailable(reason) (or let the
                             ImportError out) when the stack is not there
  skip(cell)                 -> a reason when the stack cannot run this cell (format, codec, store), else None
  setup(cell)                outside the window, before anything is written (configuration)
  write(cell, data)          create the array at the cell's location and write all of data; flush/close
  read(cell)                 -> a new numpy array with the whole array
  window_open(cell)          optional: start the adapter's own measurement (outside the marks)
  window_close(cell, array_bytes, output_bytes) -> dict for "extra", or None
  label(cell)                optional: -> the name reports show for this cell's stack, when it is more than
                             the impl's name (zarr-python's S3 cells: "zarr-python + boto3 store"), else None
"""
import ctypes
import datetime
import gc
import hashlib
import hmac
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

try:
    import numpy as np
    _NUMPY_ERROR = None
except ImportError as e:  # reported by --probe and --cell, never a traceback
    np = None
    _NUMPY_ERROR = f"numpy is not importable by {sys.executable}: {e}"

OPS = ("write", "read")
STORES = ("local", "s3")
FORMATS = ("v2", "v3")
# The codecs these adapters configure, with numcodecs' defaults. The names a cell may hold are tally's
# registry's (the cell's "codecs", written by tally run from tly_codec_names()); a codec of that list
# that is not here is skipped with a reason, not refused.
CODEC_DEFAULTS = {"none": {}, "blosc": {"cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0},
                  "zstd": {"level": 3, "checksum": False}}
REQUIRED = ("scenario", "op", "store", "format", "codec", "dtype", "shape", "chunks", "data_path", "url")


class Unavailable(Exception):
    """The stack is not there (probe)."""


class Failure(Exception):
    """A cell failed: the message is the reason, naming what failed."""


class Adapter:
    name = "adapter"

    def probe(self):
        raise Unavailable("probe not implemented")

    def skip(self, cell):
        return None

    # What the adapter does beyond whole, unsharded arrays (an adapter that implements them says so).
    SHARDED = False
    REGION = False

    def setup(self, cell):
        pass

    def write(self, cell, data):
        raise NotImplementedError

    def read(self, cell):
        raise NotImplementedError

    def window_open(self, cell):
        pass

    def window_close(self, cell, array_bytes, output_bytes):
        return None

    def label(self, cell):
        return None


# ------------------------------------------------------------------------------------------- marks
class Marks:
    """tly_mark_begin/end of the preload (libtally-preload.so), through ctypes; absent: unmarked."""

    def __init__(self):
        try:
            lib = ctypes.CDLL(None)
            self._begin = lib.tly_mark_begin
            self._end = lib.tly_mark_end
        except (AttributeError, OSError):
            self._begin = self._end = None
            return
        self._begin.argtypes = [ctypes.c_char_p, ctypes.c_ulonglong]
        self._begin.restype = None
        self._end.argtypes = [ctypes.c_ulonglong]
        self._end.restype = None

    @property
    def present(self):
        return self._begin is not None

    def begin(self, op, array_bytes):
        if self._begin:
            self._begin(op.encode(), ctypes.c_ulonglong(array_bytes))

    def end(self, output_bytes):
        if self._end:
            self._end(ctypes.c_ulonglong(output_bytes))


# ------------------------------------------------------------------------------------------- cells
def layout_skip(adapter, cell):
    """The reason a sharded or region cell is skipped when the adapter does not implement it."""
    if cell.get("inner_chunks") and not adapter.SHARDED:
        return (f"the {adapter.name} adapter does not write or read Zarr v3 sharded arrays yet "
                "(inner_chunks: the cell's chunks are shards)")
    if cell.get("region") and not adapter.REGION:
        return f"the {adapter.name} adapter reads whole arrays only (a region cell)"
    return None


def codec_skip(adapter, cell):
    """The reason a cell of a codec tally has and these adapters do not configure is skipped."""
    if cell["codec"] not in CODEC_DEFAULTS:
        return f"the {adapter.name} adapter does not configure {cell['codec']} chunks"
    return None


def load_cell(path, line=None):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise Failure(f"cannot read the cell file {path}: {e.strerror}") from None
    try:
        cell = json.loads(text)
    except ValueError as e:
        raise Failure(f"the cell file {path} is not JSON: {e}") from None
    if not isinstance(cell, dict):
        raise Failure(f"the cell file {path} is not a JSON object")
    if line is not None and isinstance(cell.get("scenario"), str):
        line["scenario"] = cell["scenario"]  # a failed line names the scenario when it can
    missing = [k for k in REQUIRED if k not in cell]
    if missing:
        raise Failure(f"the cell file {path} lacks {', '.join(missing)}")
    codecs = cell.get("codecs", list(CODEC_DEFAULTS))
    if not isinstance(codecs, list) or not all(isinstance(c, str) for c in codecs):
        raise Failure(f"the cell file {path}: codecs {codecs!r} is not a list of names")
    for key, allowed in (("op", OPS), ("store", STORES), ("format", FORMATS), ("codec", codecs)):
        if cell[key] not in allowed:
            raise Failure(f"the cell file {path}: {key} is {cell[key]!r}, not one of {', '.join(allowed)}")
    shape, chunks = cell["shape"], cell["chunks"]
    if (not isinstance(shape, list) or not isinstance(chunks, list) or len(shape) != len(chunks) or not shape
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in chunks)):
        raise Failure(f"the cell file {path}: shape {shape!r} and chunks {chunks!r} must be lists of "
                      "integers of the same length (chunks > 0)")
    cc = cell.setdefault("codec_config", {"id": cell["codec"]})
    if not isinstance(cc, dict) or cc.get("id") != cell["codec"]:
        raise Failure(f"the cell file {path}: codec_config {cc!r} does not match codec {cell['codec']!r}")
    for k, v in CODEC_DEFAULTS.get(cell["codec"], {}).items():
        cc.setdefault(k, v)
    ints = [k for k, v in CODEC_DEFAULTS.get(cell["codec"], {}).items() if isinstance(v, int) and not isinstance(v, bool)]
    bad = [k for k in ints if not isinstance(cc[k], int) or isinstance(cc[k], bool)]
    if bad or (cell["codec"] == "blosc" and (cc["shuffle"] not in (0, 1, 2) or not isinstance(cc["cname"], str))):
        raise Failure(f"the cell file {path}: codec_config {cc!r} is not a valid {cell['codec']} configuration "
                      "(integers clevel, shuffle 0/1/2, blocksize, level; a string cname)")
    try:
        np.dtype(cell["dtype"])
    except TypeError:
        raise Failure(f"the cell file {path}: dtype {cell['dtype']!r} is not a numpy dtype") from None
    cell.setdefault("threads", 1)
    cell.setdefault("verify", True)
    url = cell["url"]
    if cell["store"] == "local":
        if not isinstance(url, str) or not os.path.isabs(url):
            raise Failure(f"the cell file {path}: a local url must be an absolute path, not {url!r}")
    else:
        bucket, prefix = split_s3_url(url)
        cell["s3_bucket"], cell["s3_prefix"] = bucket, prefix
    return cell


def split_s3_url(url):
    u = urllib.parse.urlparse(url) if isinstance(url, str) else None
    if not u or u.scheme != "s3" or not u.netloc or not u.path.strip("/"):
        raise Failure(f"an s3 url must be s3://BUCKET/PREFIX, not {url!r}")
    return u.netloc, u.path.strip("/")


def load_data(cell):
    """The array's bytes (a .npy), checked against the cell's dtype and shape."""
    path = cell["data_path"]
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise Failure(f"the data file {path} does not exist") from None
    except (OSError, ValueError) as e:
        raise Failure(f"cannot load the data file {path}: {e}") from None
    if data.dtype != np.dtype(cell["dtype"]) or list(data.shape) != list(cell["shape"]):
        raise Failure(f"the data file {path} holds {data.dtype.str} {list(data.shape)}, "
                      f"the cell says {cell['dtype']} {cell['shape']}")
    return np.ascontiguousarray(data)


def compare(cell, out, data):
    if not isinstance(out, np.ndarray):
        raise Failure(f"verify: the read returned {type(out).__name__}, not an array")
    if out.shape != data.shape or out.dtype != data.dtype:
        raise Failure(f"verify: read back {out.dtype.str} {list(out.shape)}, the data is "
                      f"{data.dtype.str} {list(data.shape)}")
    if not np.array_equal(out, data):
        n = int(np.count_nonzero(out != data))
        raise Failure(f"verify: {n} of {data.size} elements read back from {cell['url']} differ from "
                      f"{cell['data_path']}")


# ------------------------------------------------------------------------------------------- S3
def s3_env():
    """Endpoint, region and credentials from the AWS_* environment (never printed)."""
    missing = [k for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not os.environ.get(k)]
    if missing:
        raise Failure(f"an s3 cell needs {', '.join(missing)} in the environment")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return os.environ["AWS_ENDPOINT_URL"].rstrip("/"), region


def _s3_request(method, bucket, key="", query=None):
    """One SigV4-signed, path-style request to AWS_ENDPOINT_URL; returns the body."""
    endpoint, region = s3_env()
    u = urllib.parse.urlparse(endpoint)
    now = datetime.datetime.now(datetime.timezone.utc)
    amzdate, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    path = "/" + urllib.parse.quote(bucket + ("/" + key if key else ""), safe="/~")
    cq = "&".join(f"{urllib.parse.quote(k, safe='~')}={urllib.parse.quote(str(v), safe='~')}"
                  for k, v in sorted((query or {}).items()))
    payload = hashlib.sha256(b"").hexdigest()
    headers = {"host": u.netloc, "x-amz-content-sha256": payload, "x-amz-date": amzdate}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, path, cq, "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)), signed, payload])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + os.environ["AWS_SECRET_ACCESS_KEY"]).encode()
    for part in (day, region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={os.environ['AWS_ACCESS_KEY_ID']}/{scope}, "
                                f"SignedHeaders={signed}, Signature={sig}")
    req = urllib.request.Request(endpoint + path + ("?" + cq if cq else ""), method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        detail = e.read()[:300].decode("utf-8", "replace")
        raise Failure(f"S3 {method} s3://{bucket}/{key}: HTTP {e.code} {detail}") from None
    except (urllib.error.URLError, OSError) as e:
        raise Failure(f"S3 {method} s3://{bucket}/{key} at {endpoint}: {getattr(e, 'reason', e)}") from None


def s3_list(bucket, prefix):
    """Every key equal to PREFIX or under PREFIX/."""
    keys, token = [], None
    while True:
        q = {"list-type": "2", "prefix": prefix}
        if token:
            q["continuation-token"] = token
        root = ET.fromstring(_s3_request("GET", bucket, query=q))
        ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
        for c in root.iter(ns + "Contents"):
            key = c.find(ns + "Key").text
            if key == prefix or key.startswith(prefix + "/"):
                keys.append(key)
        if (root.findtext(ns + "IsTruncated") or "false") != "true":
            return keys
        token = root.findtext(ns + "NextContinuationToken")


def s3_remove(bucket, prefix):
    for key in s3_list(bucket, prefix):
        _s3_request("DELETE", bucket, key)
    left = s3_list(bucket, prefix)
    if left:
        raise Failure(f"cleanup: {len(left)} objects left under s3://{bucket}/{prefix} (e.g. {left[0]})")


# ------------------------------------------------------------------------------------------- the run
def scrub(text):
    """No secret in any line we print."""
    for var in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        v = os.environ.get(var)
        if v and len(v) >= 4:
            text = text.replace(v, "***")
    return text


def describe(e):
    if isinstance(e, Failure):
        return str(e)
    return f"{type(e).__name__}: {e}"


class _Stage:
    """`with stage("writing ..."):` turns any exception into a Failure naming the stage."""

    def __init__(self, what):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, kind, e, tb):
        if e is None or isinstance(e, (Failure, KeyboardInterrupt, SystemExit)):
            return False
        raise Failure(f"{self.what}: {describe(e)}") from e


stage = _Stage


def location(cell):
    return cell["url"] if cell["store"] == "local" else f"s3://{cell['s3_bucket']}/{cell['s3_prefix']}"


def _claim(cell):
    """The location must be new: refuse (and leave alone) what is already there."""
    if cell["store"] == "local":
        if os.path.lexists(cell["url"]):
            raise Failure(f"{cell['url']} already exists (the url must be a directory that does not exist yet)")
        if not os.path.isdir(os.path.dirname(cell["url"].rstrip("/")) or "/"):
            raise Failure(f"the parent directory of {cell['url']} does not exist")
    else:
        left = s3_list(cell["s3_bucket"], cell["s3_prefix"])
        if left:
            raise Failure(f"{location(cell)} already holds {len(left)} objects (e.g. {left[0]})")


def _remove(cell):
    if cell["store"] == "local":
        if os.path.lexists(cell["url"]):
            if os.path.isdir(cell["url"]) and not os.path.islink(cell["url"]):
                shutil.rmtree(cell["url"])
            else:
                os.unlink(cell["url"])
    else:
        s3_remove(cell["s3_bucket"], cell["s3_prefix"])


def run_cell(adapter, cell, marks):
    """Runs the cell; returns (extra, verified). Raises Failure."""
    with stage("loading the data"):
        data = load_data(cell)
    array_bytes = int(data.nbytes)
    op = cell["op"]
    with stage("setting up"):
        adapter.setup(cell)
    if op == "read":
        with stage(f"writing the read fixture to {location(cell)}"):
            adapter.write(cell, data)
        del data
    gc.collect()
    output = None
    adapter.window_open(cell)
    marks.begin(op, array_bytes)
    t0 = time.perf_counter()
    try:
        if op == "write":
            with stage(f"writing {location(cell)}"):
                adapter.write(cell, data)
        else:
            with stage(f"reading {location(cell)}"):
                output = adapter.read(cell)
    finally:
        wall = time.perf_counter() - t0
        output_bytes = int(output.nbytes) if output is not None and hasattr(output, "nbytes") else 0
        marks.end(output_bytes)
        figures = adapter.window_close(cell, array_bytes, output_bytes)
    extra = {"window_wall_s": round(wall, 6), "marked": marks.present}
    if figures:
        extra.update(figures)
    verified = False
    if cell["verify"]:
        if op == "write":
            with stage(f"reading {location(cell)} back to verify"):
                output = adapter.read(cell)
        else:
            data = load_data(cell)  # again: it was dropped before the window
        compare(cell, output, data)
        verified = True
    return extra, verified


def emit(line, status_code):
    print(scrub(json.dumps(line)), flush=True)
    if line.get("status") == "failed":
        print(scrub(f"{line.get('impl')}: {line.get('scenario') or '?'}: failed: {line.get('reason')}"), file=sys.stderr)
    return status_code


def probe_line(adapter):
    line = {"impl": adapter.name}
    if np is None:
        line.update(available=False, reason=_NUMPY_ERROR)
        return line
    try:
        line.update(available=True, version=adapter.probe())
    except Unavailable as e:
        line.update(available=False, reason=str(e))
    except ImportError as e:
        line.update(available=False, reason=f"not importable by {sys.executable}: {e}")
    except Exception as e:  # a probe never fails: it says why the stack is unavailable
        line.update(available=False, reason=describe(e))
    return line


def main(adapter, argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--probe"]:
        return emit({k: (scrub(v) if isinstance(v, str) else v) for k, v in probe_line(adapter).items()}, 0)
    if len(argv) != 2 or argv[0] != "--cell":
        print(f"usage: {os.path.basename(sys.argv[0])} --probe | --cell FILE", file=sys.stderr)
        return 2
    line = {"impl": adapter.name, "impl_version": None, "scenario": None, "status": "failed",
            "reason": None, "verified": False, "extra": {}}
    cell = None
    claimed = False
    try:
        if np is None:
            raise Failure(_NUMPY_ERROR)
        cell = load_cell(argv[1], line)
        p = probe_line(adapter)
        if not p["available"]:
            line.update(status="skipped", reason=f"{adapter.name} is unavailable here: {p['reason']}")
            return emit(line, 0)
        line["impl_version"] = p["version"]
        if adapter.label(cell):
            line["label"] = adapter.label(cell)
        why = codec_skip(adapter, cell) or layout_skip(adapter, cell) or adapter.skip(cell)
        if why:
            line.update(status="skipped", reason=why)
            return emit(line, 0)
        if not os.path.exists(cell["data_path"]):
            raise Failure(f"the data file {cell['data_path']} does not exist")
        _claim(cell)
        claimed = True
        line["extra"], line["verified"] = run_cell(adapter, cell, Marks())
        line.update(status="ok")
        del line["reason"]
    except Exception as e:
        line.update(status="failed", reason=describe(e))
    finally:
        if claimed:
            try:
                gc.collect()  # handles a stack keeps open go before their files
                _remove(cell)
            except Exception as e:
                why = f"cleanup of {location(cell)}: {describe(e)}"
                line.update(status="failed", reason=f"{line['reason']}; {why}" if line.get("reason") else why)
    return emit(line, 1 if line["status"] == "failed" else 0)
