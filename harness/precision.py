"""Numeric precision of training and encoding: ``fp32``, or ``bf16`` autocast where the hardware has it.

bfloat16 (Kalamkar et al., 2019, arXiv 1905.12322) keeps float32's 8 exponent bits and 7 of its 23
mantissa bits. Under :func:`torch.autocast` with ``dtype=torch.bfloat16`` the matrix products take
bf16 inputs (relative rounding error <= 2^-8 per input) and accumulate in float32; reductions,
softmax, layer norm and the losses stay in float32 (:mod:`harness.losses` casts half-precision scores
back to float32).

bf16 runs where it is native: on a CUDA GPU that supports it (``torch.cuda.is_bf16_supported``), and
on a CPU with bfloat16 dot-product instructions, AVX-512 BF16 or AMX (x86: the checks PyTorch's own
CPU kernels dispatch on, ``torch.cpu._is_avx512_bf16_supported`` / ``_is_amx_tile_supported``; AMX
implies AMX-BF16 on every CPU that ships it) or the Arm ``bf16`` extension (``/proc/cpuinfo``). Elsewhere
PyTorch emulates bf16 several times slower than fp32 (measured: MiniLM 8x slower on an AVX2-only CPU),
so a request for bf16 there is refused with a :class:`~harness.errors.ConfigError` naming the config
key, never silently run in fp32 or emulated.
"""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path

import torch

from harness.errors import ConfigError

PRECISIONS = ("fp32", "bf16")
KEY = "precision"  # the config's key (global; ``models.<name>.precision`` overrides it per model)


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def _arm_bf16() -> bool:
    """Whether an Arm CPU lists the ``bf16`` feature (Linux ``/proc/cpuinfo``)."""
    cpuinfo = Path("/proc/cpuinfo")
    if platform.machine() not in ("aarch64", "arm64") or not cpuinfo.exists():
        return False
    return any(line.startswith("Features") and "bf16" in line.split(":", 1)[1].split()
               for line in cpuinfo.read_text().splitlines())


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AVX-512 BF16, AMX or Arm bf16)."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported() or _arm_bf16())


def device_has_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 natively."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    return cpu_has_bf16()


def require(precision: str, device: torch.device, key: str = KEY) -> None:
    """Refuse a precision ``device`` cannot run natively; ``key`` is the config key it came from."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; one of {list(PRECISIONS)}", key=key)
    if precision == "bf16" and not device_has_bf16(device):
        what = f"GPU ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f"CPU ({_cpu_name()})"
        raise ConfigError(f"bf16 asked for, but this {what} has no native bfloat16 arithmetic (a CPU needs "
                          "AVX-512 BF16, AMX or Arm bf16; emulated it runs several times slower than fp32). "
                          "Set precision: fp32, or run where bf16 is native", key=key)


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[object]:
    """The context a forward pass runs under: nothing for fp32, bf16 autocast on ``device`` for bf16
    (after :func:`require`)."""
    require(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
