"""The production deployment files: YAML that lints, Kubernetes objects that pass the Kubernetes schema,
and names that agree with config/landfall.yaml, the Helm values and the images."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from landfall.core.paths import REPO_ROOT
from landfall.core.settings import get_settings

DEPLOY = REPO_ROOT / "deploy"
HELM_VALUES = DEPLOY / "helm" / "values.yaml"
KUBERNETES_VERSION = "1.30"
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), REPO_ROOT / "config" / "landfall.yaml"])
YAMLLINT_CONFIG = "{extends: default, rules: {line-length: {max: 110}, document-start: disable, comments: {min-spaces-from-content: 1}, truthy: {check-keys: false}}}"  # noqa: E501


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _kubernetes_objects() -> list[dict]:
    return [doc for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")) for doc in _documents(path)]


def test_deployment_yaml_lints_clean():
    completed = subprocess.run(
        [sys.executable, "-m", "yamllint", "-f", "parsable", "-d", YAMLLINT_CONFIG, *map(str, YAML_FILES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout


@pytest.mark.parametrize(
    "manifest", _kubernetes_objects(), ids=lambda m: f"{m['kind']}/{m['metadata']['name']}"
)
def test_kubernetes_objects_are_valid_against_the_kubernetes_schema(manifest):
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_cluster_objects_are_the_ones_the_pod_config_names():
    k8s = get_settings().compute.kubernetes
    objects = {(o["kind"], o["metadata"]["name"]): o for o in _kubernetes_objects()}
    assert ("Namespace", k8s.namespace) in objects
    assert objects[("ServiceAccount", k8s.service_account)]["metadata"]["namespace"] == k8s.namespace
    for volume in k8s.volumes:
        assert objects[("PersistentVolumeClaim", volume.claim_name)]["metadata"]["namespace"] == k8s.namespace


def test_the_airflow_service_accounts_may_launch_and_watch_pods_in_the_training_namespace():
    values = _documents(HELM_VALUES)[0]
    objects = {(o["kind"], o["metadata"]["name"]): o for o in _kubernetes_objects()}
    binding = objects[("RoleBinding", "landfall-pod-launcher")]
    role = objects[("Role", binding["roleRef"]["name"])]
    subjects = {s["name"] for s in binding["subjects"]}
    assert {
        values["workers"]["serviceAccount"]["name"],
        values["triggerer"]["serviceAccount"]["name"],
    } <= subjects
    verbs = {
        (resource, verb) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]
    }
    # create/watch/delete the pod, read its log, exec into the xcom sidecar for return.json.
    assert {("pods", "create"), ("pods", "watch"), ("pods", "delete"), ("pods/log", "get")} <= verbs
    assert ("pods/exec", "create") in verbs


def test_helm_values_select_the_kubernetes_profile_and_the_object_storage_xcom_backend():
    values = _documents(HELM_VALUES)[0]
    assert values["executor"] in {"CeleryExecutor", "KubernetesExecutor"}
    env = {item["name"]: item.get("value") for item in values["env"]}
    assert env["LANDFALL_COMPUTE__PROFILE"] == "kubernetes"
    template = (REPO_ROOT / "airflow.cfg.template").read_text()
    backend = re.search(r"^xcom_backend = (\S+)", template, re.MULTILINE).group(1)
    assert values["config"]["core"]["xcom_backend"] == backend
    storage = get_settings().storage
    assert values["config"]["common.io"]["xcom_objectstorage_path"] == (
        f"s3://{storage.aws_conn_id}@{storage.xcom_bucket}/{storage.xcom_prefix}"
    )
    assert values["config"]["common.io"]["xcom_objectstorage_threshold"] == "0"


def test_helm_values_reference_secrets_by_name_and_hold_none():
    values = _documents(HELM_VALUES)[0]
    for entry in values["secret"]:
        assert set(entry) == {"envName", "secretName", "secretKey"}
    text = HELM_VALUES.read_text().lower()
    for word in ("password:", "secret_access_key:", "aws_secret", "fernet_key:"):
        assert word not in text


def test_trainer_image_entrypoint_is_the_configured_pod_command():
    dockerfile = (REPO_ROOT / "images" / "trainer" / "Dockerfile").read_text()
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.MULTILINE).group(1)
    assert yaml.safe_load(entrypoint) == get_settings().compute.kubernetes.cmds


def test_the_trainer_runs_without_airflow_installed():
    """The trainer image installs only the `trainer` extra: the CLI must not import Airflow."""
    code = "import sys; sys.modules['airflow'] = None; import landfall.pipeline.training.trainer; print('ok')"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr[-2000:]
