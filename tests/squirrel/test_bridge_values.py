"""Values the bridge hands to translated code are plain Python (a dict for a table, a list for
an array, bytes for a blob, its own objects): Squirrel code uses them as Squirrel values."""

from __future__ import annotations

import json
from typing import Any

from tests.squirrel.harness import run_translated


class FakeHttp:
    """Stands in for a runner global returning plain values (as bridge.impenv does)."""

    @staticmethod
    def jsondecode(text: str) -> Any:
        return json.loads(text)


class FakeMessage:
    def properties(self) -> dict[str, Any]:
        return {"seq": 3, "unit": "celsius"}

    def body(self) -> bytes:
        return b'{"t": 21}'


def run(source: str) -> list[str]:
    out, _translation = run_translated(source, namespace={"http": FakeHttp(),
                                                          "message": FakeMessage()})
    return out.split("\n")


def test_a_plain_dict_reads_like_a_table() -> None:
    assert run("""
        local data = http.jsondecode("{\\"a\\": {\\"b\\": [1, 2, 3]}, \\"n\\": 5}");
        print(data.n);
        print(data.a.b.len());
        print(data.a.b[2]);
        print("a" in data);
        data.n = 6;
        print(data["n"]);
        data.extra <- "x";
        print(data.extra);
        try { print(data.missing); } catch (e) { print(e); }
        foreach (k, v in data.a) print(k + "=" + v.len());
    """) == ["5", "3", "3", "true", "6", "x", "the index 'missing' does not exist", "b=3"]


def test_message_properties_and_a_bytes_body() -> None:
    assert run("""
        local props = message.properties();
        print(props.seq + 1);
        print(props.unit.toupper());
        local body = message.body();
        print(typeof body);
        print(body.len());
        print(body.tostring());
        print(http.jsondecode(body.tostring()).t);
    """) == ["4", "CELSIUS", "blob", "9", '{"t": 21}', "21"]
