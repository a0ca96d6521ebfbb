"""A zarr-python 2 store over Debian's boto3 (python3-boto3), for the adapters' S3 cells.

Debian 12 packages no s3fs (fsspec's S3 filesystem, what zarr-python 2.13 uses for s3:// URLs), so
zarr-python reaches S3 here through this store: a MutableMapping of get_object / put_object /
delete_object / list_objects_v2 / head_object under s3://BUCKET/PREFIX/. Its copies are the store's
as much as zarr's, so every table names the pair: LABEL.

    store = Boto3Store("tally", "tally-run/123-zarr-python-write-s3-none-v2-one-chunk")
    z = zarr.open_array(store, mode="w-", ...)

What happens to the bytes (measured with tally profile's call stacks, 100 MB one-chunk arrays):
- put: zarr 2.13 hands every value over as bytes (an uncompressed chunk is copied by zarr's
  ensure_bytes, zarr/core.py:2233, before the store sees it); put_object sends it as the body.
  botocore reads it three times, in pieces: SigV4's payload hash (botocore/auth.py:337, over http),
  Content-MD5 (botocore/utils.py:3029) in 1 MiB reads, and http.client's send in 8 KiB blocks: a copy
  volume of 3.0 charged to python3.11, no buffer the size of the chunk.
- get: get_object(...)["Body"].read(): botocore's StreamingBody over urllib3, whose read() is one
  http.client _safe_read of the whole body (http/client.py:630): one bytes object of the chunk's
  encoded size, the read's one extra copy. zarr decodes it into the output (numcodecs), or copies it
  there (numpy copyto) when uncompressed.

Endpoint, region and credentials come from the standard AWS environment (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION: scripts/s3-server env), path-style addressing.
No secret is printed: errors name the operation, the key, the HTTP status and S3's error code.

Also a command line for the Node adapter (zarrita.mjs), which has no SigV4 client of its own:

    s3_boto3_store.py grant-read s3://BUCKET/PREFIX     anonymous GetObject on PREFIX/* (a bucket policy statement)
    s3_boto3_store.py revoke-read s3://BUCKET/PREFIX    that statement taken out again
    s3_boto3_store.py presign-put s3://BUCKET/PREFIX KEY...   a JSON object {KEY: presigned PUT URL}
    s3_boto3_store.py remove s3://BUCKET/PREFIX         every object under PREFIX/ deleted
"""
import json
import os
import sys
import urllib.parse
from collections.abc import MutableMapping

LABEL = "zarr-python + boto3 store"
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 120


class StoreError(Exception):
    """An S3 request of the store failed: the message names the operation, key and HTTP status."""


def _env():
    missing = [k for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not os.environ.get(k)]
    if missing:
        raise StoreError(f"the boto3 store needs {', '.join(missing)} in the environment (scripts/s3-server env)")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return os.environ["AWS_ENDPOINT_URL"].rstrip("/"), region


def client():
    """A boto3 S3 client on the environment's endpoint (path-style, few retries: a dead server fails fast)."""
    import boto3
    import botocore.config
    endpoint, region = _env()
    cfg = botocore.config.Config(region_name=region, s3={"addressing_style": "path"},
                                 connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
                                 retries={"mode": "standard", "max_attempts": 3})
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=cfg)


def versions():
    import boto3
    import botocore
    return {"boto3": boto3.__version__, "botocore": botocore.__version__}


def _failure(op, bucket, key, e):
    """A StoreError naming op, s3://bucket/key, the HTTP status and S3's code, from botocore's exception."""
    import botocore.exceptions as bx
    where = f"s3://{bucket}/{key}"
    if isinstance(e, bx.ClientError):
        err = e.response.get("Error", {})
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = err.get("Code") or "?"
        hint = ""
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
            hint = " (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        return StoreError(f"boto3 store: {op} {where}: HTTP {status} {code}{hint}")
    if isinstance(e, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError)):
        return StoreError(f"boto3 store: {op} {where}: no answer from {os.environ.get('AWS_ENDPOINT_URL')}: {e}")
    if isinstance(e, bx.NoCredentialsError):
        return StoreError(f"boto3 store: {op} {where}: no credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")
    return StoreError(f"boto3 store: {op} {where}: {type(e).__name__}: {e}")


def _status(e):
    return getattr(e, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")


class Boto3Store(MutableMapping):
    """zarr-python 2's store protocol (a MutableMapping of str keys to bytes) on s3://bucket/prefix/."""

    def __init__(self, bucket, prefix, s3=None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.s3 = s3 if s3 is not None else client()

    def _key(self, key):
        return f"{self.prefix}/{key}" if self.prefix else key

    def __getitem__(self, key):
        k = self._key(key)
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=k)["Body"]
            try:
                return body.read()
            finally:
                body.close()
        except Exception as e:
            if _status(e) == 404:
                raise KeyError(key) from None
            raise _failure("GET", self.bucket, k, e) from None

    def __setitem__(self, key, value):
        k = self._key(key)
        # zarr 2.13 gives bytes; another buffer becomes bytes here (a copy botocore's body needs)
        body = value if isinstance(value, (bytes, bytearray)) else memoryview(value).tobytes()
        try:
            self.s3.put_object(Bucket=self.bucket, Key=k, Body=body)
        except Exception as e:
            raise _failure("PUT", self.bucket, k, e) from None

    def __delitem__(self, key):
        if key not in self:
            raise KeyError(key)
        k = self._key(key)
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=k)
        except Exception as e:
            raise _failure("DELETE", self.bucket, k, e) from None

    def __contains__(self, key):
        k = self._key(key)
        try:
            self.s3.head_object(Bucket=self.bucket, Key=k)
            return True
        except Exception as e:
            if _status(e) == 404:
                return False
            raise _failure("HEAD", self.bucket, k, e) from None

    def keys_under(self, sub=""):
        """Every key (relative to the store's prefix) under SUB/, all pages."""
        base = self._key(sub).rstrip("/") + "/" if sub or self.prefix else ""
        token = None
        while True:
            args = {"Bucket": self.bucket, "Prefix": base}
            if token:
                args["ContinuationToken"] = token
            try:
                page = self.s3.list_objects_v2(**args)
            except Exception as e:
                raise _failure("LIST", self.bucket, base, e) from None
            for o in page.get("Contents", []):
                yield o["Key"][len(self.prefix) + 1:] if self.prefix else o["Key"]
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def __iter__(self):
        return self.keys_under()

    def __len__(self):
        return sum(1 for _ in self)

    def remove_all(self):
        for key in list(self):
            del self[key]


# ------------------------------------------------------------------------------------------- the command line
def _split(url):
    u = urllib.parse.urlparse(url)
    if u.scheme != "s3" or not u.netloc or not u.path.strip("/"):
        raise StoreError(f"an s3 url must be s3://BUCKET/PREFIX, not {url!r}")
    return u.netloc, u.path.strip("/")


def _sid(prefix):
    """The policy statement's id for a prefix (Sids are alphanumeric)."""
    return "tallyread" + "".join(c for c in prefix if c.isalnum())[-200:]


def _policy(s3, bucket):
    try:
        return json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except Exception as e:
        if _status(e) == 404:
            return {"Version": "2012-10-17", "Statement": []}
        raise _failure("GET policy of", bucket, "", e) from None


def _put_policy(s3, bucket, pol):
    try:
        if pol["Statement"]:
            s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(pol))
        else:
            s3.delete_bucket_policy(Bucket=bucket)
    except Exception as e:
        raise _failure("PUT policy of", bucket, "", e) from None


def grant_read(s3, bucket, prefix, grant=True):
    """Anonymous s3:GetObject on bucket/prefix/* (one statement of the bucket's policy), or taken out."""
    pol = _policy(s3, bucket)
    sid = _sid(prefix)
    pol["Statement"] = [s for s in pol.get("Statement", []) if s.get("Sid") != sid]
    if grant:
        pol["Statement"].append({"Sid": sid, "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"],
                                 "Resource": [f"arn:aws:s3:::{bucket}/{prefix}/*"]})
    _put_policy(s3, bucket, pol)


def presign_put(s3, bucket, prefix, keys, expires=3600):
    return {k: s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": f"{prefix}/{k}"},
                                         ExpiresIn=expires) for k in keys}


def main(argv):
    if len(argv) < 2 or argv[0] not in ("grant-read", "revoke-read", "presign-put", "remove"):
        print("usage: s3_boto3_store.py grant-read|revoke-read|remove s3://BUCKET/PREFIX | "
              "presign-put s3://BUCKET/PREFIX KEY...", file=sys.stderr)
        return 2
    try:
        bucket, prefix = _split(argv[1])
        s3 = client()
        if argv[0] in ("grant-read", "revoke-read"):
            grant_read(s3, bucket, prefix, argv[0] == "grant-read")
        elif argv[0] == "presign-put":
            print(json.dumps(presign_put(s3, bucket, prefix, argv[2:])))
        else:
            store = Boto3Store(bucket, prefix, s3)
            store.remove_all()
            left = list(store)
            if left:
                raise StoreError(f"{len(left)} objects left under s3://{bucket}/{prefix} (e.g. {left[0]})")
    except StoreError as e:
        print(f"s3_boto3_store.py {argv[0]}: {e}", file=sys.stderr)
        return 1
    except ImportError as e:
        print(f"s3_boto3_store.py {argv[0]}: boto3 is not importable by {sys.executable} "
              f"(Debian: python3-boto3): {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
