"""``python -m appliance backup [--to DIR]`` and ``restore ARCHIVE``: archives of what cannot be re-made."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.commands.common import add_config_options, load

if TYPE_CHECKING:
    from appliance.docker.engine import DockerEngine
    from appliance.docker.model import ContainerState

RESTORE_DOC = (
    "Verify every checksum of ARCHIVE, then put back its files (.env, .secrets, models.yaml, "
    "certificates, registry, supervisor state) and volumes (Prometheus, Grafana) on a stack that is "
    "down (python -m appliance down first). The replaced files are kept under .restore-<time>/previous."
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = sub.add_parser(
        "backup",
        help="write one checksummed archive of what cannot be re-made",
        description="One archive (mode 0600) of .env, .secrets, models.yaml, the certificates "
        "and ACME account, the model registry, the supervisor's state, Grafana's state and a "
        "Prometheus TSDB snapshot. Works while the stack runs.",
    )
    add_config_options(backup)
    backup.add_argument("--to", type=Path, default=None, help="directory of the archive (default: BACKUP_DIR)")
    backup.add_argument("--root", type=Path, default=Path("."), help="the appliance's directory (default: .)")
    backup.add_argument(
        "--files-only",
        action="store_true",
        help="leave out the Docker volumes (metrics, Grafana): no Docker Engine needed",
    )
    backup.add_argument(
        "--docker-host", default=None, help="Docker Engine URL (default: DOCKER_HOST or the local socket)"
    )
    backup.set_defaults(handler=run_backup)

    restore = sub.add_parser("restore", help="put a backup back on a stopped stack", description=RESTORE_DOC)
    restore.add_argument("archive", type=Path, help="an appliance-backup-*.tar.gz")
    restore.add_argument("--root", type=Path, default=Path("."), help="the appliance's directory (default: .)")
    restore.add_argument(
        "--docker-host", default=None, help="Docker Engine URL (default: DOCKER_HOST or the local socket)"
    )
    restore.set_defaults(handler=run_restore)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def run_backup(args: argparse.Namespace) -> int:
    from appliance.backup.create import create_backup
    from appliance.backup.sources import plan_host
    from appliance.output import say

    config = load(args)
    s = config.settings
    root = args.root.resolve()
    plan = plan_host(s, root, env_name=args.env.name, secrets_name=args.secrets.name)
    dest = args.to if args.to is not None else root / s.backup_dir
    if args.files_only:
        result = create_backup(root, dest, plan, project=s.compose_project_name)
    else:
        from appliance.docker.engine import DockerEngine
        from appliance.docker.volumes import ContainerFiles

        with DockerEngine(args.docker_host, timeout=600) as engine:

            def docker() -> tuple[ContainerFiles, list[ContainerState]]:
                return ContainerFiles(engine), engine.project_containers(s.compose_project_name)

            result = create_backup(root, dest, plan, project=s.compose_project_name, docker=docker)
    say(f"backup written: {result.path} ({_size(result.size)}; {', '.join(result.parts)})", style="green")
    for note in result.notes:
        say(f"  note: {note}", style="yellow")
    return 0


def _running_projects(engine: DockerEngine, projects: set[str]) -> list[str]:
    found = []
    for project in sorted(projects):
        containers = engine.project_containers(project)
        if containers:
            found.append(
                f"{project} ({len(containers)} container(s), {sum(c.status == 'running' for c in containers)} running)"
            )
    return found


def _current_project(root: Path) -> str | None:
    """The project of the .env there now (it may be gone: a disaster recovery starts without one)."""
    from appliance.config import ConfigFiles, load_config
    from appliance.errors import ApplianceError

    with contextlib.suppress(ApplianceError, OSError):
        files = ConfigFiles(env=root / ".env", secrets=root / ".secrets", models=root / "models.yaml")
        return str(load_config(files).settings.compose_project_name)
    return None


def run_restore(args: argparse.Namespace) -> int:
    from appliance.backup.manifest import BackupError
    from appliance.backup.restore import check_archive, restore_archive
    from appliance.docker.engine import DockerEngine
    from appliance.docker.volumes import RESTORE_TOP, ContainerFiles
    from appliance.output import say

    root = args.root.resolve()
    manifest = check_archive(args.archive)  # before anything else: a bad archive is refused without Docker
    say(
        f"{args.archive}: intact ({len(manifest.entries)} members, made {manifest.created} for project "
        f"{manifest.project!r} by appliance {manifest.appliance_version})"
    )
    projects = {manifest.project} | ({p} if (p := _current_project(root)) else set())
    with DockerEngine(args.docker_host, timeout=600) as engine:
        if running := _running_projects(engine, projects):
            raise BackupError(
                f"the stack is not down: {'; '.join(running)}. Run python -m appliance down first "
                "(restore replaces the files and volumes its containers use); nothing was changed"
            )
        files = ContainerFiles(engine)
        image = None
        if manifest.volumes:
            candidates = [
                f"{manifest.project}-{name}:latest" for name in ("prometheus", "supervisor", "nginx", "serve")
            ]
            image = next((c for c in candidates if files.has_image(c)), None)
            if image is None:
                raise BackupError(
                    f"restoring the volumes needs one of the stack's images ({', '.join(candidates)}), "
                    "and none is here: build them first (python -m appliance up --no-wait, then "
                    "python -m appliance down), then run restore again; nothing was changed"
                )

        def refill(volume: str, tar: Path) -> None:
            assert image is not None
            say(f"restoring volume {manifest.project}_{volume}")
            files.refill_volume(manifest.project, volume, tar, image)

        result = restore_archive(args.archive, root, refill_volume=refill, top=RESTORE_TOP, manifest=manifest)
    say(f"restored: {', '.join(result.restored)}. Start the stack: python -m appliance up", style="green")
    if result.previous is not None:
        say(f"the files it replaced are in {result.previous} (delete them once the stack works)")
    for note in manifest.notes:
        say(f"  note from the backup: {note}", style="yellow")
    return 0
