"""The deployment files under cluster/ and infra/ are valid and agree with pyproject.toml and the CLI.

No cluster, no Docker: KubeRay manifests are checked against KubeRay's CRD schemas (pinned in
schemas/), core Kubernetes kinds against the `kubernetes` client's models, the AWS launcher
config against Ray's own validation, and every entrypoint against `vaepipe`'s real parser.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from referencing import Registry, Resource

import pipelines
from pipelines.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = Path(__file__).parent / "schemas"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
IMAGE_PIN = PYPROJECT["tool"]["vaepipe"]["image"]
BUILD_SH = ROOT / "infra" / "docker" / "build.sh"
PLACEHOLDER_REPOSITORY = "registry.example.com/vaepipe"
AWS_LAUNCHER = ROOT / "cluster" / "aws" / "ray-cluster.yaml"
CONFIGS_CONFIGMAP = "vaepipe-configs"
CONFIGS_MOUNT = "/configs"
SECRET_NAMES = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "RAY_AUTH_TOKEN",
                "MINIO_ROOT_PASSWORD", "MINIO_SECRET_KEY", "auth_token"}
CORE_API_VERSIONS = {"ConfigMap": "v1", "Secret": "v1", "ServiceAccount": "v1", "CronJob": "batch/v1",
                     "Role": "rbac.authorization.k8s.io/v1", "RoleBinding": "rbac.authorization.k8s.io/v1"}
KUBERAY_SCHEMA_FILES = {"RayCluster": "raycluster.v1.json", "RayJob": "rayjob.v1.json",
                        "RayCronJob": "raycronjob.v1.json"}


def deployment_files(*suffixes: str) -> list[Path]:
    return sorted(p for folder in ("cluster", "infra") for p in (ROOT / folder).rglob("*")
                  if p.suffix in suffixes)


YAML_FILES = deployment_files(".yaml", ".yml")
JSON_FILES = deployment_files(".json")


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def load_documents(path: Path) -> list:
    if path.suffix == ".json":
        return [json.loads(path.read_text())]
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def embedded_manifests(doc: dict) -> list[dict]:
    """Manifests stored as text in a ConfigMap (the RayJob the nightly CronJob creates)."""
    if doc.get("kind") != "ConfigMap":
        return []
    parsed = [yaml.safe_load(text) for text in (doc.get("data") or {}).values()]
    return [m for m in parsed if isinstance(m, dict) and "apiVersion" in m and "kind" in m]


def kubernetes_manifests() -> list[tuple[str, dict]]:
    """(where, manifest) for every Kubernetes object under cluster/, embedded ones included."""
    found = []
    for path in YAML_FILES:
        for index, doc in enumerate(load_documents(path)):
            if not (isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc):
                continue
            where = f"{relative(path)}#{index} {doc['kind']}"
            found.append((where, doc))
            found += [(f"{where} > embedded {m['kind']}", m) for m in embedded_manifests(doc)]
    return found


MANIFESTS = kubernetes_manifests()


def manifests_of(*kinds: str) -> list[tuple[str, dict]]:
    return [(where, m) for where, m in MANIFESTS if m["kind"] in kinds]


def rayjob_specs() -> list[tuple[str, dict]]:
    """Every RayJob spec: the RayJobs' own and the RayCronJob's jobTemplate."""
    specs = [(where, m["spec"]) for where, m in manifests_of("RayJob")]
    return specs + [(where, m["spec"]["jobTemplate"]) for where, m in manifests_of("RayCronJob")]


def ray_cluster_specs() -> list[tuple[str, dict]]:
    return ([(where, m["spec"]) for where, m in manifests_of("RayCluster")]
            + [(where, spec["rayClusterSpec"]) for where, spec in rayjob_specs()])


def pod_specs(cluster_spec: dict) -> list[dict]:
    groups = [cluster_spec["headGroupSpec"], *cluster_spec.get("workerGroupSpecs", [])]
    return [group["template"]["spec"] for group in groups]


def ids(pairs) -> list[str]:
    return [where for where, _ in pairs]


# --- every file loads ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", YAML_FILES + JSON_FILES, ids=relative)
def test_every_yaml_and_json_file_loads(path):
    assert load_documents(path), f"{relative(path)} holds no document"


def test_the_deployment_layer_has_the_files_the_readme_walks_through():
    expected = ["cluster/README.md", "cluster/aws/ray-cluster.yaml", "cluster/kuberay/raycluster.yaml",
                "cluster/kuberay/rayjob-train.yaml", "cluster/kuberay/rayjob-tune.yaml",
                "cluster/kuberay/cronjob-nightly.yaml", "cluster/kuberay/configmap-configs.yaml",
                "infra/docker/Dockerfile", "infra/docker/build.sh", "infra/minio/docker-compose.yml",
                "infra/iam/vaepipe-bucket-policy.json"]
    assert [name for name in expected if not (ROOT / name).is_file()] == []


# --- KubeRay kinds against the pinned CRD schemas -------------------------------------------------


def strict(schema):
    """The schema with undeclared fields rejected, as `kubectl apply --validate=strict` does.

    CRD schemas leave `additionalProperties` open and the API server prunes unknown fields
    silently, so a misspelt field (`shutdownAfterJobFinish`) would otherwise pass.
    """
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: strict(value) for key, value in schema.items()}
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        closed["additionalProperties"] = False
    return closed


@cache
def kuberay_validator(kind: str) -> jsonschema.Draft7Validator:
    resources = {name: Resource.opaque(strict(json.loads((SCHEMAS / name).read_text())))
                 for name in KUBERAY_SCHEMA_FILES.values()}
    registry = Registry().with_resources(resources.items())
    return jsonschema.Draft7Validator(resources[KUBERAY_SCHEMA_FILES[kind]].contents, registry=registry)


def kuberay_errors(manifest: dict) -> list[str]:
    validator = kuberay_validator(manifest["kind"])
    errors = [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
              for e in validator.iter_errors(manifest)]
    if manifest["apiVersion"] != "ray.io/v1":
        errors.append(f"apiVersion {manifest['apiVersion']!r}, expected 'ray.io/v1'")
    return errors + model_errors(manifest["metadata"], "V1ObjectMeta", "metadata")


@pytest.mark.parametrize("where,manifest", manifests_of(*KUBERAY_SCHEMA_FILES),
                         ids=ids(manifests_of(*KUBERAY_SCHEMA_FILES)))
def test_kuberay_manifest_matches_the_pinned_crd_schema(where, manifest):
    assert kuberay_errors(manifest) == []


def test_crd_schema_check_rejects_a_misspelt_field():
    _, rayjob = manifests_of("RayJob")[0]
    misspelt = {**rayjob, "spec": {**rayjob["spec"], "shutdownAfterJobFinish": True}}
    assert any("shutdownAfterJobFinish" in error for error in kuberay_errors(misspelt))


def test_crd_schema_check_rejects_a_misspelt_field_deep_in_a_pod_template():
    _, cluster = manifests_of("RayCluster")[0]
    head = cluster["spec"]["headGroupSpec"]
    container = {**head["template"]["spec"]["containers"][0], "imagePullPolicyy": "Always"}
    broken_head = {**head, "template": {"spec": {**head["template"]["spec"], "containers": [container]}}}
    broken = {**cluster, "spec": {**cluster["spec"], "headGroupSpec": broken_head}}
    assert any("imagePullPolicyy" in error for error in kuberay_errors(broken))


# --- core kinds against the kubernetes client's models --------------------------------------------

PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float)}


def model_errors(value, type_name: str, where: str) -> list[str]:
    """Differences between ``value`` and the kubernetes client model ``type_name``: unknown
    fields, wrong types, and (by building the model) missing required fields."""
    if type_name.startswith("list["):
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        return [e for i, item in enumerate(value) for e in model_errors(item, type_name[5:-1], f"{where}[{i}]")]
    if type_name.startswith(("dict(", "dict[")):  # the client spells it both ways across releases
        if not isinstance(value, dict):
            return [f"{where}: expected a mapping"]
        inner = type_name[5:-1].split(", ", 1)[1]
        return [e for key, item in value.items() for e in model_errors(item, inner, f"{where}.{key}")]
    if type_name == "object":
        return []
    if type_name in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[type_name]) and not (type_name != "bool" and isinstance(value, bool))
        return [] if ok else [f"{where}: expected {type_name}, got {value!r}"]
    import kubernetes.client.models as k8s_models  # here, not at collection: 0.8 s that most workers never use

    model = getattr(k8s_models, type_name)
    if not isinstance(value, dict):
        return [f"{where}: expected a {type_name} mapping"]
    attribute_of = {json_name: attribute for attribute, json_name in model.attribute_map.items()}
    errors = [f"{where}.{key}: not a field of {type_name}" for key in value if key not in attribute_of]
    for key, item in value.items():
        if key in attribute_of:
            errors += model_errors(item, model.openapi_types[attribute_of[key]], f"{where}.{key}")
    if not errors:
        try:
            model(**{attribute_of[key]: item for key, item in value.items()})
        except ValueError as err:
            errors.append(f"{where}: {err}")
    return errors


def core_errors(manifest: dict) -> list[str]:
    kind = manifest["kind"]
    errors = model_errors(manifest, f"V1{kind}", kind)
    if manifest["apiVersion"] != CORE_API_VERSIONS[kind]:
        errors.append(f"apiVersion {manifest['apiVersion']!r}, expected {CORE_API_VERSIONS[kind]!r}")
    return errors


@pytest.mark.parametrize("where,manifest", manifests_of(*CORE_API_VERSIONS),
                         ids=ids(manifests_of(*CORE_API_VERSIONS)))
def test_core_manifest_matches_the_kubernetes_model(where, manifest):
    assert core_errors(manifest) == []


def test_every_manifest_is_of_a_kind_these_tests_check():
    checked = set(CORE_API_VERSIONS) | set(KUBERAY_SCHEMA_FILES)
    assert [where for where, m in MANIFESTS if m["kind"] not in checked] == []


def test_core_model_check_rejects_a_misspelt_field_and_a_missing_required_one():
    _, cronjob = manifests_of("CronJob")[0]
    assert any("schedul" in e for e in core_errors({**cronjob, "spec": {**cronjob["spec"], "schedul": "x"}}))
    without_schedule = {k: v for k, v in cronjob["spec"].items() if k != "schedule"}
    assert any("schedule" in e for e in core_errors({**cronjob, "spec": without_schedule}))


# --- versions agree with pyproject.toml ----------------------------------------------------------


@cache
def build_sh(*args: str) -> str:
    env = {**os.environ, "PYTHON": sys.executable, "IMAGE": PLACEHOLDER_REPOSITORY}
    return subprocess.run(["bash", str(BUILD_SH), *args], env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def ray_requirement() -> Requirement:
    return next(Requirement(d) for d in PYPROJECT["project"]["dependencies"] if Requirement(d).name == "ray")


def test_image_ray_release_is_inside_the_ray_range_the_package_allows():
    assert ray_requirement().specifier.contains(IMAGE_PIN["ray"])


def test_image_python_is_one_the_package_supports():
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(f"{IMAGE_PIN['python']}.0")


def test_package_version_is_the_one_vaepipe_reports():
    assert pipelines.__version__ == PYPROJECT["project"]["version"]


def test_image_tag_is_made_of_package_ray_and_python_versions():
    python_tag = "py" + IMAGE_PIN["python"].replace(".", "")
    expected = f"{PLACEHOLDER_REPOSITORY}:{PYPROJECT['project']['version']}-ray{IMAGE_PIN['ray']}-{python_tag}"
    assert build_sh("--print-image") == expected


def dockerfile_base_image(build_args: dict[str, str]) -> str:
    lines = (ROOT / "infra" / "docker" / "Dockerfile").read_text().splitlines()
    (from_line,) = [line for line in lines if line.startswith("FROM ")]
    return re.sub(r"\$\{(\w+)\}", lambda m: build_args[m.group(1)], from_line.split()[1])


def test_dockerfile_builds_from_the_official_ray_gpu_image_of_the_pinned_versions():
    words = shlex.split(build_sh("--dry-run"))
    build_args = dict(words[i + 1].split("=", 1) for i, word in enumerate(words) if word == "--build-arg")
    python_tag = "py" + IMAGE_PIN["python"].replace(".", "")
    assert dockerfile_base_image(build_args) == f"rayproject/ray:{IMAGE_PIN['ray']}-{python_tag}-gpu"


def test_dockerfile_base_image_args_have_no_defaults_to_drift():
    text = (ROOT / "infra" / "docker" / "Dockerfile").read_text()
    before_from = text.split("\nFROM ", 1)[0]
    assert [line for line in before_from.splitlines() if line.startswith("ARG ") and "=" in line] == []


def ray_pod_images() -> list[tuple[str, str]]:
    images = [(where, container["image"]) for where, spec in ray_cluster_specs()
              for pod in pod_specs(spec) for container in pod["containers"]]
    return images + [(relative(AWS_LAUNCHER), load_documents(AWS_LAUNCHER)[0]["docker"]["image"])]


@pytest.mark.parametrize("where,image", ray_pod_images(), ids=ids(ray_pod_images()))
def test_ray_nodes_run_the_image_build_sh_makes(where, image):
    # Compared without the registry, which each user replaces (cluster/README.md, step 1).
    repository, tag = image.rsplit(":", 1)
    assert (repository.rsplit("/", 1)[-1], tag) == ("vaepipe", build_sh("--print-image").rsplit(":", 1)[1])


@pytest.mark.parametrize("where,spec", ray_cluster_specs(), ids=ids(ray_cluster_specs()))
def test_kuberay_ray_version_is_the_image_ray(where, spec):
    assert spec["rayVersion"] == IMAGE_PIN["ray"]


# --- entrypoints name real commands and configs ---------------------------------------------------


def configmap_of_configs() -> dict[str, str]:
    (cm,) = [m for _, m in manifests_of("ConfigMap") if m["metadata"]["name"] == CONFIGS_CONFIGMAP]
    return cm["data"]


def subcommands() -> set[str]:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    return set(commands.choices)


@pytest.mark.parametrize("where,spec", rayjob_specs(), ids=ids(rayjob_specs()))
def test_entrypoint_is_a_real_vaepipe_command_with_a_config_from_configs(where, spec):
    program, command, *args = shlex.split(spec["entrypoint"])
    assert program == "vaepipe"
    assert command in subcommands(), f"vaepipe has no sub-command {command!r}"
    mounted = [a for a in args if a.startswith(CONFIGS_MOUNT + "/")]
    assert mounted, f"{where}: the entrypoint names no config under {CONFIGS_MOUNT}/"
    for path in mounted:
        name = path.removeprefix(CONFIGS_MOUNT + "/")
        assert (ROOT / "configs" / name).is_file(), f"configs/{name} does not exist"
        assert name in configmap_of_configs(), f"{name} is not in {CONFIGS_CONFIGMAP}: run `make cluster-configmap`"
    build_parser().parse_args([command, *args])  # exits (fails the test) on options the command lacks


@pytest.mark.parametrize("where,spec", rayjob_specs(), ids=ids(rayjob_specs()))
def test_entrypoint_head_mounts_the_configs_configmap_at_configs(where, spec):
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    volumes = {v["name"] for v in head.get("volumes", []) if v.get("configMap", {}).get("name") == CONFIGS_CONFIGMAP}
    mounts = [m for c in head["containers"] for m in c.get("volumeMounts", [])
              if m["name"] in volumes and m["mountPath"] == CONFIGS_MOUNT]
    assert mounts, f"{where}: the head does not mount {CONFIGS_CONFIGMAP} at {CONFIGS_MOUNT}"


def test_configs_configmap_holds_exactly_the_files_in_configs():
    on_disk = {p.name: p.read_text().rstrip() + "\n" for p in (ROOT / "configs").glob("*.yaml")}
    in_configmap = {name: text.rstrip() + "\n" for name, text in configmap_of_configs().items()}
    assert in_configmap == on_disk, "cluster/kuberay/configmap-configs.yaml is stale: run `make cluster-configmap`"


# --- job lifecycle, schedule, auth ---------------------------------------------------------------


@pytest.mark.parametrize("where,spec", rayjob_specs(), ids=ids(rayjob_specs()))
def test_rayjob_sets_its_cleanup_deadline_and_retries_explicitly(where, spec):
    # clean-up by deletionRules: test_rayjobs_fit_their_clusters.py checks them as KubeRay does
    assert {"deletionStrategy", "activeDeadlineSeconds", "backoffLimit"} <= set(spec)
    assert spec["activeDeadlineSeconds"] > 0


@pytest.mark.parametrize("where,spec", ray_cluster_specs(), ids=ids(ray_cluster_specs()))
def test_kuberay_cluster_requires_a_ray_auth_token(where, spec):
    assert spec["authOptions"]["mode"] == "token"


def test_aws_launcher_nodes_require_a_ray_auth_token():
    assert "--env RAY_AUTH_MODE=token" in load_documents(AWS_LAUNCHER)[0]["docker"]["run_options"]


def nightly_rayjob() -> dict:
    (rayjob,) = [m for where, m in manifests_of("RayJob") if "embedded" in where]
    return rayjob


def test_nightly_cronjob_creates_the_embedded_rayjob_with_its_own_least_privilege_account():
    (cronjob,) = [m for _, m in manifests_of("CronJob")]
    (role,) = [m for _, m in manifests_of("Role")]
    (binding,) = [m for _, m in manifests_of("RoleBinding")]
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert nightly_rayjob()["metadata"]["generateName"], "each night's RayJob needs its own name"
    assert role["rules"] == [{"apiGroups": ["ray.io"], "resources": ["rayjobs"], "verbs": ["create", "get", "list"]}]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": pod["serviceAccountName"]}]
    (container,) = pod["containers"]
    # the scheduler's script reads the manifest ($(< path)), names it for the tick and creates it
    # (tests/infra/test_nightly_schedule.py runs the script)
    manifest_path = Path(re.search(r"\$\(< (\S+)\)", container["args"][0]).group(1))
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(manifest_path.parent)]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    (holder,) = [m for _, m in manifests_of("ConfigMap") if m["metadata"]["name"] == volume["configMap"]["name"]]
    assert yaml.safe_load(holder["data"][manifest_path.name]) == nightly_rayjob()


def test_alpha_raycronjob_runs_the_same_job_as_the_portable_cronjob():
    (raycronjob,) = [m for _, m in manifests_of("RayCronJob")]
    (cronjob,) = [m for _, m in manifests_of("CronJob")]
    assert raycronjob["spec"]["jobTemplate"] == nightly_rayjob()["spec"]
    assert raycronjob["spec"]["schedule"] == cronjob["spec"]["schedule"]
    assert raycronjob["spec"]["timeZone"] == cronjob["spec"]["timeZone"]


# --- AWS cluster launcher --------------------------------------------------------------------------


def test_aws_launcher_config_passes_rays_own_validation():
    from ray.autoscaler._private.util import (  # what `ray up` runs
        prepare_config,
        validate_config,
    )

    validate_config(prepare_config(load_documents(AWS_LAUNCHER)[0]))


def test_aws_launcher_has_a_cpu_head_an_autoscaling_gpu_group_and_instance_profiles_everywhere():
    config = load_documents(AWS_LAUNCHER)[0]
    node_types = config["available_node_types"]
    head = node_types[config["head_node_type"]]
    assert not head["node_config"]["InstanceType"].startswith(("g", "p"))
    gpu_groups = [t for t in node_types.values() if t["node_config"]["InstanceType"].startswith(("g", "p"))]
    assert gpu_groups and all(t["max_workers"] > t["min_workers"] for t in gpu_groups)
    assert all("IamInstanceProfile" in t["node_config"] for t in node_types.values())
    assert any("pip install" in command and "/home/ray/vaepipe" in command for command in config["setup_commands"])


# --- no credentials in any file ------------------------------------------------------------------


def inline_credentials(value, where: str = "") -> list[str]:
    """Places where a credential's value is written out rather than referenced."""
    found = []
    if isinstance(value, dict):
        if value.get("name") in SECRET_NAMES and "value" in value:
            found.append(f"{where}: env {value['name']} has a literal value")
        for key, item in value.items():
            if key in SECRET_NAMES and isinstance(item, str) and item and not item.startswith("${"):
                found.append(f"{where}.{key}: literal value")
            found += inline_credentials(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += inline_credentials(item, f"{where}[{i}]")
    elif isinstance(value, str):
        for name in SECRET_NAMES:
            if re.search(rf"\b{name}=(?!\$)\S", value):
                found.append(f"{where}: {name}=<literal> in {value!r}")
        if re.search(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", value):
            found.append(f"{where}: an AWS access key id")
    return found


@pytest.mark.parametrize("path", YAML_FILES + JSON_FILES, ids=relative)
def test_no_credential_values_inline(path):
    assert [f for i, doc in enumerate(load_documents(path)) for f in inline_credentials(doc, f"#{i}")] == []


@pytest.mark.parametrize("leak", [
    {"env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "abc"}]},
    {"data": {"AWS_ACCESS_KEY_ID": "AKIAABCDEFGHIJKLMNOP"}},
    {"run_options": ["--env AWS_SECRET_ACCESS_KEY=abc"]},
    {"environment": {"MINIO_ROOT_PASSWORD": "hunter22"}},
], ids=["env-value", "configmap-data", "docker-option", "compose-environment"])
def test_credential_check_finds_a_literal_value(leak):
    assert inline_credentials(leak) != []


# --- IAM policy (the template rendered by pipelines/storage/policy.py) ----------------------------

OUTPUT_PREFIXES = ("runs", "models", "scores", "samples", "embeddings", "reports")
WRITE_ACTIONS = {"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}
# A storage root under a prefix, as the README's example, and one at the bucket root.
STORAGE_ROOTS = {"s3://my-bucket/vaepipe": "my-bucket/vaepipe/", "s3://my-bucket": "my-bucket/"}


def bucket_policy_statements(storage_uri: str, prepare: bool = False) -> list[dict]:
    from pipelines.storage.policy import render_bucket_policy

    return render_bucket_policy(storage_uri, prepare=prepare)["Statement"]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def written_resources(statements: list[dict]) -> set[str]:
    return {resource for s in statements if WRITE_ACTIONS & set(as_list(s["Action"]))
            for resource in as_list(s["Resource"])}


@pytest.mark.parametrize("storage_uri", STORAGE_ROOTS)
def test_bucket_policy_writes_only_the_output_prefixes_and_the_root_marker(storage_uri):
    root = STORAGE_ROOTS[storage_uri]
    outputs = {f"arn:aws:s3:::{root}{prefix}/*" for prefix in OUTPUT_PREFIXES}
    # pyarrow's recursive create_dir (Ray Train's storage) writes an empty marker at the storage root
    marker = {f"arn:aws:s3:::{root}"} if root != "my-bucket/" else set()
    assert written_resources(bucket_policy_statements(storage_uri)) == outputs | marker


@pytest.mark.parametrize("storage_uri", STORAGE_ROOTS)
def test_bucket_policy_reads_datasets_and_outputs_and_nothing_else(storage_uri):
    root = STORAGE_ROOTS[storage_uri]
    read = {resource for s in bucket_policy_statements(storage_uri) if "s3:GetObject" in as_list(s["Action"])
            for resource in as_list(s["Resource"])}
    assert read == {f"arn:aws:s3:::{root}{p}/*" for p in ("datasets", *OUTPUT_PREFIXES)}


@pytest.mark.parametrize("storage_uri", STORAGE_ROOTS)
def test_bucket_policy_has_no_wildcard_action_and_conditions_every_listing(storage_uri):
    key_root = STORAGE_ROOTS[storage_uri].split("/", 1)[1]
    statements = bucket_policy_statements(storage_uri)
    assert all(s["Effect"] == "Allow" and "*" not in "".join(as_list(s["Action"])) for s in statements)
    assert all("Condition" in s for s in statements if "s3:ListBucket" in as_list(s["Action"]))
    listed = {p for s in statements for p in s.get("Condition", {}).get("StringLike", {}).get("s3:prefix", [])}
    assert listed == {f"{key_root}{p}/*" for p in ("datasets", *OUTPUT_PREFIXES)}


def test_the_prepare_identity_may_also_write_datasets():
    added = written_resources(bucket_policy_statements("s3://my-bucket/vaepipe", prepare=True)) \
        - written_resources(bucket_policy_statements("s3://my-bucket/vaepipe"))
    assert added == {"arn:aws:s3:::my-bucket/vaepipe/datasets/*"}
