"""`bridge scan` inventory: call sites, address mapping per backend, deviations (and their one
source of truth), imp API support."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from bridge.backends.registry import BUILTIN_ORDER, Capabilities, backend_entry
from bridge.squirrel.deviations import CALLS, FLAG_EFFECTS, STATEMENT_CALLS
from bridge.squirrel.errors import RequireError, SquirrelSyntaxError
from bridge.squirrel.imp_api import IMP_API, IMP_ROOTS, PROVIDED, UNKNOWN, UNSUPPORTED
from bridge.squirrel.scan import scan_files, scan_source

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).parent / "corpus" / "parse"

# (source, backend, call, detail, a piece of what it becomes, supported)
SITES = [
    ('amqp.openconnection("amqps://hub.example/", cb)', "amqp", "openconnection",
     "amqps://hub.example/", "AMQP 1.0 connection to amqps://hub.example/", True),
    ('amqp.openconnection("amqps://" + host + "/", cb)', "iothub", "openconnection",
     "amqps://{host}/", "the URL's host {host}", True),
    ('local u = format("amqps://%s:%d/", h, 5671)\namqp.openconnection(u, cb)', "memory",
     "openconnection", "amqps://{h}:5671/", "in-process broker", True),
    ('s.opensender("/devices/d1/messages/events", cb)', "mqtt", "opensender",
     "/devices/d1/messages/events", "publishes to topic 'devices/d1/messages/events'", True),
    ('s.opensender("$cbs", cb)', "mqtt", "opensender", "$cbs", "'bridge/$cbs'", True),
    ('s.openreceiver("/q/" + name, cb, on)', "mqtt", "openreceiver", "/q/{name}",
     "subscribes to 'q/{name}'", True),
    ('s.opensender("/a/+/b", cb)', "mqtt", "opensender", "/a/+/b", "cannot open", False),
    ('s.opensender("/devices/" + id + "/messages/events")', "iothub", "opensender",
     "/devices/{id}/messages/events", "D2C publishes on 'devices/{id}/messages/events/'", True),
    ('s.openreceiver("/devices/" + id + "/messages/devicebound", a, b)', "iothub",
     "openreceiver", "/devices/{id}/messages/devicebound",
     "the C2D subscription 'devices/{id}/messages/devicebound/#'", True),
    ('s.opensender("$cbs")', "iothub", "opensender", "$cbs", "emulated $cbs node", True),
    ('s.opensender("/queue/orders")', "iothub", "opensender", "/queue/orders", "cannot open",
     False),
    ('s.opensender("/queue/orders")', "amqp", "opensender", "/queue/orders",
     "AMQP sender link to '/queue/orders' (1:1)", True),
    ('s.opensender("/queue/orders")', "memory", "opensender", "/queue/orders",
     "in-process sender on node '/queue/orders'", True),
    ("c.opensession(cb)", "mqtt", "opensession", "c", "bookkeeping only", True),
    ('amqp.createmessage("x", {"n": 1})', "amqp", "createmessage", "{n: 1}", "amqp-value", True),
    ('amqp.createbinarymessage(body)', "iothub", "createbinarymessage", "no properties",
     "D2C payload", True),
    ("t.sendasync(done)", "mqtt", "sendasync", "t", "QoS 1 publish", True),
    ("sender.createtransfer(m).sendasync(done)", "amqp", "sendasync",
     "sender.createtransfer(m)", "accepted disposition", True),
    ("t.cancel()", "amqp", "cancel", "t", "withdrawn", True),
    ("d.accept()", "iothub", "accept", "d", "PUBACK", True),
    ("d.reject()", "iothub", "reject", "d", "counts the message as completed", True),
    ("d.release()", "mqtt", "release", "d", "mqtt.release_delay", True),
    ('if (event == "SENDER_ERROR") x()', "mqtt", "event", "SENDER_ERROR", "same event", True),
    ('switch (e) { case "CONNECTION_OPEN": break }', "amqp", "event", "CONNECTION_OPEN",
     "same event", True),
    ("local on = { RECEIVER_OPEN = function(d) {} }", "amqp", "event", "RECEIVER_OPEN",
     "same event", True),
]


@pytest.mark.parametrize(("source", "backend", "call", "detail", "piece", "supported"), SITES)
def test_call_sites(source: str, backend: str, call: str, detail: str, piece: str,
                    supported: bool) -> None:
    report = scan_source("\n" + source, "a.nut", backend)
    sites = [s for s in report.amqp if s.call == call]
    assert len(sites) == 1, report.amqp
    site = sites[0]
    assert (site.file, site.detail, site.supported) == ("a.nut", detail, supported)
    assert site.line >= 2
    assert piece in (site.becomes if supported else site.becomes + site.problem)
    if not supported:
        assert site.problem and any(f"a.nut:{site.line}:" in u for u in report.unsupported())


NOT_AMQP = [
    'http.get("https://x.example/").sendasync(cb)',
    'local r = http.post(url, {}, body)\nr.sendasync(cb)',
    "promise.reject(err)",
    'if (x == "NOT_AN_EVENT") y()',
    "local amqp = {}; amqp.foo()",
]


@pytest.mark.parametrize("source", NOT_AMQP)
def test_not_amqp_sites(source: str) -> None:
    assert scan_source(source, "b.nut", "mqtt").amqp == []


# (backend, call source, deviation sources that must be listed, ones that must not)
DEVIATIONS = [
    ("iothub", "d.reject()", {"no reject"}, set()),
    ("mqtt", "d.reject()", set(), {"no reject"}),
    ("mqtt", "t.sendasync(cb)", {"statement 37", "statement 39", "no credit"}, set()),
    ("amqp", "t.sendasync(cb)", {"statement 37", "statement 39"}, {"no credit"}),
    ("memory", "t.sendasync(cb)", set(), {"statement 37", "no credit"}),
    ("mqtt", 's.opensender("$cbs")', {"no cbs", "statement 45"}, set()),
    ("iothub", 's.opensender("$cbs")', {"statement 47"}, {"no cbs"}),
    ("iothub", 'amqp.createmessage("x", {n = 1})', {"no typed_properties"}, set()),
    ("mqtt", 'if (e == "SENDER_ERROR") f()', {"statement 45"}, set()),
    ("mqtt", "t.cancel()", {"statement 39", "no cancel_withdraws"}, set()),
]


@pytest.mark.parametrize(("backend", "source", "present", "absent"), DEVIATIONS)
def test_deviations_per_backend(backend: str, source: str, present: set[str],
                                absent: set[str]) -> None:
    sites = scan_source(source, "c.nut", backend).amqp
    sources = {d.source for site in sites for d in site.deviations}
    assert present <= sources and not (absent & sources)
    declared = backend_entry(backend).capabilities.deviations
    for site in sites:
        for deviation in site.deviations:
            if deviation.source.startswith("statement "):
                # the text is the registry's, word for word: one source of truth
                assert deviation.text == declared[int(deviation.source.split()[1])]


def test_every_declared_deviation_has_a_place() -> None:
    for name in BUILTIN_ORDER:
        for statement in backend_entry(name).capabilities.deviations:
            assert statement in STATEMENT_CALLS, f"{name}: statement {statement} unplaced"
    flags = {f.name for f in dataclasses.fields(Capabilities) if f.type in (bool, "bool")}
    assert flags == set(FLAG_EFFECTS)
    for keys in [*STATEMENT_CALLS.values(), *(e.calls for e in FLAG_EFFECTS.values())]:
        for key in keys:
            assert key.partition(":")[0] in CALLS


def test_semantics_doc_lists_the_mqtt_registry_deviations() -> None:
    text = (ROOT / "docs" / "semantics.md").read_text(encoding="utf-8")
    table = text.split("## Conformance deviations", 1)[1]
    documented = {int(n) for n in re.findall(r"^\| (\d+) \(", table, re.MULTILINE)}
    assert documented == set(backend_entry("mqtt").capabilities.deviations)


# (source, api, status)
APIS = [
    ("imp.wakeup(1, f)", "imp.wakeup", PROVIDED),
    ("local p = imp.configparams", "imp.configparams", PROVIDED),
    ("server.save({})", "server.save", PROVIDED),
    ("http.jsonencode(x)", "http.jsonencode", PROVIDED),
    ('http.get("u").sendasync(cb)', "http.get", PROVIDED),
    ("crypto.hmacsha256(a, b)", "crypto.hmacsha256", PROVIDED),
    ('device.on("x", f)', "device.on", UNSUPPORTED),
    ('device.send("x", 1)', "device.send", UNSUPPORTED),
    ("http.onrequest(f)", "http.onrequest", UNSUPPORTED),
    ("imp.frobnicate()", "imp.frobnicate", UNKNOWN),
    ("::server.log(1)", "server.log", PROVIDED),
    ("http.hash.hmacsha256(a, b)", "http.hash.hmacsha256", PROVIDED),
    ("http.hash.frob(a)", "http.hash.frob", UNKNOWN),
]


@pytest.mark.parametrize(("source", "api", "status"), APIS)
def test_imp_apis(source: str, api: str, status: str) -> None:
    report = scan_source(source, "d.nut", "memory")
    assert [(s.api, s.status, s.line) for s in report.apis] == [(api, status, 1)]
    assert bool(report.unsupported()) == (status != PROVIDED)


def test_provided_table_is_consistent() -> None:
    assert all(name.split(".")[0] in IMP_ROOTS for name in IMP_API)
    assert IMP_API["device.on"].status == UNSUPPORTED
    assert IMP_API["http.onrequest"].status == UNSUPPORTED


def test_library_via_require_path(tmp_path: Path) -> None:
    report = scan_files([CORPUS / "agent_uses_library.agent.nut"], "iothub",
                        require_paths=[CORPUS])
    assert len(report.files) == 2 and report.files[0].endswith("AzureIoTHubLite.agent.lib.nut")
    calls = {s.call for s in report.amqp}
    assert calls >= {"openconnection", "opensession", "opensender", "openreceiver",
                     "createmessage", "createbinarymessage", "sendasync", "accept", "reject",
                     "release", "event"}
    events = {s.detail for s in report.amqp if s.call == "event"}
    assert {"CONNECTION_OPEN", "SENDER_ERROR", "RECEIVER_ERROR"} <= events
    assert report.requires[0].resolved is not None
    assert {s.api for s in report.apis if s.status != PROVIDED} == {
        "device.on", "device.send", "http.onrequest"}
    alone = scan_files([CORPUS / "agent_uses_library.agent.nut"], "iothub")
    assert len(alone.files) == 1 and alone.amqp == [] and alone.requires[0].resolved is None


def test_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nut"
    bad.write_text("local x = (\n")
    with pytest.raises(SquirrelSyntaxError, match=r"bad\.nut:2:1: "):
        scan_files([bad], "mqtt")
    needs = tmp_path / "needs.nut"
    needs.write_text('#require "Missing.lib.nut:1.0.0"\n')
    with pytest.raises(RequireError, match=r"needs\.nut:1: cannot resolve"):
        scan_files([needs], "mqtt", require_paths=[tmp_path])


def test_mqtt_topic_rules_are_applied() -> None:
    report = scan_source('s.opensender("/devices/d1/messages/events")', "e.nut", "mqtt",
                         mqtt_rules=[("/devices/{id}/messages/events", "telemetry/{id}")])
    assert report.amqp[0].becomes == "publishes to topic 'telemetry/d1'"


def test_long_concatenations_are_followed_and_bounded() -> None:
    parts = " + ".join(f'"/p{i}"' for i in range(30))
    report = scan_source(f"s.opensender({parts} + name)", "f.nut", "amqp")
    assert report.amqp[0].detail == "".join(f"/p{i}" for i in range(30)) + "{name}"
    huge = " + ".join(["x"] * 3000)
    assert scan_source(f"s.opensender({huge})", "g.nut", "amqp").amqp[0].detail.count("{x}") \
        == 3000


def test_paths_through_constants_and_small_functions() -> None:
    source = """
const CBS = "$cbs";
class Endpoint {
    static function devicePath(id) { return "/devices/" + id; }
    static function eventPath(id, leaf = "/messages/events") { return devicePath(id) + leaf; }
}
local toDevice = @(id) "/devices/" + id + "/messages/devicebound";
s.opensender(CBS)
s.opensender(Endpoint.eventPath(config.deviceId))
s.openreceiver(toDevice(config.deviceId), null, null)
"""
    sites = scan_source(source, "h.nut", "iothub").amqp
    assert [(s.detail, s.supported, s.checked) for s in sites] == [
        ("$cbs", True, True),
        ("/devices/{config.deviceId}/messages/events", True, True),
        ("/devices/{config.deviceId}/messages/devicebound", True, True),
    ]


def test_an_address_known_only_at_run_time_is_not_condemned() -> None:
    report = scan_source("s.opensender(options.path)", "i.nut", "iothub")
    site = report.amqp[0]
    assert (site.detail, site.supported, site.checked) == ("{options.path}", True, False)
    assert site.becomes.startswith("known only at run time") and report.unsupported() == []
    fixed_start = scan_source('s.opensender("/queue/" + name)', "j.nut", "iothub").amqp[0]
    assert (fixed_start.supported, fixed_start.checked) == (False, True)
