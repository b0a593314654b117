"""Each RayJob's config runs on the cluster it brings, and the cluster goes away when the job is done.

- Resources: the job's effective config (the configs/ file its entrypoint names, with its `--set`
  overrides) is turned into the bundles it asks Ray for, and its cluster's worker groups into node
  types by Ray's own KubeRay translation (the code KubeRay's autoscaler runs); the bundles must fit
  the groups at their max replicas, GPU configs need a GPU group and CPU configs get none, and jobs
  that train set a worker-group start timeout a cold node can meet.
- Clean-up: `deletionRules` are checked with KubeRay v1.7's own rules (the CRD's CEL rules, which a
  JSON-schema check skips, and the operator's validation in ray-operator/controllers/ray/utils/
  validation.go), and every way a job can end deletes its cluster, and later the RayJob itself.
- Labels: every `kubectl get rayjobs -l …` in cluster/README.md selects RayJobs a manifest creates.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from pipelines.cli.main import build_parser
from pipelines.runtime.cluster_capacity import Capacity, node_types_from_autoscaling_config, pack, worker_bundles
from pipelines.training.trainer import READ_CPUS
from tests.infra.test_manifests import CONFIGS_MOUNT, ROOT, ids, manifests_of, rayjob_specs

# Seconds a cold node may take to join: instance start, GPU driver and device plugin, pulling the image.
COLD_NODE_S = 600
CLUSTER_README = ROOT / "cluster" / "README.md"


# --- what the entrypoint asks for ----------------------------------------------------------------------


def entrypoint_config(spec: dict):
    """(command, the job's effective config) from the RayJob's entrypoint, as `vaepipe` would load it."""
    from pipelines.config import load_config
    from pipelines.jobs.nightly import nightly_config
    from pipelines.training.config import TrainJobConfig
    from pipelines.training.sweep_config import SweepJobConfig

    _, command, *arguments = shlex.split(spec["entrypoint"])
    args = build_parser().parse_args([command, *arguments])
    path = ROOT / "configs" / Path(args.config).relative_to(CONFIGS_MOUNT)
    overrides = list(args.set or ())
    if command == "nightly":
        return command, nightly_config(str(path), overrides)
    return command, load_config({"train": TrainJobConfig, "tune": SweepJobConfig}[command], path, overrides)


def requested_bundles(command: str, config) -> tuple[list[dict], bool]:
    """The bundles the job needs at once (a sweep: all its concurrent trials) and whether it uses GPUs."""
    from pipelines.jobs.tune import TRIAL_DRIVER_CPUS

    if command == "nightly":
        compute = config.compute
        return worker_bundles(compute.actors, compute.cpus_per_actor, compute.gpus_per_actor, compute.use_gpu), \
            compute.use_gpu
    scaling = config.scaling
    workers = worker_bundles(scaling.num_workers, scaling.cpus_per_worker, scaling.gpus_per_worker, scaling.use_gpu)
    if command == "train":
        return workers + [{"CPU": READ_CPUS}], scaling.use_gpu
    trial = workers + [{"CPU": READ_CPUS}, {"CPU": TRIAL_DRIVER_CPUS}]
    return trial * config.search.max_concurrent_trials, scaling.use_gpu


def cluster_capacity_of(cluster_spec: dict) -> Capacity:
    """The cluster at its largest: the head as KubeRay starts it, each worker group at maxReplicas."""
    from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr

    config = _derive_autoscaling_config_from_ray_cr(
        {"metadata": {"name": "vaepipe", "namespace": "vaepipe"}, "spec": cluster_spec})
    head = {key: float(value) for key, value in config["available_node_types"][config["head_node_type"]]
            ["resources"].items()}
    return Capacity((head,), tuple(node_types_from_autoscaling_config(config)), can_grow=True, source="manifest")


RAYJOBS = rayjob_specs()


@pytest.mark.parametrize("where,spec", RAYJOBS, ids=ids(RAYJOBS))
def test_the_jobs_bundles_fit_its_clusters_worker_groups_at_their_max(where, spec):
    command, config = entrypoint_config(spec)
    bundles, _ = requested_bundles(command, config)
    capacity = cluster_capacity_of(spec["rayClusterSpec"])

    assert capacity.holds(bundles), (f"{where}: `{spec['entrypoint']}` asks for {bundles}, more than "
                                     f"{capacity.describe()} can hold")


@pytest.mark.parametrize("where,spec", RAYJOBS, ids=ids(RAYJOBS))
def test_a_gpu_config_runs_where_there_is_a_gpu_group_and_a_cpu_config_where_there_is_none(where, spec):
    command, config = entrypoint_config(spec)
    _, uses_gpu = requested_bundles(command, config)
    gpu_groups = [t.name for t in cluster_capacity_of(spec["rayClusterSpec"]).node_types if t.resources.get("GPU")]

    assert bool(gpu_groups) == uses_gpu, (f"{where}: the config {'uses' if uses_gpu else 'does not use'} GPUs, the "
                                          f"cluster's GPU worker groups are {gpu_groups or 'none'}")


TRAINING_RAYJOBS = [(where, spec) for where, spec in RAYJOBS if shlex.split(spec["entrypoint"])[1] in ("train", "tune")]


def test_the_train_and_tune_rayjobs_are_both_checked():
    assert sorted(shlex.split(spec["entrypoint"])[1] for _, spec in TRAINING_RAYJOBS) == ["train", "tune"]


@pytest.mark.parametrize("where,spec", TRAINING_RAYJOBS, ids=ids(TRAINING_RAYJOBS))
def test_jobs_that_train_wait_for_cold_nodes(where, spec):
    _, config = entrypoint_config(spec)
    assert config.ray.scale_up_timeout_s >= COLD_NODE_S
    assert config.ray.start_timeout_s >= COLD_NODE_S, (
        f"{where}: ray.start_timeout_s is {config.ray.start_timeout_s:g} s; a worker group restarted after a failure "
        f"may wait for a new node, which takes minutes: set --set ray.start_timeout_s={COLD_NODE_S} or more")


def test_a_gpu_training_config_on_the_cpu_only_tune_cluster_would_be_caught():
    (_, tune_job), = [(w, s) for w, s in RAYJOBS if "rayjob-tune" in w]
    on_gpu = {**tune_job, "entrypoint": tune_job["entrypoint"] + " --set scaling.use_gpu=true"}
    command, config = entrypoint_config(on_gpu)
    bundles, uses_gpu = requested_bundles(command, config)
    capacity = cluster_capacity_of(tune_job["rayClusterSpec"])
    assert uses_gpu and not capacity.holds(bundles)


def test_a_worker_larger_than_any_node_would_be_caught():
    (_, train_job), = [(w, s) for w, s in RAYJOBS if "rayjob-train" in w]
    assert not pack([{"CPU": 8.0, "GPU": 1.0}], cluster_capacity_of(train_job["rayClusterSpec"]).nodes,
                    cluster_capacity_of(train_job["rayClusterSpec"]).node_types)


# --- deletionRules, checked as KubeRay v1.7 checks them --------------------------------------------------

DELETE_ORDER = ("DeleteWorkers", "DeleteCluster", "DeleteSelf")  # a later policy may not come sooner


def deletion_errors(spec: dict) -> list[str]:
    """What KubeRay v1.7 would refuse in a RayJob spec's clean-up settings: the CRD's CEL rules on
    deletionStrategy and its conditions, and the operator's validateDeletionConfiguration /
    validateDeletionRules (validation.go), in the operator's words."""
    errors = []
    strategy = spec.get("deletionStrategy")
    shutdown = spec.get("shutdownAfterJobFinishes", False)
    if not shutdown and spec.get("ttlSecondsAfterFinished", 0) > 0:
        errors.append("a RayJob with shutdownAfterJobFinishes set to false cannot have TTLSecondsAfterFinished")
    if strategy is None:
        return errors
    legacy = "onSuccess" in strategy or "onFailure" in strategy
    rules = strategy.get("deletionRules") or []
    if rules and legacy:
        errors.append("legacy policies (onSuccess/onFailure) and deletionRules cannot be used together")
    if not rules and not ("onSuccess" in strategy and "onFailure" in strategy):
        errors.append("deletionStrategy requires either BOTH onSuccess and onFailure, OR the deletionRules field")
    if rules and shutdown:
        errors.append("spec.shutdownAfterJobFinishes and spec.deletionStrategy.deletionRules are mutually exclusive")
    autoscaling = spec.get("rayClusterSpec", {}).get("enableInTreeAutoscaling", False)
    selector = bool(spec.get("clusterSelector"))
    ttls: dict[tuple[str, str], dict[str, int]] = {}
    for i, rule in enumerate(rules):
        condition, policy = rule["condition"], rule["policy"]
        kinds = [kind for kind in ("jobStatus", "jobDeploymentStatus") if kind in condition]
        if len(kinds) != 1:
            errors.append(f"deletionRules[{i}]: exactly one of JobStatus and JobDeploymentStatus must be set")
            continue
        if condition.get("ttlSeconds", 0) < 0:
            errors.append(f"deletionRules[{i}]: TTLSeconds must be non-negative")
            continue
        if selector and policy in ("DeleteCluster", "DeleteWorkers"):
            errors.append(f"deletionRules[{i}]: DeletionPolicyType '{policy}' not supported when ClusterSelector "
                          "is set")
            continue
        if autoscaling and policy == "DeleteWorkers":
            errors.append(f"deletionRules[{i}]: DeletionPolicyType 'DeleteWorkers' not supported with autoscaling "
                          "enabled")
            continue
        key = (kinds[0], condition[kinds[0]])
        if policy in ttls.setdefault(key, {}):
            errors.append(f"deletionRules[{i}]: duplicate rule for DeletionPolicyType '{policy}' and {key[0]} "
                          f"'{key[1]}'")
            continue
        ttls[key][policy] = condition.get("ttlSeconds", 0)
    for (kind, value), by_policy in ttls.items():
        ordered = [(policy, by_policy[policy]) for policy in DELETE_ORDER if policy in by_policy]
        for (before, before_ttl), (after, after_ttl) in zip(ordered, ordered[1:]):
            if after_ttl < before_ttl:
                errors.append(f"for {kind} '{value}': {after} TTL ({after_ttl}) must be >= {before} TTL ({before_ttl})")
    return errors


@pytest.mark.parametrize("where,spec", RAYJOBS, ids=ids(RAYJOBS))
def test_deletion_rules_are_ones_kuberay_accepts(where, spec):
    assert deletion_errors(spec) == []


@pytest.mark.parametrize("where,spec", RAYJOBS, ids=ids(RAYJOBS))
def test_however_the_job_ends_its_cluster_is_deleted_and_later_the_rayjob_too(where, spec):
    rules = spec["deletionStrategy"]["deletionRules"]
    endings = {("jobStatus", "SUCCEEDED"), ("jobStatus", "FAILED"), ("jobDeploymentStatus", "Failed")}
    for ending in endings:
        policies = {r["policy"]: r["condition"].get("ttlSeconds", 0) for r in rules
                    if r["condition"].get(ending[0]) == ending[1]}
        missing = {"DeleteCluster", "DeleteSelf"} - set(policies)
        assert not missing, f"{where}: a job ending {ending} never gets {missing}"
        assert policies["DeleteCluster"] <= 3600, f"{where}: {ending} keeps a whole cluster over an hour"


@pytest.mark.parametrize("spec_change,expected", [
    ({"shutdownAfterJobFinishes": True}, "mutually exclusive"),
    ({"ttlSecondsAfterFinished": 600}, "cannot have TTLSecondsAfterFinished"),
    ({"deletionStrategy": {"onSuccess": {"policy": "DeleteCluster"}, "deletionRules": [
        {"condition": {"jobStatus": "FAILED"}, "policy": "DeleteCluster"}]}}, "cannot be used together"),
    ({"deletionStrategy": {"deletionRules": [
        {"condition": {"jobStatus": "FAILED", "jobDeploymentStatus": "Failed"}, "policy": "DeleteSelf"}]}},
     "exactly one of JobStatus and JobDeploymentStatus"),
    ({"deletionStrategy": {"deletionRules": [
        {"condition": {"jobStatus": "FAILED"}, "policy": "DeleteWorkers"}]}}, "not supported with autoscaling"),
    ({"deletionStrategy": {"deletionRules": [
        {"condition": {"jobStatus": "FAILED", "ttlSeconds": 60}, "policy": "DeleteSelf"},
        {"condition": {"jobStatus": "FAILED", "ttlSeconds": 90}, "policy": "DeleteSelf"}]}}, "duplicate rule"),
    ({"deletionStrategy": {"deletionRules": [
        {"condition": {"jobStatus": "SUCCEEDED", "ttlSeconds": 600}, "policy": "DeleteCluster"},
        {"condition": {"jobStatus": "SUCCEEDED", "ttlSeconds": 60}, "policy": "DeleteSelf"}]}},
     "DeleteSelf TTL (60) must be >= DeleteCluster TTL (600)"),
], ids=["with-shutdown", "ttl-without-shutdown", "legacy-and-rules", "both-conditions", "delete-workers-autoscaling",
        "duplicate", "self-before-cluster"])
def test_the_deletion_check_refuses_what_kuberay_refuses(spec_change, expected):
    (_, spec), = [(w, s) for w, s in RAYJOBS if "rayjob-train" in w]
    assert any(expected in error for error in deletion_errors({**spec, **spec_change}))


def test_the_pinned_crd_schema_has_the_deletion_rules_field():
    from tests.infra.test_manifests import SCHEMAS

    import json

    strategy = json.loads((SCHEMAS / "rayjob.v1.json").read_text())["properties"]["spec"]["properties"][
        "deletionStrategy"]
    rule = strategy["properties"]["deletionRules"]["items"]
    assert set(rule["properties"]["policy"]["enum"]) == {"DeleteCluster", "DeleteWorkers", "DeleteSelf", "DeleteNone"}
    assert {v["rule"] for v in strategy["x-kubernetes-validations"]} == {
        "!((has(self.onSuccess) || has(self.onFailure)) && has(self.deletionRules))",
        "((has(self.onSuccess) && has(self.onFailure)) || has(self.deletionRules))"}


# --- labels: the README's commands select what the manifests create -----------------------------------


def created_rayjob_labels() -> list[dict]:
    """The labels of every RayJob the manifests create: their own metadata, and for a RayCronJob's
    children only `ray.io/cronjob-name: <name>` (KubeRay v1.7 raycronjob_controller constructRayJob)."""
    labels = [m["metadata"].get("labels", {}) for _, m in manifests_of("RayJob")]
    return labels + [{"ray.io/cronjob-name": m["metadata"]["name"]} for _, m in manifests_of("RayCronJob")]


def readme_rayjob_selectors() -> list[str]:
    return re.findall(r"kubectl get rayjobs -l (\S+)", CLUSTER_README.read_text())


def test_the_readme_lists_rayjobs_of_each_kind_it_creates():
    assert len(readme_rayjob_selectors()) >= 4  # train, tune, nightly by CronJob, nightly by RayCronJob


@pytest.mark.parametrize("selector", readme_rayjob_selectors())
def test_each_rayjob_listing_in_the_readme_selects_rayjobs_a_manifest_creates(selector):
    required = dict(term.split("=", 1) for term in selector.split(","))
    assert any(required.items() <= labels.items() for labels in created_rayjob_labels()), (
        f"`kubectl get rayjobs -l {selector}` in cluster/README.md selects none of the RayJobs the manifests create")


def test_the_raycronjobs_children_are_not_listed_by_a_label_they_do_not_carry():
    children = [{"ray.io/cronjob-name": m["metadata"]["name"]} for _, m in manifests_of("RayCronJob")]
    assert not any({"app.kubernetes.io/component": "nightly"}.items() <= labels.items() for labels in children)
