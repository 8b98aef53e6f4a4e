"""Semi-supervised batches: a fixed fraction f of the training events is known as (z, x) pairs.

OTUS (§7, Eq. 20–21) and Turbo-Sim add supervised terms on pairs {(zᵢ, xᵢ)} to their unsupervised
terms on the marginals. ``PairedSampler(n, f, seed)`` picks the paired subset once per run (by
the seed: the same events on resume) and, per epoch, draws

    ix, iz  independent permutations of all n events: the unpaired x and z batches (every event,
            never as a pair; f = 0 is the fully unsupervised setting),
    ip      a batch of indices into the paired subset: x[ip] and z[ip] are the same events,

so a paired batch is paired by construction (the public Turbo-Sim loader permuted x against z).
"""
from __future__ import annotations

from collections.abc import Iterator

import torch


class PairedSampler:
    def __init__(self, n: int, paired_fraction: float, seed: int):
        if not 0.0 <= paired_fraction <= 1.0:
            raise ValueError(f"paired_fraction = {paired_fraction!r}: must be in [0, 1]")
        self.n, self.fraction, self.seed = n, float(paired_fraction), seed
        gen = torch.Generator().manual_seed(seed * 7_919 + 17)
        self.n_paired = int(round(paired_fraction * n))
        self.paired = torch.randperm(n, generator=gen)[: self.n_paired].sort().values

    def epoch(self, epoch: int, batch_size: int, device="cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """The epoch's steps: (ix, iz, ip) index tensors; ip is None when no event is paired.
        Steps = n // batch_size (at least 1); the paired batches cycle through the paired subset
        (size min(batch_size, n_paired))."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        bs = min(batch_size, self.n)
        steps = max(self.n // bs, 1)
        px, pz = torch.randperm(self.n, generator=gen), torch.randperm(self.n, generator=gen)
        pairs = self.paired_batches(epoch, steps, bs, device)
        for s in range(steps):
            yield px[s * bs:(s + 1) * bs].to(device), pz[s * bs:(s + 1) * bs].to(device), pairs[s]

    def paired_batches(self, epoch: int, steps: int, batch_size: int, device="cpu") -> list[torch.Tensor | None]:
        """``steps`` batches of min(batch_size, n_paired) indices into the paired subset, cycling
        through it in an order drawn for the epoch (Nones when nothing is paired)."""
        pb = min(batch_size, self.n_paired)
        if not pb:
            return [None] * steps
        gen = torch.Generator().manual_seed(self.seed * 1_000_033 + epoch + 11)
        reps = -(-steps * pb // self.n_paired)
        pp = torch.cat([self.paired[torch.randperm(self.n_paired, generator=gen)] for _ in range(reps)])
        return [pp[s * pb:(s + 1) * pb].to(device) for s in range(steps)]

    def steps(self, batch_size: int) -> int:
        return max(self.n // min(batch_size, self.n), 1)
