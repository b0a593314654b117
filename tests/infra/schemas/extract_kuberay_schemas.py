"""Write the v1 openAPIV3Schema of KubeRay's RayCluster, RayJob and RayCronJob CRDs here as JSON.

Run from a KubeRay checkout at the release named in README.md:
    python tests/infra/schemas/extract_kuberay_schemas.py KUBERAY_CHECKOUT

The RayJob's `rayClusterSpec` is the RayCluster's `spec`, and the RayCronJob's `jobTemplate` is
the RayJob's `spec` (checked here before they are replaced by a `$ref`), so each is stored once.
"""
import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).parent
CRDS = "ray-operator/config/crd/bases/ray.io_{}.yaml"


def v1_schema(checkout: Path, plural: str) -> dict:
    crd = yaml.safe_load((checkout / CRDS.format(plural)).read_text())
    return next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]


def replace_with_ref(parent: dict, key: str, expected: dict, ref: str) -> None:
    if parent[key] != expected:
        sys.exit(f"{key} differs from {ref}: store it whole instead")
    parent[key] = {"$ref": ref}


def main(checkout: Path) -> None:
    cluster = v1_schema(checkout, "rayclusters")
    job = v1_schema(checkout, "rayjobs")
    cron = v1_schema(checkout, "raycronjobs")
    replace_with_ref(cron["properties"]["spec"]["properties"], "jobTemplate",
                     job["properties"]["spec"], "rayjob.v1.json#/properties/spec")
    replace_with_ref(job["properties"]["spec"]["properties"], "rayClusterSpec",
                     cluster["properties"]["spec"], "raycluster.v1.json#/properties/spec")
    for name, schema in (("raycluster", cluster), ("rayjob", job), ("raycronjob", cron)):
        (HERE / f"{name}.v1.json").write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
