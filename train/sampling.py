"""Which frames go into which batch, on which process, in which epoch.

The order of epoch ``e`` is a pure function of ``(seed, e)``: a resumed run (even one killed
mid-epoch) replays exactly the batches the uninterrupted run would have seen, and every DDP
process derives the same permutation and takes its own shard of it, in the manner of
``torch.utils.data.DistributedSampler`` (pad by wrapping, then ``perm[rank::world]``).
"""
from __future__ import annotations

from typing import Iterator, List

import torch

from edgepose.errors import EdgePoseError


class EpochBatches(torch.utils.data.Sampler):
    """Batch sampler: shuffled, sharded, seeded per epoch, able to skip finished batches.

    Args:
        n: number of frames.
        batch_size: frames per batch on this process.
        shuffle: permute each epoch (training) or keep dataset order.
        seed: base seed; epoch ``e`` uses ``seed * 1_000_003 + e``.
        rank, world: this process and the number of processes.

    A final batch of one frame is merged into the previous one (BatchNorm cannot train on a
    single sample). Call :meth:`set_epoch` before iterating.
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool = True, seed: int = 0, rank: int = 0, world: int = 1):
        if world < 1 or not 0 <= rank < world:
            raise EdgePoseError(f"invalid process rank {rank} of {world}")
        per_rank = -(-n // world)
        if n < 1 or (shuffle and per_rank < 2):
            raise EdgePoseError(f"{n} training frames over {world} process(es) leaves {per_rank} per process; "
                                "training needs at least 2", hint="use more frames or fewer processes")
        if batch_size < 1:
            raise EdgePoseError(f"batch size must be >= 1, got {batch_size}")
        self.n, self.batch_size, self.shuffle = int(n), int(batch_size), bool(shuffle)
        self.seed, self.rank, self.world = int(seed), int(rank), int(world)
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select epoch ``epoch``'s order and skip its first ``skip`` batches (resume)."""
        self.epoch, self.skip = int(epoch), int(skip)

    def indices(self) -> List[int]:
        """This process's frames for the current epoch, in order."""
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        total = -(-self.n // self.world) * self.world
        order = (order * (total // max(1, len(order)) + 1))[:total]
        return order[self.rank : total : self.world]

    def batches(self) -> List[List[int]]:
        idx = self.indices()
        out = [idx[i : i + self.batch_size] for i in range(0, len(idx), self.batch_size)]
        if len(out) > 1 and len(out[-1]) == 1:
            out[-2].extend(out.pop())
        return out

    def __iter__(self) -> Iterator[List[int]]:
        return iter(self.batches()[self.skip :])

    def __len__(self) -> int:
        return max(0, len(self.batches()) - self.skip)

    def batches_per_epoch(self) -> int:
        return len(self.batches())
