"""Choosing the compute device and precision, with errors that say why CUDA is missing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .errors import DeviceError


def cuda_status() -> tuple[bool, str]:
    """(usable, description): the GPU's name, or why CUDA cannot be used."""
    if torch.version.cuda is None:
        return False, f"this PyTorch build ({torch.__version__}) is CPU-only"
    try:
        if not torch.cuda.is_available():
            return False, "PyTorch has CUDA support but sees no GPU (driver missing or no device)"
        return True, torch.cuda.get_device_name(0)
    except Exception as exc:  # a broken driver raises from inside torch
        return False, f"CUDA initialisation failed: {exc}"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> the first GPU if usable, else the CPU; ``cuda`` on a machine without a
    usable GPU raises :class:`DeviceError` saying why."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if cuda_status()[0] else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        ok, why = cuda_status()
        if not ok:
            raise DeviceError(f"device {name}: CUDA is not available here ({why}); use the CPU",
                              option="device", found=name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {name}: only {torch.cuda.device_count()} GPU(s) here", option="device",
                              found=name)
    elif dev.type != "cpu":
        raise DeviceError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return dev


def autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (``auto`` or ``bf16``), plain fp32 otherwise."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"unknown precision {precision!r}; use auto, bf16 or fp32")
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if use_bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA and CPU allocation failures."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and ("out of memory" in str(exc) or "can't allocate memory" in str(exc))


@contextlib.contextmanager
def no_grad_eval(module: torch.nn.Module) -> Iterator[None]:
    """Inference mode with the module in eval mode, restoring its mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        module.train(was_training)
