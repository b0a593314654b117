"""The nightly schedule dates each run by its tick, not by the clock, on both schedulers.

No cluster here: the shell steps between a tick and `vaepipe nightly` run for real (bash, sh, Python's
`list2cmdline` as `ray job submit` uses it) with what Kubernetes and KubeRay 1.7 would put around them --
the names they give a tick's Job / RayJob (<name>-<Unix minutes>), the labels the downward API reads --
taken from their source (kubernetes pkg/controller/cronjob getJobName; kuberay raycronjob_controller.go
getRayJobName, rayjob_controller.go getSubmitterTemplate, common/job.go BuildJobSubmitCommand).
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import yaml

from pipelines.cli.main import build_parser
from pipelines.jobs.nightly import nightly_config, run_date
from tests.infra.test_manifests import ROOT, manifests_of, nightly_rayjob

TICK = datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc)
TICK_MINUTES = int(TICK.timestamp()) // 60
SUBMITTER_NAME_LABEL = "ray.io/originated-from-cr-name"  # KubeRay labels the submitter pod with its RayJob's name


def raycronjob() -> dict:
    (manifest,) = [m for _, m in manifests_of("RayCronJob")]
    return manifest


def cronjob() -> dict:
    (manifest,) = [m for _, m in manifests_of("CronJob")]
    return manifest


def nightly_rayjob_specs() -> list[dict]:
    return [raycronjob()["spec"]["jobTemplate"], nightly_rayjob()["spec"]]


def entrypoint_argv_on_the_head(entrypoint: str, submitter_env: dict[str, str]) -> list[str]:
    """The argv `vaepipe` gets on the head: the submitter's bash expands the entrypoint inside KubeRay's
    `ray job submit … -- <entrypoint> ;`, Ray's CLI joins what follows `--` with list2cmdline, and the
    job supervisor runs that string with a shell."""
    join = f'"{sys.executable}" -c "import subprocess, sys; print(subprocess.list2cmdline(sys.argv[1:]))"'
    submitted = subprocess.run(
        ["bash", "-ce", f'ray() {{ shift 5; {join} "$@"; }}; ray job submit --address http://head:8265 -- '
                        f'{entrypoint} ;'],
        env={"PATH": os.environ["PATH"], **submitter_env}, capture_output=True, text=True, check=True).stdout.strip()
    show = f'"{sys.executable}" -c "import json, sys; print(json.dumps(sys.argv[1:]))"'
    ran = subprocess.run(["sh", "-c", f'vaepipe() {{ {show} "$@"; }}; {submitted}'], capture_output=True,
                         text=True, check=True)
    return json.loads(ran.stdout)


@pytest.mark.parametrize("spec", nightly_rayjob_specs(), ids=["raycronjob", "cronjob-rayjob"])
def test_the_submitter_passes_its_rayjobs_name_to_the_entrypoint(spec):
    (container,) = spec["submitterPodTemplate"]["spec"]["containers"]
    (variable,) = [e for e in container["env"] if e["name"] == "VAEPIPE_SCHEDULED_JOB"]
    assert variable["valueFrom"]["fieldRef"]["fieldPath"] == f"metadata.labels['{SUBMITTER_NAME_LABEL}']"
    assert spec["submitterPodTemplate"]["spec"]["restartPolicy"] == "Never"  # a Job's pods may not be Always
    # `ray job submit` needs the cluster's Ray: the head's image
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert container["image"] == head["image"] and "command" not in container  # KubeRay writes the command

    argv = entrypoint_argv_on_the_head(spec["entrypoint"], {"VAEPIPE_SCHEDULED_JOB": f"vaepipe-nightly-{TICK_MINUTES}"})
    assert argv == ["nightly", "/configs/nightly.yaml", "--scheduled-job", f"vaepipe-nightly-{TICK_MINUTES}"]
    args = build_parser().parse_args(argv)
    config = nightly_config(str(ROOT / "configs" / "nightly.yaml"))
    assert run_date(config, args.date, args.scheduled_time, args.scheduled_job).day == date(2026, 11, 25)


def test_a_rayjob_submitted_without_the_variable_runs_for_now():
    argv = entrypoint_argv_on_the_head(nightly_rayjob()["spec"]["entrypoint"], {})
    assert argv[-2:] == ["--scheduled-job", ""]
    args = build_parser().parse_args(argv)
    now = datetime(2026, 11, 25, 23, 0, tzinfo=timezone.utc)
    config = nightly_config(str(ROOT / "configs" / "nightly.yaml"))
    assert run_date(config, args.date, args.scheduled_time, args.scheduled_job or None, now=now).day == date(2026, 11, 25)


def test_the_configs_time_zone_is_the_schedules():
    zone = nightly_config(str(ROOT / "configs" / "nightly.yaml")).time_zone
    assert zone == cronjob()["spec"]["timeZone"] == raycronjob()["spec"]["timeZone"]


# --- the CronJob's scheduler pod ---------------------------------------------------------------------------------


def run_scheduler(tmp_path: Path, job_name: str, rayjob_exists: bool = False) -> tuple[int, list[str], dict | None]:
    """Run the scheduler container's script as its pod would (the RayJob manifest at its mount path, JOB_NAME
    from the downward API) with a `kubectl` that records its arguments and the manifest it is given;
    `create` fails as for an existing name when `rayjob_exists`. (exit status, kubectl calls, created RayJob)"""
    pod = cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (mount,) = container["volumeMounts"]
    (configmap,) = [m for _, m in manifests_of("ConfigMap")
                    if m["metadata"]["name"] == next(v for v in pod["volumes"]
                                                     if v["name"] == mount["name"])["configMap"]["name"]]
    mounted = tmp_path / "mount"
    mounted.mkdir()
    for name, text in configmap["data"].items():
        (mounted / name).write_text(text)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "kubectl.log"
    (bin_dir / "kubectl").write_text(f"""#!/bin/bash
echo "$*" >> {log}
if [[ $1 == create ]]; then cat > {tmp_path}/created.yaml; {"exit 1" if rayjob_exists else "exit 0"}; fi
""")
    (bin_dir / "kubectl").chmod(0o755)
    (variable,) = container["env"]
    assert variable["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['batch.kubernetes.io/job-name']"
    script = container["args"][0].replace(mount["mountPath"] + "/", f"{mounted}/")
    done = subprocess.run([*container["command"], script], env={"PATH": f"{bin_dir}:{os.environ['PATH']}",
                                                                 variable["name"]: job_name},
                          capture_output=True, text=True)
    created = tmp_path / "created.yaml"
    return done.returncode, log.read_text().splitlines(), yaml.safe_load(created.read_text()) if created.exists() else None


def test_the_scheduler_names_the_rayjob_for_its_jobs_tick(tmp_path):
    status, calls, created = run_scheduler(tmp_path, f"vaepipe-nightly-{TICK_MINUTES}")
    assert status == 0 and calls == ["create -f -"]
    expected = nightly_rayjob()
    metadata = {k: v for k, v in expected["metadata"].items() if k != "generateName"}
    assert created == {**expected, "metadata": {**metadata, "name": f"vaepipe-nightly-run-{TICK_MINUTES}"}}
    # the night's date, as `vaepipe nightly --scheduled-job <that name>` reads it
    config = nightly_config(str(ROOT / "configs" / "nightly.yaml"))
    assert run_date(config, scheduled_job=created["metadata"]["name"]).day == date(2026, 11, 25)


def test_a_retried_scheduler_finds_the_nights_rayjob_instead_of_creating_a_second(tmp_path):
    status, calls, _ = run_scheduler(tmp_path, f"vaepipe-nightly-{TICK_MINUTES}", rayjob_exists=True)
    assert status == 0 and calls == ["create -f -", f"get rayjob vaepipe-nightly-run-{TICK_MINUTES}"]


def test_a_job_made_by_hand_schedules_a_rayjob_for_now(tmp_path):
    before = int(datetime.now(timezone.utc).timestamp()) // 60
    status, _, created = run_scheduler(tmp_path, "nightly-now")
    after = int(datetime.now(timezone.utc).timestamp()) // 60
    assert status == 0
    minutes = int(created["metadata"]["name"].removeprefix("vaepipe-nightly-run-"))
    assert before <= minutes <= after


def test_the_readme_runs_a_night_by_hand_from_the_cronjob():
    readme = (ROOT / "cluster" / "README.md").read_text()
    assert f"--from=cronjob/{cronjob()['metadata']['name']}" in readme
    assert shlex.split(nightly_rayjob()["spec"]["entrypoint"])[:3] == ["vaepipe", "nightly", "/configs/nightly.yaml"]
