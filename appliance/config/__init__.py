"""Typed configuration: ``.env`` + ``.secrets`` + ``models.yaml``, validated once at the edge."""

from appliance.config.issues import ConfigIssue, Severity
from appliance.config.loader import ApplianceConfig, ConfigFiles, load_config

__all__ = ["ApplianceConfig", "ConfigFiles", "ConfigIssue", "Severity", "load_config"]
