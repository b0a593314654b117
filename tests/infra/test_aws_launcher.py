"""The cluster launcher YAML boots a documented AMI and lets SSH in only from the range the user sets.

No AWS here: the scripts that talk to AWS are run with --dry-run (or refuse before any call), and Ray's own
security-group code is run where it makes no AWS call.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess

import pytest

from tests.infra.test_manifests import AWS_LAUNCHER, ROOT, load_documents

DLAMI_PARAMETER = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
PIN_AMI = ROOT / "cluster" / "aws" / "pin-ami.sh"
SECURITY_GROUP = ROOT / "cluster" / "aws" / "security-group.sh"


def launcher() -> dict:
    return load_documents(AWS_LAUNCHER)[0]


def script(path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(path), *args], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=60)


# --- the AMI ---------------------------------------------------------------------------------------------


def test_every_node_boots_the_same_explicit_ami():
    images = {name: t["node_config"].get("ImageId") for name, t in launcher()["available_node_types"].items()}
    (image,) = set(images.values())
    assert image == f"resolve:ssm:{DLAMI_PARAMETER}" or re.fullmatch(r"ami-[0-9a-f]{8,17}", image), images


def test_a_pinned_ami_says_which_parameter_and_day_it_came_from():
    (line,) = [line for line in AWS_LAUNCHER.read_text().splitlines() if "ImageId: &ami" in line]
    value = line.split("&ami", 1)[1].split()[0]
    if value.startswith("ami-"):
        assert re.search(rf"# {re.escape(DLAMI_PARAMETER)} on \d{{4}}-\d{{2}}-\d{{2}}$", line), line


def test_the_pin_script_resolves_the_documented_parameter_in_the_clusters_region():
    run = script(PIN_AMI, "--dry-run")
    assert run.returncode == 0, run.stderr
    words = shlex.split(run.stdout)
    assert words[:3] == ["aws", "ssm", "get-parameter"]
    assert words[words.index("--name") + 1] == DLAMI_PARAMETER
    assert words[words.index("--region") + 1] == launcher()["provider"]["region"]


def test_the_yaml_explains_the_ami_choice_and_how_to_update_it():
    comments = " ".join(line.strip().lstrip("#").strip() for line in AWS_LAUNCHER.read_text().splitlines()
                        if line.strip().startswith("#"))
    assert "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04)" in comments
    assert "cluster/aws/pin-ami.sh" in comments


# --- SSH only from the user's range ------------------------------------------------------------------------


def test_rays_own_security_group_would_open_ssh_to_the_world():
    """Why every node type names its own group: the group Ray makes always allows SSH from anywhere,
    whatever provider.security_group says. When this fails, Ray stopped doing that."""
    from ray.autoscaler._private.aws.config import _create_default_inbound_rules

    rules = _create_default_inbound_rules({"sg-1"}, [{"FromPort": 22, "ToPort": 22, "IpProtocol": "tcp",
                                                      "IpRanges": [{"CidrIp": "203.0.113.7/32"}]}])
    assert {"FromPort": 22, "ToPort": 22, "IpProtocol": "tcp", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]} in rules


def test_every_node_type_names_a_security_group_so_ray_creates_none():
    from ray.autoscaler._private.aws.config import _configure_security_group

    config = launcher()
    groups = {name: t["node_config"].get("SecurityGroupIds") for name, t in config["available_node_types"].items()}
    assert all(groups.values()) and len({tuple(g) for g in groups.values()}) == 1, groups
    # Ray's bootstrap step: with a group on every node type it returns at once, creating none (and calling no AWS)
    assert _configure_security_group(config) is config


def test_the_security_group_script_lets_ssh_in_from_the_given_range_only():
    run = script(SECURITY_GROUP, "--dry-run", SSH_CIDR="203.0.113.7/32")
    assert run.returncode == 0, run.stderr
    commands = [shlex.split(line) for line in run.stdout.splitlines()]
    ingress = [c for c in commands if c[:3] == ["aws", "ec2", "authorize-security-group-ingress"]]
    assert len(ingress) == 2
    ssh, within_group = ingress
    assert ssh[ssh.index("--cidr") + 1] == "203.0.113.7/32" and ssh[ssh.index("--port") + 1] == "22"
    assert "UserIdGroupPairs" in within_group[within_group.index("--ip-permissions") + 1]
    assert "0.0.0.0/0" not in run.stdout


@pytest.mark.parametrize("cidr", ["", "0.0.0.0/0", "10.0.0.0/4", "my-office"])
def test_the_security_group_script_refuses_an_open_or_missing_range(cidr):
    run = script(SECURITY_GROUP, "--dry-run", SSH_CIDR=cidr)
    assert run.returncode == 2
    assert "SSH_CIDR" in run.stderr and run.stdout == ""
