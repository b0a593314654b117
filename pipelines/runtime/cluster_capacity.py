"""What a job may size itself on, and asking an autoscaling cluster for it.

A Ray that vaepipe started itself (`ray_runtime.local_ray`) has a fixed size: a job that does not fit what
is up now never will, so it is refused at once. A Ray that vaepipe attached to (`ray.address`,
RAY_ADDRESS, `vaepipe submit`, a KubeRay RayJob) may be an autoscaling cluster whose head has 0 CPUs and
whose worker groups start at 0 nodes — every cluster under cluster/ is one — so what is up now says
nothing. There a job sizes itself on what the cluster can grow to (its autoscaler's node types × their
max workers), asks the autoscaler for its resource bundles (`ray.autoscaler.sdk.request_resources`) and
waits a bounded time for nodes that hold them (`ray.scale_up_timeout_s`).

Ray 2.60 has no public API for the node types, so they are read, in this order, from:
1. the cluster config in the GCS (`ray._private.state`), which Ray Train and Ray Data read for their own
   "can this ever fit" checks — empty unless the autoscaler reports it, which neither of Ray 2.60's
   autoscalers does on the launcher, KubeRay or a local `ray start`;
2. the RayCluster object, on KubeRay (KubeRay sets RAY_CLUSTER_NAME / RAY_CLUSTER_NAMESPACE in every
   pod): Ray's own `AutoscalingConfigProducer`, which the KubeRay autoscaler runs, reads it through the
   Kubernetes API with the pod's service account (KubeRay grants the head's account `get` on its
   RayCluster when autoscaling is on);
3. the autoscaling config file of a head started with `ray start --head --autoscaling-config=FILE`
   (the cluster launcher's ~/ray_bootstrap_config.yaml; Ray's fake multi-node clusters in the tests),
   when this process runs on the head (a Ray Jobs driver does): the file named on the command line of
   the cluster's autoscaler monitor.
A cluster with an autoscaler whose node types none of these give still gets its request and the bounded
wait, sized on nothing (`Capacity.known` is False); one without an autoscaler is of fixed size — and so is
a plain `ray start --head` cluster, whose monitor only reports the nodes there are (`read_only_report`).

Every private Ray name used here is listed in RAY_INTERNALS and reached through `ray_internal`, so a Ray
upgrade that drops one fails `tests/pipelines/test_cluster_capacity.py` by name.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from pipelines.errors import UserError
from pipelines.runtime.ray_private import RayInternalsChanged, ray_internal

logger = logging.getLogger(__name__)

Bundle = dict[str, float]

# Resources of a cluster whose size nobody can tell: more than any job asks for, and finite so that
# arithmetic such as floor(cpus / per_trial) still works.
UNKNOWN_TOTAL = 1e9
# Ray Data's read and map tasks need a CPU beside a job's train workers or model actors, or the job
# waits forever (docs/design.md, "Ray on small machines").
READ_CPUS = 1.0

# Source 3 relies on the command line Ray gives the autoscaler monitor (ray._private.services.start_monitor).
MONITOR_SCRIPT_SUFFIXES = ("autoscaler/_private/monitor.py", "autoscaler/v2/monitor.py")
MONITOR_GCS_FLAG = "--gcs-address="
MONITOR_CONFIG_FLAG = "--autoscaling-config="


class ScaleUpError(UserError, RuntimeError):
    """A job's resources never came: the message names what was asked for and what to change."""


# --- which Ray this is ---------------------------------------------------------------------------------

_STARTED_HERE: set[str] = set()  # GCS addresses of the Rays this process started (ray_runtime.local_ray)


def remember_started_here(gcs_address: str) -> None:
    _STARTED_HERE.add(gcs_address)


def forget_started_here(gcs_address: str) -> None:
    _STARTED_HERE.discard(gcs_address)


def ray_started_here() -> bool:
    """True when the Ray this process is connected to is one that this process started: fixed in size."""
    import ray

    return ray.get_runtime_context().gcs_address in _STARTED_HERE


# --- node types ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeType:
    """A kind of worker node the autoscaler may start: its resources and how many it may run at once."""

    name: str
    resources: Bundle
    max_nodes: int

    def describe(self) -> str:
        return f"{self.name} {describe_resources(self.resources)} × {self.max_nodes}"


def node_types_from_autoscaling_config(config: dict) -> list[NodeType]:
    """The worker node types of an autoscaling config (`available_node_types` as `ray up`, KubeRay's
    autoscaler and Ray's fake multi-node provider use it); the head node type is left out."""
    default_max = int(config.get("max_workers", 0))
    types = []
    for name, node_type in (config.get("available_node_types") or {}).items():
        if name == config.get("head_node_type"):
            continue
        resources = {key: float(value) for key, value in (node_type.get("resources") or {}).items()
                     if isinstance(value, (int, float)) and not isinstance(value, bool)}
        max_nodes = int(node_type.get("max_workers", default_max))
        if max_nodes > 0:
            types.append(NodeType(name, resources, max_nodes))
    return types


def node_types_from_gcs_cluster_config(cluster_config) -> list[NodeType]:
    """The node groups of the GCS cluster config (autoscaler_pb2.ClusterConfig) that may run nodes."""
    return [NodeType(group.name, {key: float(value) for key, value in group.resources.items()}, group.max_count)
            for group in cluster_config.node_group_configs if group.max_count > 0]


def _gcs_node_types() -> Optional[list[NodeType]]:
    cluster_config = ray_internal("ray._private.state:state").get_cluster_config()
    return node_types_from_gcs_cluster_config(cluster_config) if cluster_config is not None else None


def _kuberay_node_types() -> Optional[list[NodeType]]:
    name, namespace = os.environ.get("RAY_CLUSTER_NAME"), os.environ.get("RAY_CLUSTER_NAMESPACE")
    if not (name and namespace):
        return None
    producer = ray_internal("ray.autoscaler._private.kuberay.autoscaling_config:AutoscalingConfigProducer")
    try:
        return node_types_from_autoscaling_config(producer(name, namespace)())
    except Exception as err:  # no token, no RBAC, API server unreachable: the sources after this one decide
        logger.warning("could not read RayCluster %s/%s for its worker groups: %s", namespace, name, err)
        return None


def monitor_autoscaling_config_path(gcs_address: str, proc: Path = Path("/proc")) -> Optional[Path]:
    """The config file of the autoscaler monitor of the cluster at `gcs_address`, when it runs on this machine.

    Matched by the GCS port: a machine may run several Rays (tests do), each with its own monitor."""
    port = gcs_address.rsplit(":", 1)[-1]
    for entry in proc.glob("[0-9]*"):
        try:
            arguments = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # exited meanwhile, or not ours to read
        if not any(argument.endswith(MONITOR_SCRIPT_SUFFIXES) for argument in arguments):
            continue
        gcs = [a.removeprefix(MONITOR_GCS_FLAG) for a in arguments if a.startswith(MONITOR_GCS_FLAG)]
        config = [a.removeprefix(MONITOR_CONFIG_FLAG) for a in arguments if a.startswith(MONITOR_CONFIG_FLAG)]
        if gcs and config and gcs[0].rsplit(":", 1)[-1] == port:
            return Path(config[0]).expanduser()
    return None


def _head_config_file_node_types(gcs_address: str) -> Optional[list[NodeType]]:
    import yaml

    path = monitor_autoscaling_config_path(gcs_address)
    if path is None:
        return None
    try:
        return node_types_from_autoscaling_config(yaml.safe_load(path.read_text()))  # JSON is YAML too
    except (OSError, yaml.YAMLError) as err:
        logger.warning("could not read the autoscaling config %s: %s", path, err)
        return None


def autoscaler_node_types() -> Optional[tuple[list[NodeType], str]]:
    """The connected cluster's worker node types and where they were read, or None when no source has them."""
    import ray

    gcs_address = ray.get_runtime_context().gcs_address
    sources: list[tuple[str, Callable[[], Optional[list[NodeType]]]]] = [
        ("the GCS cluster config", _gcs_node_types),
        (f"RayCluster {os.environ.get('RAY_CLUSTER_NAMESPACE')}/{os.environ.get('RAY_CLUSTER_NAME')}",
         _kuberay_node_types),
        ("the head's autoscaling config", lambda: _head_config_file_node_types(gcs_address)),
    ]
    for source, read in sources:
        types = read()
        if types is not None:
            return types, source
    return None


def autoscaler_status() -> Optional[dict]:
    """The v1 autoscaler monitor's last status report (what `ray status` prints), or None before the first."""
    key = ray_internal("ray._private.ray_constants:DEBUG_AUTOSCALING_STATUS")
    raw = ray_internal("ray.experimental.internal_kv:_internal_kv_get")(key)
    return json.loads(raw) if raw else None


def autoscaler_running() -> bool:
    """Whether the connected cluster has an autoscaler that can add nodes: v2, or a v1 monitor that reports one
    and is not read-only."""
    if ray_internal("ray.autoscaler.v2.utils:is_autoscaler_v2")(fetch_from_server=True):
        return True
    report = (autoscaler_status() or {}).get("autoscaler_report")
    return bool(report) and not read_only_report(report)


def read_only_report(report: dict) -> bool:
    """Whether a v1 monitor's report comes from its read-only provider: the monitor that `ray start --head`
    without --autoscaling-config runs (manual clusters, laptops) reports the nodes there are and never starts
    one. It names each node's type after the node itself; a real provider names its configured types."""
    readonly_type = ray_internal("ray.autoscaler._private.util:format_readonly_node_type")
    mapping = report.get("node_type_mapping") or {}
    return bool(mapping) and all(kind == readonly_type(node_id) for node_id, kind in mapping.items())


# --- live nodes and packing ----------------------------------------------------------------------------

HEAD_MARKER = "node:__internal_head__"  # a resource only the head node has


def live_nodes() -> list[Bundle]:
    """The total resources of every live node (`ray.nodes()`)."""
    import ray

    return [{key: float(value) for key, value in node["Resources"].items()}
            for node in ray.nodes() if node.get("Alive")]


def _fits(bundle: Bundle, free: Bundle) -> bool:
    return all(free.get(key, 0.0) + 1e-9 >= amount for key, amount in bundle.items() if amount > 0)


def _take(bundle: Bundle, free: Bundle) -> None:
    for key, amount in bundle.items():
        free[key] = free.get(key, 0.0) - amount


def pack(bundles: Sequence[Bundle], nodes: Sequence[Bundle], node_types: Sequence[NodeType] = ()) -> bool:
    """Whether `bundles` fit, each whole on one node, onto `nodes` plus up to `max_nodes` new nodes of each
    type. First fit, largest bundles first; a new node is of the type that fits with the fewest GPUs, as
    Ray's autoscaler keeps GPU nodes for GPU work."""
    free = [dict(node) for node in nodes]
    started: Counter = Counter()
    by_size = sorted(bundles, key=lambda b: (b.get("GPU", 0.0), b.get("CPU", 0.0), sum(b.values())), reverse=True)
    for bundle in by_size:
        node = next((node for node in free if _fits(bundle, node)), None)
        if node is None:
            candidates = [t for t in node_types if started[t.name] < t.max_nodes and _fits(bundle, t.resources)]
            if not candidates:
                return False
            new_type = min(candidates, key=lambda t: (t.resources.get("GPU", 0.0), t.resources.get("CPU", 0.0)))
            started[new_type.name] += 1
            node = dict(new_type.resources)
            free.append(node)
        _take(bundle, node)
    return True


@dataclass(frozen=True)
class Capacity:
    """What a job may size itself on: the nodes there are, plus those the autoscaler may add."""

    nodes: tuple[Bundle, ...]  # up now (fixed), or the head (autoscaling: workers come from node_types)
    node_types: tuple[NodeType, ...] = ()
    can_grow: bool = False  # an autoscaler runs: ask it for what a job needs, and wait
    known: bool = True  # False: an autoscaler whose node types no source gave
    source: str = "the nodes up now"
    phrase: str = field(default="this Ray cluster has", compare=False)  # "... 4 CPUs" in messages

    def total(self, resource: str) -> float:
        """How much of `resource` the cluster has or can grow to (UNKNOWN_TOTAL when nobody can tell)."""
        if not self.known:
            return UNKNOWN_TOTAL
        return (sum(node.get(resource, 0.0) for node in self.nodes)
                + sum(t.resources.get(resource, 0.0) * t.max_nodes for t in self.node_types))

    def holds(self, bundles: Sequence[Bundle]) -> bool:
        return not self.known or pack(bundles, self.nodes, self.node_types)

    def copies_that_fit(self, bundles: Sequence[Bundle], limit: int) -> int:
        """The most copies of `bundles` (one trial's, say), up to `limit`, that fit at once; 0 when not one does."""
        return next((k for k in range(limit, 0, -1) if self.holds(list(bundles) * k)), 0)

    def describe(self) -> str:
        if not self.known:
            return "an autoscaling cluster whose node types could not be read"
        if not self.can_grow:
            return f"{len(self.nodes)} node(s), {describe_bundles(self.nodes)} ({self.source})"
        types = ", ".join(t.describe() for t in self.node_types) or "none"
        return f"worker node types {types} ({self.source})"


def cluster_capacity() -> Capacity:
    """What the connected Ray has (started here, or no autoscaler) or can grow to (autoscaler node types)."""
    nodes = live_nodes()
    if ray_started_here():
        return Capacity(tuple(nodes), source="a local Ray started by vaepipe")
    found = autoscaler_node_types()
    if found is not None:
        node_types, source = found
        heads = tuple(node for node in nodes if HEAD_MARKER in node)
        return Capacity(heads, tuple(node_types), can_grow=True, source=source,
                        phrase="this cluster can grow to at most")
    if autoscaler_running():
        return Capacity((), can_grow=True, known=False, source="an autoscaler without readable node types")
    return Capacity(tuple(nodes), source="no autoscaler that adds nodes")


# --- asking the autoscaler -------------------------------------------------------------------------------


def _sum(bundles: Iterable[Bundle]) -> Bundle:
    total: Counter = Counter()
    for bundle in bundles:
        total.update(bundle)
    return dict(total)


def describe_resources(resources: Bundle) -> str:
    """`{CPU: 4, GPU: 1}`: CPUs, GPUs and custom resources; memory and Ray's per-node markers left out."""
    shown = {key: value for key, value in resources.items()
             if not key.startswith("node:") and key not in ("memory", "object_store_memory")}
    return "{" + ", ".join(f"{key}: {value:g}" for key, value in sorted(shown.items())) + "}"


def describe_bundles(bundles: Sequence[Bundle]) -> str:
    """`2 × {CPU: 0.5, GPU: 1} + 1 × {CPU: 1}`: a request as people read it."""
    counts = Counter(describe_resources(bundle) for bundle in bundles)
    return " + ".join(f"{count} × {shape}" for shape, count in counts.items()) or "nothing"


def _request_resources(bundles: list[Bundle]) -> None:
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=bundles)


def _autoscaler_activity() -> str:
    """What the v1 autoscaler says it is doing, for the progress line ('' when it says nothing)."""
    try:
        report = (autoscaler_status() or {}).get("autoscaler_report") or {}
    except RayInternalsChanged:
        return ""
    launching = Counter(report.get("pending_launches", {})) + Counter(t for _, t, _ in report.get("pending_nodes", []))
    parts = [f"starting {', '.join(f'{kind} × {count}' for kind, count in launching.items())}"] if launching else []
    if report.get("failed_nodes"):
        parts.append(f"{len(report['failed_nodes'])} node(s) failed to start")
    return "; ".join(parts)


def request_and_wait(bundles: Sequence[Bundle], timeout_s: float, progress: Callable[[str], None] = print,
                     purpose: str = "", poll_s: float = 1.0, progress_every_s: float = 30.0) -> float:
    """Ask the autoscaler for `bundles` and return, with the seconds waited, once the live nodes can hold
    them all (each bundle whole on one node; 0 when they already can). Says what it waits for when it
    starts and every `progress_every_s`. Raises ScaleUpError naming the request after `timeout_s`.

    The request is withdrawn when this returns or raises: Ray keeps one request per cluster, which would
    otherwise hold the nodes after the job and be overwritten by the next job's. The job's own tasks and
    placement groups keep the nodes busy from here on, and are themselves demand the autoscaler serves."""
    bundles = [dict(bundle) for bundle in bundles]
    request = describe_bundles(bundles) + (f" ({purpose})" if purpose else "")
    if pack(bundles, live_nodes()):
        return 0.0
    started = time.monotonic()
    _request_resources(bundles)
    try:
        next_report = started
        while True:
            waited = time.monotonic() - started
            nodes = live_nodes()
            if pack(bundles, nodes):
                progress(f"the cluster grew to hold {request} in {waited:.0f} s: "
                         f"{len(nodes)} node(s) with {describe_resources(_sum(nodes))}")
                return waited
            if waited >= timeout_s:
                raise ScaleUpError(
                    f"the Ray cluster did not grow to hold {request} within ray.scale_up_timeout_s = {timeout_s:g} s "
                    f"(up now: {len(nodes)} node(s) with {describe_resources(_sum(nodes))}); see what its autoscaler "
                    "says (`ray status` on the head: the node types' max workers, cloud quota, pods that cannot be "
                    "scheduled), or raise ray.scale_up_timeout_s")
            if time.monotonic() >= next_report:
                activity = _autoscaler_activity()
                progress(f"waiting for the autoscaler to add nodes for {request}: up now {len(nodes)} node(s) with "
                         f"{describe_resources(_sum(nodes))}{f'; autoscaler: {activity}' if activity else ''}; "
                         f"{waited:.0f} s of {timeout_s:g} s")
                next_report += progress_every_s
            time.sleep(poll_s)
    finally:
        _request_resources([])


def scale_up_for(capacity: Capacity, bundles: Sequence[Bundle], timeout_s: float, progress: Callable[[str], None],
                 purpose: str) -> float:
    """On a cluster that can grow, get `bundles` from its autoscaler (request_and_wait); seconds waited.

    Raises ScaleUpError at once when the node types are known and cannot hold the request even at their
    max workers. A cluster that cannot grow is left alone (0): its callers check it against what is up."""
    if not capacity.can_grow:
        return 0.0
    if not capacity.holds(bundles):
        raise ScaleUpError(f"{describe_bundles(bundles)} ({purpose}) can never be scheduled on this cluster: "
                           f"its {capacity.describe()} cannot hold it even at their max workers (a bundle must "
                           "fit one node); ask for less per worker, or add a node type that can hold it")
    return request_and_wait(bundles, timeout_s, progress, purpose)


def check_placeable(capacity: Capacity, bundles: Sequence[Bundle], asked: str, fix: str,
                    error: Callable[[str], Exception]) -> None:
    """Raise `error(message)` when `bundles` cannot all be placed, each whole on one node, on what the cluster
    has (fixed size) or can grow to (its node types at their max workers). Totals are not enough: two
    2-CPU nodes have 4 CPUs, but a 3-CPU worker never starts on either, and Ray waits for it forever.
    `asked` says what the bundles are, naming the config fields; `fix` what to change."""
    if capacity.holds(bundles):
        return
    at_most = " even at their max workers" if capacity.can_grow else ""
    raise error(f"{asked} — {describe_bundles(bundles)} — cannot be placed on this cluster's {capacity.describe()}"
                f"{at_most}: each must fit whole on one node; {fix}")


def worker_bundles(num_workers: int, cpus_per_worker: float, gpus_per_worker: float, use_gpu: bool) -> list[Bundle]:
    """One resource bundle per Ray Train worker, as the trainer's ScalingConfig asks for them."""
    bundle = {"CPU": cpus_per_worker, **({"GPU": gpus_per_worker} if use_gpu else {})}
    return [dict(bundle) for _ in range(num_workers)]
