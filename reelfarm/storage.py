"""Content-addressed blob storage: every blob lives under the SHA-256 of its bytes.

Addressing by content makes writes idempotent (the same clip rendered twice, or the
same video uploaded twice, is stored once) and lets any reader check what it got.
Two backends share one interface: a local folder (default, single machine) and S3
(production, many render nodes).
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import re
import shutil
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import BinaryIO, cast
from urllib.parse import quote, unquote, urlencode, urlsplit

from reelfarm.settings import Settings

CHUNK_BYTES = 1 << 20
# S3 verifies a whole-object SHA-256 only on a single PUT (multipart full-object
# checksums are CRC-only), and a single PUT is capped at 5 GiB.
SINGLE_PUT_MAX_BYTES = 5 << 30

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class StoredBlob:
    """What a commit returns: enough to record the blob in the database."""

    sha256: str
    size_bytes: int
    key: str


@dataclass(frozen=True)
class ObjectHead:
    size_bytes: int
    sha256: str | None  # as the store checked it on write (S3 x-amz-checksum-sha256); None: not kept
    content_type: str | None


class BlobTooLarge(Exception):
    """More bytes were offered to a writer than its `max_bytes`."""


class StorageError(Exception):
    """The backend failed, or a writer was used after it was finished."""


def blob_key(sha256: str) -> str:
    """Fan out by the first two bytes so no directory (or S3 listing) gets huge."""
    if not isinstance(sha256, str) or not _SHA256_HEX.fullmatch(sha256):
        raise ValueError(f"not a lowercase hex SHA-256 digest: {sha256!r}")
    return f"blobs/sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def _check_key(key: str) -> str:
    """Keys are relative POSIX paths; '..' or an absolute key could reach outside the store."""
    if not key or key.startswith("/") or ".." in PurePosixPath(key).parts:
        raise ValueError(f"invalid storage key {key!r}: must be relative and must not contain '..'")
    return key


def _hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class BlobWriter(ABC):
    """Streams bytes into a local temp file, hashing as it goes, then stores them by hash.

    The temp file lets the caller inspect the content (ffprobe) before committing it.
    """

    def __init__(self, temp_path: Path, max_bytes: int | None) -> None:
        self._temp_path = temp_path
        self._file = open(temp_path, "xb")
        self._max_bytes = max_bytes
        self._digest = hashlib.sha256()
        self._size = 0
        self._result: StoredBlob | None = None
        self._aborted = False

    def write(self, data: bytes) -> None:
        """Append `data`; refuses (without writing it) anything past `max_bytes`."""
        if self._file.closed:
            raise StorageError("blob writer is already committed or aborted")
        if self._max_bytes is not None and self._size + len(data) > self._max_bytes:
            raise BlobTooLarge(f"blob exceeds {self._max_bytes} bytes")
        self._file.write(data)
        self._digest.update(data)
        self._size += len(data)

    def write_file(self, path: Path) -> None:
        """Take a finished file's bytes as this writer's whole content (a spooled upload).

        Hard-linked into the temp path where the filesystem allows, so a large upload is not
        written a second time (bench/uploads.py: the copy cost 0.4-2.6 s of a 274 MiB upload
        when it reached the disk); otherwise copied. Hashed once either way. `path` itself is
        left in place (and unchanged: nothing more may be written to this writer)."""
        if self._file.closed or self._size:
            raise StorageError("write_file needs a fresh writer")
        size = Path(path).stat().st_size
        if self._max_bytes is not None and size > self._max_bytes:
            raise BlobTooLarge(f"blob exceeds {self._max_bytes} bytes")
        self._file.close()  # later writes would reach the linked file: refused from here on
        self._temp_path.unlink()
        try:
            os.link(path, self._temp_path)
        except OSError:  # another filesystem, or no hard links there
            shutil.copyfile(path, self._temp_path)
        with open(self._temp_path, "rb") as linked:
            self._digest = hashlib.file_digest(linked, "sha256")
        self._size = size

    @property
    def size_bytes(self) -> int:
        return self._size

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    @property
    def temp_path(self) -> Path:
        """The temp file, flushed so that it holds every byte written so far."""
        if not self._file.closed:
            self._file.flush()
        return self._temp_path

    def commit(self) -> StoredBlob:
        """Store the content under its hash (skipped if already stored); idempotent."""
        if self._result is not None:
            return self._result
        if self._aborted:
            raise StorageError("blob writer was aborted")
        self._file.close()
        blob = StoredBlob(sha256=self.sha256, size_bytes=self._size, key=blob_key(self.sha256))
        self._store(blob)
        self._temp_path.unlink(missing_ok=True)
        self._result = blob
        return blob

    def abort(self) -> None:
        """Drop the temp file; a no-op after commit and when called again."""
        if self._result is not None:
            return
        self._aborted = True
        self._file.close()
        self._temp_path.unlink(missing_ok=True)

    @abstractmethod
    def _store(self, blob: StoredBlob) -> None:
        """Put the (closed) temp file's content at `blob.key` unless that key already exists."""

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None or self._result is None:
            self.abort()


class Storage(ABC):
    """Where blobs live. Keys are relative POSIX paths, normally `blob_key(sha256)`."""

    def _partials(self) -> tuple[Path, str] | None:
        """The folder where writers keep content before it is stored, and their files' pattern."""
        return None

    def remove_stale_partials(self, older_than_seconds: float = 3600.0) -> int:
        """Delete writers' files a dead process left behind (an API killed mid-upload); the count.

        Never visible through the API (no row points at them), but they hold disk. Only files
        untouched for `older_than_seconds` go: another live process may be writing the rest.
        """
        partials = self._partials()
        if partials is None:
            return 0
        folder, pattern = partials
        cutoff = time.time() - older_than_seconds
        removed = 0
        for path in folder.glob(pattern):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:  # finished or removed meanwhile
                continue
        return removed

    @abstractmethod
    def open_writer(self, max_bytes: int | None = None) -> BlobWriter:
        """A writer for content whose hash is not known up front (uploads)."""

    @abstractmethod
    def put_file(self, path: Path, *, move: bool = False) -> StoredBlob:
        """Store a finished file. With `move=True` the source is consumed (renamed when possible)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int:
        """Size in bytes; FileNotFoundError if the key is missing."""

    @abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """A streaming reader (for HTTP responses); FileNotFoundError if the key is missing."""

    @abstractmethod
    def local_file(self, key: str) -> Path | None:
        """The blob's path when it is a file on this machine (no copy needed), else None."""

    @abstractmethod
    def fetch_to_local(self, key: str, cache_dir: Path) -> Path:
        """A local file with the blob's bytes (ffmpeg needs one); downloaded at most once."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the blob; a missing key is not an error."""

    def presigned_get_url(self, key: str, expires_seconds: int) -> str:
        """A URL a client can download from directly; only backends with their own HTTP server."""
        raise NotImplementedError(f"{type(self).__name__} cannot make presigned URLs")

    def presigned_put_url(self, key: str, *, sha256: str, size_bytes: int, content_type: str,
                          expires_seconds: int) -> str | None:
        """A URL the client PUTs `key`'s bytes to directly, the store itself enforcing the
        SHA-256, the size and the content type; None when the control plane must receive them."""
        return None

    def read_head(self, key: str, length: int) -> bytes:
        """The first `length` bytes (format sniffing without reading the whole object)."""
        with self.open_read(key) as f:
            return f.read(length)

    def head(self, key: str) -> ObjectHead:
        """Size, and what the store verified and recorded when the object was written."""
        return ObjectHead(size_bytes=self.size(key), sha256=None, content_type=None)

    def promote(self, staging_key: str, sha256: str) -> str:
        """Make a verified staged object the blob for `sha256` (kept once) and drop the stage."""
        raise NotImplementedError(f"{type(self).__name__} does not stage direct uploads")

    @abstractmethod
    def ping(self) -> None:
        """Raise StorageError unless the store is reachable and usable (readiness checks)."""


class _LocalBlobWriter(BlobWriter):
    def __init__(self, storage: LocalStorage, temp_path: Path, max_bytes: int | None) -> None:
        super().__init__(temp_path, max_bytes)
        self._storage = storage

    def _store(self, blob: StoredBlob) -> None:
        self._storage._place(self._temp_path, blob.key)


class LocalStorage(Storage):
    """Blobs as files under `root`; temps in root/tmp so the final rename stays on one filesystem."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.tmp_dir = self.root / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def ping(self) -> None:
        if not self.tmp_dir.is_dir() or not os.access(self.tmp_dir, os.W_OK):
            raise StorageError(f"storage folder {self.root} is missing or not writable")

    def _temp_path(self) -> Path:
        return self.tmp_dir / f"{uuid.uuid4().hex}.part"

    def _partials(self) -> tuple[Path, str]:
        return self.tmp_dir, "*.part"

    def _place(self, temp: Path, key: str) -> None:
        """Atomically rename `temp` to `key`, or drop it when the blob is already there."""
        dest = self._path(key)
        if dest.is_file():
            temp.unlink(missing_ok=True)
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, dest)

    def open_writer(self, max_bytes: int | None = None) -> BlobWriter:
        return _LocalBlobWriter(self, self._temp_path(), max_bytes)

    def put_file(self, path: Path, *, move: bool = False) -> StoredBlob:
        sha, size = _hash_file(path)
        blob = StoredBlob(sha256=sha, size_bytes=size, key=blob_key(sha))
        if move:
            try:
                self._place(Path(path), blob.key)
                return blob
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
        temp = self._temp_path()
        try:
            shutil.copyfile(path, temp)
            self._place(temp, blob.key)
        finally:
            temp.unlink(missing_ok=True)
        if move:
            Path(path).unlink()
        return blob

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def open_read(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def local_file(self, key: str) -> Path | None:
        return self._path(key)

    def fetch_to_local(self, key: str, cache_dir: Path) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(f"no blob at {key!r}")
        return path

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class _S3BlobWriter(BlobWriter):
    def __init__(self, storage: S3Storage, temp_path: Path, max_bytes: int | None) -> None:
        super().__init__(temp_path, max_bytes)
        self._storage = storage

    def _store(self, blob: StoredBlob) -> None:
        self._storage._upload(self._temp_path, blob)


class S3Storage(Storage):
    """Blobs as S3 objects under `prefix`; writers spool to `spool_dir` before uploading."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        spool_dir: Path | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.spool_dir = Path(spool_dir) if spool_dir is not None else Path(tempfile.gettempdir())
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        # boto3 here, not at the top: ~0.2 s of imports every process with local storage would pay.
        import boto3
        from botocore.config import Config

        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 5, "mode": "standard"},
        )
        # A session per storage: boto3 clients are thread-safe, the default session is not.
        self._session = boto3.session.Session()
        # Explicit keys when given (REELFARM_S3_ACCESS_KEY_ID/_SECRET_ACCESS_KEY), else boto3's default chain.
        keys = {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key} if access_key_id else {}
        self._client = self._session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config, **keys)

    def ping(self) -> None:
        with self._errors(""):
            self._client.head_bucket(Bucket=self.bucket)

    def _object_key(self, key: str) -> str:
        return self.prefix + _check_key(key)

    @contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        """Missing objects become FileNotFoundError; other backend failures StorageError."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(f"no blob at {key!r} in s3://{self.bucket}/{self.prefix}") from exc
            raise StorageError(f"S3 request for {key!r} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 request for {key!r} failed: {exc}") from exc

    def _upload(self, path: Path, blob: StoredBlob) -> None:
        """Upload unless already stored; S3 checks the SHA-256 itself whenever the size allows."""
        from boto3.s3.transfer import TransferConfig

        if self.exists(blob.key):
            return
        if blob.size_bytes <= SINGLE_PUT_MAX_BYTES:
            checksum = base64.b64encode(bytes.fromhex(blob.sha256)).decode("ascii")
            extra_args = {"ChecksumSHA256": checksum}
            transfer = TransferConfig(multipart_threshold=SINGLE_PUT_MAX_BYTES + 1)
        else:
            # Too big for one PUT: S3 verifies each part's SHA-256 instead.
            extra_args = {"ChecksumAlgorithm": "SHA256"}
            transfer = TransferConfig()
        with self._errors(blob.key):
            self._client.upload_file(
                str(path), self.bucket, self._object_key(blob.key), ExtraArgs=extra_args, Config=transfer
            )

    def open_writer(self, max_bytes: int | None = None) -> BlobWriter:
        return _S3BlobWriter(self, self.spool_dir / f"reelfarm-{uuid.uuid4().hex}.part", max_bytes)

    def _partials(self) -> tuple[Path, str]:
        return self.spool_dir, "reelfarm-*.part"

    def put_file(self, path: Path, *, move: bool = False) -> StoredBlob:
        sha, size = _hash_file(path)
        blob = StoredBlob(sha256=sha, size_bytes=size, key=blob_key(sha))
        self._upload(Path(path), blob)
        if move:
            Path(path).unlink()
        return blob

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except FileNotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        with self._errors(key):
            return int(self._client.head_object(Bucket=self.bucket, Key=self._object_key(key))["ContentLength"])

    def open_read(self, key: str) -> BinaryIO:
        with self._errors(key):
            response = self._client.get_object(Bucket=self.bucket, Key=self._object_key(key))
        return cast(BinaryIO, response["Body"])

    def local_file(self, key: str) -> Path | None:
        _check_key(key)
        return None

    def fetch_to_local(self, key: str, cache_dir: Path) -> Path:
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        size = self.size(key)
        dest = cache_dir / PurePosixPath(key).name
        if dest.is_file() and dest.stat().st_size == size:
            return dest
        # Unique temp + rename: concurrent fetchers never see (or leave) a partial file.
        temp = cache_dir / f".{dest.name}.{uuid.uuid4().hex}.part"
        try:
            with self._errors(key):
                self._client.download_file(self.bucket, self._object_key(key), str(temp))
            os.replace(temp, dest)
        finally:
            temp.unlink(missing_ok=True)
        return dest

    def delete(self, key: str) -> None:
        with self._errors(key):
            self._client.delete_object(Bucket=self.bucket, Key=self._object_key(key))

    def presigned_get_url(self, key: str, expires_seconds: int) -> str:
        with self._errors(key):
            return self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._object_key(key)},
                ExpiresIn=expires_seconds,
            )

    def presigned_put_url(self, key: str, *, sha256: str, size_bytes: int, content_type: str,
                          expires_seconds: int) -> str:
        """SigV4 query-signed PUT whose signature covers Content-Length, Content-Type and
        `x-amz-checksum-sha256` (a query parameter, so a plain `curl -X PUT -H 'Content-Type: ...'
        --data-binary @file` works): S3 refuses other sizes, types or bytes (BadDigest).
        Signed with botocore's own S3 query signer; generate_presigned_url would make the
        checksum a header every client must know to send."""
        from botocore.auth import S3SigV4QueryAuth
        from botocore.awsrequest import AWSRequest

        if size_bytes > SINGLE_PUT_MAX_BYTES:
            raise ValueError(f"a single presigned PUT is limited to {SINGLE_PUT_MAX_BYTES} bytes")
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
        url = (f"{self._client.meta.endpoint_url.rstrip('/')}/{self.bucket}/"
               f"{quote(self._object_key(key), safe='/~')}?"
               + urlencode({"x-amz-checksum-sha256": checksum, "x-amz-sdk-checksum-algorithm": "SHA256"}))  # fmt: skip
        request = AWSRequest(method="PUT", url=url,
                             headers={"Content-Type": content_type, "Content-Length": str(size_bytes)})  # fmt: skip
        credentials = self._session.get_credentials().get_frozen_credentials()
        S3SigV4QueryAuth(credentials, "s3", self._client.meta.region_name, expires=expires_seconds).add_auth(request)
        return request.url

    def read_head(self, key: str, length: int) -> bytes:
        with self._errors(key):
            response = self._client.get_object(Bucket=self.bucket, Key=self._object_key(key),
                                               Range=f"bytes=0-{max(0, length - 1)}")  # fmt: skip
            return response["Body"].read()

    def head(self, key: str) -> ObjectHead:
        with self._errors(key):
            head = self._client.head_object(Bucket=self.bucket, Key=self._object_key(key), ChecksumMode="ENABLED")
        checksum = head.get("ChecksumSHA256")
        whole = checksum and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT"  # not per-part
        return ObjectHead(size_bytes=int(head["ContentLength"]), sha256=base64.b64decode(checksum).hex() if whole else None,
                          content_type=head.get("ContentType"))  # fmt: skip

    def promote(self, staging_key: str, sha256: str) -> str:
        """Server-side copy (no bytes through here) unless the blob is already stored."""
        key = blob_key(sha256)
        if not self.exists(key):
            with self._errors(staging_key):
                self._client.copy({"Bucket": self.bucket, "Key": self._object_key(staging_key)}, self.bucket,
                                  self._object_key(key))  # fmt: skip
        self.delete(staging_key)
        return key


def storage_from_url(
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    spool_dir: Path | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
) -> Storage:
    """`file:///abs/path` -> LocalStorage; `s3://bucket[/prefix]` -> S3Storage."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise ValueError(f"invalid storage URL {url!r}: expected file:///absolute/path")
        return LocalStorage(Path(path))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"invalid storage URL {url!r}: expected s3://bucket[/prefix]")
        return S3Storage(
            parts.netloc, unquote(parts.path), endpoint_url=endpoint_url, region=region, spool_dir=spool_dir,
            access_key_id=access_key_id, secret_access_key=secret_access_key,
        )
    raise ValueError(
        f"unsupported storage URL {url!r}: expected file:///absolute/path or s3://bucket[/prefix]"
    )


def open_storage(settings: Settings, *, spool_dir: Path | None = None) -> Storage:
    """The settings' storage; uploads spool in `spool_dir` (default: the work dir's uploads/)."""
    return storage_from_url(
        settings.resolved_storage_url,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        spool_dir=spool_dir or settings.resolved_work_dir / "uploads",
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
    )
