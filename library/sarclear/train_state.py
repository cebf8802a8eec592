"""Training run state: the generator's EMA, and checkpoints holding every tensor a run needs
(weights, EMA, optimiser moments, RNG states) in one safetensors file with the JSON state in
its metadata, written atomically, so that a resumed run continues exactly."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .atomic import atomic_path
from .errors import CheckpointError

STATE_KEY = "sarclear_train_state"

class EMA:
    """Exponential moving average of a network's weights (buffers are copied)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        mine, theirs = list(self.model.parameters()), [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(mine, theirs, 1.0 - self.decay)  # one fused kernel per group, not per tensor
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)


def item_seed(*parts: int) -> int:
    """A reproducible 63-bit seed from integers (seed, epoch, index...)."""
    digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def git_revision() -> str:
    """The git commit of the source tree, read from .git without running git."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        head = parent / ".git" / "HEAD"
        if head.is_file():
            ref = head.read_text().strip()
            if not ref.startswith("ref: "):
                return ref
            ref_file = parent / ".git" / ref[5:]
            if ref_file.is_file():
                return ref_file.read_text().strip()
            packed = parent / ".git" / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(ref[5:]):
                        return line.split()[0]
            return "unknown"
    return "unknown"


def unwrap(m: nn.Module) -> nn.Module:
    m = getattr(m, "module", m)  # DistributedDataParallel
    return getattr(m, "_orig_mod", m)  # torch.compile


def optimizer_tensors(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            tensors[f"{prefix}.{pid}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    return tensors, {"param_groups": sd["param_groups"]}


def optimizer_state(prefix: str, tensors: dict[str, torch.Tensor], meta: dict, device: torch.device) -> dict:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value if key == "step" else value.to(device)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_training_state(path: Path, *, G: nn.Module, D: nn.Module | None, ema: EMA, opt_g, opt_d, state: dict) -> None:
    """One safetensors file (atomic: temp + rename) with every tensor the run needs and the
    JSON state (step, epoch, config, history) in its metadata."""
    tensors = {f"G.{k}": v for k, v in unwrap(G).state_dict().items()}
    if D is not None:  # the gap-fill kind trains without a discriminator
        tensors |= {f"D.{k}": v for k, v in unwrap(D).state_dict().items()}
    tensors |= {f"EMA.{k}": v for k, v in ema.model.state_dict().items()}
    tg, mg = optimizer_tensors("opt_g", opt_g)
    td, md = optimizer_tensors("opt_d", opt_d) if opt_d is not None else ({}, None)
    tensors |= tg | td
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {STATE_KEY: json.dumps({**state, "opt_g": mg, "opt_d": md}, default=str)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def latest_checkpoint(out: Path) -> Path | None:
    files = sorted((out / "checkpoints").glob("step-*.safetensors"))
    return files[-1] if files else None


def load_training_state(path: Path, device: torch.device) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and JSON state of a training checkpoint (never unpickled)."""
    from .checkpoint import _safetensors_metadata

    meta = _safetensors_metadata(path)
    if STATE_KEY not in meta:
        raise CheckpointError(f"{path}: not a sarclear training checkpoint")
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: damaged training checkpoint ({exc}); delete it to resume "
                              "from the previous one") from None
    return tensors, json.loads(meta[STATE_KEY])



def weights_digest(module: nn.Module) -> str:
    """SHA-256 of a network's weights and buffers: equal digests, equal networks."""
    h = hashlib.sha256()
    for k, v in sorted(unwrap(module).state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()

