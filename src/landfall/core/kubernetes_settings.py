"""How a training trial runs as a Kubernetes pod (`compute:` in config/landfall.yaml), validated."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from landfall.core.sections import Section

_K8S_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_K8S_QUANTITY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")


def _k8s_name(value: str) -> str:
    if not _K8S_NAME_RE.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes name (lower-case letters, digits, '-', '.')")
    return value


# A Kubernetes object name (namespace, service account, Secret), checked where the settings load.
K8sName = Annotated[str, AfterValidator(_k8s_name)]


class PodResources(Section):
    """CPU and memory of a training pod, as Kubernetes quantities (`cpu: "4"`, `memory: 16Gi`)."""

    cpu: str = "2"
    memory: str = "8Gi"

    @field_validator("cpu", "memory")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if not _K8S_QUANTITY_RE.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes quantity such as 500m, 2, 8Gi")
        return value


class Toleration(Section):
    key: str
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = "NoSchedule"


class PodVolume(Section):
    """A PersistentVolumeClaim mounted into the pod (shared data, checkpoints)."""

    name: str
    claim_name: str
    mount_path: str
    read_only: bool = False

    @field_validator("name", "claim_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _k8s_name(value)

    @field_validator("mount_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or ".." in value.split("/"):
            raise ValueError(f"{value!r} must be an absolute path without '..'")
        return value


class SecretEnv(Section):
    """One key of a Kubernetes Secret exposed to the pod as an environment variable."""

    env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")
    secret: str
    key: str

    @field_validator("secret")
    @classmethod
    def _name(cls, value: str) -> str:
        return _k8s_name(value)


class KubernetesSettings(Section):
    """How a training trial runs as a pod. Only read when `compute.profile` is `kubernetes`."""

    namespace: K8sName = "landfall"
    image: str = "ghcr.io/landfall/trainer:0.1.0"
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: list[K8sName] = []
    service_account: K8sName | None = None
    kubernetes_conn_id: str = "kubernetes_default"
    cmds: list[str] = ["python", "-m", "landfall.pipeline.training"]
    gpus: int = Field(1, ge=0, le=16)
    gpu_resource: str = "nvidia.com/gpu"
    requests: PodResources = PodResources()
    limits: PodResources = PodResources(cpu="4", memory="16Gi")
    node_selector: dict[str, str] = {}
    gpu_type_label: str = "nvidia.com/gpu.product"
    gpu_types: list[str] = []
    tolerations: list[Toleration] = []
    volumes: list[PodVolume] = []
    env: dict[str, str] = {}
    secrets: list[SecretEnv] = []
    startup_timeout_s: int = Field(600, ge=10, le=24 * 3600)
    labels: dict[str, str] = {"app.kubernetes.io/part-of": "landfall"}

    @field_validator("cmds")
    @classmethod
    def _not_empty(cls, values: list[str]) -> list[str]:
        if not values:
            raise ValueError(
                "cmds must name the trainer command, e.g. [python, -m, landfall.pipeline.training]"
            )
        return values


class ComputeSettings(Section):
    profile: Literal["local", "kubernetes"] = "local"
    kubernetes: KubernetesSettings = KubernetesSettings()
