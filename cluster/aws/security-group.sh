#!/usr/bin/env bash
# Create the security group the cluster launcher's nodes run in: SSH (22/tcp) from SSH_CIDR only, and all
# traffic between members of the group (Ray's GCS, raylets, object transfers, dashboard). Nothing else is
# open: reach the dashboard through `ray dashboard` (an SSH tunnel). Writes the group id into
# cluster/aws/ray-cluster.yaml (the head's &security_groups anchor; the workers repeat it).
#
#   SSH_CIDR=203.0.113.7/32 cluster/aws/security-group.sh            # your address or VPN range
#   SSH_CIDR=203.0.113.7/32 cluster/aws/security-group.sh --dry-run  # print the aws commands only
# Environment: SSH_CIDR (required), VPC_ID (default: the region's default VPC), GROUP_NAME (default vaepipe-ray).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
config="$root/cluster/aws/ray-cluster.yaml"
region="$(sed -n 's/^  region: *//p' "$config" | head -1)"
group_name="${GROUP_NAME:-vaepipe-ray}"
dry_run=false
case "${1:-}" in
  "") ;;
  --dry-run) dry_run=true ;;
  *) echo "usage: SSH_CIDR=<cidr> $0 [--dry-run]" >&2; exit 2 ;;
esac

cidr="${SSH_CIDR:-}"
if [[ ! "$cidr" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$ ]]; then
  echo "set SSH_CIDR to the IPv4 range allowed to SSH to the nodes, e.g. SSH_CIDR=203.0.113.7/32 (yours: curl -s https://checkip.amazonaws.com)" >&2
  exit 2
fi
if [[ "${cidr#*/}" -lt 8 ]]; then
  echo "SSH_CIDR=$cidr opens SSH to a /${cidr#*/}, close to the whole internet; give your own address or VPN range" >&2
  exit 2
fi

run() {
  if $dry_run; then printf '%q ' "$@"; echo; else "$@"; fi
}

if $dry_run; then
  vpc="${VPC_ID:-<default VPC>}"
else
  vpc="${VPC_ID:-$(aws ec2 describe-vpcs --region "$region" --filters Name=isDefault,Values=true \
                   --query 'Vpcs[0].VpcId' --output text)}"
fi
create=(aws ec2 create-security-group --region "$region" --vpc-id "$vpc" --group-name "$group_name"
        --description "vaepipe Ray cluster: SSH from $cidr, all traffic within the group"
        --query GroupId --output text)
if $dry_run; then
  run "${create[@]}"
  group="<new group id>"
else
  group="$("${create[@]}")"
fi
run aws ec2 authorize-security-group-ingress --region "$region" --group-id "$group" --protocol tcp --port 22 \
    --cidr "$cidr"
run aws ec2 authorize-security-group-ingress --region "$region" --group-id "$group" \
    --ip-permissions "IpProtocol=-1,UserIdGroupPairs=[{GroupId=$group}]"
if ! $dry_run; then
  sed -i -E "s#SecurityGroupIds: &security_groups \[[^]]*\]#SecurityGroupIds: \&security_groups [$group]#" "$config"
  grep -n "SecurityGroupIds: &security_groups" "$config"
fi
