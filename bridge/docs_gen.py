"""Render docs/configuration.md from the `Settings` models, so the reference cannot drift.

Regenerate after changing a setting::

    python -m bridge.docs_gen            # rewrites docs/configuration.md
    python -m bridge.docs_gen --check    # exit 1 if the file is out of date (what the test does)

``bridge config --markdown`` prints the same text.
"""

from __future__ import annotations

import argparse
import enum
import json
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from bridge.settings import CONFIG_ENV, Settings, env_var_name, is_secret_field

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

_HEADER = f"""\
# Configuration

<!-- Generated from bridge/settings.py by `python -m bridge.docs_gen`; do not edit by hand. -->

Every setting below can be given, highest precedence first, as:

1. an argument to `Settings(...)` (nested sections as dicts: `Settings(mqtt={{"url": ...}})`);
   `bridge --backend` and `bridge --log-level` are passed this way;
2. an environment variable `BRIDGE_<NAME>`, sections nested with `__`
   (`BRIDGE_MQTT__URL=mqtts://broker:8883`); a section, list or table may also be given whole
   as JSON (`BRIDGE_MEMORY__USERS='{{"alice": "secret"}}'`);
3. the same variables in a `.env` file in the working directory;
4. the TOML profile named by `{CONFIG_ENV}` (or `bridge --config PATH`), sections as tables:

   ```toml
   backend = "mqtt"
   [mqtt]
   url = "mqtts://broker:8883"
   ```

5. the default.

Profiles live in `config/`. An unknown key or a bad value stops start-up with one line per
problem naming the setting and what is allowed. Secrets (type *secret*) never appear in
`repr`, logs or error messages. `bridge config` prints the effective value of every setting,
secrets masked, and where it came from.
"""


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _type_name(annotation: Any) -> str:
    """A reader's name for a type: ``str or none``, ``"5" or "3.1.1"``, ``table of secret``."""
    if annotation is type(None):
        return "none"
    if annotation in (SecretStr, SecretBytes):
        return "secret"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " or ".join(json.dumps(arg) for arg in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in args)
    if origin in (list, tuple, set, frozenset):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"table of {_type_name(args[1])}" if len(args) == 2 else "table"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return annotation.__name__
        if issubclass(annotation, enum.Enum):
            return " or ".join(json.dumps(member.value) for member in annotation)
        if issubclass(annotation, Path):
            return "path"
        return annotation.__name__
    return str(annotation)


def _constraints(field: FieldInfo) -> str:
    parts = []
    for meta in field.metadata:
        for attribute, symbol in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            bound = getattr(meta, attribute, None)
            if isinstance(meta, annotated_types.BaseMetadata) and bound is not None:
                parts.append(f"{symbol} {bound}")
        if getattr(meta, "min_length", None):
            parts.append(f"at least {meta.min_length} long")
        if getattr(meta, "max_length", None):
            parts.append(f"at most {meta.max_length} long")
        if getattr(meta, "pattern", None):
            parts.append(f"matches `{meta.pattern}`")
    return ", ".join(parts)


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if is_secret_field(field) and value:
        return "(secret)"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, Path):
        value = str(value)
    return f"`{json.dumps(value)}`"


def _sections(model: type[BaseModel], prefix: tuple[str, ...] = ()
              ) -> Iterator[tuple[tuple[str, ...], type[BaseModel]]]:
    """*model* and every section below it, depth first, in declaration order."""
    yield prefix, model
    for name, field in model.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            yield from _sections(sub, (*prefix, name))


def _list_item_model(field: FieldInfo) -> type[BaseModel] | None:
    """The model of a ``list[Model]`` setting (its items are documented as ``name[].field``)."""
    if typing.get_origin(field.annotation) in (list, tuple):
        args = typing.get_args(field.annotation)
        if args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            return args[0]
    return None


def _rows(model: type[BaseModel], prefix: tuple[str, ...]) -> Iterator[str]:
    for name, field in model.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            continue  # a section: it gets its own table
        path = (*prefix, name)
        kind = _type_name(field.annotation)
        limits = _constraints(field)
        if limits:
            kind = f"{kind} ({limits})"
        yield (f"| `{'.'.join(path)}` | {_escape(kind)} | {_escape(_default(field))} "
               f"| `{env_var_name(path)}` | {_escape(field.description or '')} |")
        item = _list_item_model(field)
        if item is not None:
            for sub_name, sub_field in item.model_fields.items():
                sub_kind = _type_name(sub_field.annotation)
                yield (f"| `{'.'.join(path)}[].{sub_name}` | {_escape(sub_kind)} "
                       f"| {_escape(_default(sub_field))} | — "
                       f"| {_escape(sub_field.description or '')} |")


def render() -> str:
    """The whole of docs/configuration.md."""
    out = [_HEADER.rstrip("\n")]
    for prefix, model in _sections(Settings):
        rows = list(_rows(model, prefix))
        if not rows:
            continue
        title = f"`{'.'.join(prefix)}`" if prefix else "Top level"
        out.append(f"\n## {title}\n")
        doc = (model.__doc__ or "").strip() if prefix else ""
        if doc:
            out.append(f"{' '.join(doc.split())}\n")
        out.append("| Setting | Type | Default | Environment variable | Description |")
        out.append("|---|---|---|---|---|")
        out.extend(rows)
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.docs_gen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if the file is out of date")
    parser.add_argument("--output", type=Path, default=DOC_PATH, help="default: %(default)s")
    args = parser.parse_args(argv)
    text = render()
    current = args.output.read_text(encoding="utf-8") if args.output.is_file() else None
    if args.check:
        if current != text:
            print(f"{args.output} is out of date: run python -m bridge.docs_gen", file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
