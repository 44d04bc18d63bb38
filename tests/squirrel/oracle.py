"""The test oracle: the real Squirrel 3.0.5 VM (package ``squirrel-lang-sq305``, 32-bit integers
and floats like imp's), run in a subprocess so a VM crash (it traps on INT_MIN / -1) fails one
test instead of the test run.

``run_vm(sources)`` executes each source in a fresh VM with a ``print`` that writes the value as
`bridge.squirrel.runtime.print_text` does, and returns one output per source: the printed lines,
then ``ERROR: message`` if the script threw.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

_CHILD = r'''
import json, sys
import squirrel

def text(value):
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        if value != value:
            return "nan"
        return "%g" % value
    if isinstance(value, (int, str)):
        return str(value)
    return "<%s>" % type(value).__name__

results = []
for source in json.loads(sys.stdin.read()):
    out = []
    vm = squirrel.SQVM()
    vm.bindfunc("print", lambda *args: out.append(text(args[0]) if args else "null"))
    try:
        vm.execute(source)
    except Exception as exc:
        out.append("ERROR: " + str(exc))
    results.append("\n".join(out))
print(json.dumps(results))
'''


def available() -> bool:
    try:
        import squirrel  # noqa: F401
    except ImportError:
        return False
    return True


def run_vm(sources: Sequence[str], timeout: float = 60) -> list[str]:
    """The VM's output of each source (see the module doc)."""
    done = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(list(sources)),
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the Squirrel VM died (status {done.returncode}): {done.stderr}")
    return list(json.loads(done.stdout))
