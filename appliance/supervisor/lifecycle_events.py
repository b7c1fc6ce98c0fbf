"""Model lifecycle transitions as supervisor events: each new row of the registry's history, reported once.

The registry's history is the record (append-only, written by serve's applier); this job only reads it. The
supervisor remembers the last row it reported in a small JSON file beside the watchdog's state, so a restart
of the supervisor neither repeats nor loses events. On its first run it starts at the newest row (a fresh
supervisor does not replay the whole history); a registry restored from a backup with fewer rows resets it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path

from appliance.atomic import write_atomic
from appliance.errors import ApplianceError
from appliance.registry.store import RegistryStore
from appliance.telemetry.notifier import SupervisorNotifier

_LOGGER = logging.getLogger(__name__)
INTERVAL_S = 5.0


class LifecycleEventsJob:
    def __init__(
        self, open_store: Callable[[], RegistryStore], notifier: SupervisorNotifier, cursor_path: Path
    ) -> None:
        self.open_store, self.notifier, self.cursor_path = open_store, notifier, cursor_path
        self._store: RegistryStore | None = None
        self._unreadable = False  # warned once until it reads again

    async def __call__(self) -> None:
        await asyncio.to_thread(self.run_once)

    def run_once(self) -> int:
        """Report the transitions recorded since the last run; returns how many."""
        try:
            if self._store is None:
                self._store = self.open_store()
            store = self._store
            if not store.ready():
                return 0  # no registry yet (nothing deployed), or one this code's schema does not match
            last = store.last_event_id()
            cursor = self._load()
            if cursor is None or cursor > last:
                if cursor is not None:
                    _LOGGER.warning("model registry history ends at %d, before %d: reporting from there", last, cursor)
                self._save(last)
                return 0
            events = store.events_after(cursor)
        except ApplianceError as err:
            if not self._unreadable:
                _LOGGER.warning("model registry unreadable, lifecycle events wait: %s", err)
            self._unreadable = True
            return 0
        self._unreadable = False
        for event in events:
            self.notifier.model_transition(event)
        if events:
            self._save(events[-1].id)
        return len(events)

    def _load(self) -> int | None:
        try:
            return int(json.loads(self.cursor_path.read_text())["reported_up_to"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as err:
            _LOGGER.warning("ignoring unreadable %s: %s", self.cursor_path, err)
            return None

    def _save(self, event_id: int) -> None:
        write_atomic(self.cursor_path, json.dumps({"reported_up_to": event_id}), mode=0o600)
