"""The benchmark's JSON report and its Markdown tables: each path's figures, the ratios to
the raw engine side by side, the clients' CPU and headroom, errors, the realistic load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import report_tables

# (path, baseline): the app against the engine it embeds or calls, and both HTTP front ends
# (the app's page and vLLM's own OpenAI server) against the engine alone and each other; the
# page paths also against the engine alone with its people pausing between answers.
COMPARISONS = (("app", "raw"), ("app_scaled", "raw"), ("server", "raw"), ("server_api4", "raw"),
               ("app", "server"), ("app", "server_api4"), ("app_scaled", "server_api4"),
               ("app_remote", "server"), ("app", "raw_paced"), ("app_scaled", "raw_paced"))


def write(run: dict[str, Any], out: Path) -> None:
    (out / "benchmark.json").write_text(json.dumps(run, indent=2))
    (out / "benchmark.md").write_text(markdown(run))


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each scenario of a compared path beside its baseline's, same workload (COMPARISONS)."""
    by_key = {(r["path"], r["kind"], r["users"]): r for r in results}
    rows = []
    for path, baseline in COMPARISONS:
        for r in results:
            base = by_key.get((baseline, r["kind"], r["users"]))
            if r["path"] == path and base is not None:
                rows.append(_compared(r, base))
    return rows


def _compared(r: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    return {
        "path": r["path"], "baseline": base["path"], "kind": r["kind"], "users": r["users"],
        "ttft_p50_delta_ms": _diff(r["ttft_p50_ms"], base["ttft_p50_ms"]),
        "ttft_p50_ratio": _ratio(r["ttft_p50_ms"], base["ttft_p50_ms"]),
        "tok_s_ratio": _ratio(r["aggregate_tok_s"], base["aggregate_tok_s"]),
    }


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 1)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def markdown(run: dict[str, Any]) -> str:
    lines = [f"## Benchmark {run.get('label') or ''} ({run['started']})".replace("  ", " "),
             "", *_machine(run), ""]
    lines += report_tables.headroom_warning(run)
    if run["results"]:
        lines += _results(run) + report_tables.side_by_side(run["results"])
    rows = ratios(run["results"])
    if rows:
        lines += ["", "Each path against its baseline, same workload:", "",
                  "| path vs baseline | kind | users | TTFT p50 +ms | TTFT p50 ratio "
                  "| tok/s ratio |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['path']} vs {r['baseline']} | {r['kind']} | {r['users']} | "
                  f"{r['ttft_p50_delta_ms']} | {r['ttft_p50_ratio']} | {r['tok_s_ratio']} |"
                  for r in rows]
    lines += report_tables.page_steps(run) + report_tables.answer_gaps(run)
    lines += report_tables.machine_cpu(run)
    lines += report_tables.calibration(run) + report_tables.realistic(run)
    lines += report_tables.errors_and_skips(run)
    lines += ["", *_extras(run), ""]
    return "\n".join(lines)


def _machine(run: dict[str, Any]) -> list[str]:
    m, settings = run["machine"], run["settings"]
    workload = (f"; {settings['output_tokens']} output tokens per request (EOS ignored on the "
                f"raw engine and the server; the page asks for the same budget), "
                f"{settings['requests_per_user']} requests per user, each user's requests one "
                f"after another, all users at once" if run["results"] else "")
    return [
        f"Machine: {m['cores']} CPU cores ({m['cpu']}), {m['memory_gib']} GiB, "
        f"GPU: {m['gpu'] or 'none'}; Python {m['python']}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in run["versions"].items()) + ".",
        f"Model: `{run.get('model', '')}`. Settings: `{' '.join(run['app_args'])}`{workload}. "
        f"Clients: {run.get('client_procs', 1)} processes.",
    ]


def _results(run: dict[str, Any]) -> list[str]:
    lines = ["| path | kind | users | TTFT p50 / p95 ms | the page's own TTFT p50 ms "
             "| ITL p50 / p95 ms | aggregate tok/s | answers in the engine, mean | errors "
             "| client CPU per process |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in run["results"]:
        cpu = " / ".join(f"{c:.0%}" for c in r.get("client_cpu") or []) or "in-process"
        lines.append(f"| {r['path']} | {r['kind']} | {r['users']} | {r['ttft_p50_ms']} / "
                     f"{r['ttft_p95_ms']} | {r.get('app_ttft_p50_ms', '')} | "
                     f"{r['itl_p50_ms']} / {r['itl_p95_ms']} | "
                     f"{r['aggregate_tok_s']} | {r.get('in_engine_mean', '')} | "
                     f"{r['errors']} | {cpu} |")
    return lines


def _extras(run: dict[str, Any]) -> list[str]:
    lines = []
    prep = run.get("media_prep", {})
    for key, label in (("photo_12mp", "12 MP JPEG"), ("speech_60s", "60 s MP3")):
        if key in prep:
            p = prep[key]
            lines.append(f"- Media preparation, {label} ({p['bytes'] / 1e6:.1f} MB) to engine "
                         f"input: p50 {p['p50_ms']} ms, worst {p['max_ms']} ms "
                         f"({p['tokens']} tokens).")
    if start := run.get("app_start"):
        lines.append(f"- App start: page served in {start['page_s']} s, engine ready in "
                     f"{start['engine_ready_s']} s.")
        lines.append(f"- Memory: app without an engine {_gib(start['rss_without_engine'])}; "
                     f"app at first page {_gib(start['rss_at_page'])}; app with its engine "
                     f"loaded {_gib(start['rss_engine_loaded'])}, after the load test "
                     f"{_gib(start['rss_after_load_test'])}.")
    if start and start.get("cpu_ms_per_1k_tokens") is not None:
        lines.append(f"- The app process's own CPU over the load test (its engine's core process "
                     f"not counted): {start['cpu_ms_per_1k_tokens']} ms per 1,000 tokens "
                     f"streamed.")
    if alone := run.get("engine_alone"):
        lines.append(f"- Engine alone (AsyncLLM, same settings): loaded in {alone['start_s']} s, "
                     f"peak memory {_gib(alone['peak_rss'])}.")
    for path in ("server", "server_api4"):
        if server := run.get(f"{path}_start"):
            lines.append(f"- vLLM OpenAI server ({path}, {server['api_servers']} API "
                         f"process(es)) ready in {server['ready_s']} s.")
    for key, facts in run.items():
        if key.endswith("_start") and isinstance(facts, dict) and facts.get("gpu_memory_mib"):
            used = ", ".join(f"{mib / 1024:.1f} GiB" for mib in facts["gpu_memory_mib"])
            lines.append(f"- GPU memory in use per GPU at the end of {key[:-6]}: {used}.")
    return lines


def _gib(value: int) -> str:
    return f"{value / 2**30:.2f} GiB"
