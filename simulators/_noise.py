"""Deterministic noise: the same (seed, key…) gives the same number in any process and any call order.

Drawing from one shared random stream would make a device's values depend on which other devices were
simulated and in what order; keying every draw by what it is for keeps a seed's run reproducible.
"""

from __future__ import annotations

import hashlib
import math
import struct


def uniform(seed: int, *key: object) -> float:
    """A number in [0, 1) determined by ``seed`` and ``key``."""
    text = ":".join(str(k) for k in (seed, *key)).encode()
    (n,) = struct.unpack("<Q", hashlib.blake2b(text, digest_size=8).digest())
    return n / 2**64


def gauss(seed: int, *key: object) -> float:
    """A standard normal number determined by ``seed`` and ``key`` (Box–Muller)."""
    u1 = max(uniform(seed, *key, "a"), 1e-12)
    u2 = uniform(seed, *key, "b")
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
