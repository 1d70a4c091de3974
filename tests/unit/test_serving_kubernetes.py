"""The kubernetes profile of the scoring service, without a cluster: its Deployment and Service rendered
from config pass the Kubernetes schema, agree with the namespace file, and the activation patch that
deploy sends is a valid change of that Deployment, sent through the provider's hook."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from landfall.airflow import serving_k8s
from landfall.core.paths import REPO_ROOT
from landfall.core.settings import get_settings

KUBERNETES_VERSION = "1.30"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    from landfall.cli import main

    out = tmp_path_factory.mktemp("serving")
    result = CliRunner().invoke(main, ["render-serving", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return {path.stem: yaml.safe_load(path.read_text()) for path in out.glob("*.yaml")}


def test_the_rendered_deployment_and_service_pass_the_kubernetes_schema(rendered):
    assert set(rendered) == {"serving-deployment", "serving-service"}
    for manifest in rendered.values():
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_the_deployment_carries_the_config_and_rolls_without_dropping_requests(rendered):
    serving = get_settings().serving.kubernetes
    deployment = rendered["serving-deployment"]
    assert deployment["metadata"]["namespace"] == serving.namespace
    assert deployment["spec"]["replicas"] == serving.replicas
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == serving.image and container["command"] == [
        "python",
        "-m",
        "landfall.serving",
    ]
    assert pod["serviceAccountName"] == serving.service_account
    secret_env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert secret_env["LANDFALL_SERVING_TOKEN"] == {
        "name": "landfall-serving",
        "key": "token",
        "optional": False,
    }
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"  # not before the champion is loaded
    service = rendered["serving-service"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_the_namespace_file_grants_the_workers_exactly_the_patch_of_this_deployment():
    objects = {
        (o["kind"], o["metadata"]["name"]): o
        for o in yaml.safe_load_all((REPO_ROOT / "deploy/kubernetes/serving-namespace.yaml").read_text())
    }
    serving = get_settings().serving.kubernetes
    assert ("Namespace", serving.namespace) in objects
    assert ("ServiceAccount", serving.service_account) in objects
    [rule] = objects[("Role", "landfall-serving-deployer")]["rules"]
    assert rule["resourceNames"] == [serving_k8s.APP_LABEL] and set(rule["verbs"]) == {"get", "patch"}


def test_the_activation_patch_is_a_valid_change_of_the_rendered_deployment(rendered):
    patched = copy.deepcopy(rendered["serving-deployment"])
    annotations = patched["spec"]["template"]["metadata"]["annotations"]
    for pipeline, version in (("churn", "7"), ("house_prices", "2"), ("churn", "8")):
        patch = serving_k8s.activation_patch(pipeline, version, "a" * 32)
        annotations.update(patch["spec"]["template"]["metadata"]["annotations"])  # a strategic merge of a map
    kubernetes_validate.validate(patched, KUBERNETES_VERSION, strict=True)
    # Each pipeline's champion keeps its own record: a promotion of one never overwrites another's.
    assert annotations[serving_k8s.version_annotation("churn")] == "8"
    assert annotations[serving_k8s.version_annotation("house_prices")] == "2"
    assert annotations == {
        "landfall.io/churn.champion-version": "8",
        "landfall.io/churn.champion-run-id": "a" * 32,
        "landfall.io/house-prices.champion-version": "2",
        "landfall.io/house-prices.champion-run-id": "a" * 32,
    }


def test_deploy_sends_the_patch_through_the_providers_kubernetes_hook(monkeypatch):
    """No cluster: the hook's connection and the AppsV1Api are replaced, and what reaches them is
    checked (name, namespace, body)."""
    sent = {}

    class Apps:
        def __init__(self, api_client):
            sent["api_client"] = api_client

        def patch_namespaced_deployment(self, name, namespace, body):
            sent.update(name=name, namespace=namespace, body=body)

    class Hook:
        def __init__(self, conn_id):
            sent["conn_id"] = conn_id

        def get_conn(self):
            return "in-cluster-client"

    import kubernetes.client
    from airflow.providers.cncf.kubernetes.hooks import kubernetes as hooks

    monkeypatch.setattr(hooks, "KubernetesHook", Hook)
    monkeypatch.setattr(kubernetes.client, "AppsV1Api", Apps)
    settings = get_settings()
    body = serving_k8s.patch_deployment(settings, "7", "b" * 32)
    assert sent == {
        "conn_id": settings.compute.kubernetes.kubernetes_conn_id,
        "api_client": "in-cluster-client",
        "name": "landfall-serving",
        "namespace": settings.serving.kubernetes.namespace,
        "body": body,
    }
