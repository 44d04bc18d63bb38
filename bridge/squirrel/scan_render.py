"""`bridge scan` output: a terminal table, Markdown and JSON from one `ScanReport`."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from bridge.squirrel.imp_api import PROVIDED
from bridge.squirrel.scan import AmqpSite, ApiSite, Deviation, ScanReport


def _where(file: str, line: int) -> str:
    if os.path.isabs(file):
        relative = os.path.relpath(file)
        file = file if relative.startswith("..") else relative
    return f"{file}:{line}"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _cut_left(text: str, width: int) -> str:
    """Keep the end (the file name and line) of a long location."""
    return text if len(text) <= width else "…" + text[len(text) - width + 1:]


def _deviations(report: ScanReport) -> dict[str, Deviation]:
    found: dict[str, Deviation] = {}
    for site in report.amqp:
        for deviation in site.deviations:
            found.setdefault(deviation.source, deviation)
    return dict(sorted(found.items()))


def _columns(rows: Sequence[tuple[str, ...]], widths: tuple[int, ...]) -> list[str]:
    if not rows:
        return []
    sizes = [min(max(len(row[i]) for row in rows), widths[i]) for i in range(len(widths))]
    return ["  " + "  ".join((_cut_left if i == 0 else _cut)(cell, sizes[i]).ljust(sizes[i])
                             for i, cell in enumerate(row)).rstrip() for row in rows]


def _api_uses(report: ScanReport) -> dict[str, list[ApiSite]]:
    """Sites per API, the unsupported ones first, then by name."""
    uses: dict[str, list[ApiSite]] = {}
    for site in report.apis:
        uses.setdefault(site.api, []).append(site)
    return dict(sorted(uses.items(), key=lambda item: (item[1][0].status == PROVIDED, item[0])))


def _places(sites: list[ApiSite]) -> list[str]:
    """``file:12``, then ``30`` for more lines of the same file."""
    places: list[str] = []
    previous = None
    for site in sites:
        places.append(str(site.line) if site.file == previous else _where(site.file, site.line))
        previous = site.file
    return places


def _first_places(sites: list[ApiSite], shown: int = 4) -> str:
    places = ", ".join(_places(sites[:shown]))
    return places + (f", … ({len(sites) - shown} more)" if len(sites) > shown else "")


def _deviation_refs(site: AmqpSite) -> str:
    return ", ".join(d.source for d in site.deviations)


def render_text(report: ScanReport) -> str:
    """The terminal form: call sites, the deviations met, imp APIs, what is unsupported."""
    out = [f"bridge scan: {len(report.files)} file(s), backend {report.backend}", ""]
    out.append(f"AMQP call sites ({len(report.amqp)}): where, call, detail; -> what it becomes "
               f"[deviations]")
    lines = _columns([(_where(s.file, s.line), s.call, s.detail) for s in report.amqp],
                     (48, 19, 1000))
    for line, site in zip(lines, report.amqp, strict=True):
        refs = _deviation_refs(site)
        what = site.becomes if site.supported else f"UNSUPPORTED: {site.problem}"
        out += [line, f"      -> {what}" + (f"  [{refs}]" if refs else "")]
    deviations = _deviations(report)
    if deviations:
        out += ["", f"Deviations that apply on {report.backend} ({len(deviations)})"]
        out += [f"  {d.source}: {d.text}" for d in deviations.values()]
    uses = _api_uses(report)
    out += ["", f"imp APIs ({len(uses)} used, {len(report.apis)} uses)"]
    rows = [("API", "STATUS", "USES", "WHERE (first)", "NOTE")]
    rows += [(api, sites[0].status, str(len(sites)), _first_places(sites), sites[0].note)
             for api, sites in uses.items()]
    out += _columns(rows, (28, 11, 5, 60, 70))
    if report.requires:
        out += ["", f"#require ({len(report.requires)})"]
        out += [f"  {_where(r.file, r.line)}  {r.spec}  -> "
                f"{r.resolved or 'not scanned (give --require-path)'}" for r in report.requires]
    unsupported = report.unsupported()
    out += ["", f"Unsupported ({len(unsupported)})" if unsupported else "Unsupported: none"]
    out += [f"  {line}" for line in unsupported]
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: ScanReport) -> str:
    """The Markdown form (for a migration plan or a pull request)."""
    out = [f"# bridge scan: backend `{report.backend}`", "",
           "Files: " + ", ".join(f"`{f}`" for f in report.files), "",
           f"## AMQP call sites ({len(report.amqp)})", "",
           "| Where | Call | Detail | Becomes | Deviations |", "|---|---|---|---|---|"]
    for s in report.amqp:
        becomes = s.becomes if s.supported else f"**unsupported**: {s.problem}"
        out.append(f"| `{_where(s.file, s.line)}` | `{s.call}` | {_md(s.detail)} | "
                   f"{_md(becomes)} | {_md(_deviation_refs(s))} |")
    deviations = _deviations(report)
    if deviations:
        out += ["", f"## Deviations on `{report.backend}`", "", "| Source | Deviation |",
                "|---|---|"]
        out += [f"| {d.source} | {_md(d.text)} |" for d in deviations.values()]
    uses = _api_uses(report)
    out += ["", f"## imp APIs ({len(uses)} used, {len(report.apis)} uses)", "",
            "| API | Status | Uses | Where | Note |", "|---|---|---|---|---|"]
    out += [f"| `{api}` | {sites[0].status} | {len(sites)} | "
            + ", ".join(f"`{place}`" for place in _places(sites))
            + f" | {_md(sites[0].note)} |" for api, sites in uses.items()]
    if report.requires:
        out += ["", "## #require", ""]
        out += [f"- `{_where(r.file, r.line)}` `{r.spec}` → "
                f"{('`' + r.resolved + '`') if r.resolved else 'not scanned'}"
                for r in report.requires]
    unsupported = report.unsupported()
    out += ["", f"## Unsupported ({len(unsupported)})", ""]
    out += [f"- {_md(line)}" for line in unsupported] or ["None."]
    return "\n".join(out) + "\n"


def render_json(report: ScanReport) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


__all__ = ["render_json", "render_markdown", "render_text"]
