"""The stack's state folder (git-ignored, mode 0700): generated secrets, rendered config, data and logs.

Secrets are generated on first use into `secrets.json` (0600); a secret added by a newer Landfall is
generated and added to an older file, so an existing stack keeps its keys.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass, fields
from pathlib import Path

from cryptography.fernet import Fernet

from landfall.core.settings import Settings


def _token(length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass(frozen=True)
class StackSecrets:
    fernet_key: str
    jwt_secret: str
    s3_access_key: str
    s3_secret_key: str
    admin_password: str
    event_signing_key: str  # the watcher signs landing events with it; ingest checks
    mlflow_flask_secret: str  # MLflow's auth app signs its CSRF tokens with it
    seaweed_volume_write_key: str  # SeaweedFS JWT keys: its volume and filer ports refuse anonymous access
    seaweed_volume_read_key: str
    seaweed_filer_write_key: str
    seaweed_filer_read_key: str
    serving_token: str  # the scoring service's bearer token
    # The stack's own accounts on the services it shares (landfall.ops.stack.accounts): RabbitMQ's user,
    # the PostgreSQL role owning the scale-out databases, the Redis ACL user of Celery.
    rabbitmq_password: str
    postgres_password: str
    redis_password: str

    @classmethod
    def generate(cls) -> dict[str, str]:
        return {
            "fernet_key": Fernet.generate_key().decode(),
            "jwt_secret": _token(48),
            "s3_access_key": "LF" + _token(18, string.ascii_uppercase + string.digits),
            "s3_secret_key": _token(40),
            "admin_password": _token(20),
            "event_signing_key": _token(48),
            "mlflow_flask_secret": _token(48),
            "seaweed_volume_write_key": _token(40),
            "seaweed_volume_read_key": _token(40),
            "seaweed_filer_write_key": _token(40),
            "seaweed_filer_read_key": _token(40),
            "serving_token": _token(40),
            "rabbitmq_password": _token(32),
            "postgres_password": _token(32),
            "redis_password": _token(32),
        }


def write_private(path: Path, text: str | bytes) -> Path:
    """Create the file with mode 0600 from the start (no window where it is world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(text.encode() if isinstance(text, str) else text)
    os.chmod(path, 0o600)
    return path


class StackState:
    def __init__(self, settings: Settings) -> None:
        self.root: Path = settings.stack.state_path
        self.airflow_home = self.root / "airflow"
        self.logs = self.root / "logs"
        self.s3_data = self.root / "s3"
        self.seaweed = self.root / "seaweed"  # security.toml, gRPC certificates, unix sockets
        self.mlflow_home = self.root / "mlflow"
        self.supervisor = self.root / "supervisor"
        self.secrets_file = self.root / "secrets.json"
        self.lock_file = self.root / "launcher.lock"

    def ensure(self) -> None:
        for folder in (
            self.root,
            self.airflow_home,
            self.logs,
            self.s3_data,
            self.seaweed,
            self.mlflow_home,
            self.supervisor,
        ):
            folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    def secrets(self) -> StackSecrets:
        """Load the generated secrets, creating (0600) the file or any secret it lacks on first use."""
        stored = json.loads(self.secrets_file.read_text()) if self.secrets_file.exists() else {}
        names = {field.name for field in fields(StackSecrets)}
        if not names <= stored.keys():
            self.ensure()
            stored = {**StackSecrets.generate(), **{k: v for k, v in stored.items() if k in names}}
            write_private(self.secrets_file, json.dumps(stored, indent=2))
        return StackSecrets(**{name: stored[name] for name in names})

    def write_private(self, path: Path, text: str | bytes) -> Path:
        self.ensure()
        return write_private(path, text)
