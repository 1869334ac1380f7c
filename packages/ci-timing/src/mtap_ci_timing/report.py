"""deployment-viability-report.md (D4) from ci-timing documents (GitHub Actions history, a
local cold-clone measurement, or both) and the runners' own tool-run documents. Deterministic:
the same inputs give the same bytes. URLs are shown without credentials even when a document
(written elsewhere, or by an older version) holds some.

ci-timing v1 documents (GitHub only) are read and upgraded in memory (``upgrade_v1``); v2 is
what ci-timing writes now.

Determinism records: per tool, the ``deterministic`` flag of every case in every
``*.tool-run.json`` under the evaluation folder whose ``tool.name`` is that tool (null or
absent = not compared). A case id met in several documents of the same tool counts once, in
the document with the best status (ok, failed, unsupported, unavailable; ties: the first path
in sorted order), as mtap-aggregate does: a document whose every case is superseded so is not
counted (listed as such), so a leftover ``*.unavailable.tool-run.json`` cannot hide the real
results. Documents that fail to read are listed, never silently dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mtap_schemas

from .client import public_url, scrub
from .local import DEFAULT_RUNNERS
from .rules import Rules

#: runs shown as columns of the success matrix (the counts use every run read)
MATRIX_RUNS = 30

MARK = {"success": "✓", "failure": "✗", "cancelled": "⊘", "skipped": "–", "timed_out": "⏱", "unavailable": "∅"}

#: tool-run case status, best first (as mtap-aggregate ranks them)
STATUS_RANK = {"ok": 0, "failed": 1, "unsupported": 2, "unavailable": 3}


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}"


def _spread(stats: dict[str, Any]) -> str:
    if not stats or not stats.get("n"):
        return "–"
    text = f"{_fmt(stats['median'])} [{_fmt(stats['p10'])}–{_fmt(stats['p90'])}]"
    if stats.get("stdev") is not None:
        text += f" ±{_fmt(stats['stdev'])}"
    return text


def _range(stats: dict[str, Any]) -> str:
    """Few passes: the median and every value's range, one decimal."""
    if not stats or not stats.get("n"):
        return "–"
    if stats["n"] == 1:
        return _fmt(stats["median"], 1)
    return f"{_fmt(stats['median'], 1)} [{_fmt(stats['min'], 1)}–{_fmt(stats['max'], 1)}]"


def _major(path: Path) -> int | None:
    """The major version in a document's ``schema_version`` (None when it cannot be told):
    only to pick the schema to validate against; ``mtap_schemas.read`` does the real checks."""
    try:
        import orjson

        doc = orjson.loads(path.read_bytes())
        return int(str(doc.get("schema_version", "")).split(".")[0])
    except (OSError, ValueError, AttributeError, TypeError):
        return None


def read_document(path: Path, name: str, majors: tuple[int, ...] = (1,)) -> dict[str, Any]:
    """``mtap_schemas.read`` against the document's own major version when it is one of
    ``majors`` (else the newest, whose header check names the mismatch); bytes that are not
    UTF-8 are also a one-line ``SchemaError``."""
    major = _major(path)
    try:
        return mtap_schemas.read(path, name, major if major in majors else max(majors))
    except UnicodeDecodeError as exc:
        raise mtap_schemas.SchemaError(f"{path}: not valid UTF-8 (byte {exc.start})") from None


def upgrade_v1(doc: dict[str, Any]) -> dict[str, Any]:
    """A ci-timing v1 document (GitHub only) in v2's shape; the same data, nothing invented:
    the fields v1 never had are null (not measured)."""
    if not str(doc["schema_version"]).startswith("1."):
        return doc
    out = dict(doc, schema_version=mtap_schemas.version("ci-timing", 2), source={"kind": "github", **doc["source"]})
    runs = []
    for run in doc["runs"]:
        jobs = [dict(job, first_result_seconds=None, install_path=None, reused_build=None, determinism=None,
                     steps=[dict(step, command=None) for step in job["steps"]]) for job in run["jobs"]]
        runs.append(dict(run, jobs=jobs))
    out["runs"] = runs
    empty = {"n": 0, "median": None, "p10": None, "p90": None, "stdev": None, "min": None, "max": None}
    out["tools"] = [dict(t, first_result_seconds=empty, install_paths=[], determinism=None, reused_build=None) for t in doc["tools"]]
    return out


def read_ci(path: Path) -> dict[str, Any]:
    """A ci-timing document, v1 or v2, as v2 (one-line ``SchemaError`` when invalid)."""
    return upgrade_v1(read_document(path, "ci-timing", (1, 2)))


def read_tool_runs(evaluation_dir: Path) -> tuple[dict[str, dict[str, int]], list[tuple[str, str]], list[tuple[str, str]]]:
    """tool -> {documents, cases, true, false, unknown}; (path, reason) of unreadable documents;
    (path, tool) of documents not counted because every case is superseded (module doc)."""
    out: dict[str, dict[str, int]] = {}
    skipped: list[tuple[str, str]] = []
    superseded: list[tuple[str, str]] = []
    if not evaluation_dir.is_dir():
        return out, skipped, superseded
    docs: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(evaluation_dir.rglob("*.tool-run.json")):
        rel = path.relative_to(evaluation_dir).as_posix()
        try:
            docs.append((rel, read_document(path, "tool-run", (1, 2))))
        except mtap_schemas.SchemaError as exc:
            skipped.append((rel, str(exc)))
    best: dict[tuple[str, str], tuple[int, int]] = {}
    for index, (_rel, doc) in enumerate(docs):
        for case in doc["cases"]:
            key = (doc["tool"]["name"], case["id"])
            rank = (STATUS_RANK.get(case["status"], len(STATUS_RANK)), index)
            if key not in best or rank < best[key]:
                best[key] = rank
    for index, (rel, doc) in enumerate(docs):
        tool = doc["tool"]["name"]
        kept = [c for c in doc["cases"] if best[(tool, c["id"])][1] == index]
        if doc["cases"] and not kept:
            superseded.append((rel, tool))
            continue
        row = out.setdefault(tool, {"documents": 0, "cases": 0, "true": 0, "false": 0, "unknown": 0})
        row["documents"] += 1
        for case in kept:
            row["cases"] += 1
            flag = case.get("deterministic")
            row["true" if flag is True else "false" if flag is False else "unknown"] += 1
    return out, skipped, superseded


def determinism_cell(row: dict[str, int] | None) -> str:
    if row is None:
        return "no tool-run document"
    compared = row["true"] + row["false"]
    if compared == 0:
        return f"not checked (0/{row['cases']} cases compared)"
    verdict = "yes" if row["false"] == 0 else "no"
    return f"{verdict} ({row['true']}/{compared} cases identical)"


def repeat_cell(det: dict[str, Any] | None) -> str:
    """A local measurement's pass-to-pass comparison."""
    if det is None:
        return "not compared (no second pass with cases)"
    if det["compared"] == 0:
        return f"not compared (0 common cases, {det['unmatched']} in one pass only)"
    verdict = "yes" if not det["differing"] and det["identical"] == det["compared"] else "no"
    text = f"{verdict} ({det['identical']}/{det['compared']} cases identical"
    if det["differing"]:
        text += "; differ: " + ", ".join(f"`{c}`" for c in det["differing"][:3]) + (" …" if len(det["differing"]) > 3 else "")
    if det["unmatched"]:
        text += f"; {det['unmatched']} in one pass only"
    return text + ")"


def install_cell(paths: list[dict[str, Any]]) -> str:
    if not paths:
        return "–"
    parts = []
    for p in paths:
        text = f"**{p['kind']}**"
        if p["kind"] == "unavailable":
            text += f": {scrub(p['reason'] or 'no reason recorded')}"
        elif p["detail"]:
            text += f": {scrub(p['detail'])}"
        parts.append(text + (f" ({p['jobs']}×)" if len(paths) > 1 else ""))
    return "; ".join(parts).replace("|", "\\|")


def build_cell(build: dict[str, Any] | None) -> str:
    if build is None:
        return "–"
    when = f" of {build['built_at']}" if build["built_at"] else ""
    version = build["version"]
    if version.startswith("git:") and len(version) > 16:
        version = version[:16] + "…" + ("-dirty" if version.endswith("-dirty") else "")
    return f"{_fmt(build['build_seconds'], 0)} (reused build `{version}`{when}; verified {scrub(build['verify'])})".replace("|", "\\|")


def _local_section(ci: dict[str, Any], ci_path: str) -> list[str]:
    src = ci["source"]
    host = src["host"]
    load = ", ".join(f"{x:g}" for x in host["load_average"]) or "unknown"
    lines = [f"## Local measurement (`{ci_path}`)", ""]
    lines.append(
        f"`{src['repository']}` at commit `{src['commit'][:12]}`{' (' + src['branch'] + ')' if src['branch'] else ''}: each runner measured"
        f" {src['passes']}× from a fresh `git clone` of the committed HEAD with cold caches ({', '.join(f'`{v}`' for v in src['cold_caches'])}"
        f" pointed at empty folders), on {host['platform']}, {host['cpus']} CPU(s), Python {host['python']}, load average at start {load};"
        f" measured {ci['wall_clock']['scraped_at']} with {ci['scraper']['name']} {ci['scraper']['version']}."
    )
    sources = host["package_sources"]
    lines += ["", "Package sources besides the cold caches: " + ("; ".join(f"`{scrub(x)}`" for x in sources) if sources else "PyPI only") + "."]
    lines += [
        "",
        "Seconds, median [min–max] over successful passes. Setup = clone + `nox --install-only` (cold) + the runner's own setup",
        "step if any; first result = pass start to the end of the first result (`nox -s SESSION --no-install -- --output … --limit N`);",
        "run = that first-result step alone. A source build reused from the mtap cache is not re-timed: its own measured build",
        "time (`build.json`) is shown apart and is not included in setup. Identical on repeat: each later pass's first-result",
        "cases (status and metrics) against the first pass's — only the cases that step runs (`--limit N`).",
        "",
        "| tool | passes | success | setup (s) | first result (s) | run (s) | source build (s) | install path | identical on repeat |",
        "|---|---:|---:|---|---|---|---|---|---|",
    ]
    for row in ci["tools"]:
        ok = row["conclusions"].get("success", 0)
        lines.append(
            f"| {row['tool']} | {row['jobs']} | {ok} | {_range(row['setup_seconds'])} | {_range(row['first_result_seconds'])} | "
            f"{_range(row['run_seconds'])} | {build_cell(row['reused_build'])} | {install_cell(row['install_paths'])} | {repeat_cell(row['determinism'])} |"
        )
    for item in src["not_measured"]:
        reason = scrub(item["reason"]).replace("|", "\\|")
        lines.append(f"| {item['session']} | 0 | – | – | – | – | – | not measured: {reason} | – |")
    lines.append("")
    failed = [(run["run_number"], job) for run in ci["runs"] for job in run["jobs"] if job["conclusion"] != "success"]
    if failed:
        lines += ["Passes that did not give a result:", ""]
        for number, job in sorted(failed, key=lambda x: (x[1]["name"], x[0])):
            reason = (job["install_path"] or {}).get("reason") or "the first-result step failed (see its command)"
            step = next((s for s in job["steps"] if s["conclusion"] != "success"), job["steps"][-1] if job["steps"] else None)
            where = f" at step {step['number']} ({scrub(step['name'])})" if step else ""
            lines.append(f"- {job['name']} pass {number}: {job['conclusion']}{where}: {scrub(reason)}")
        lines.append("")
    return lines


def _github_section(ci: dict[str, Any], ci_path: str, determinism: dict[str, dict[str, int]]) -> list[str]:
    """A GitHub Actions document: its source (and an incomplete scrape's banner), the per-tool table, the
    success matrix and Docker vs native counts, and the jobs no tool claims."""
    runs = ci["runs"]
    lines = _github_source(ci, ci_path)
    lines += _github_tools(ci["tools"], determinism)
    if runs:
        lines += _success_matrix(runs, ci["tools"])
        lines += _docker_vs_native(ci["tools"])
    if ci["unmapped_jobs"]:
        lines += ["### Jobs not mapped to a tool", ""]
        lines += [f"- `{u['name']}` ({u['count']}×)" for u in ci["unmapped_jobs"]]
        lines.append("")
    return lines


def _github_source(ci: dict[str, Any], ci_path: str) -> list[str]:
    """Where the runs were read, which and how many, by which scraper; what an incomplete scrape did not read."""
    src = ci["source"]
    runs = ci["runs"]
    scope = ", ".join(f"{k} `{src[k]}`" for k in ("workflow", "branch", "event") if src.get(k))
    lines = [f"## GitHub Actions history (`{ci_path}`)", ""]
    lines.append(
        f"Source: `{src['repository']}` via {public_url(src['api_url'], query=False)[0]}, {len(runs)} completed workflow run(s) read"
        f" (last {src['runs_requested']} requested{', ' + scope if scope else ''})"
        + (f", created {runs[-1]['created_at']} to {runs[0]['created_at']}." if runs else ".")
    )
    lines.append(f"Scraped with {ci['scraper']['name']} {ci['scraper']['version']} ({ci['scraper']['client']}).")
    lines.append("")
    if not ci["complete"]:
        lines.append("> **Incomplete scrape** (`complete: false`): the numbers below cover only the runs read.")
        for item in ci["missing"]:
            lines.append(f"> - not read: {scrub(item['what'])} — {scrub(item['reason'])}")
        lines.append("")
    return lines


def _github_tools(tools_rows: list[dict[str, Any]], determinism: dict[str, dict[str, int]]) -> list[str]:
    """Per tool: job counts by conclusion, success rate, setup / first result / run / Docker build spreads,
    and the determinism verdict of its tool-run records."""
    lines = [
        "Times in seconds over successful jobs: median [p10–p90] ±stdev. Setup = job start to the end of the last",
        "install/build step before the first run step; first result = job start to the end of the first run step;",
        "run = sum of run steps. Deterministic: the runners' tool-run records (below).",
        "",
        "| tool | CI jobs | success | failure | other | success rate | setup (s) | first result (s) | run (s) | Docker build (s) | deterministic |",
        "|---|---:|---:|---:|---:|---:|---|---|---|---|---|",
    ]
    if not tools_rows:
        lines.append("| _none_ | | | | | | | | | | |")
    for row in tools_rows:
        c = row["conclusions"]
        other = row["jobs"] - c.get("success", 0) - c.get("failure", 0)
        rate = "–" if row["success_rate"] is None else f"{row['success_rate'] * 100:.0f}%"
        lines.append(
            f"| {row['tool']} | {row['jobs']} | {c.get('success', 0)} | {c.get('failure', 0)} | {other} | {rate} | "
            f"{_spread(row['setup_seconds'])} | {_spread(row['first_result_seconds'])} | {_spread(row['run_seconds'])} | "
            f"{_spread(row['docker_build_seconds'])} | {determinism_cell(determinism.get(row['tool']))} |"
        )
    lines.append("")
    return lines


def _success_matrix(runs: list[dict[str, Any]], tools_rows: list[dict[str, Any]]) -> list[str]:
    """Each tool's job conclusions in the latest MATRIX_RUNS runs, newest first (several marks: re-runs or matrix variants)."""
    shown_runs = runs[:MATRIX_RUNS]
    shown = "" if len(shown_runs) == len(runs) else f" (latest {len(shown_runs)} of {len(runs)} runs; the counts above use all)"
    lines = [f"### Success matrix (newest run first){shown}", ""]
    lines.append(
        "✓ success, ✗ failure, ⊘ cancelled, – skipped, ⏱ timed out, blank: no such job in that run; "
        "several marks: re-run attempts or matrix variants."
    )
    lines.append("")
    lines.append("| tool | " + " | ".join(f"#{r['run_number']}" for r in shown_runs) + " |")
    lines.append("|---|" + "---|" * len(shown_runs))
    for name in [r["tool"] for r in tools_rows]:
        cells = []
        for run in shown_runs:
            marks = [MARK.get(j["conclusion"] or "", j["conclusion"] or "?") for j in run["jobs"] if j["tool"] == name]
            cells.append(" ".join(marks))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _docker_vs_native(tools_rows: list[dict[str, Any]]) -> list[str]:
    """Per tool: jobs and successes of jobs that build a Docker image and of those that do not."""
    lines = [
        "### Docker vs native setup",
        "",
        "| tool | Docker jobs | Docker success | native jobs | native success |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in tools_rows:
        d, n = row["docker"], row["native"]
        lines.append(f"| {row['tool']} | {d['jobs']} | {d['success']} | {n['jobs']} | {n['success']} |")
    lines.append("")
    return lines


def render(docs: list[tuple[str, dict[str, Any]]], determinism: dict[str, dict[str, int]], skipped: list[tuple[str, str]],
           evaluation_dir: str, superseded: list[tuple[str, str]] | None = None) -> str:
    """The report from ``(path, ci-timing v2 document)`` pairs, local ones first."""
    names = ", ".join(f"`{p}`" for p, _ in docs) or "no ci-timing document"
    lines = ["# Deployment viability (D4)", ""]
    lines.append(
        f"Generated by ci-timing from {names} and the runners' tool-run documents under "
        f"`{evaluation_dir}/`. Do not edit by hand; regenerate with `ci-timing report` (or measure again with `ci-timing local`)."
    )
    lines.append("")
    local = [(p, d) for p, d in docs if d["source"]["kind"] == "local"]
    github = [(p, d) for p, d in docs if d["source"]["kind"] == "github"]
    if not local:
        lines += ["**No local measurement yet.** Run `ci-timing local` from the repository root: it clones the committed HEAD,",
                  "installs and runs each runner twice with cold caches and records setup, first result, determinism and install path.", ""]
    for path, doc in local:
        lines += _local_section(doc, path)
    if local:
        rules = Rules()
        covered = {t["tool"] for _, d in local for t in d["tools"]}
        covered |= {rules.tool_of(item["session"]) for _, d in local for item in d["source"]["not_measured"]}
        absent = sorted({rules.tool_of(r["job"]) or r["job"] for r in DEFAULT_RUNNERS} - covered)
        if absent:
            lines += [f"Not measured locally (in no local document, so no number): {', '.join(absent)}.", ""]
    if not github:
        lines += [
            "**No CI history scraped yet.** Setup times, Docker build times and success counts from GitHub Actions",
            "history join this report when a real repository's history is scraped: `nox -s ci-timing -- --repo OWNER/NAME --runs 20`",
            "(with `GITHUB_TOKEN` set for the higher rate limit) where the API can be reached.",
            "",
        ]
    for path, doc in github:
        lines += _github_section(doc, path, determinism)

    lines += ["## Determinism records (tool-run documents)", ""]
    if determinism:
        lines += ["Each tool's `deterministic` flags, a case id counted once (in the document with its best status).", ""]
        lines += ["| tool | documents | cases | identical on repeat | differ | not compared | deterministic |", "|---|---:|---:|---:|---:|---:|---|"]
        for name in sorted(determinism):
            r = determinism[name]
            lines.append(f"| {name} | {r['documents']} | {r['cases']} | {r['true']} | {r['false']} | {r['unknown']} | {determinism_cell(r)} |")
    else:
        lines.append(f"No tool-run documents under `{evaluation_dir}/` yet.")
    lines.append("")
    if superseded:
        lines += ["Not counted: every case superseded by another document of the same tool:", ""]
        lines += [f"- `{p}` ({tool})" for p, tool in superseded]
        lines.append("")
    if skipped:
        lines += ["Unreadable tool-run documents (left out):", ""]
        lines += [f"- `{p}`: {reason}" for p, reason in skipped]
        lines.append("")
    return "\n".join(lines)


def build_report(inputs: Path | list[Path], evaluation_dir: Path, output: Path) -> tuple[Path, bool]:
    """Write the report from the ci-timing documents among ``inputs`` that exist; returns (path,
    whether any was present). A present but invalid document raises ``mtap_schemas.SchemaError``."""
    paths = [inputs] if isinstance(inputs, Path) else list(inputs)
    docs = [(p.as_posix(), read_ci(p)) for p in paths if p.is_file()]
    docs.sort(key=lambda d: (d[1]["source"]["kind"] != "local", d[0]))
    determinism, skipped, superseded = read_tool_runs(evaluation_dir)
    text = render(docs, determinism, skipped, evaluation_dir.as_posix(), superseded)
    mtap_schemas.write_text_atomic(output, text)
    return output, bool(docs)
