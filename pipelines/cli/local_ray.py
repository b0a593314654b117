"""`vaepipe ray up|down|status`: a long-lived local Ray that jobs attach to (`runtime.warm_ray`)."""
from __future__ import annotations

import argparse

from pipelines.cli.console import result


def cmd_ray(args: argparse.Namespace) -> int:
    from pipelines.runtime.ray_session import RAY_ENVIRONMENT, RayConfig, local_num_cpus
    from pipelines.runtime.warm_ray import WarmRay
    from pipelines.storage.embedded_server import apply_store_env

    warm = WarmRay()
    if args.action == "up":
        apply_store_env()  # its workers read and write the store the jobs use
        running = warm.status()
        info = running or warm.up(local_num_cpus(RayConfig(num_cpus=args.num_cpus)), env=RAY_ENVIRONMENT)
        if running is None and args.daemon_priority == "idle":
            warm.idle_priority_for_daemons(info)
        result(f"local Ray {'already ' if running else ''}running at {info.address} ({info.num_cpus:g} logical CPUs; "
              f"dashboard {info.dashboard})")
        result("jobs started from here (or with the same $VAEPIPE_HOME) attach to it; `vaepipe ray down` stops it")
    elif args.action == "down":
        result("local Ray stopped" if warm.down() else "no local Ray was running")
    else:
        info = warm.status()
        if info is None:
            result(f"local Ray: not running ({warm.root})")
            return 3
        where = "AWS S3 / a local path" if info.storage_endpoint is None else info.storage_endpoint
        result(f"local Ray: running at {info.address} ({info.num_cpus:g} logical CPUs; dashboard {info.dashboard}; "
              f"storage endpoint {where})")
        if not info.serves_this_environment():
            result("  jobs from this shell do not attach: their AWS_ENDPOINT_URL differs from the one it was started "
                  "with")
    return 0


def register(commands) -> None:
    ray = commands.add_parser(
        "ray", help="start, stop or check a long-lived local Ray that jobs attach to",
        description="A job that runs on Ray (engine ray, or auto above the measured crossover) starts a local Ray "
                    "and stops it after, paying ray.init and teardown (seconds) every time. `vaepipe ray up` starts "
                    "one that keeps running; jobs started from this directory (or with the same $VAEPIPE_HOME) "
                    "attach to it while ray.address and RAY_ADDRESS are unset. Its workers get this shell's "
                    "environment: start the store first (`vaepipe storage up`). The same with Ray's own tools: "
                    "`ray start --head`, then jobs with --set ray.address=auto.",
        epilog="Examples:\n  vaepipe storage up && vaepipe ray up\n"
               "  vaepipe score --model digits@latest --input digits --engine ray   # attaches, no ray.init\n"
               "  vaepipe ray status\n  vaepipe ray down",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ray.add_argument("action", choices=["up", "down", "status"])
    ray.add_argument("--num-cpus", type=float, help="logical CPUs (default: this machine's cores, at least 4)")
    ray.add_argument("--daemon-priority", choices=["idle", "normal"], default="idle",
                     help="CPU priority of its own daemons (default idle: they never preempt the jobs' workers)")
    ray.set_defaults(handler=cmd_ray)
