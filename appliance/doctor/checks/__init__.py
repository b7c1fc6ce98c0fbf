"""Every doctor check, one per file, in the order the report lists them."""

from appliance.doctor.base import Check
from appliance.doctor.checks.acme_email import AcmeEmail
from appliance.doctor.checks.certificate import Certificate
from appliance.doctor.checks.clock_skew import ClockSkew
from appliance.doctor.checks.cluster_fit import ClusterFit
from appliance.doctor.checks.cluster_network import ClusterNetwork
from appliance.doctor.checks.compose_v2 import ComposeV2
from appliance.doctor.checks.config_valid import ConfigValid
from appliance.doctor.checks.datadog import DatadogAgent
from appliance.doctor.checks.disk_space import DiskSpace
from appliance.doctor.checks.docker_engine import DockerEngineCheck
from appliance.doctor.checks.domain_dns import DomainDns
from appliance.doctor.checks.gpu_count import GpuCount
from appliance.doctor.checks.gpu_driver import GpuDriver
from appliance.doctor.checks.gpu_memory import GpuMemory
from appliance.doctor.checks.gpu_runtime import GpuRuntime
from appliance.doctor.checks.health_ready import HealthReady
from appliance.doctor.checks.model_sources import ModelSources
from appliance.doctor.checks.pii_model import PiiModel
from appliance.doctor.checks.ports import Ports
from appliance.doctor.checks.prometheus_targets import PrometheusTargets
from appliance.doctor.checks.restart_counts import RestartCounts
from appliance.doctor.checks.secrets_file import SecretsFile
from appliance.doctor.checks.services_healthy import ServicesHealthy
from appliance.doctor.checks.unsafe_flags import UnsafeFlags


def all_checks() -> list[Check]:
    return [
        ConfigValid(),
        DockerEngineCheck(),
        ComposeV2(),
        GpuDriver(),
        GpuRuntime(),
        GpuCount(),
        GpuMemory(),
        DiskSpace(),
        Ports(),
        ClusterNetwork(),
        DomainDns(),
        AcmeEmail(),
        SecretsFile(),
        Certificate(),
        ClockSkew(),
        UnsafeFlags(),
        ModelSources(),
        PiiModel(),
        DatadogAgent(),
        ServicesHealthy(),
        RestartCounts(),
        HealthReady(),
        PrometheusTargets(),
        ClusterFit(),
    ]
