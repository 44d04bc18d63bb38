"""``python -m bridge.testing.hub``: the ``bridge hub`` command on its own."""

from bridge.testing.hub.cli import hub_command

if __name__ == "__main__":
    hub_command(prog_name="bridge hub")
