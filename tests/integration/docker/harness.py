"""A real Docker Engine for tests and benchmarks: its own dockerd, socket and data root, a local image.

Nothing is pulled: the image ``appliance-test/busybox`` is a scratch rootfs holding Debian's static
busybox, made with ``docker import``. Run inside scripts/ci/isolated.sh (a loopback-only namespace).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker

IMAGE = "appliance-test/busybox:latest"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


@dataclass
class Engine:
    socket: Path
    root: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dockerd exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(Exception):
            client = docker.DockerClient(base_url=url, timeout=5)
            try:
                if client.ping():
                    return
            finally:
                client.close()
        time.sleep(0.2)
    raise RuntimeError(f"dockerd did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _start(root: Path, driver: str, extra_args: tuple[str, ...] = ("--userland-proxy=false",)) -> Engine:
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    socket = root / "docker.sock"
    log = root / f"dockerd-{driver}.log"
    argv = [
        dockerd,
        "-H",
        f"unix://{socket}",
        "--data-root",
        str(root / "data"),
        "--exec-root",
        str(root / "exec"),
        "--pidfile",
        str(root / "docker.pid"),
        "--iptables=false",
        "--ip6tables=false",
        "--storage-driver",
        driver,
        "--log-level",
        "warn",
        *extra_args,
    ]
    process = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(f"unix://{socket}", process, log)
    except RuntimeError:
        _stop(process)
        raise
    return Engine(socket=socket, root=root, process=process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def import_busybox(url: str, workdir: Path) -> str:
    """``docker import`` a rootfs with busybox and its applet links; returns the image name."""
    busybox = next((p for p in BUSYBOX_CANDIDATES if Path(p).is_file()), None)
    if busybox is None:
        raise RuntimeError("busybox is missing: apt-get install busybox-static (make test does this)")
    with open(busybox, "rb") as binary:
        if b"ld-linux" in binary.read(65536):  # a dynamic build cannot run in a scratch image
            raise RuntimeError(f"{busybox} is dynamically linked: apt-get install busybox-static")
    archive = workdir / "rootfs.tar"
    applets = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=True).stdout.split()
    with tarfile.open(archive, "w") as tar:
        for directory in ("bin", "sbin", "usr/bin", "usr/sbin", "tmp", "etc", "proc", "sys", "dev"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            if applet == "bin/busybox":
                continue
            info = tarfile.TarInfo(applet)
            info.type, info.linkname = tarfile.SYMTYPE, "/bin/busybox"
            tar.addfile(info)
    client = docker.DockerClient(base_url=url, timeout=120)
    try:
        with archive.open("rb") as data:
            client.images.client.api.import_image_from_data(data.read(), repository=IMAGE.split(":")[0], tag="latest")
    finally:
        client.close()
    return IMAGE


@contextlib.contextmanager
def docker_engine(
    root: Path,
    *,
    keep: bool = False,
    isolated: bool = True,
    busybox: bool = True,
    extra_args: tuple[str, ...] = ("--userland-proxy=false",),
) -> Iterator[Engine]:
    """dockerd with overlay2 (vfs when overlay is unavailable); stopped, with its containers, at the end.

    ``keep``: leave the data root (images, build cache) for the next run. ``isolated=False`` is for building
    images with ``--network host`` (pass ``--bridge=none`` in ``extra_args`` so the host's network is untouched).
    """
    if isolated and os.environ.get("APPLIANCE_NETNS_ISOLATED") != "1":
        raise RuntimeError("start the Docker tests inside scripts/ci/isolated.sh (make test does)")
    root.mkdir(parents=True, exist_ok=True)
    try:
        engine = _start(root, "overlay2", extra_args)
    except RuntimeError:
        if keep and (root / "data").exists():
            raise  # never throw away a kept data root (images built before) on a start failure
        shutil.rmtree(root / "data", ignore_errors=True)
        engine = _start(root, "vfs", extra_args)
    try:
        if busybox:
            import_busybox(engine.url, root)
        yield engine
    finally:
        with contextlib.suppress(Exception):
            client = docker.DockerClient(base_url=engine.url, timeout=30)
            for container in client.containers.list(all=True):
                container.remove(force=True)
            client.networks.prune()
            client.close()
        _stop(engine.process)
        subprocess.run(["umount", "-R", str(root / "data")], capture_output=True, check=False)
        subprocess.run(["umount", "-R", str(root / "exec")], capture_output=True, check=False)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
