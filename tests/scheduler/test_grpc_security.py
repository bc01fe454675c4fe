"""Scheduler <-> node gRPC over mutual TLS (reelfarm/grpc_security.py), with a CA made here.

A scheduler and a node configured with REELFARM_GRPC_TLS_CERT/_KEY/_CA register and talk to each
other both ways; clients without a certificate, with one from another CA, or in plaintext are
refused by both servers; grpc.health.v1 says SERVING, then NOT_SERVING once draining/stopping.
"""

from __future__ import annotations

import datetime
import ipaddress
import time
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from reelfarm import nodes
from reelfarm.grpc_security import open_channel
from reelfarm.migrate import open_database
from reelfarm.settings import Settings
from reelfarm.v1 import render_node_pb2, render_node_pb2_grpc
from render_nodes.node import NodeCore
from render_nodes.scheduler_link import SchedulerLink
from render_nodes.servicer import serve_node
from scheduler.server import SchedulerServer

CAPABILITIES = {"gpus": [], "encoders": ["libx264"], "detector_backends": [], "max_concurrent_tasks": 1,
                "hwaccels": [], "transcribers": []}


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


def make_ca(common_name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))  # fmt: skip
    return key, cert


def make_leaf(ca, common_name: str, folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost, good for serving and for client auth; (cert, key) files."""
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))  # fmt: skip
    cert_path, key_path = folder / f"{common_name}.crt", folder / f"{common_name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_pem_key(key))
    return cert_path, key_path


def _write_ca(ca, path: Path) -> Path:
    path.write_bytes(ca[1].public_bytes(serialization.Encoding.PEM))
    return path


def _health(channel: grpc.Channel, timeout: float = 5.0) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout).status


@pytest.fixture
def pki(tmp_path):
    ca, rogue = make_ca("reelfarm-test-ca"), make_ca("rogue-ca")
    return {
        "ca": _write_ca(ca, tmp_path / "ca.pem"),
        "scheduler": make_leaf(ca, "scheduler", tmp_path),
        "node": make_leaf(ca, "node", tmp_path),
        "rogue": make_leaf(rogue, "rogue", tmp_path),
    }


def _tls_settings(tmp_path: Path, pki: dict, who: str) -> Settings:
    cert, key = pki[who]
    return Settings(_env_file=None, environment="test", data_dir=tmp_path / "data", node_timeout_seconds=5.0,
                    grpc_tls_cert=cert, grpc_tls_key=key, grpc_tls_ca=pki["ca"], scheduler_metrics_port=0)


def _refused(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    channel = grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address)
    with channel, pytest.raises(grpc.RpcError) as refused:
        _health(channel, timeout=3.0)
    return refused.value.code()


def test_scheduler_and_node_talk_over_mtls_and_refuse_clients_without_a_good_certificate(tmp_path, pki):
    scheduler_settings = _tls_settings(tmp_path, pki, "scheduler")
    node_settings = _tls_settings(tmp_path, pki, "node")
    assert scheduler_settings.grpc_tls and node_settings.grpc_tls
    _, session_factory = open_database(scheduler_settings)
    server = SchedulerServer(scheduler_settings, listen="127.0.0.1:0", session_factory=session_factory).start()
    core = NodeCore("tls-node", link=SchedulerLink(server.address, node_settings), capabilities=CAPABILITIES,
                    executor=lambda **_: None)
    node_server, node_address = serve_node(core, "127.0.0.1", settings=node_settings)
    core.start(node_address)
    try:
        # node -> scheduler: the node registers (the scheduler publishes it as live).
        deadline = time.monotonic() + 20
        while True:
            with session_factory() as session:
                if nodes.live_node_count(session, 5.0) == 1:
                    break
            assert time.monotonic() < deadline, "the node did not register over mTLS"
            time.sleep(0.05)
        assert set(server.core.nodes) == {"tls-node"}

        # scheduler -> node: its client reaches the node's RenderNodeService over mTLS.
        server.node_client.cancel_task(node_address, "no-such-task")  # raises RpcError if refused
        for address in (server.address, node_address):
            with open_channel(address, node_settings) as channel:
                assert _health(channel) == health_pb2.HealthCheckResponse.SERVING

        ca = pki["ca"].read_bytes()
        rogue_cert, rogue_key = pki["rogue"]
        for address in (server.address, node_address):
            # TLS that verifies the server but presents no client certificate: refused (mTLS).
            assert _refused(address, grpc.ssl_channel_credentials(root_certificates=ca)) == grpc.StatusCode.UNAVAILABLE
            # A client certificate signed by another CA: refused.
            rogue = grpc.ssl_channel_credentials(root_certificates=ca, private_key=rogue_key.read_bytes(),
                                                 certificate_chain=rogue_cert.read_bytes())  # fmt: skip
            assert _refused(address, rogue) == grpc.StatusCode.UNAVAILABLE
            # Plaintext: refused.
            assert _refused(address, None) == grpc.StatusCode.UNAVAILABLE

        # A draining node is not ready: grpc.health.v1 says NOT_SERVING.
        with open_channel(node_address, scheduler_settings) as channel:
            render_node_pb2_grpc.RenderNodeServiceStub(channel).Drain(render_node_pb2.DrainRequest(), timeout=5)
            assert _health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        core.stop()
        node_server.stop(0).wait()
        server.stop(grace=0)
    # A stopping scheduler turned NOT_SERVING before its server went away.
    assert server.health.Check(health_pb2.HealthCheckRequest(service=""), None).status == (
        health_pb2.HealthCheckResponse.NOT_SERVING)


def test_tls_settings_come_in_pairs():
    with pytest.raises(ValueError, match="GRPC_TLS_CERT and REELFARM_GRPC_TLS_KEY go together"):
        Settings(_env_file=None, grpc_tls_cert="/etc/reelfarm/tls.crt")
    with pytest.raises(ValueError, match="GRPC_TLS_CA needs"):
        Settings(_env_file=None, grpc_tls_ca="/etc/reelfarm/ca.pem")
    assert Settings(_env_file=None).grpc_tls is False
