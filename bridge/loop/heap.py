"""Keep the garbage collector's pauses short in a process that holds thousands of agents.

Measured with 10,000 MQTT agents in one process (benchmarks/fleet.py, load row): the agents'
long-lived objects (connections, sessions, links, settings, closures: ~135 per agent, 1.35 M in
all) sit in the collector's oldest generation, and a full collection that walks them took 778 ms
- every callback of every agent waits that long, which was the whole p99 of the load row.
Objects alive once the fleet is up live as long as the process, so they are moved to the
permanent generation (`gc.freeze`): collections then walk only what was allocated since.

Frozen, the oldest generation is small, so CPython (3.11) collects it often: 13 full and 218
middle collections in 30 s of the same load, up to 153 ms and 126 ms - p99 28 ms, with one
2-s window at 191 ms. With the thresholds raised (`FLEET_THRESHOLDS`: a young collection every
20,000 allocations instead of 700, the older ones 5 and 10 times rarer) the same 30 s gave p99
3.6 ms. The cost is memory for at most ~20,000 young objects awaiting a collection: nothing
next to ~20 KB per agent.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger("bridge.loop")

CPYTHON_DEFAULT_THRESHOLDS = (700, 10, 10)
FLEET_THRESHOLDS = (20_000, 50, 100)


def freeze_heap(thresholds: tuple[int, int, int] | None = FLEET_THRESHOLDS) -> float:
    """Collect once, then exempt every object alive now from later collections; seconds taken.

    Call it when start-up is over (agents created, connections opened), and again after a large
    change (e.g. a thousand agents added); objects freed later are still freed by reference
    counting, only cycles among frozen objects are never collected. *thresholds* replace the
    collector's only while they are CPython's defaults (a process that tuned its own keeps
    them); None leaves them alone.
    """
    started = time.perf_counter()
    if thresholds is not None and gc.get_threshold() == CPYTHON_DEFAULT_THRESHOLDS:
        gc.set_threshold(*thresholds)
    gc.collect()
    gc.freeze()
    took = time.perf_counter() - started
    log.debug("froze %d long-lived objects in %.0f ms", gc.get_freeze_count(), took * 1000)
    return took
