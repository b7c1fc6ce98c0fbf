"""``python -m appliance supervise``: the watchdog, the schedules and the metrics, until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

from appliance.certs.renewal import renew
from appliance.certs.store import served_certificate
from appliance.config import ApplianceConfig
from appliance.config.settings import Settings
from appliance.docker.engine import DockerEngine
from appliance.docker.nginx import NginxContainer
from appliance.doctor.context import DoctorContext
from appliance.logs.rotation_policy import RotationPolicy
from appliance.registry.store import RegistryStore
from appliance.supervisor.backup_job import BackupJob, nightly
from appliance.supervisor.jobs import DoctorJob, RenewalJob, RotationJob, every
from appliance.supervisor.lifecycle_events import INTERVAL_S as LIFECYCLE_INTERVAL_S
from appliance.supervisor.lifecycle_events import LifecycleEventsJob
from appliance.supervisor.policy import RestartPolicy
from appliance.supervisor.state import StateStore
from appliance.supervisor.watchdog import Watchdog
from appliance.telemetry.dogstatsd import DatadogSink
from appliance.telemetry.notifier import SupervisorNotifier
from appliance.telemetry.supervisor_metrics import SupervisorMetrics

_LOGGER = logging.getLogger(__name__)


def restart_policy(s: Settings) -> RestartPolicy:
    return RestartPolicy(
        budget=float(s.watchdog_restart_budget),
        half_life_s=float(s.watchdog_budget_half_life_seconds),
        backoff_base_s=s.watchdog_backoff_base_seconds,
        backoff_max_s=s.watchdog_backoff_max_seconds,
    )


def rotation_policy(s: Settings) -> RotationPolicy:
    return RotationPolicy(
        max_bytes=s.log_max_size_mb * 1024 * 1024, keep=s.log_rotate_keep, retention_s=s.log_retention_days * 86400.0
    )


def build_notifier(config: ApplianceConfig, metrics: SupervisorMetrics) -> SupervisorNotifier:
    datadog = None
    if config.secrets.datadog_api_key:
        datadog = DatadogSink(
            os.environ.get("DD_AGENT_HOST", "datadog-agent"),
            int(os.environ.get("DD_DOGSTATSD_PORT", "8125")),
            env=config.settings.datadog_env,
            extra_tags=list(config.settings.datadog_tags),
        )
    return SupervisorNotifier(metrics, datadog)


async def supervise(config: ApplianceConfig, *, docker_host: str | None = None, metrics_addr: str = "0.0.0.0") -> None:
    s = config.settings
    metrics = SupervisorMetrics()
    metrics.serve(s.supervisor_metrics_port, addr=metrics_addr)
    notifier = build_notifier(config, metrics)
    engine = DockerEngine(docker_host)
    watchdog = Watchdog(
        engine,
        s.compose_project_name,
        policy=restart_policy(s),
        state=StateStore(Path(s.supervisor_state_file)),
        notifier=notifier,
        settle_s=s.watchdog_settle_seconds,
        reconcile_s=float(s.watchdog_reconcile_seconds),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    nginx = NginxContainer(engine, s.compose_project_name)
    renewal = RenewalJob(
        config, notifier, cert_path=served_certificate(s), renew=renew, reload_nginx=nginx.reload, test_nginx=nginx.test
    )
    # nginx's files are access*.log / error*.log / nginx*.log under LOG_DIR; our own writers reopen by themselves
    reopen = {prefix: nginx.reopen_logs for prefix in ("access", "error", "nginx")}
    rotation = RotationJob(Path(s.log_dir), rotation_policy(s), notifier, reopen)
    doctor = DoctorJob(DoctorContext(files=config.files, config=config, docker_host=docker_host), notifier)
    lifecycle = LifecycleEventsJob(
        lambda: RegistryStore.open(s.registry_url),
        notifier,
        Path(s.supervisor_state_file).with_name("registry-events.json"),
    )
    _LOGGER.info("supervisor started for project %s", s.compose_project_name)
    tasks = [
        asyncio.ensure_future(watchdog.run(stop)),
        asyncio.ensure_future(every(s.cert_check_interval_hours * 3600.0, renewal, stop, first_delay_s=5.0)),
        asyncio.ensure_future(every(float(s.log_rotate_interval_seconds), rotation, stop, first_delay_s=10.0)),
        asyncio.ensure_future(every(float(s.supervisor_doctor_interval_seconds), doctor, stop, first_delay_s=1.0)),
        asyncio.ensure_future(every(LIFECYCLE_INTERVAL_S, lifecycle, stop, first_delay_s=2.0)),
    ]
    if s.backup_enabled:
        backup = BackupJob(config, notifier, root=Path.cwd(), docker_host=docker_host)
        tasks.append(asyncio.ensure_future(nightly(s.backup_hour_utc, backup, stop)))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([stopper, tasks[0]], return_when=asyncio.FIRST_COMPLETED)
        if tasks[0].done() and tasks[0].exception() is not None:
            raise tasks[0].exception()  # type: ignore[misc]  # the watchdog could not run (engine unreachable)
    finally:
        stopper.cancel()
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        metrics.up.set(0)
        if notifier.datadog:
            notifier.datadog.close()
        engine.close()
        _LOGGER.info("supervisor stopped")
