"""Which backend deviations apply to which AMQP call: the join between a call site and the
backend's registry entry (`bridge.backends.registry.Capabilities`), which stays the one source
of truth for *what* deviates — its ``deviations`` (conformance statement -> text, pinned by the
conformance suite and described in docs/semantics.md) and its capability flags.

This module only says *where* each applies. Tests check that every statement any built-in
backend declares and every capability flag is placed here, so a new deviation cannot be
missed by `bridge scan`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

# AMQP calls (and event comparisons) `bridge scan` reports, by the name it reports them under.
CALLS = ("openconnection", "opensession", "opensender", "openreceiver", "createmessage",
         "createbinarymessage", "createtransfer", "sendasync", "cancel", "accept", "reject",
         "release", "event")

# Conformance statement (spec/imp-amqp-api.md section 6) -> the calls whose behaviour it covers.
STATEMENT_CALLS: Mapping[int, tuple[str, ...]] = MappingProxyType({
    27: ("createmessage", "createbinarymessage"),
    29: ("openreceiver",),
    30: ("openreceiver",),
    36: ("sendasync",),
    37: ("sendasync", "openreceiver"),
    39: ("cancel", "sendasync"),
    45: ("opensender", "event:SENDER_ERROR"),
    46: ("openconnection", "event:CONNECTION_ERROR"),
    47: ("opensender:$cbs", "openreceiver:$cbs"),
})


@dataclass(frozen=True, slots=True)
class FlagEffect:
    """What a capability flag being False means for the calls it covers."""

    calls: tuple[str, ...]
    when_false: str


FLAG_EFFECTS: Mapping[str, FlagEffect] = MappingProxyType({
    "reject": FlagEffect(("reject",), "reject() does not reach the far end as a rejection: the "
                                      "message counts as completed"),
    "release": FlagEffect(("release",), "release() does not hand the message back for "
                                        "redelivery"),
    "credit": FlagEffect(("sendasync",), "no consumer-granted credit: a transfer completes "
                                         "without waiting for a consumer"),
    "cancel_withdraws": FlagEffect(("cancel",), "cancel() cannot withdraw a transfer already "
                                                "handed over: it only stops the callback"),
    "link_detach": FlagEffect(("opensender", "openreceiver"), "the far end cannot end one link "
                                                              "with an error"),
    "typed_properties": FlagEffect(("createmessage", "createbinarymessage", "openreceiver"),
                                   "integer, float and bool properties travel as strings"),
    "any_path": FlagEffect(("opensender", "openreceiver"), "only the backend's own paths open "
                                                           "as links (others: AddressError)"),
    "cbs": FlagEffect(("opensender:$cbs", "openreceiver:$cbs"), "a $cbs put-token gets no CBS "
                                                                "reply"),
})


def applies(key: str, call: str, path: str | None = None, event: str | None = None) -> bool:
    """Whether a STATEMENT_CALLS / FLAG_EFFECTS ``key`` entry names this call site."""
    if key == call:
        return True
    if event is not None and key == f"event:{event}":
        return True
    return path is not None and path.strip() == "$cbs" and key == f"{call}:$cbs"


__all__ = ["CALLS", "FLAG_EFFECTS", "STATEMENT_CALLS", "FlagEffect", "applies"]
