"""The ``bridge`` command: every command registered explicitly on the group (`app.cli`).

Light commands are imported here; heavy ones (``hub``: the IoT Hub stand-in and proton) are
registered lazily, so ``bridge --help``, ``bridge config`` or ``bridge run`` on the memory
backend import neither proton nor the stand-in.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.cli.app import cli
from bridge.cli.fleet import fleet_command
from bridge.cli.port import port
from bridge.cli.run import run
from bridge.cli.services import demo, relay, shadow_report
from bridge.cli.settings import backends, config_command
from bridge.cli.squirrel import scan_command

cli.add_command(backends)
cli.add_command(config_command)
cli.add_command(run)
cli.add_command(port)
cli.add_command(demo)
cli.add_command(relay)
cli.add_command(shadow_report)
cli.add_command(fleet_command)
cli.add_command(scan_command)
cli.add_lazy_command("hub", "bridge.testing.hub.cli:hub_command",
                     "Run a local Azure IoT Hub stand-in.")


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``bridge``)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="bridge")


__all__ = ["cli", "main"]

if __name__ == "__main__":
    main()
