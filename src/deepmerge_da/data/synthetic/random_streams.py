"""Random streams of the synthetic universe: every object draws from ``SeedSequence(seed, spawn_key=(stream,
index))``, so its images depend only on (params, seed, index), not on threads or chunking."""

from __future__ import annotations

import numpy as np

# random-stream identifiers (first element of the SeedSequence spawn key)
_STREAM_SIM2SIM = 1
_STREAM_SIM2REAL_SOURCE = 2
_STREAM_SIM2REAL_TARGET = 3
_STREAM_SIM2SIM_NOISE = 11
_STREAM_LABELS = 101


def _object_rngs(seed: int, stream: int, index: int, n: int = 5):
    ss = np.random.SeedSequence(int(seed), spawn_key=(int(stream), int(index)))
    return [np.random.default_rng(s) for s in ss.spawn(n)]
