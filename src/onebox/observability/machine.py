"""Readings of this process and machine: resident memory and, where an NVIDIA GPU and its
driver are present, GPU memory through NVML (``nvidia-ml-py``, imported on first use)."""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_memory_bytes() -> int | None:
    """This process's resident set size (Linux ``/proc``); None elsewhere."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True, slots=True)
class GpuMemory:
    index: str
    name: str
    used_bytes: int
    total_bytes: int


class _Nvml:
    """NVML, initialised once; quietly absent without the package, the driver or a GPU."""

    def __init__(self) -> None:
        self._module: Any = None
        self._tried = False

    def _load(self) -> Any:
        if not self._tried:
            self._tried = True
            try:
                module = importlib.import_module("pynvml")
                module.nvmlInit()
            except Exception as exc:  # ImportError, or NVMLError: no driver or no GPU
                logger.debug("No NVIDIA GPU readings: %s", exc)
                return None
            self._module = module
        return self._module

    def memory(self) -> list[GpuMemory]:
        nvml = self._load()
        if nvml is None:
            return []
        readings = []
        try:
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                info = nvml.nvmlDeviceGetMemoryInfo(handle)
                name = nvml.nvmlDeviceGetName(handle)
                readings.append(
                    GpuMemory(
                        index=str(index),
                        name=name.decode() if isinstance(name, bytes) else str(name),
                        used_bytes=int(info.used),
                        total_bytes=int(info.total),
                    )
                )
        except Exception as exc:  # a GPU that fell off the bus must not stop the sampler
            logger.warning("Could not read GPU memory: %s", exc)
            return []
        return readings


_nvml = _Nvml()


def gpu_memory() -> list[GpuMemory]:
    return _nvml.memory()
