"""SeaweedFS serves data on its S3 port only, with the generated keys: its filer and volume HTTP ports
refuse anonymous reads and writes (JWT), and its gRPC ports refuse clients without the stack's
certificate (mutual TLS). Before this, anonymous GET/PUT/DELETE on the filer port worked."""

from __future__ import annotations

import socket
import uuid

import pytest
import requests


@pytest.fixture
def stored(s3, settings):
    bucket, key = settings.storage.datasets_bucket, f"lockdown-{uuid.uuid4().hex[:8]}/secret.txt"
    s3.put_object(Bucket=bucket, Key=key, Body=b"only through S3")
    yield bucket, key
    s3.delete_object(Bucket=bucket, Key=key)


def test_the_filer_port_refuses_anonymous_reads_writes_deletes_and_listings(s3_server, stored):
    bucket, key = stored
    filer = f"http://{s3_server.ctx.host}:{s3_server.ctx.ports.seaweed_filer}"
    attempts = [
        requests.get(f"{filer}/buckets/{bucket}/{key}", timeout=5),
        requests.put(f"{filer}/buckets/{bucket}/{key}", data=b"overwritten", timeout=5),
        requests.delete(f"{filer}/buckets/{bucket}/{key}", timeout=5),
        requests.get(f"{filer}/buckets/{bucket}/", headers={"Accept": "application/json"}, timeout=5),
    ]
    assert [r.status_code for r in attempts] == [401, 401, 401, 401], [r.text[:80] for r in attempts]
    assert s3_server.s3_client().get_object(Bucket=bucket, Key=key)["Body"].read() == b"only through S3"


def test_the_volume_port_refuses_anonymous_writes_and_reads(s3_server, stored):
    ctx = s3_server.ctx
    assignment = requests.get(f"http://{ctx.host}:{ctx.ports.seaweed_master}/dir/assign", timeout=5).json()
    assert "auth" not in assignment  # the master hands out no write token over plain HTTP
    volume = f"http://{assignment['url']}/{assignment['fid']}"
    assert requests.post(volume, files={"file": ("x", b"planted")}, timeout=5).status_code == 401
    assert requests.get(volume, timeout=5).status_code == 401


@pytest.mark.parametrize("port_name", ["seaweed_master", "seaweed_volume", "seaweed_filer", "s3"])
def test_grpc_ports_refuse_plaintext_clients(s3_server, port_name):
    """gRPC listens on each port + 10000; a client without the stack's certificate gets no HTTP/2 answer."""
    port = getattr(s3_server.ctx.ports, port_name) + 10_000
    with socket.create_connection((s3_server.ctx.host, port), timeout=5) as connection:
        connection.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        connection.settimeout(5)
        try:
            answer = connection.recv(100)
        except (TimeoutError, ConnectionResetError):
            answer = b""
    assert answer == b"" or answer.startswith(b"\x15"), answer  # closed, or a TLS alert
