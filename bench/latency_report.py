"""browser-latency.json and .md: the runs of `bench.browser_latency`, each under its label,
summarised side by side (p50/p90 of the first and the last text, and phi4ui's lead or lag)."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

# The answer's first text, its last, and the last change of any bot message (phi4ui's
# statistics line comes after its answer's text).
MOMENTS = ("first", "last", "done")


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per page: p50/p90 of the first and the last text and the tokens; phi4ui minus minimal,
    as a difference of medians and as the median of the paired rounds' differences."""
    by_page: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for result in rounds:
        by_page[result["page"]].append(result)
    pages: dict[str, dict[str, Any]] = {}
    for page, results in by_page.items():
        pages[page] = {
            f"{moment}_{name}": round(percentile([r[f"{moment}_ms"] for r in results], q), 1)
            for moment in MOMENTS for name, q in (("p50", 0.5), ("p90", 0.9))}
        pages[page]["tokens"] = sorted({r["tokens"] for r in results})
    return {"pages": pages,
            "minus_minimal": {page: _minus_minimal(by_page, pages, page)
                              for page in pages if page != "minimal"},
            "requests": {page: request_pieces(results) for page, results in by_page.items()},
            "cpu_s": {page: cpu_medians(results) for page, results in by_page.items()
                      if all("cpu_s" in r for r in results)}}


def cpu_medians(results: list[dict[str, Any]]) -> dict[str, float]:
    """Median CPU seconds per round of each group of processes (see `round_cpu`)."""
    groups = results[0]["cpu_s"]
    return {group: round(statistics.median(r["cpu_s"][group] for r in results), 3)
            for group in groups}


def _minus_minimal(by_page: dict[str, list[dict[str, Any]]], pages: dict[str, dict[str, Any]],
                   page: str) -> dict[str, float]:
    paired = {r["round"]: r for r in by_page["minimal"]}
    differences = {}
    for moment in MOMENTS:
        pairs = [r[f"{moment}_ms"] - paired[r["round"]][f"{moment}_ms"]
                 for r in by_page[page] if r["round"] in paired]
        differences[f"{moment}_paired_median"] = round(statistics.median(pairs), 1)
        differences[f"{moment}_p50"] = round(pages[page][f"{moment}_p50"]
                                             - pages["minimal"][f"{moment}_p50"], 1)
    return differences


def request_pieces(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The page's requests after the keypress, in order, with median start, first byte and
    end (ms from the keypress); the n-th request to a path counts as its own piece."""
    pieces: dict[str, list[dict[str, float]]] = defaultdict(list)
    for result in results:
        seen: dict[str, int] = defaultdict(int)
        for request in sorted(result["requests"], key=lambda r: r["start"]):
            seen[request["url"]] += 1
            pieces[f"{request['url']} #{seen[request['url']]}"].append(request)
    rows = []
    for name, requests in pieces.items():
        if len(requests) < len(results) / 2:  # a timer's tick, now and then
            continue
        rows.append({"request": name, "seen": len(requests), **{
            key: round(statistics.median(r[key] for r in requests), 1)
            for key in ("start", "first_byte", "end")}})
    return sorted(rows, key=lambda row: row["start"])


def save(out: Path, run: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "browser-latency.json"
    runs = json.loads(path.read_text())["runs"] if path.exists() else []
    run = {**run, "summary": summary(run["rounds"])}
    runs = [kept for kept in runs if kept["label"] != run["label"]] + [run]
    path.write_text(json.dumps({"runs": runs}, indent=1) + "\n")
    (out / "browser-latency.md").write_text(markdown(runs))


def markdown(runs: list[dict[str, Any]]) -> str:
    lines = [
        "# First and last text in the browser: phi4ui against a minimal chat page",
        "",
        "Written by `python -m bench.browser_latency --out docs/benchmarks --label NAME`.",
        "One vLLM OpenAI server on the tiny random-weight checkpoint serves every page:",
        "phi4ui on its remote engine (with `--baseline-tree`, also an earlier version of it,",
        "phi4ui-baseline), and `bench/minimal_chat.py`, the simplest streaming",
        "`gr.ChatInterface` (openai client, greedy, `ignore_eos`). In Debian's Chromium, a",
        "fresh page each round, the same message typed and Enter pressed; a MutationObserver",
        "notes when answer text first appears, when it last changes, and when any bot",
        "message last changes (done), in ms from the keypress. The pages take turns, in an",
        "order reversed every round (A, B, C, C, B, A, ...), so that the load of the shared",
        "machine hits them alike. Only phi4ui shows more after its answer's last text: the",
        "statistics line, which waits for the server's metrics to count the request.",
        "The commit is the code measured as phi4ui.",
        "",
        "| run | commit | rounds | page | first p50 | first p90 | last p50 | last p90 "
        "| done p50 | done p90 | tokens |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        pages = run["summary"]["pages"]
        rounds = len(run["rounds"]) // len(pages)
        for page, s in pages.items():
            lines.append(f"| {run['label']} | {run['commit']} | {rounds} | "
                         f"{page} | {s['first_p50']:.0f} | {s['first_p90']:.0f} | "
                         f"{s['last_p50']:.0f} | {s['last_p90']:.0f} | "
                         f"{s['done_p50']:.0f} | {s['done_p90']:.0f} | "
                         f"{', '.join(str(t) for t in s['tokens'])} |")
    lines += ["", "phi4ui minus minimal (ms; negative: phi4ui sooner):", "",
              "| run | page | first, p50s | first, paired median | last, p50s "
              "| last, paired median | done, p50s | done, paired median |",
              "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        for page, d in run["summary"]["minus_minimal"].items():
            lines.append(f"| {run['label']} | {page} | " + " | ".join(
                f"{d[f'{moment}_p50']:+.0f} | {d[f'{moment}_paired_median']:+.0f}"
                for moment in MOMENTS) + " |")
    for run in runs:
        lines += _requests_section(run)
    return "\n".join(lines) + "\n"


def _requests_section(run: dict[str, Any]) -> list[str]:
    load = run["load_average"]
    lines = ["", f"## {run['label']}: where the time goes", "",
             f"{run['measured_at']}, {run['machine']}; load average {load['before'][0]:.1f} "
             f"before, {load['after'][0]:.1f} after.", ""]
    if run.get("baseline"):
        lines[-1:-1] = [f"phi4ui-baseline: {run['baseline']}", ""]
    lines += _cpu_table(run["summary"].get("cpu_s", {}))
    for page, requests in run["summary"]["requests"].items():
        lines += [f"{page}'s requests after the keypress (medians, ms from the keypress):", "",
                  "| request | seen | start | first byte | end |", "|---|---|---|---|---|"]
        lines += [f"| `{r['request']}` | {r['seen']} | {r['start']:.0f} | "
                  f"{r['first_byte']:.0f} | {r['end']:.0f} |"
                  for r in requests]
        lines.append("")
    return lines


def _cpu_table(cpu_s: dict[str, dict[str, float]]) -> list[str]:
    """CPU seconds per round, medians, from the keypress until the server had finished."""
    if not cpu_s:
        return []
    groups = list(next(iter(cpu_s.values())))
    lines = ["CPU seconds used in a round, by whom (medians; from the keypress until the "
             "benchmark saw the server finish the answer):", "",
             "| round of | " + " | ".join(groups) + " | all |",
             "|---|" + "---|" * (len(groups) + 1)]
    for page, medians in cpu_s.items():
        lines.append(f"| {page} | " + " | ".join(f"{medians[g]:.2f}" for g in groups)
                     + f" | {sum(medians.values()):.2f} |")
    return [*lines, ""]
