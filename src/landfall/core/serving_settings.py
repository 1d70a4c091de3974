"""The scoring service (`serving:` in config/landfall.yaml): how it follows the champion, where deploy
finds it, and its Deployment in the kubernetes profile."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from landfall.core.kubernetes_settings import K8sName, PodResources, SecretEnv
from landfall.core.sections import Section


class ServingKubernetesSettings(Section):
    """The service's Deployment and Service (`landfall render-serving --out DIR` shows them)."""

    namespace: K8sName = "ml-serving"
    image: str = "ghcr.io/landfall/serving:0.1.0"
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: list[K8sName] = []
    service_account: K8sName | None = None
    replicas: int = Field(2, ge=1, le=100)
    port: int = Field(8000, ge=1024, le=65535)
    requests: PodResources = PodResources(cpu="500m", memory="1Gi")
    limits: PodResources = PodResources(cpu="2", memory="2Gi")
    env: dict[str, str] = {}
    secrets: list[SecretEnv] = []


class ServingSettings(Section):
    # Where deploy, `landfall rollback` and the canary reach the service. None: the embedded stack's
    # (http://<stack.host>:<stack.ports.serving>). In a cluster: the Service's in-cluster URL.
    url: str | None = None
    # How often the service checks the `champion` alias; deploy also tells it at once after a move.
    poll_interval_s: float = Field(1.0, gt=0, le=3600)
    # How long deploy waits for the service to answer with the promoted version before it alerts.
    activate_timeout_s: float = Field(60.0, gt=0, le=3600)
    # Every answered row of predict and invocations is kept (request id, time, version, the row, its
    # answer) as parquet under each pipeline's storage.predictions_prefix, written in the background when
    # log_flush_rows rows wait or log_flush_seconds passed, whichever first. A graceful stop writes what
    # waits; a killed service loses at most what had not been written yet.
    log_predictions: bool = True
    log_flush_rows: int = Field(1000, ge=1, le=1_000_000)
    log_flush_seconds: float = Field(10.0, gt=0, le=3600)
    # Rows held while S3 refuses them (retried at each flush); beyond this the oldest are dropped and
    # counted as lost (GET /v1/models shows the counts).
    log_max_pending_rows: int = Field(100_000, ge=1)
    kubernetes: ServingKubernetesSettings = ServingKubernetesSettings()

    @model_validator(mode="after")
    def _a_batch_fits_in_what_is_kept(self) -> ServingSettings:
        if self.log_flush_rows > self.log_max_pending_rows:
            raise ValueError(
                f"serving.log_flush_rows ({self.log_flush_rows}) must not exceed "
                f"serving.log_max_pending_rows ({self.log_max_pending_rows}): rows beyond what is kept "
                "would be dropped before a batch is full"
            )
        return self

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must be an http(s) URL")
        return value.rstrip("/") if value else value
