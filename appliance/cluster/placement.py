"""Where a model may run: Ray node labels and the label selectors that pin a model's replicas to nodes.

Every Ray node of the appliance carries the label ``appliance.io/node=<name>`` (the head: ``RAY_NODE_NAME``;
a worker: the name it joined with). A model with ``nodes: [a, b]`` in models.yaml gets a placement-group bundle
label selector ``{"appliance.io/node": "in(a,b)"}``, which Ray Serve applies to every bundle of every replica:
the engine and its workers are placed only on those nodes, or wait (the model is not ready) while none of them
has room. Without ``nodes`` Ray places the model wherever resources are. Pure: no Ray import.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

NODE_LABEL = "appliance.io/node"
# The memory of a worker's smallest GPU, in MiB, as nvidia-smi reported it at `join`: doctor's cluster-fit
# estimates a pinned model's memory fit on that machine from it (the head cannot ask another machine's GPUs).
GPU_MEMORY_LABEL = "appliance.io/gpu-memory-mib"
# A custom Ray resource only the head has: the ingress and PII replicas ask for a sliver of it, so Ray never
# places them on a worker machine (they write the audit log and read the API keys, which live on the head).
HEAD_RESOURCE = "appliance_head"
HEAD_SLIVER = 0.001
# A Ray (Kubernetes-style) label value: 63 characters at most, alphanumeric at both ends, '-', '_', '.' inside.
# Lower case only here, so that a name means one node however an operator spells it in .env and models.yaml.
NODE_NAME_RE = re.compile(r"[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?")
NODE_NAME_RULE = "1-63 lower-case letters, digits, '-', '_' or '.', starting and ending with a letter or digit"


def node_name_problem(name: str) -> str | None:
    """None when ``name`` can be a node label value, else what is wrong with it."""
    if NODE_NAME_RE.fullmatch(name):
        return None
    return f"expected {NODE_NAME_RULE}, found {name!r}"


def node_labels(name: str, gpu_memory_mib: int | None = None) -> str:
    """The ``ray start --labels`` value of a node (``key=value`` pairs, comma-separated)."""
    labels = f"{NODE_LABEL}={name}"
    return labels + (f",{GPU_MEMORY_LABEL}={gpu_memory_mib}" if gpu_memory_mib else "")


def gpu_memory_of(labels: dict[str, Any]) -> int | None:
    """The GPU memory (MiB) a node reported at join, or None (a CPU node, or one that joined without it)."""
    value = str(labels.get(GPU_MEMORY_LABEL) or "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def bundle_label_selector(nodes: Sequence[str]) -> list[dict[str, str]]:
    """Ray Serve's ``placement_group_bundle_label_selector`` for a model pinned to ``nodes`` (one selector,
    which Serve repeats for every bundle)."""
    if not nodes:
        raise ValueError("a model pinned to no node has no selector")
    value = nodes[0] if len(nodes) == 1 else "in(" + ",".join(sorted(set(nodes))) + ")"
    return [{NODE_LABEL: value}]


def head_only(actor_options: dict[str, Any], on: bool) -> dict[str, Any]:
    """``actor_options`` asking also for a sliver of the head-only resource when ``on`` (a cluster)."""
    return {**actor_options, "resources": {HEAD_RESOURCE: HEAD_SLIVER}} if on else actor_options
