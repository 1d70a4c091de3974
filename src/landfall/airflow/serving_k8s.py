"""The scoring service on Kubernetes (compute.profile: kubernetes): its Deployment and Service, rendered
from config, and the patch deploy applies when a new champion is promoted.

The service follows the `champion` alias by itself; the patch records the promoted version in the pod
template, so the Deployment rolls its pods (new pods load the new champion at start) and
`kubectl rollout history` shows each promotion.
"""

from __future__ import annotations

from typing import Any

from landfall.core.settings import Settings

APP_LABEL = "landfall-serving"


def version_annotation(pipeline: str) -> str:
    """Each pipeline's own key: one service serves every champion, and a promotion of one pipeline must
    not overwrite another's record in the pod template (or in `kubectl rollout history`)."""
    return f"landfall.io/{pipeline.replace('_', '-')}.champion-version"


def run_annotation(pipeline: str) -> str:
    return f"landfall.io/{pipeline.replace('_', '-')}.champion-run-id"


def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": APP_LABEL, "app.kubernetes.io/part-of": "landfall"}


def deployment_manifest(settings: Settings) -> dict[str, Any]:
    serving = settings.serving.kubernetes
    env = [{"name": name, "value": value} for name, value in sorted(serving.env.items())]
    env += [
        {
            "name": ref.env,
            "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key, "optional": False}},
        }
        for ref in serving.secrets
    ]
    container: dict[str, Any] = {
        "name": "serving",
        "image": serving.image,
        "imagePullPolicy": serving.image_pull_policy,
        "command": ["python", "-m", "landfall.serving"],
        "ports": [{"name": "http", "containerPort": serving.port}],
        "env": [
            {"name": "LANDFALL_STACK__HOST", "value": "0.0.0.0"},
            {"name": "LANDFALL_STACK__PORTS__SERVING", "value": str(serving.port)},
            *env,
        ],
        "resources": {
            "requests": {"cpu": serving.requests.cpu, "memory": serving.requests.memory},
            "limits": {"cpu": serving.limits.cpu, "memory": serving.limits.memory},
        },
        # Ready only once the champion is loaded: a rolling update sends no request to a pod still
        # downloading the model (with maxUnavailable 0 the old pod serves until then).
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 20},
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
    }
    pod_spec: dict[str, Any] = {"containers": [container]}
    if serving.service_account:
        pod_spec["serviceAccountName"] = serving.service_account
    if serving.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": name} for name in serving.image_pull_secrets]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP_LABEL, "namespace": serving.namespace, "labels": _labels()},
        "spec": {
            "replicas": serving.replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": APP_LABEL}},
            # A new champion rolls in without dropping requests: a new pod is ready before an old one goes.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": _labels(), "annotations": {}}, "spec": pod_spec},
        },
    }


def service_manifest(settings: Settings) -> dict[str, Any]:
    serving = settings.serving.kubernetes
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": APP_LABEL, "namespace": serving.namespace, "labels": _labels()},
        "spec": {
            "selector": {"app.kubernetes.io/name": APP_LABEL},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def activation_patch(pipeline: str, version: str, run_id: str) -> dict[str, Any]:
    """The strategic-merge patch that records a pipeline's promoted champion in the pod template (and so
    rolls it); the other pipelines' annotations are left as they are (a merge, not a replacement)."""
    annotations = {version_annotation(pipeline): version, run_annotation(pipeline): run_id}
    return {"spec": {"template": {"metadata": {"annotations": annotations}}}}


def patch_deployment(settings: Settings, version: str, run_id: str) -> dict[str, Any]:
    """Apply the activation patch through the cncf-kubernetes provider's hook (in-cluster credentials)."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes import client

    serving = settings.serving.kubernetes
    hook = KubernetesHook(conn_id=settings.compute.kubernetes.kubernetes_conn_id)
    apps = client.AppsV1Api(hook.get_conn())
    body = activation_patch(settings.pipeline, version, run_id)
    apps.patch_namespaced_deployment(APP_LABEL, serving.namespace, body)
    return body
