"""Where a training trial runs: one trainer CLI contract, two backends chosen by `compute.profile`.

- `local`: the trainer CLI runs inside the Airflow worker (laptop, CI).
- `kubernetes`: a `KubernetesPodOperator` runs the trainer image with the same CLI arguments; the pod
  writes the same result JSON to /airflow/xcom/return.json, which the provider's sidecar pushes to XCom.

`trial_arguments()` builds the argv once for both, so the two backends cannot drift apart. The pod is
described with `kubernetes.client.models` objects only (no provider convenience classes), built from
`compute.kubernetes` in config/landfall.yaml.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from landfall.core.kubernetes_settings import KubernetesSettings
from landfall.core.settings import Settings, get_project

if TYPE_CHECKING:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

XCOM_RETURN_PATH = "/airflow/xcom/return.json"
"""Where KubernetesPodOperator's sidecar reads a pod's return value (do_xcom_push=True)."""

TRIAL_TASK_ID = "train_trial"


def trial_arguments(
    dataset: dict[str, Any],
    trials: list[dict[str, Any]],
    airflow_run_id: str,
    settings: Settings,
) -> list[list[str]]:
    """One trainer argv per trial: everything the trainer needs travels in its arguments, so a pod built
    from an older config cannot train with different settings than the DAG asked for."""
    training = settings.training
    argvs = []
    for trial in trials:
        argv = [
            *_repeated("--train", dataset.get("train_uris") or [dataset["train_uri"]]),
            *_repeated("--validation", dataset.get("validation_uris") or [dataset["validation_uri"]]),
            "--train-every", str(dataset.get("train_every", 1)),
            "--validation-every", str(dataset.get("validation_every", 1)),
            "--window", ",".join(dataset.get("window_partitions") or [str(dataset["partition"])]),
            "--partition", str(dataset["partition"]),
            "--params", json.dumps(trial, sort_keys=True),
            "--trainer", training.trainer,
            "--task", training.task,
            "--label", settings.landing.label,
            "--max-epochs", str(training.max_epochs),
            "--experiment", settings.mlflow.experiment,
            "--tag", f"landfall.airflow_run_id={airflow_run_id}",
            "--tag", f"landfall.features={dataset.get('features_by') or 'schema'}",
        ]  # fmt: skip
        if dataset.get("missing_hours"):  # a day rolled up at its deadline without all its hours
            hours = ",".join(str(hour)[-2:] for hour in dataset["missing_hours"])
            argv += ["--tag", f"landfall.missing_hours={hours}"]
        if dataset.get("missing_partitions"):
            argv += ["--tag", f"landfall.window_missing={','.join(dataset['missing_partitions'])}"]
        argv += _repeated("--trusted-type", training.trusted_types)
        if settings.compute.profile == "kubernetes":
            argv += ["--out", XCOM_RETURN_PATH]
            if settings.code_path and not training.builtin:
                # As written: the pod resolves it against the image's config file (the image copies the
                # config folder and the code beside it); unset, the image's $LANDFALL_CODE_ROOT.
                argv += ["--code-path", settings.code_path]
        elif not training.builtin:
            argv += ["--code-path", str(settings.code_root)]
        argvs.append(argv)
    return argvs


def _repeated(flag: str, values: list[str]) -> list[str]:
    return [item for value in values for item in (flag, str(value))]


def trial_name(argv: list[str]) -> str:
    """The readable trial name inside an argv (for the mapped task's label in the UI)."""
    return str(json.loads(argv[argv.index("--params") + 1]).get("trial", "trial"))


def run_trainer_locally(argv: list[str]) -> dict[str, Any]:
    """The local backend: the trainer's entry function with the pod's argv, in this task's own process
    (the task process already isolates it; a second interpreter would pay every import again)."""
    from airflow.sdk.exceptions import AirflowFailException

    from landfall.pipeline.training.models import ModelNotSavable
    from landfall.pipeline.training.trainer import parse_arguments, run
    from landfall.pipeline.user_code import UserCodeError

    try:
        return run(parse_arguments(argv))
    except (UserCodeError, ModelNotSavable) as error:
        # The pipeline's own code or model: the same trial would fail the same way, so no retry. The
        # message holds the user's traceback; the search goes on with the other trials.
        raise AirflowFailException(str(error)) from error


# ---- the kubernetes backend ---------------------------------------------------------------------------


def pod_resources(k8s_settings: KubernetesSettings) -> Any:
    """Requests and limits; the GPU count is the same in both (Kubernetes requires it for extended
    resources, and it keeps the scheduler from over-packing GPU nodes)."""
    from kubernetes.client import models as k8s

    requests = {"cpu": k8s_settings.requests.cpu, "memory": k8s_settings.requests.memory}
    limits = {"cpu": k8s_settings.limits.cpu, "memory": k8s_settings.limits.memory}
    if k8s_settings.gpus:
        requests[k8s_settings.gpu_resource] = limits[k8s_settings.gpu_resource] = str(k8s_settings.gpus)
    return k8s.V1ResourceRequirements(requests=requests, limits=limits)


def pod_affinity(k8s_settings: KubernetesSettings) -> Any:
    """Required node affinity on the GPU type label (e.g. gpu-type In [a100, h100]), or None."""
    from kubernetes.client import models as k8s

    if not k8s_settings.gpu_types:
        return None
    term = k8s.V1NodeSelectorTerm(
        match_expressions=[
            k8s.V1NodeSelectorRequirement(
                key=k8s_settings.gpu_type_label, operator="In", values=list(k8s_settings.gpu_types)
            )
        ]
    )
    return k8s.V1Affinity(
        node_affinity=k8s.V1NodeAffinity(
            required_during_scheduling_ignored_during_execution=k8s.V1NodeSelector(node_selector_terms=[term])
        )
    )


def pod_env(k8s_settings: KubernetesSettings) -> list[Any]:
    """Plain variables from config, then each Secret key as a `secretKeyRef` (values never in the spec)."""
    from kubernetes.client import models as k8s

    env = [k8s.V1EnvVar(name=name, value=value) for name, value in sorted(k8s_settings.env.items())]
    for ref in k8s_settings.secrets:
        env.append(
            k8s.V1EnvVar(
                name=ref.env,
                value_from=k8s.V1EnvVarSource(
                    secret_key_ref=k8s.V1SecretKeySelector(name=ref.secret, key=ref.key, optional=False)
                ),
            )
        )
    return env


def pod_volumes(k8s_settings: KubernetesSettings) -> tuple[list[Any], list[Any]]:
    from kubernetes.client import models as k8s

    volumes = [
        k8s.V1Volume(
            name=volume.name,
            persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                claim_name=volume.claim_name, read_only=volume.read_only
            ),
        )
        for volume in k8s_settings.volumes
    ]
    mounts = [
        k8s.V1VolumeMount(name=volume.name, mount_path=volume.mount_path, read_only=volume.read_only)
        for volume in k8s_settings.volumes
    ]
    return volumes, mounts


def trial_pod_arguments(settings: Settings | None = None) -> dict[str, Any]:
    """Every KubernetesPodOperator argument of a training trial except `arguments` (mapped per trial)."""
    from kubernetes.client import models as k8s

    k8s_settings = (settings.compute if settings else get_project(strict=False).compute).kubernetes
    volumes, mounts = pod_volumes(k8s_settings)
    return {
        "kubernetes_conn_id": k8s_settings.kubernetes_conn_id,
        "namespace": k8s_settings.namespace,
        "image": k8s_settings.image,
        "image_pull_policy": k8s_settings.image_pull_policy,
        "image_pull_secrets": [
            k8s.V1LocalObjectReference(name=name) for name in k8s_settings.image_pull_secrets
        ],
        "service_account_name": k8s_settings.service_account,
        "name": "landfall-trial",
        "labels": dict(k8s_settings.labels),
        "cmds": list(k8s_settings.cmds),
        "container_resources": pod_resources(k8s_settings),
        "node_selector": dict(k8s_settings.node_selector) or None,
        "affinity": pod_affinity(k8s_settings),
        "tolerations": [
            k8s.V1Toleration(key=t.key, operator=t.operator, value=t.value, effect=t.effect)
            for t in k8s_settings.tolerations
        ],
        "volumes": volumes,
        "volume_mounts": mounts,
        "env_vars": pod_env(k8s_settings),
        "startup_timeout_seconds": k8s_settings.startup_timeout_s,
        # The worker slot is freed while the pod runs: the triggerer watches it.
        "deferrable": True,
        "get_logs": True,
        "on_finish_action": "delete_pod",
        "do_xcom_push": True,
    }


def kubernetes_trial_operator(**task_kwargs: Any) -> Any:
    """`KubernetesPodOperator.partial(...)` for the trials; `.expand(arguments=...)` maps it."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    return KubernetesPodOperator.partial(task_id=TRIAL_TASK_ID, **trial_pod_arguments(), **task_kwargs)


def build_pod(operator: KubernetesPodOperator) -> Any:
    """The V1Pod the provider would submit, built by its own code with no cluster (dry run)."""
    return operator.build_pod_request_obj(dry_run=True)
