#!/usr/bin/env bash
# Build (and optionally push) the vaepipe image with every version read from pyproject.toml:
# the tag from [project] version, the base image from [tool.vaepipe.image] (Ray release, Python),
# so the package, the image and the cluster's Ray cannot drift apart.
#
#   infra/docker/build.sh                                   # builds vaepipe:<version>-ray<ray>-py<python>
#   IMAGE=123456789012.dkr.ecr.us-east-1.amazonaws.com/vaepipe infra/docker/build.sh --push
#   infra/docker/build.sh --dry-run                         # prints the docker command, runs nothing
#   infra/docker/build.sh --print-image                     # prints the image reference only
# Environment: IMAGE (repository, default vaepipe), TORCH_INDEX_URL (see the Dockerfile),
# PYTHON (a Python >= 3.11 to read pyproject.toml, default python3).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
mode="build"
case "${1:-}" in
  "") ;;
  --push) mode="push" ;;
  --dry-run) mode="dry-run" ;;
  --print-image) mode="print-image" ;;
  *) echo "usage: $0 [--push | --dry-run | --print-image]" >&2; exit 2 ;;
esac

read -r version ray_version python_version < <("${PYTHON:-python3}" - "$root/pyproject.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    pyproject = tomllib.load(f)
image = pyproject["tool"]["vaepipe"]["image"]
print(pyproject["project"]["version"], image["ray"], image["python"])
PY
) || true
if [[ -z "${python_version:-}" ]]; then
  echo "could not read versions from $root/pyproject.toml with ${PYTHON:-python3} (needs Python >= 3.11 for tomllib; set PYTHON)" >&2
  exit 1
fi
python_tag="py${python_version//./}"
image="${IMAGE:-vaepipe}:${version}-ray${ray_version}-${python_tag}"

command=(docker build
  --file "$root/infra/docker/Dockerfile"
  --build-arg "RAY_VERSION=$ray_version"
  --build-arg "PYTHON_TAG=$python_tag"
  --build-arg "VAEPIPE_VERSION=$version"
  --build-arg "TORCH_INDEX_URL=${TORCH_INDEX_URL:-}"
  --tag "$image"
  "$root")

case "$mode" in
  print-image) echo "$image" ;;
  dry-run) printf '%q ' "${command[@]}"; echo ;;
  *)
    "${command[@]}"
    if [[ "$mode" == "push" ]]; then docker push "$image"; fi
    echo "$image"
    ;;
esac
