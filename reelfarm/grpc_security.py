"""gRPC between the scheduler and the render nodes: plaintext, TLS or mutual TLS, by settings.

    REELFARM_GRPC_TLS_CERT + REELFARM_GRPC_TLS_KEY   servers serve TLS; clients connect with TLS and
                                                     present this certificate
    + REELFARM_GRPC_TLS_CA                           clients verify servers against this CA, and
                                                     servers require client certificates it signed (mTLS)

Every process of one deployment uses the same three settings, so one certificate with both
serverAuth and clientAuth usage (or none) per process does for both directions.
"""

from __future__ import annotations

import grpc

from reelfarm.settings import Settings


def _read(path) -> bytes | None:
    return path.read_bytes() if path is not None else None


def add_port(server: grpc.Server, address: str, settings: Settings | None) -> int:
    """Bind `address` on `server`, with TLS when the settings have a certificate; returns the port
    (0 when it could not be bound, as grpc does)."""
    if settings is None or not settings.grpc_tls:
        return server.add_insecure_port(address)
    ca = _read(settings.grpc_tls_ca)
    credentials = grpc.ssl_server_credentials(
        [(_read(settings.grpc_tls_key), _read(settings.grpc_tls_cert))],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )
    return server.add_secure_port(address, credentials)


def channel_credentials(settings: Settings) -> grpc.ChannelCredentials:
    """TLS credentials of a client: verifies with the CA (else the system's roots), presents the
    process's certificate."""
    return grpc.ssl_channel_credentials(
        root_certificates=_read(settings.grpc_tls_ca),
        private_key=_read(settings.grpc_tls_key),
        certificate_chain=_read(settings.grpc_tls_cert),
    )


def open_channel(address: str, settings: Settings | None, options: list | None = None) -> grpc.Channel:
    """A channel to another ReelFarm process: TLS when the settings have a certificate."""
    options = list(options or [])
    if settings is None or not settings.grpc_tls:
        return grpc.insecure_channel(address, options=options)
    if settings.grpc_tls_server_name:
        options.append(("grpc.ssl_target_name_override", settings.grpc_tls_server_name))
    return grpc.secure_channel(address, channel_credentials(settings), options=options)
