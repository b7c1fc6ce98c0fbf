"""What several subcommands share: the config-file options and loading the config from them."""

from __future__ import annotations

import argparse
from pathlib import Path

from appliance.config import ApplianceConfig, ConfigFiles, load_config
from appliance.config.gpus import detect_gpu_count
from appliance.config.loader import DEFAULT_ENV, DEFAULT_MODELS, DEFAULT_SECRETS


def add_config_options(parser: argparse.ArgumentParser, *, models_flag: str = "--models") -> None:
    """--env, --secrets and the models-file flag (``--models-file`` where --models means something else)."""
    group = parser.add_argument_group("configuration files")
    group.add_argument("--env", type=Path, default=DEFAULT_ENV, help="settings file (default: .env)")
    group.add_argument("--secrets", type=Path, default=DEFAULT_SECRETS, help="secrets file (default: .secrets)")
    group.add_argument(
        models_flag,
        dest="models",
        type=Path,
        default=None,
        help="models file (default: models.yaml when it exists, else the MODEL_* settings of .env)",
    )


def config_files(args: argparse.Namespace) -> ConfigFiles:
    explicit = args.models is not None
    return ConfigFiles(
        env=args.env,
        secrets=args.secrets,
        models=args.models if explicit else DEFAULT_MODELS,
        models_required=explicit,
    )


def load(args: argparse.Namespace) -> ApplianceConfig:
    """Load and validate; raises ConfigError (every issue) for the CLI to report."""
    return load_config(config_files(args), gpu_count=detect_gpu_count())
