"""Counting this node's NVIDIA GPUs (the one piece of hardware the config rules need to know)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess

_LOGGER = logging.getLogger(__name__)
GPU_COUNT_ENV = "APPLIANCE_GPU_COUNT"


def detect_gpu_count(timeout: float = 5.0) -> int | None:
    """GPUs that ``nvidia-smi -L`` lists: 0 without a driver, None when the count cannot be told.

    ``APPLIANCE_GPU_COUNT`` overrides detection (containers without the tool, tests).
    """
    override = os.environ.get(GPU_COUNT_ENV, "").strip()
    if override:
        return int(override) if override.isdigit() else None
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return 0
    try:
        result = subprocess.run([tool, "-L"], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        _LOGGER.warning("nvidia-smi did not answer: %s", err)
        return None
    if result.returncode != 0:
        _LOGGER.warning("nvidia-smi failed (exit %s): %s", result.returncode, result.stderr.strip()[:200])
        return None
    return sum(1 for line in result.stdout.splitlines() if line.startswith("GPU "))
