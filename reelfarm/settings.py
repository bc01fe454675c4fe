"""One settings object for every ReelFarm process (env prefix REELFARM_, or a .env file).

A process reads its settings once, at its entry point (reelfarm/cli.py: `load_settings`),
and hands the object down; a render node actor gets the launcher's settings as a dict.
"""

from __future__ import annotations

import ipaddress
import json
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "dev-secret-change-me"}
# Well-known sample credentials of S3-compatible servers.
S3_PLACEHOLDER_SECRETS = {"minioadmin", "password", "secret_key", "some_secret_key"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REELFARM_", env_file=".env", extra="ignore")

    environment: Literal["dev", "test", "prod"] = "dev"
    data_dir: Path = Path("./reelfarm-data")
    # SQLAlchemy URL; default: SQLite file inside data_dir.
    database_url: str | None = None
    # "file://" + path (default: data_dir/storage) or "s3://bucket/prefix".
    storage_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    # S3 credentials; unset: boto3's default chain (AWS_* variables, ~/.aws, instance roles).
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    # Signs artifact URLs and other server-made tokens; refused when a placeholder in prod.
    secret_key: str = "dev-secret-change-me"
    # gRPC between the scheduler and the nodes. With a certificate and its key every gRPC server
    # serves TLS and every client connects with TLS, presenting that certificate; with a CA too,
    # clients verify servers against it and servers require client certificates it signed (mTLS).
    grpc_tls_cert: Path | None = None
    grpc_tls_key: Path | None = None
    grpc_tls_ca: Path | None = None
    # The name clients expect in the servers' certificates, when not the host they dial.
    grpc_tls_server_name: str | None = None

    # API
    # The API's address as its clients reach it, for URLs made outside a request
    # (`reelfarm mcp` over stdio); a request's own base URL wins where there is one.
    public_url: str = "http://127.0.0.1:8000"
    max_upload_bytes: int = 1 << 30
    # Content-addressed blobs (/api/v1/blobs): one presigned PUT each, so at most 5 GiB.
    max_blob_bytes: int = Field(default=5 << 30, ge=1, le=5 << 30)
    upload_chunk_bytes: int = 1 << 20
    # URL ingest, webhooks, campaign page captures and every other server-side fetch
    # (reelfarm/address_guard.py) refuse private, loopback, link-local, CGNAT and metadata
    # addresses; networks listed here (CIDR, as a JSON list or comma-separated:
    # "10.0.0.0/8,192.168.1.0/24") are allowed anyway.
    fetch_allow_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Background URL downloads running at once (threads of the API process).
    url_download_workers: int = Field(default=2, ge=1, le=64)
    # Pages that are not a media file (YouTube, TikTok...) go to yt-dlp; every request it makes
    # is address-checked like any other fetch (control_plane/url_imports/guarded_yt_dlp.py).
    allow_yt_dlp: bool = True

    # Plans, quotas, rate limits and webhooks (control_plane/billing, limits, webhooks)
    # A TOML file of `[plans.NAME]` tables that add plans or replace built-in ones.
    plans_file: Path | None = None
    # The plan a new account starts on.
    default_plan: str = "business"
    # Redis for the rate limiter (production; several API processes share its counts).
    # Unset: an in-process limiter. Set and unreachable: the API answers 503 (fails closed).
    redis_url: str | None = None
    # Seconds the limiter waits for Redis before the request is answered 503.
    redis_timeout_seconds: float = Field(default=0.3, gt=0, le=10)
    # Proxies (CIDR) whose X-Forwarded-For names the client; any other peer is the client.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Webhook deliveries: seconds a receiver has to answer, and the pause between tries.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    webhook_retry_delays_seconds: Annotated[list[float], NoDecode] = Field(default_factory=lambda: [30.0, 300.0])

    # Scheduler
    scheduler_address: str = "127.0.0.1:50051"
    node_timeout_seconds: float = 30.0
    max_attempts: int = 3
    retry_backoff_seconds: float = 2.0
    retry_backoff_max_seconds: float = 60.0
    poll_interval_seconds: float = 0.2
    progress_flush_seconds: float = 1.0
    # Prometheus /metrics over HTTP (scheduler/metrics.py), on the gRPC listen address's host; 0 = off.
    scheduler_metrics_port: int = Field(default=9464, ge=0, le=65535)

    # Render nodes
    # Ray cluster `reelfarm node` joins ("auto": the cluster this machine's `ray start` made;
    # "HOST:6379"; "ray://HOST:10001"). Unset: "auto".
    ray_address: str | None = None
    # What each node actor reserves on the Ray cluster: "auto" = one GPU where the cluster has
    # GPUs, else one `render_slot` where the cluster declares that resource, else one CPU.
    node_placement: Literal["auto", "gpu", "render_slot", "cpu"] = "auto"
    node_max_concurrent_tasks: int = 1
    # Prometheus /metrics over HTTP (render_nodes/metrics.py): node actor i of a launch serves on
    # this port + i, on the node's host; 0 = off.
    node_metrics_port: int = Field(default=9465, ge=0, le=65535)
    # gRPC port of node actor i of a launch: this port + i (a pod's probes and firewalls need a
    # known port; the Helm chart sets it); 0 = any free port.
    node_port: int = Field(default=0, ge=0, le=65535)
    node_host: str | None = None
    output_height: int | None = Field(default=None, ge=64, le=4320)
    x264_preset: str = "veryfast"
    encoder: Literal["auto", "nvenc", "x264"] = "auto"
    work_dir: Path | None = None
    # Reframing (render_nodes/reframe.py, render_nodes/faces/)
    face_detector: Literal["blazeface", "ultralytics", "none"] = "blazeface"
    # Weights for the ultralytics backend, or a replacement BlazeFace .tflite.
    face_model_path: Path | None = None
    two_faces: Literal["pad", "subject"] = "pad"
    analysis_sample_fps: float = Field(default=5.0, gt=0, le=30)
    # Decoded frames a render holds while their shot is planned (render_nodes/pipeline.py):
    # ~5 s of 1080p30 in 512 MiB; longer shots are planned in parts.
    render_frame_buffer_mb: int = Field(default=512, ge=32, le=16384)
    # Finding the moments (mode "ai"; render_nodes/speech/, analysis/selection.py)
    # "auto": faster-whisper with the shipped Whisper models (render_nodes/speech/
    # whisper_models.py) where they load, else pocketsphinx (English).
    transcriber: Literal["auto", "pocketsphinx", "faster-whisper"] = "auto"
    # An operator's faster-whisper (CTranslate2) model directory, used instead of the shipped
    # model of its kind (English-only or multilingual); never downloaded.
    whisper_model_dir: Path | None = None
    # The SHA-256 of that directory's model.bin, checked before it is loaded.
    whisper_model_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    # The model English speech gets: "base" (multilingual, more accurate) or "tiny.en"
    # (English-only, ~1.7x faster); other languages always get the multilingual one.
    whisper_english_model: Literal["base", "tiny.en"] = "base"
    # Seconds of source per transcribe task: chunks run in parallel on the nodes.
    transcribe_chunk_seconds: float = Field(default=120.0, ge=10.0, le=3600.0)
    # Optional OpenAI-compatible LLM that rescores candidate moments and writes titles.
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout_seconds: float = Field(default=20.0, gt=0, le=300)
    # Translating campaign scripts into languages other than the page's (analysis/campaigns/
    # translate.py); no offline translation model exists, so without one only the page's own
    # language is voiced. "auto": the LibreTranslate-compatible server at translate_url when set,
    # else the LLM above when set, else none.
    translator: Literal["auto", "libretranslate", "llm", "none"] = "auto"
    # A LibreTranslate-compatible server's root (POST {translate_url}/translate), and its key.
    translate_url: str | None = None
    translate_api_key: str | None = None
    translate_timeout_seconds: float = Field(default=30.0, gt=0, le=300)

    @field_validator("data_dir", "work_dir", "grpc_tls_cert", "grpc_tls_key", "grpc_tls_ca")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        # Absolute, so Ray workers (other working directories) see the same folders.
        return value.expanduser().resolve() if value is not None else None

    @field_validator("fetch_allow_networks", "trusted_proxies", "webhook_retry_delays_seconds", mode="before")
    @classmethod
    def _split_list(cls, value):
        if isinstance(value, str):
            value = json.loads(value) if value.strip().startswith("[") else [v for v in value.split(",") if v.strip()]
        return value

    @field_validator("llm_base_url", "translate_url", mode="before")
    @classmethod
    def _blank_url_is_unset(cls, value):
        # An empty or blank variable (REELFARM_TRANSLATE_URL= in a .env) means "not configured"
        # for every reader alike: the API's checks and the nodes' clients.
        if isinstance(value, str):
            value = value.strip()
        return value or None

    @field_validator("fetch_allow_networks", "trusted_proxies")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        networks = []
        for cidr in value:
            try:
                networks.append(str(ipaddress.ip_network(cidr.strip(), strict=False)))
            except ValueError:
                raise ValueError(f"{cidr!r} is not an IP network in CIDR form") from None
        return networks

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> "Settings":
        # "dev" and "test" (the test suite's) accept placeholders; "prod" does not.
        if self.environment == "prod":
            if self.secret_key.strip().lower() in PLACEHOLDER_SECRETS:
                raise ValueError("REELFARM_SECRET_KEY must be set to a real secret when REELFARM_ENVIRONMENT=prod")
            if self.s3_secret_access_key is not None and self.s3_secret_access_key.strip().lower() in (
                    PLACEHOLDER_SECRETS | S3_PLACEHOLDER_SECRETS):
                raise ValueError("REELFARM_S3_SECRET_ACCESS_KEY is a placeholder; set a real secret (prod)")
        return self

    @model_validator(mode="after")
    def _tls_pairs(self) -> Settings:
        if (self.grpc_tls_cert is None) != (self.grpc_tls_key is None):
            raise ValueError("REELFARM_GRPC_TLS_CERT and REELFARM_GRPC_TLS_KEY go together: set both or neither")
        if self.grpc_tls_ca is not None and self.grpc_tls_cert is None:
            raise ValueError("REELFARM_GRPC_TLS_CA needs REELFARM_GRPC_TLS_CERT and REELFARM_GRPC_TLS_KEY")
        if (self.s3_access_key_id is None) != (self.s3_secret_access_key is None):
            raise ValueError("REELFARM_S3_ACCESS_KEY_ID and REELFARM_S3_SECRET_ACCESS_KEY go together")
        return self

    @property
    def grpc_tls(self) -> bool:
        return self.grpc_tls_cert is not None

    @cached_property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'reelfarm.db').resolve()}"

    @cached_property
    def resolved_storage_url(self) -> str:
        return self.storage_url or f"file://{(self.data_dir / 'storage').resolve()}"

    @cached_property
    def resolved_work_dir(self) -> Path:
        return (self.work_dir or self.data_dir / "work").resolve()

    @property
    def heartbeat_interval_seconds(self) -> float:
        return max(0.2, self.node_timeout_seconds / 4)


def load_settings(**overrides) -> Settings:
    """This process's settings: the REELFARM_* environment (and .env), then `overrides`
    that are not None (a command's flags)."""
    return Settings(**{name: value for name, value in overrides.items() if value is not None})
