#!/usr/bin/env bash
# Pin the cluster launcher's AMI: resolve AWS's public SSM parameter for the "Deep Learning Base OSS Nvidia
# Driver GPU AMI (Ubuntu 22.04)" in the YAML's region and write that ID, with today's date, as every node's
# ImageId in cluster/aws/ray-cluster.yaml (the head's &ami anchor; the workers repeat it). Run it again to
# move to the AMI AWS publishes then. Needs the AWS CLI and ssm:GetParameter.
#
#   cluster/aws/pin-ami.sh             # resolve, rewrite the YAML, show the diff
#   cluster/aws/pin-ami.sh --dry-run   # print the aws command only
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
config="$root/cluster/aws/ray-cluster.yaml"
parameter="/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
region="$(sed -n 's/^  region: *//p' "$config" | head -1)"
command=(aws ssm get-parameter --region "$region" --name "$parameter" --query Parameter.Value --output text)

case "${1:-}" in
  "") ;;
  --dry-run) printf '%q ' "${command[@]}"; echo; exit 0 ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac

ami="$("${command[@]}")"
if [[ ! "$ami" =~ ^ami-[0-9a-f]{8,17}$ ]]; then
  echo "$parameter in $region gave '$ami', not an AMI id" >&2
  exit 1
fi
sed -i -E "s#ImageId: &ami [^ ]+( \# .*)?\$#ImageId: \&ami $ami  \# $parameter on $(date -u +%Y-%m-%d)#" "$config"
grep -n "ImageId: &ami" "$config"
