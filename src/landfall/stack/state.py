"""The stack's state folder (git-ignored): generated secrets, rendered config, data, logs and PID records."""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.fernet import Fernet

from landfall.settings import Settings


@dataclass(frozen=True)
class StackSecrets:
    fernet_key: str
    jwt_secret: str
    s3_access_key: str
    s3_secret_key: str
    admin_password: str


def _token(length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _write_private(path: Path, text: str) -> None:
    """Create the file with mode 0600 from the start (no window where it is world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


class StackState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root: Path = settings.stack.state_path
        self.airflow_home = self.root / "airflow"
        self.logs = self.root / "logs"
        self.pids = self.root / "pids"
        self.s3_data = self.root / "s3"
        self.mlflow_home = self.root / "mlflow"
        self.secrets_file = self.root / "secrets.json"

    def ensure(self) -> None:
        for folder in (self.root, self.airflow_home, self.logs, self.pids, self.s3_data, self.mlflow_home):
            folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    def secrets(self) -> StackSecrets:
        """Load the generated secrets, creating them (0600) on first use."""
        if self.secrets_file.exists():
            return StackSecrets(**json.loads(self.secrets_file.read_text()))
        self.ensure()
        generated = StackSecrets(
            fernet_key=Fernet.generate_key().decode(),
            jwt_secret=_token(48),
            s3_access_key="LF" + _token(18, string.ascii_uppercase + string.digits),
            s3_secret_key=_token(40),
            admin_password=_token(20),
        )
        _write_private(self.secrets_file, json.dumps(asdict(generated), indent=2))
        return generated

    def write_private(self, path: Path, text: str) -> Path:
        self.ensure()
        _write_private(path, text)
        return path
