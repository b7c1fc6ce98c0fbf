"""What the gate knows of batch work: the in-process caller of a batch line, and the live load that batch work
yields to.

A batch line is sent through the replica's own ASGI app (the gate, then the OpenAI routes) with a
:class:`BatchCaller` in the ASGI scope's ``state``. Only code inside the replica can put it there (a client
sets headers, never scope state); the gate then takes the batch owner's key by name from its key store (a key
revoked since the upload is refused like any other) instead of reading an Authorization header.
"""

from __future__ import annotations

from dataclasses import dataclass

BATCH_CALLER_STATE = "appliance_batch_caller"


@dataclass(frozen=True)
class BatchCaller:
    key: str  # the name of the API key that created the batch (``anonymous`` when auth is off)
    batch_id: str


class LiveRequests:
    """Live (not batch) generation and pooling requests in flight in this replica: the gate counts them, the batch
    runner starts a line only while there are at most BATCH_IDLE_MAX_LIVE_REQUESTS."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, delta: int) -> None:
        self.count = max(0, self.count + delta)


LIVE = LiveRequests()  # one per process: the gate and the runner of an ingress replica share it
