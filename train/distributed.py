"""Process-group set-up for ``torchrun`` (DDP) and the few collectives the trainer needs.

``torchrun --nproc_per_node N -m edgepose.train ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE``; when ``WORLD_SIZE > 1`` the trainer joins the group
with ``gloo`` on CPU and ``nccl`` on CUDA. Rank 0 alone writes files and prints progress.
Without those variables everything here is a no-op on a single process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: str = ""

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """What torchrun's environment variables say (no group is joined)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistInfo(rank=int(os.environ.get("RANK", "0")), world_size=world,
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                    local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(world))))


def init(device_type: str) -> DistInfo:
    """Join the process group when launched by torchrun with more than one process."""
    info = env_info()
    if not info.enabled:
        return info
    import torch.distributed as dist

    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(info.rank, info.world_size, info.local_rank, info.local_world_size, backend)


def shutdown(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def any_true(info: DistInfo, flag: bool, device: torch.device) -> bool:
    """``True`` on every process if ``flag`` is true on any (used to stop all ranks together)."""
    if not info.enabled:
        return bool(flag)
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def mean_over_ranks(info: DistInfo, values: torch.Tensor) -> torch.Tensor:
    """Element-wise mean of a float tensor over all processes."""
    if not info.enabled:
        return values
    import torch.distributed as dist

    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / info.world_size
