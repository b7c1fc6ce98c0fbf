"""A side under test as a group of processes that can be frozen and whose CPU time can be read.

An idle vLLM CPU server busy-polls (its engine core and worker take 30-35 % of a core each), so the side not
being measured is frozen, not merely left idle. Host processes (raw vLLM, the Serve app on the host) run in a
cgroup of their own, made here (v1 freezer + cpuacct, or v2), which every child inherits; the compose stack's
containers are paused and unpaused through Docker, which uses the same freezer. CPU time is read from the
cgroups; the engine's own share from ``/proc/PID/stat`` of the vLLM engine processes.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

CGROUP_ROOT = Path("/sys/fs/cgroup")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ENGINE_MARKERS = ("EngineCore", "VLLM::Worker")  # vLLM's process titles for its engine core and worker


def cgroup_v2() -> bool:
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def process_cpu_ns(pid: int) -> int:
    """CPU time of one process (all its threads, user + system) in ns; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // CLOCK_TICKS


def is_engine(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return any(marker in cmdline for marker in ENGINE_MARKERS)


def cgroup_cpu_ns(path: Path) -> int:
    """CPU time of every process in the cgroup directory ``path`` so far (ns), v1 (cpuacct) or v2."""
    if cgroup_v2():
        for line in (path / "cpu.stat").read_text().splitlines():
            if line.startswith("usage_usec "):
                return int(line.split()[1]) * 1000
        return 0
    return int((path / "cpuacct.usage").read_text())


def processes_cpu_ns(pids: list[int]) -> int:
    return sum(process_cpu_ns(pid) for pid in pids)


class Group(ABC):
    """Processes that are frozen and thawed together."""

    name: str

    @abstractmethod
    def freeze(self) -> None: ...

    @abstractmethod
    def thaw(self) -> None: ...

    @abstractmethod
    def cpu_ns(self) -> int:
        """CPU time of every process of the side so far (ns)."""

    @abstractmethod
    def pids(self) -> list[int]: ...

    def engine_pids(self) -> list[int]:
        return [pid for pid in self.pids() if is_engine(pid)]


class HostGroup(Group):
    """A cgroup made for processes started here; ``enter`` (a ``preexec_fn``) puts the child in it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.v2 = cgroup_v2()
        if self.v2:
            self.dirs = {"all": CGROUP_ROOT / f"appliance-bench-{name}"}
        else:
            self.dirs = {c: CGROUP_ROOT / c / f"appliance-bench-{name}" for c in ("freezer", "cpuacct")}
        try:
            for path in self.dirs.values():
                path.mkdir(exist_ok=True)
        except OSError as err:
            raise SystemExit(
                f"bench: cannot make the cgroup {path} ({err}); the benchmark freezes the side it is "
                "not measuring through cgroups: run it as root (make bench)"
            ) from None

    def enter(self) -> None:
        for path in self.dirs.values():
            (path / "cgroup.procs").write_text(str(os.getpid()))

    def _freezer(self, frozen: bool) -> None:
        if self.v2:
            (self.dirs["all"] / "cgroup.freeze").write_text("1" if frozen else "0")
            return
        state = self.dirs["freezer"] / "freezer.state"
        state.write_text("FROZEN" if frozen else "THAWED")
        deadline = time.monotonic() + 30
        while frozen and state.read_text().strip() != "FROZEN" and time.monotonic() < deadline:
            time.sleep(0.05)

    def freeze(self) -> None:
        self._freezer(True)

    def thaw(self) -> None:
        self._freezer(False)

    def cpu_ns(self) -> int:
        return cgroup_cpu_ns(self.dirs["all" if self.v2 else "cpuacct"])

    def pids(self) -> list[int]:
        path = self.dirs["all" if self.v2 else "cpuacct"] / "cgroup.procs"
        return [int(p) for p in path.read_text().split()]

    def remove(self) -> None:
        self.thaw()
        for path in self.dirs.values():
            try:
                path.rmdir()
            except OSError:
                pass


def container_cgroup(pid: int) -> Path:
    """The CPU-accounting cgroup directory of a container's main process."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if cgroup_v2() and controllers == "":
            return CGROUP_ROOT / path.lstrip("/")
        if "cpuacct" in controllers.split(","):
            return CGROUP_ROOT / "cpuacct" / path.lstrip("/")
    raise RuntimeError(f"no cpuacct cgroup for pid {pid}")


def docker_proxies(ports: tuple[int, ...]) -> list[int]:
    """PIDs of the ``docker-proxy`` processes that publish ``ports``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"docker-proxy") and b"-host-port" in argv:
            port = argv[argv.index(b"-host-port") + 1]
            if port.isdigit() and int(port) in ports:
                found.append(int(entry.name))
    return found


class ContainerGroup(Group):
    """Every container of a compose project, paused and unpaused through Docker."""

    def __init__(self, client: object, project: str, published: tuple[int, ...] = ()) -> None:
        self.name = project
        self.client = client
        self.containers = client.containers.list(filters={"label": f"com.docker.compose.project={project}"})  # type: ignore[attr-defined]
        self.cgroups = {c.name: container_cgroup(c.attrs["State"]["Pid"]) for c in self.containers}
        # Docker's userland proxy carries a published port's traffic from 127.0.0.1 into the container (always for
        # loopback clients, everywhere where Docker has no iptables): it works for the stack, so it counts.
        self.proxies = docker_proxies(published)

    def _ordered(self) -> list[Any]:
        """The supervisor last: its watchdog must never see the others paused or not yet healthy again."""
        return sorted(self.containers, key=lambda c: c.labels.get("com.docker.compose.service") == "supervisor")

    def freeze(self) -> None:
        for container in reversed(self._ordered()):
            container.pause()

    def thaw(self, timeout: float = 120) -> None:
        """Unpause every container; the supervisor once the others' health checks pass again (a health check
        that came due while a container was paused failed, and the watchdog would restart it)."""
        *others, last = self._ordered()
        for container in others:
            self._unpause(container)
        deadline = time.monotonic() + timeout
        for container in others:
            while True:
                container.reload()
                health = container.attrs["State"].get("Health", {}).get("Status")
                if health in (None, "healthy"):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{container.name} is {health} {timeout:.0f} s after its unpause")
                time.sleep(0.5)
        self._unpause(last)

    @staticmethod
    def _unpause(container: object) -> None:
        container.reload()  # type: ignore[attr-defined]
        if container.status == "paused":  # type: ignore[attr-defined]
            container.unpause()  # type: ignore[attr-defined]

    def cpu_ns(self) -> int:
        return processes_cpu_ns(self.proxies) + sum(cgroup_cpu_ns(path) for path in self.cgroups.values())

    def pids(self) -> list[int]:
        inside = [int(p) for path in self.cgroups.values() for p in (path / "cgroup.procs").read_text().split()]
        return inside + self.proxies

    def starts(self) -> dict[str, tuple[str, int]]:
        """Each container's start time and restart count (a change during the run voids it)."""
        out = {}
        for container in self.containers:
            container.reload()
            out[container.name] = (container.attrs["State"]["StartedAt"], container.attrs["RestartCount"])
        return out
