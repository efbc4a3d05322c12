"""Training across processes and machines on ``torch.distributed``, launched by ``torchrun``.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; the torch
trainer calls :func:`init` and, when the world has more than one process, wraps its loss in
``DistributedDataParallel`` (gloo on CPU, nccl on CUDA). Without torchrun the world is one process and
nothing here touches torch.distributed. Only rank 0 shows progress and writes artifacts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from fusionrec.errors import ConfigError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer; got {value!r}") from None


def world() -> World:
    """This process's place in the launch (from torchrun's environment); one process when not launched."""
    size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    if size < 1 or not 0 <= rank < size:
        raise ConfigError(f"RANK={rank} does not fit WORLD_SIZE={size}; launch with torchrun")
    return World(rank=rank, size=size, local_rank=_env_int("LOCAL_RANK", 0))


def is_main_process() -> bool:
    return world().is_main


def init(device: str) -> tuple[World, str]:
    """Join the process group when launched with several processes; returns the world and this rank's device.

    The backend follows the device: nccl for CUDA (one GPU per local rank), gloo for CPU.
    """
    w = world()
    if not w.distributed:
        return w, device
    import torch
    import torch.distributed as dist

    if device.startswith("cuda"):
        device = f"cuda:{w.local_rank}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    if dist.get_world_size() != w.size:
        raise ConfigError(f"process group has {dist.get_world_size()} ranks but WORLD_SIZE={w.size}")
    return w, device


def all_reduce_sum(values: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Element-wise sum of ``values`` over all ranks (identity in a one-process world)."""
    w = world()
    values = np.asarray(values, dtype=np.float64)
    if not w.distributed:
        return values
    import torch
    import torch.distributed as dist

    t = torch.from_numpy(values.copy()).to(device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().numpy()


def barrier() -> None:
    """Wait for every rank (no-op in a one-process world)."""
    if world().distributed:
        import torch.distributed as dist

        dist.barrier()


def shard_rows(m, w: World):
    """The rows of CSR ``m`` this rank owns (``row % size == rank``), others emptied; shape unchanged."""
    import scipy.sparse as sp

    if not w.distributed:
        return m
    keep = (np.arange(m.shape[0]) % w.size) == w.rank
    return sp.csr_matrix(sp.diags(keep.astype(np.float32)) @ m)


def epoch_shards(n: int, batch_size: int, rng: np.random.RandomState, w: World) -> list[np.ndarray]:
    """This rank's minibatches of one epoch over ``range(n)``.

    Every rank draws the same permutation (same seed) and takes every ``size``-th entry, so the ranks
    partition the epoch; each rank's batch is ``batch_size / size`` so the all-reduced step sees the same
    number of examples as a one-process step. All ranks get the same number of batches (DDP needs every
    rank to join every all-reduce); the at most ``size - 1`` leftover examples wait for the next epoch.
    """
    order = rng.permutation(n)
    per_rank = n // w.size
    mine = order[w.rank :: w.size][:per_rank]
    local = max(1, batch_size // w.size)
    return [mine[s : s + local] for s in range(0, per_rank, local)]
