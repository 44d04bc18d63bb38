"""The embedded-VM engine: imp globals bound to the contract, callbacks on the dispatcher, errors
naming the .nut file and line, storage, values across the boundary, teardown."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
import threading
import weakref
from pathlib import Path

import pytest

pytest.importorskip("squirrel", reason="the embedded Squirrel VM (the [squirrel] extra)")

from bridge.agent import Agent
from bridge.impenv import make_env
from bridge.settings import Settings
from bridge.squirrel.vm.engine import SquirrelVM
from bridge.squirrel.vm.errors import SquirrelCompileError, SquirrelRuntimeError

REPO = Path(__file__).resolve().parents[3]


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[str, str, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelname, record.getMessage(), record.thread or 0))

    def messages(self) -> list[str]:
        return [message for _, message, _ in self.records]


@pytest.fixture
def lines() -> Lines:
    handler = Lines()
    logger = logging.getLogger("bridge.agent")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


def make_vm(**params: str) -> tuple[Agent, SquirrelVM]:
    agent = Agent(Settings(backend="memory", agent_id="vm-test"), configparams=params)
    return agent, SquirrelVM(agent, make_env(agent))


def load(vm: SquirrelVM, source: str, name: str = "agent.nut") -> None:
    vm.load([(name, source)])


ROUND_TRIP = """
local conn = null, session = null, sender = null, receiver = null;
function onEvent(event, detail) {
    server.log("event " + event);
    if (event == "CONNECTION_OPEN") session = conn.opensession(onEvent);
    else if (event == "SESSION_OPEN")
        receiver = session.openreceiver("/q/vm", onEvent, function(deliveries) {
            foreach (d in deliveries) {
                local m = d.message();
                local p = m.properties();
                server.log("got " + typeof d + " " + typeof m.body() + " " + m.body().len() + " "
                           + m.body().tostring().slice(3)
                           + " seq=" + p.seq + " alert=" + typeof p.alert + ":" + p.alert
                           + " f=" + p.f);
                d.accept();
            }
            agent.stop();
        });
    else if (event == "RECEIVER_OPEN") sender = session.opensender("/q/vm", onEvent);
    else if (event == "SENDER_OPEN") {
        local message = amqp.createbinarymessage("hi\\x0000there",
                                                 {seq = 7, alert = true, f = 2.5});
        sender.createtransfer(message).sendasync(function() {
            server.log("confirmed " + sender.isopen());
        });
    }
}
conn = amqp.openconnection("amqps://vm.example", onEvent);
"""


def test_callbacks_run_on_the_dispatcher_one_at_a_time(lines: Lines) -> None:
    agent, vm = make_vm()
    load(vm, ROUND_TRIP)
    top_level = threading.get_ident()
    done = threading.Event()
    seen: list[int] = []

    def dispatch() -> None:
        seen.append(threading.get_ident())
        agent.run(10)
        done.set()

    thread = threading.Thread(target=dispatch)
    thread.start()
    assert done.wait(15)
    thread.join()
    agent.close()
    messages = lines.messages()
    assert "event SENDER_OPEN" in messages and "confirmed true" in messages
    assert "got amqpdelivery blob 8 there seq=7 alert=bool:true f=2.5" in messages
    callback_threads = {t for level, m, t in lines.records if m.startswith(("event", "got"))}
    assert callback_threads == {seen[0]} and seen[0] != top_level


def test_the_vm_refuses_a_second_thread_while_one_is_inside() -> None:
    agent, vm = make_vm()
    load(vm, "function f() { return 1 }")
    fn = vm._vm.get_roottable()["f"]
    vm._depth, vm._owner = 1, -1  # as if another thread were running Squirrel code now
    with pytest.raises(RuntimeError, match="entered by two threads"):
        vm.call(fn)
    vm._depth, vm._owner = 0, None
    assert vm.call(fn) == 1
    agent.close()


def test_a_compile_error_names_file_line_and_column() -> None:
    agent, vm = make_vm()
    with pytest.raises(SquirrelCompileError) as caught:
        load(vm, "local a = 1;\nlocal b = 2;\nlocal c = ;\n", "broken.nut")
    assert str(caught.value).startswith("broken.nut:3:")
    assert "expression expected" in str(caught.value)
    agent.close()


def test_source_the_compiler_would_crash_on_is_refused_before_it() -> None:
    # `a++ = 1`: the 3.0.5 compiler accepts (or crashes on) some invalid assignments; the
    # bridge's parser refuses them first, naming the place
    agent, vm = make_vm()
    with pytest.raises(SquirrelCompileError, match=r"^crash.nut:2:5: can't assign"):
        load(vm, "local a = 1;\na++ = 1;\n", "crash.nut")
    agent.close()


def test_a_compile_error_in_a_required_library_names_the_library() -> None:
    agent, vm = make_vm()
    with pytest.raises(SquirrelCompileError, match=r"^agent.nut:2:\d+: "):
        vm.load([("libs/Lib.nut", "const LIMIT = 3;\nfunction lib() { return LIMIT }\n"),
                 ("agent.nut", "local x = lib();\nlocal y = LIMIT +;\n")])
    agent.close()


def test_a_runtime_error_names_the_line_and_the_frames() -> None:
    agent, vm = make_vm()
    source = ("function inner(t) {\n  return t.missing;\n}\n"
              "function outer() { local r = inner({}); return r; }\nouter();\n")
    with pytest.raises(SquirrelRuntimeError) as caught:
        load(vm, source)
    error = caught.value
    assert str(error) == "agent.nut:2: the index 'missing' does not exist"
    assert [(f.file, f.line, f.function) for f in error.frames][:2] == \
        [("agent.nut", 2, "inner"), ("agent.nut", 4, "outer")]
    agent.close()


def test_an_error_in_a_library_function_names_the_library_line() -> None:
    agent, vm = make_vm()
    with pytest.raises(SquirrelRuntimeError, match=r"^libs/Lib.nut:2: boom"):
        vm.load([("libs/Lib.nut", "function lib() {\n  throw \"boom\";\n}\n"),
                 ("agent.nut", "lib();\n")])
    agent.close()


def test_an_error_in_a_callback_is_logged_with_its_line_and_the_agent_goes_on(
        lines: Lines) -> None:
    agent, vm = make_vm()
    load(vm, 'imp.wakeup(0, function() {\n  local t = null;\n  t.x = 1;\n});\n'
             'imp.wakeup(0.01, function() { server.log("still alive"); agent.stop(); });\n')
    agent.run(5)
    agent.close()
    errors = [m for level, m, _ in lines.records if level == "ERROR"]
    assert len(errors) == 1 and "agent.nut:3:" in errors[0]
    assert "still alive" in lines.messages()


def test_bridge_errors_are_squirrel_errors_a_try_catch_sees(lines: Lines) -> None:
    agent, vm = make_vm()
    load(vm, """
try { amqp.openconnection(42, null); } catch (e) { server.log("1: " + e); }
try { http.jsonencode({a = blob(1)}); } catch (e) { server.log("2: " + e); }
try { device.send("x", 1); } catch (e) { server.log("3: " + e); }
try { http.jsondecode("{"); } catch (e) { server.log("4: " + e); }
try { imp.wakeup(-1, function() {}); } catch (e) { server.log("5: " + e); }
""")
    agent.close()
    messages = lines.messages()
    assert messages[0].startswith("1: url must be str")
    assert messages[1].startswith("2: jsonencode: $.a is a blob (base64-encode it first)")
    assert messages[2].startswith("3: device.send is not supported")
    assert messages[3].startswith("4: jsondecode:")
    assert messages[4] == "5: seconds must not be negative"


def test_values_cross_the_boundary_with_their_squirrel_types(lines: Lines) -> None:
    agent, vm = make_vm(NAME="dev1", COUNT="5")
    load(vm, r"""
local d = http.jsondecode("{\"a\": [1, 2.5, true, null, \"x\"], \"b\": {\"c\": false}}");
server.log(typeof d + " " + typeof d.a + " " + typeof d.a[2] + " " + typeof d.b.c + " "
           + d.a.len());
server.log(http.jsonencode(d.b) + " " + imp.configparams.NAME + " "
           + imp.configparams.COUNT.tointeger());
local h = http.hash.hmacsha256("what do ya want for nothing?", "Jefe");
server.log(typeof h + " " + h.len() + " " + http.base64encode(h));
local b = http.base64decode("AAEC/w==");
server.log(typeof b + " " + b.len() + " " + b[3]);
server.log(http.urlencode({s = "a b"}) + " " + http.urldecode("x=1%202").x);
local big = 2147483647;
server.log((big + 1) + " " + (-7 / 2) + " " + math.abs(-3));
server.log(typeof crypto.sha256(blob(3)) + " \x0001 marker-like text survives");
""")
    agent.close()
    assert lines.messages() == [
        "table array bool bool 5",
        '{ "c": false } dev1 5',
        "blob 32 W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=",
        "blob 4 255",
        "s=a%20b 1 2",
        "-2147483648 -3 3",
        "blob \x01 marker-like text survives",
    ]


def test_host_access_is_not_bound() -> None:
    agent, vm = make_vm()
    with pytest.raises(SquirrelRuntimeError, match="the index 'system' does not exist"):
        load(vm, 'system("true");')
    agent.close()


def test_storage_round_trip_across_vms(tmp_path: Path, lines: Lines) -> None:
    path = tmp_path / "agent.json"
    for source in ('server.save({n = 3, tags = ["a"], ok = true});',
                   'local t = server.load();\n'
                   'server.log(t.n + " " + t.tags[0] + " " + typeof t.ok);'):
        agent = Agent(Settings(backend="memory", agent_id="storage"))
        vm = SquirrelVM(agent, make_env(agent, path))
        load(vm, source)
        agent.close()
    assert lines.messages() == ["3 a bool"]


def test_release_lets_the_agent_and_the_vm_be_freed() -> None:
    agent, vm = make_vm()
    load(vm, 'function cb() {} imp.wakeup(100, cb);')
    ref = weakref.ref(vm.natives)
    agent.close()
    vm.release()
    del vm, agent
    gc.collect()
    assert ref() is None


def run_nut(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "agent.nut"
    script.write_text(source)
    return subprocess.run([sys.executable, "-m", "bridge", "run", "--timeout", "10", *args,
                           str(script)], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_bridge_run_reports_a_runtime_error_like_a_script_failure(tmp_path: Path) -> None:
    result = run_nut(tmp_path, 'server.log("start");\nlocal t = {};\nt.nope();\n')
    assert result.returncode == 1
    assert f"{tmp_path / 'agent.nut'}:3: the index 'nope' does not exist" in result.stderr
    assert ".py" not in result.stderr.split("Ctrl-C to stop", 1)[1]


def test_bridge_run_params_exit_status_and_the_environment(tmp_path: Path) -> None:
    result = run_nut(tmp_path, 'server.log("n=" + imp.configparams.N + " home=" + '
                               '("HOME" in imp.configparams));\nagent.exit(3);\n',
                     "--param", "N=4", "--param", "HOME")
    assert result.returncode == 3, result.stderr
    assert "n=4 home=true" in result.stderr


def test_bridge_run_names_the_missing_vm_extra(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.cli import nut
    from bridge.squirrel import vm as vm_package
    monkeypatch.setattr(vm_package, "available", lambda: False)
    with pytest.raises(nut.EngineUnavailable, match=r"amqp-mqtt-bridge\[squirrel\]"):
        nut.choose_engine("vm")
    assert nut.choose_engine("auto") == "translate"


@pytest.mark.parametrize(("expression", "expected"), [
    ('{a = 1}', '{ "a": 1 }'),
    ('[1, 2.5, true, null, "x"]', '[ 1, 2.5, true, null, "x" ]'),
    ('{n = {m = []}, e = {}}', None),  # order is the table's: checked against the bridge's
    ('"q\\"b\\\\s\\n\\t\\x0001"', '"q\\"b\\\\s\\n\\t\\u0001"'),
    ('"h\u00e9"', '"h\u00e9"'),
    ('20.1', '20.1'),
    ('1e20', '1e+20'),
])
def test_jsonencode_in_squirrel_matches_the_bridges_encoder(expression: str,
                                                            expected: str | None,
                                                            lines: Lines) -> None:
    agent, vm = make_vm()
    load(vm, f"local v = {expression};\nserver.log(http.jsonencode(v));\n"
             "server.log(http.jsonencode(v, {compact = true}));\n"
             "local args = [0, false]; __flat(v, args);\n"
             "server.log(__r(__callv(\"jsonencode\", args)));\n")
    agent.close()
    fast, compact, bridge_encoder = lines.messages()
    assert fast == bridge_encoder
    if expected is not None:
        assert fast == expected
    assert compact == fast.replace(": ", ":").replace(", ", ",").replace("{ ", "{") \
        .replace(" }", "}").replace("[ ", "[").replace(" ]", "]")


def test_ctrl_c_inside_a_native_unwinds_the_vm_then_raises(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.impenv.http import Http

    def interrupted(text: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(Http, "jsondecode", staticmethod(interrupted))
    agent, vm = make_vm()
    with pytest.raises(KeyboardInterrupt):  # even though the Squirrel code catches everything
        load(vm, 'try { http.jsondecode("1"); } catch (e) { server.log("caught " + e); }')
    load(vm, 'server.log("the VM still works");')
    agent.close()


def test_time_is_the_bridges_clock(lines: Lines) -> None:
    import time
    agent, vm = make_vm()
    before = int(time.time())
    load(vm, 'server.log(typeof time() + " " + time());')
    after = int(time.time())
    agent.close()
    kind, value = lines.messages()[0].split()
    assert kind == "integer" and before <= int(value) <= after
