"""The report's tables beyond each path's own figures: every path's tokens per second beside
the raw engine's, the clients' calibration and headroom, the realistic load, the errors."""

from __future__ import annotations

from typing import Any

from bench.calibrate import HEADROOM_NEEDED
from bench.machine_cpu import KINDS
from bench.realistic import P95_LIMIT_MS
from bench.workload import PAGE_STEPS


def side_by_side(results: list[dict[str, Any]]) -> list[str]:
    """One row per workload: each path's tok/s / ratio to raw, and TTFT p50 + delta to raw."""
    paths = list(dict.fromkeys(r["path"] for r in results))
    by_key = {(r["path"], r["kind"], r["users"]): r for r in results}
    workloads = list(dict.fromkeys((r["kind"], r["users"]) for r in results))
    lines = ["", "Side by side (tok/s, ratio to raw; TTFT p50 ms, + ms over raw):", "",
             "| kind | users | " + " | ".join(paths) + " |",
             "|---|---|" + "---|" * len(paths)]
    for kind, users in workloads:
        raw = by_key.get(("raw", kind, users))
        cells = [_cell(by_key.get((path, kind, users)), raw) for path in paths]
        lines.append(f"| {kind} | {users} | " + " | ".join(cells) + " |")
    return lines


def _cell(result: dict[str, Any] | None, raw: dict[str, Any] | None) -> str:
    if result is None:
        return "-"
    tok_s, ttft = result["aggregate_tok_s"], result["ttft_p50_ms"]
    text = f"{tok_s} tok/s"
    if raw and raw is not result and tok_s and raw["aggregate_tok_s"]:
        text += f" ({tok_s / raw['aggregate_tok_s']:.2f}x)"
    text += f"; {ttft} ms"
    if raw and raw is not result and ttft is not None and raw["ttft_p50_ms"] is not None:
        text += f" (+{ttft - raw['ttft_p50_ms']:.1f})"
    if result["errors"]:
        text += f"; **{result['errors']} errors**"
    return text


def headroom_warning(run: dict[str, Any]) -> list[str]:
    """A loud line at the top when the clients could not take twice the fastest path."""
    short = [h for h in run.get("headroom", []) if h["enough"] is False]
    if not short:
        return []
    worst = min(short, key=lambda h: h["headroom"])
    return [f"**WARNING: the clients' headroom is under {HEADROOM_NEEDED:g}x** "
            f"({worst['client']} client at {worst['users']} users: {worst['headroom']}x of "
            f"{worst['fastest_path']}'s {worst['fastest_tok_s']} tok/s). Figures near the "
            "clients' ceiling measure the clients, not the server; see the calibration below.",
            ""]


def machine_cpu(run: dict[str, Any]) -> list[str]:
    """The whole machine's CPU in each scenario: busy cores, and the cores each kind of
    process used (bench/machine_cpu.py)."""
    rows = [r for r in run["results"] if r.get("machine_cpu")]
    if not rows:
        return []
    lines = ["", "The machine's CPU while the people ran, in cores (of "
             f"{rows[0]['machine_cpu']['cores']}): all processes, and by kind. Linux counts "
             "CPU time in 10 ms ticks, so a window under a second is a rough figure.", "",
             "| path | kind | users | window s | busy | steal | " + " | ".join(KINDS) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(KINDS)]
    for r in rows:
        m = r["machine_cpu"]
        lines.append(f"| {r['path']} | {r['kind']} | {r['users']} | {m['wall_s']:.2f} | "
                     f"{m['busy_cores']} | "
                     f"{m['steal_cores']} | "
                     + " | ".join(f"{m['by_kind'].get(k, 0.0):.2f}" for k in KINDS) + " |")
    return lines


def page_steps(run: dict[str, Any]) -> list[str]:
    """The page's steps around each answer (p50 ms), for the paths through the page."""
    rows = [r for r in run["results"] if r.get("page_steps_p50_ms")]
    if not rows:
        return []
    lines = ["", "The page's steps per message, p50 ms (clear is the benchmark's own; "
             "answer start runs from pressing Enter, or from the accept step's reply on a "
             "page that has one, to the page's engine request, with the first text's way "
             "back):", "",
             "| path | kind | users | " + " | ".join(PAGE_STEPS) + " |",
             "|---|---|---|" + "---|" * len(PAGE_STEPS)]
    for r in rows:
        steps = r["page_steps_p50_ms"]
        lines.append(f"| {r['path']} | {r['kind']} | {r['users']} | "
                     + " | ".join(str(steps.get(step, "")) for step in PAGE_STEPS) + " |")
    return lines


def answer_gaps(run: dict[str, Any]) -> list[str]:
    """Each answer's mean time per token on each clock that saw it (p50 over answers): a
    page slower than the engine shows as a client's gap above the engine's."""
    rows = [r for r in run["results"] if r.get("answer_gap_engine_p50_ms") is not None]
    if not rows:
        return []
    lines = ["", "Each answer's mean time per token, first token to last, p50 over answers "
             "(ms): on the engine core's clock (vLLM's own stamps), as the page process "
             "received the tokens, and as the client did:", "",
             "| path | kind | users | engine core | page process | client |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['path']} | {r['kind']} | {r['users']} | "
                     f"{r['answer_gap_engine_p50_ms']} | {r.get('answer_gap_page_p50_ms', '')} "
                     f"| {r['answer_gap_client_p50_ms']} |")
    bursts = [f"{r['path']} at {r['users']}" for r in rows
              if (r["answer_gap_client_p50_ms"] or 0) < 0.95 * r["answer_gap_engine_p50_ms"]]
    if bursts:
        lines += ["", f"For {', '.join(bursts)} the client's figure is below the engine's: "
                  "the tokens waited and reached the client in bursts, so the client (or the "
                  "process between) was busy; that row's client figure is not the engine's pace."]
    return lines


def calibration(run: dict[str, Any]) -> list[str]:
    if "calibration" not in run:
        return []
    lines = ["", f"Calibration: the same client processes against a zero-cost stand-in server "
             f"(text; one stand-in process per client process). Headroom is the clients' "
             f"ceiling over the fastest tok/s any path reached with as many users; it must be "
             f"at least {HEADROOM_NEEDED:g}x.", "",
             "| client | users | ceiling tok/s | client CPU per process | fastest path | "
             "headroom |", "|---|---|---|---|---|---|"]
    headroom = {(h["client"], h["users"]): h for h in run.get("headroom", [])}
    for row in run["calibration"]:
        client = row["path"].removeprefix("standin_")
        h = headroom.get((client, row["users"]), {})
        cpu = " / ".join(f"{c:.0%}" for c in row.get("client_cpu") or [])
        fastest = (f"{h['fastest_path']} {h['fastest_kind']} {h['fastest_tok_s']}"
                   if h.get("fastest_path") else "-")
        verdict = "-" if h.get("headroom") is None else (
            f"{h['headroom']}x" + ("" if h["enough"] else " **too little**"))
        lines.append(f"| {client} | {row['users']} | {row['aggregate_tok_s']} | {cpu} | "
                     f"{fastest} | {verdict} |")
    return lines


def realistic(run: dict[str, Any]) -> list[str]:
    found = run.get("realistic")
    if not found:
        return []
    plan = found["plan"]
    lines = ["", f"Realistic load: people arrive at random over about {plan['ramp_s']:g} s "
             f"(Poisson), each sends {plan['messages']} messages ({plan['kind']}, "
             f"{plan['output_tokens']} tokens) with an exponential think time of mean "
             f"{plan['think_s']:g} s; the people grow until TTFT p95 passes "
             f"{P95_LIMIT_MS / 1000:g} s. Largest gap: the longest wait between two updates "
             "of one answer.", "",
             "| path | people | TTFT p50 / p95 / p99 ms | largest gap p50 / p95 / max ms "
             "| tok/s | errors | client CPU |", "|---|---|---|---|---|---|---|"]
    for s in found["steps"]:
        cpu = max(s.get("client_cpu") or [0.0])
        lines.append(f"| {s['path']} | {s['users']} | {s['ttft_p50_ms']} / {s['ttft_p95_ms']} "
                     f"/ {s['ttft_p99_ms']} | {s['largest_gap_p50_ms']} / "
                     f"{s['largest_gap_p95_ms']} / {s['largest_gap_max_ms']} | "
                     f"{s['aggregate_tok_s']} | {s['errors']} | {cpu:.0%} |")
    lines += ["", "**People served well** (the most with TTFT p95 within "
              f"{P95_LIMIT_MS / 1000:g} s and no errors): "
              + ", ".join(f"{path} {n}" for path, n in found["serves_well"].items()) + "."]
    lines += [f"- {path}: skipped ({_one_line(why)})"
              for path, why in found.get("skipped", {}).items()]
    return lines


def errors_and_skips(run: dict[str, Any]) -> list[str]:
    """Paths with any answer that was not a full one, and paths that could not start."""
    lines = []
    failing: dict[str, list[dict[str, Any]]] = {}
    for r in run["results"]:
        if r["errors"]:
            failing.setdefault(r["path"], []).append(r)
    for path, rows in failing.items():
        total = sum(r["errors"] for r in rows)
        lines.append(f"- **{path} is flagged: {total} answers were not full answers** (first: "
                     f"{rows[0]['first_error']}).")
    for path, why in run.get("skipped", {}).items():
        lines.append(f"- {path}: skipped, it did not start ({_one_line(why)}).")
    return ["", *lines] if lines else []


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]
