"""Which imp agent APIs the bridge provides: the one table `bridge scan` reports from (and the
embedded VM's / translator's runtime can be checked against, so the three cannot disagree).

``PROVIDED``: the bridge serves it (the ``amqp`` contract; ``imp``, ``server``, ``http``,
``crypto`` from the imp environment of `bridge run agent.nut` / the translated runtime).
``UNSUPPORTED``: imp has it, the bridge does not (device-side messaging, inbound HTTP, imp's own
MQTT client …): code using it needs a change before it can move. A name under a known root
that is in neither table is reported as ``UNKNOWN`` and counts as unsupported for ``--strict``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

PROVIDED = "provided"
UNSUPPORTED = "unsupported"
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ApiSupport:
    status: str  # PROVIDED or UNSUPPORTED
    note: str = ""


def _table(status: str, names: dict[str, str]) -> dict[str, ApiSupport]:
    return {name: ApiSupport(status, note) for name, note in names.items()}


_HTTP_CLIENT = "over a real HTTP client; the callback runs on the agent's dispatcher"

IMP_API: Mapping[str, ApiSupport] = MappingProxyType({
    **_table(PROVIDED, {
        "amqp.openconnection": "the bridge's AMQP contract on the selected backend",
        "amqp.createmessage": "the bridge's AMQP contract",
        "amqp.createbinarymessage": "the bridge's AMQP contract",
        "imp.wakeup": "a timer on the agent's dispatcher",
        "imp.cancelwakeup": "",
        "imp.configparams": "from the agent's settings (bridge fleet: the devices file)",
        "server.log": "the bridge's log",
        "server.error": "the bridge's log, level error",
        "server.save": "a local JSON file per agent",
        "server.load": "the local JSON file (a table; {} at first)",
        "http.jsonencode": "", "http.jsondecode": "",
        "http.base64encode": "", "http.base64decode": "",
        "http.urlencode": "", "http.urldecode": "",
        "http.agenturl": "a configured URL",
        "http.request": _HTTP_CLIENT, "http.get": _HTTP_CLIENT, "http.post": _HTTP_CLIENT,
        "http.put": _HTTP_CLIENT, "http.httpdelete": _HTTP_CLIENT,
        "crypto.sha256": "", "crypto.hmacsha256": "", "crypto.sha1": "", "crypto.hmacsha1": "",
        "crypto.sha512": "", "crypto.hmacsha512": "", "crypto.md5": "", "crypto.hmacmd5": "",
        # imp's older names for the same digests, still used by libraries (AzureIoTHub 2.x)
        "http.hash.sha256": "as crypto.sha256", "http.hash.hmacsha256": "as crypto.hmacsha256",
        "http.hash.sha1": "as crypto.sha1", "http.hash.hmacsha1": "as crypto.hmacsha1",
        "http.hash.sha512": "as crypto.sha512", "http.hash.hmacsha512": "as crypto.hmacsha512",
        "http.hash.md5": "as crypto.md5", "http.hash.hmacmd5": "as crypto.hmacmd5",
    }),
    **_table(UNSUPPORTED, {
        "device.on": "no device side: map the messages to an AMQP/MQTT address",
        "device.send": "no device side: send on an AMQP sender instead",
        "device.isconnected": "no device side",
        "device.onconnect": "no device side",
        "device.ondisconnect": "no device side",
        "http.onrequest": "the bridge serves no inbound HTTP",
        "crypto.sign": "no private-key signing", "crypto.verify": "no signature checks",
        "imp.getsoftwareversion": "", "imp.setsendbuffersize": "",
        "server.bless": "", "server.restart": "", "server.sleepfor": "",
        "mqtt.createclient": "imp's own MQTT client: the bridge is the transport instead",
    }),
})

# Globals whose members are imp APIs (a member not in IMP_API is UNKNOWN).
IMP_ROOTS = frozenset({"amqp", "imp", "server", "http", "crypto", "device", "mqtt", "agent",
                       "hardware", "nv"})


def support_of(name: str) -> ApiSupport:
    """How the bridge serves ``root.member`` (UNKNOWN when the table does not list it)."""
    return IMP_API.get(name) or ApiSupport(UNKNOWN, "not provided by the bridge")


__all__ = ["IMP_API", "IMP_ROOTS", "PROVIDED", "UNKNOWN", "UNSUPPORTED", "ApiSupport",
           "support_of"]
