"""``leave``'s first step: drain this worker node before its container stops.

``python -m appliance.cluster.drain SECONDS`` runs inside the ray-worker container (``leave`` executes it there,
where Ray and the head's token are). It asks Ray's GCS to drain this node with a deadline SECONDS from now (a
preemption drain: always accepted; Ray schedules nothing new on the node), then waits until no Serve replica runs
here any more or the deadline passes. Ray Serve migrates the replicas of a draining node: it starts each one's
replacement on a node the model may use and stops the old one once the replacement runs, so a model that may run
elsewhere keeps answering while its worker leaves. A replica no other node may run (a model pinned to this node
only) is stopped by Serve soon after the drain begins (measured: within 3 s, ray 2.60); its requests get 503 +
Retry-After until a node that may run it joins.

Prints one JSON line: ``{"accepted", "left", "moved", "stopped", "seconds", "reason"}`` (deployments still here,
now elsewhere, running nowhere). ``replicas_on`` and ``drained`` are pure.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.cluster.nodes import deployment_of_replica

DRAIN_REASON = "DRAIN_NODE_REASON_PREEMPTION"  # the node goes away whatever runs there (IDLE would be refused)
REASON_MESSAGE = "python -m appliance leave"
POLL_S = 1.0


def replicas_on(node_id: str, actors: Iterable[Mapping[str, Any]], *, here: bool = True) -> list[str]:
    """The Serve deployments with a live replica on ``node_id`` (``here=False``: on any other node), sorted, each
    once; Ray's actor table in."""
    found = set()
    for actor in actors:
        on_node = (actor.get("Address") or {}).get("NodeID") == node_id
        if actor.get("State") != "ALIVE" or on_node != here:
            continue
        deployment = deployment_of_replica(str(actor.get("Name") or ""))
        if deployment:
            found.add(deployment)
    return sorted(found)


@dataclass(frozen=True)
class Drained:
    left: list[str]  # still running on this node
    moved: list[str]  # were here, now run on another node
    stopped: list[str]  # were here, run nowhere now (no other node may run them, or not yet)

    @property
    def done(self) -> bool:
        return not self.left and not self.stopped


def drained(node_id: str, before: Iterable[str], actors: Iterable[Mapping[str, Any]]) -> Drained:
    """Pure: where the deployments that had a replica on ``node_id`` when the drain began are now."""
    rows = list(actors)
    here, elsewhere = set(replicas_on(node_id, rows)), set(replicas_on(node_id, rows, here=False))
    was = set(before)
    return Drained(sorted(was & here), sorted((was - here) & elsewhere), sorted(was - here - elsewhere))


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - inside the worker container (e2e-tested)
    args = list(sys.argv[1:] if argv is None else argv)
    deadline_s = float(args[0]) if args else 60.0
    import ray
    from ray._private import state
    from ray.core.generated import autoscaler_pb2

    ray.init(address="auto", logging_level=logging.ERROR, log_to_driver=False)
    try:
        node_id = ray.get_runtime_context().get_node_id()
        gcs = ray._private.worker.global_worker.gcs_client  # type: ignore[attr-defined]
        deadline_ms = time.time_ns() // 1_000_000 + int(deadline_s * 1000)
        reason = autoscaler_pb2.DrainNodeReason.Value(DRAIN_REASON)  # type: ignore[attr-defined]
        accepted, why = gcs.drain_node(node_id, reason, REASON_MESSAGE, deadline_ms)
        started = time.monotonic()
        before = replicas_on(node_id, state.actors().values())
        outcome = drained(node_id, before, state.actors().values())
        while accepted and not outcome.done and time.monotonic() - started < deadline_s:
            time.sleep(POLL_S)
            outcome = drained(node_id, before, state.actors().values())
        print(
            json.dumps(
                {
                    "accepted": bool(accepted),
                    "left": outcome.left,
                    "moved": outcome.moved,
                    "stopped": outcome.stopped,
                    "seconds": round(time.monotonic() - started, 1),
                    "reason": str(why or ""),
                }
            )
        )
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
