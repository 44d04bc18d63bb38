"""Settings of `bridge fleet` (``[fleet]``, ``BRIDGE_FLEET__*``)."""

from __future__ import annotations

from pydantic import Field

from bridge.settings_base import ReconnectDelays


class FleetSettings(ReconnectDelays):
    """`bridge fleet`: many device agents in one process."""

    connect_rate: float = Field(100.0, ge=0, description="Connection attempts per second for "
                                "the whole process, first connects and reconnects alike "
                                "(IoT Hub throttles about 100/s per unit); 0: unpaced.")
    connect_jitter: float = Field(0.5, ge=0, le=1, description="Random shift of each attempt, "
                                  "as a share of the gap between two (spreads bursts).")
    reconnect_min_delay: float = Field(1.0, gt=0, description="First delay (s) before an agent "
                                       "whose script failed is started again; doubles per "
                                       "failure.")
    reconnect_max_delay: float = Field(60.0, gt=0, validate_default=True,
                                       description="Longest delay (s) between restarts.")
    max_restarts: int = Field(0, ge=0, description="Restarts of one failing agent before it is "
                              "left failed; 0: forever.")
    status_interval: float = Field(10.0, ge=0, description="Seconds between status lines "
                                   "(0: none).")
    metrics_port: int | None = Field(None, ge=0, le=65535, description="Serve Prometheus "
                                     "metrics on this port (0: any free port).")
    metrics_host: str = Field("127.0.0.1", description="Address the metrics server binds.")
    files_per_agent: int = Field(4, ge=1, description="Open files one agent may need (its "
                                 "connections' sockets): the start refuses a device count the "
                                 "open-files limit cannot hold.")
