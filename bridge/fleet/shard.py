"""Shards: N `bridge fleet` processes split one devices file with no coordination.

A device belongs to shard ``K`` of ``N`` when a stable hash of its id (SHA-256, the first eight
bytes as a number) modulo N is K: the same on every machine and every run, so each device is
run by exactly one shard, and adding a device moves no other. ``K`` counts from 0, like a
Kubernetes StatefulSet's pod ordinal.
"""

from __future__ import annotations

import hashlib
import re

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N); ``ValueError`` naming what is wrong."""
    found = _SHARD.match(text)
    if found is None:
        raise ValueError(f"--shard {text!r}: expected K/N, e.g. 0/3 (K counts from 0)")
    index, count = int(found.group(1)), int(found.group(2))
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard {text!r}: K must be 0 to N-1 and N at least 1")
    return index, count


def shard_of(device_id: str, count: int) -> int:
    """Which of *count* shards runs *device_id*."""
    digest = hashlib.sha256(device_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def in_shard(device_id: str, shard: tuple[int, int] | None) -> bool:
    return shard is None or shard_of(device_id, shard[1]) == shard[0]
