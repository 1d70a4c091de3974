"""The kubernetes compute profile, proven without a cluster: the pods the DAGs would submit are rendered
by the provider's own code and validated against the Kubernetes OpenAPI schema, and the settings from
config/landfall.yaml are asserted in them."""

from __future__ import annotations

import kubernetes_validate
import pytest

from journeys import CHURN
from landfall.airflow.compute import XCOM_RETURN_PATH
from landfall.airflow.podspec import dag_shapes, render_pods
from landfall.core.settings import get_settings
from landfall.pipeline.training.trials import trial_grid

KUBERNETES_VERSION = "1.30"


@pytest.fixture(scope="module")
def pods(tmp_path_factory):
    return render_pods(tmp_path_factory.mktemp("pods"))


def _trainer(manifest: dict) -> dict:
    return next(c for c in manifest["spec"]["containers"] if c["name"] == "base")


def test_one_pod_per_trial_of_the_configured_grid(pods):
    grid = trial_grid(get_settings().training.grid)
    assert len(pods) == len(grid) >= 2
    assert {(p.dag_id, p.task_id) for p in pods} == {(CHURN.train_dag, "search.train_trial")}
    assert sorted(p.map_index for p in pods) == list(range(len(grid)))
    assert all(p.path.is_file() for p in pods)


def test_every_rendered_manifest_is_valid_against_the_kubernetes_schema(pods):
    for pod in pods:
        # Raises ValidationError naming the bad field; strict: unknown fields are errors too.
        kubernetes_validate.validate(pod.manifest, KUBERNETES_VERSION, strict=True)


def test_schema_validation_catches_a_broken_manifest(pods):
    broken = {**pods[0].manifest, "spec": {**pods[0].manifest["spec"], "restartPolicy": 7}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_pods_carry_the_gpu_placement_from_config(pods):
    k8s = get_settings().compute.kubernetes
    for pod in pods:
        spec = pod.manifest["spec"]
        resources = _trainer(pod.manifest)["resources"]
        assert (
            resources["requests"][k8s.gpu_resource] == resources["limits"][k8s.gpu_resource] == str(k8s.gpus)
        )
        assert resources["requests"]["memory"] == k8s.requests.memory
        assert resources["limits"]["cpu"] == k8s.limits.cpu
        assert spec["nodeSelector"] == k8s.node_selector
        assert [(t["key"], t["operator"], t.get("effect")) for t in spec["tolerations"]] == [
            (t.key, t.operator, t.effect) for t in k8s.tolerations
        ]
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        expression = terms["nodeSelectorTerms"][0]["matchExpressions"][0]
        assert expression == {"key": k8s.gpu_type_label, "operator": "In", "values": k8s.gpu_types}


def test_pods_carry_image_volumes_env_and_secrets_from_config(pods):
    k8s = get_settings().compute.kubernetes
    for pod in pods:
        spec, trainer = pod.manifest["spec"], _trainer(pod.manifest)
        assert pod.manifest["metadata"]["namespace"] == k8s.namespace
        assert trainer["image"] == k8s.image and trainer["command"] == k8s.cmds
        assert spec["serviceAccountName"] == k8s.service_account
        assert [s["name"] for s in spec["imagePullSecrets"]] == k8s.image_pull_secrets
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in spec["volumes"]
            if "persistentVolumeClaim" in v
        }
        assert claims == {v.name: v.claim_name for v in k8s.volumes}
        mounts = {m["name"]: m["mountPath"] for m in trainer["volumeMounts"]}
        assert all(mounts[v.name] == v.mount_path for v in k8s.volumes)
        env = {e["name"]: e for e in trainer["env"]}
        assert all(env[name]["value"] == value for name, value in k8s.env.items())
        for ref in k8s.secrets:
            # The secret's value never appears in the spec: only a reference to it.
            assert "value" not in env[ref.env]
            assert env[ref.env]["valueFrom"]["secretKeyRef"] == {
                "name": ref.secret,
                "key": ref.key,
                "optional": False,
            }


def test_pods_return_their_result_through_the_xcom_sidecar(pods):
    for pod in pods:
        args = _trainer(pod.manifest)["args"]
        assert args[args.index("--out") + 1] == XCOM_RETURN_PATH
        names = [c["name"] for c in pod.manifest["spec"]["containers"]]
        assert names == ["base", "airflow-xcom-sidecar"]
    trials = {a[a.index("--params") + 1] for a in (_trainer(p.manifest)["args"] for p in pods)}
    assert len(trials) == len(pods), "every pod trains a different trial"


def test_a_config_change_shows_up_in_the_rendered_pods(tmp_path):
    overrides = {
        "LANDFALL_COMPUTE__KUBERNETES__GPUS": "4",
        "LANDFALL_COMPUTE__KUBERNETES__IMAGE": "registry.example.com/ml/trainer:2.0",
        "LANDFALL_PIPELINES__CHURN__TRAINING__GRID__BATCH_SIZE": "[32, 64, 128]",
    }
    pods = render_pods(tmp_path, overrides)
    assert len(pods) == 2 * 3  # learning rates x batch sizes
    for pod in pods:
        trainer = _trainer(pod.manifest)
        assert trainer["image"] == "registry.example.com/ml/trainer:2.0"
        assert trainer["resources"]["limits"]["nvidia.com/gpu"] == "4"
        kubernetes_validate.validate(pod.manifest, KUBERNETES_VERSION, strict=True)


def test_dag_files_are_the_same_for_both_profiles_only_the_trial_operator_differs():
    local, kubernetes = dag_shapes("local"), dag_shapes("kubernetes")
    assert local.keys() == kubernetes.keys() and len(local) == 7  # five in the chain, two operations
    for dag_id in local:
        assert local[dag_id].keys() == kubernetes[dag_id].keys()
    trial = "search.train_trial"
    assert kubernetes[CHURN.train_dag][trial] == "KubernetesPodOperator"
    assert local[CHURN.train_dag][trial] != "KubernetesPodOperator"
    differing = {
        (dag_id, task_id)
        for dag_id in local
        for task_id in local[dag_id]
        if local[dag_id][task_id] != kubernetes[dag_id][task_id]
    }
    assert differing == {(CHURN.train_dag, trial)}
