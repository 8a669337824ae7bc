"""What a person sees in Chromium: phi4ui's page against the simplest streaming chat page,
both in front of one vLLM OpenAI server.

    python -m bench.browser_latency --out docs/benchmarks [--rounds 15] [--label after]

Starts one vLLM server on the tiny random-weight checkpoint, phi4ui on the remote engine
pointed at it, and `bench.minimal_chat` (a `gr.ChatInterface` streaming from the same
server). For each page, `--rounds` times, alternating the pages so that other load on the machine
hits both alike: a fresh page, the same message typed, Enter pressed. In the page, a
MutationObserver notes when the answer's first text appears and when it last changes, from
the keypress (`performance.now()`); the page's own requests are read back from the
browser's resource timings, and the CPU each group of processes used in the round (the
browser, the pages, the vLLM server, its engine, the benchmark) from /proc. Each run is
kept under its `--label` in browser-latency.json, beside earlier runs, and
browser-latency.md shows them side by side.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from bench import latency_report, round_cpu
from bench.procs import ROOT, Service, free_port, start

PROMPT = "Tell me a short story about a lighthouse keeper."
CHROMIUM = Path(os.environ.get("PHI4UI_CHROMIUM", "/usr/lib/chromium/chromium"))
QUIET_MS = 800  # the answer is complete once the server is done and the text is this still
# Each look at the server's counters makes it render its /metrics: looked at 20 times a
# second, the benchmark alone used about 0.3 of a core of 2, and the server more to render
# them, beside the answer being measured. The moments are the browser's own, so this only
# sets how soon the next round can begin.
SERVER_POLL_S = 0.5
ROUND_TIMEOUT_S = 180
# Installed before any page script: the keypress, then each change of the answer's text
# (`last`) and of all the bot messages' text (`done`: with phi4ui's statistics line).
WATCH = """
window.__p4 = {start: null, first: null, last: null, done: null, answer: '', all: '',
               firstText: ''};
addEventListener('keydown', event => {
  if (event.key === 'Enter' && window.__p4.armed && window.__p4.start === null) {
    window.__p4.start = performance.now();
  }
}, true);
const texts = () => {
  let answer = '', all = '';
  for (const bot of document.querySelectorAll('[data-testid=bot]')) {
    all += bot.textContent;
    if (!bot.querySelector('.thought-group')) answer += bot.textContent;
  }
  return [answer.trim(), all.trim()];
};
addEventListener('DOMContentLoaded', () => {
  new MutationObserver(() => {
    const p = window.__p4;
    if (p.start === null) return;
    const [answer, all] = texts();
    const now = performance.now();
    if (all !== p.all) { p.all = all; p.done = now; }
    if (answer === p.answer) return;
    p.answer = answer;
    if (answer && p.first === null) { p.first = now; p.firstText = answer.slice(0, 40); }
    p.last = now;
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
});
"""
ARM = "() => { performance.clearResourceTimings(); window.__p4.armed = true; }"
QUIET = "ms => window.__p4.done !== null && performance.now() - window.__p4.done >= ms"
READ = """() => {
  const p = window.__p4;
  const requests = performance.getEntriesByType('resource')
    .filter(e => e.startTime >= p.start - 1)
    .map(e => ({url: e.name, start: e.startTime - p.start,
                first_byte: e.responseStart - p.start, end: e.responseEnd - p.start}));
  return {first_ms: p.first - p.start, last_ms: p.last - p.start, done_ms: p.done - p.start,
          first_text: p.firstText, requests};
}"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    parser.add_argument("--rounds", type=int, default=15, help="answers per page")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per answer")
    parser.add_argument("--label", default="current",
                        help="name of this run in the report (a run of the same name is replaced)")
    parser.add_argument("--checkpoint", type=Path, help="default: the tiny checkpoint, built "
                        "or found in PHI4UI_TEST_CACHE")
    parser.add_argument("--baseline-tree", type=Path, help="another copy of the repository "
                        "(an earlier version): its phi4ui is measured too, as 'phi4ui-baseline'")
    parser.add_argument("--baseline-note", default="",
                        help="what the baseline tree is, for the report (e.g. its commit)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="browser-latency-"))
    checkpoint = args.checkpoint or _tiny_checkpoint(work)
    from tests.support import vllm_server
    from tests.support.vllm_server import VllmServer

    vllm_server.READY_TIMEOUT_S = 900  # the tests' 300 s is not enough on a busy shared machine
    server = VllmServer(checkpoint, work / "vllm.log")
    print(f"starting vLLM (log: {server.log_path})", flush=True)
    server.start()
    pages: list[Service] = []
    try:
        pages = _start_pages(server.base_url, str(checkpoint), args.tokens, work,
                             args.baseline_tree)
        load_before = os.getloadavg()
        rounds = _measure(pages, server.root_url, args.rounds, args.tokens)
        run = {"label": args.label, "commit": _commit(), "measured_at": time.strftime(
            "%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": _machine(),
            "load_average": {"before": load_before, "after": os.getloadavg()},
            "baseline": args.baseline_note, "prompt": PROMPT, "tokens": args.tokens,
            "rounds": rounds}
    finally:
        for page in pages:
            page.stop()
        server.stop()
    latency_report.save(args.out, run)
    print((args.out / "browser-latency.md").read_text())


def _tiny_checkpoint(work: Path) -> Path:
    from phi4ui.tinymodel import TINY, ensure_checkpoint

    cache = Path(os.environ.get("PHI4UI_TEST_CACHE") or work / "checkpoints")
    return ensure_checkpoint(cache, TINY, dynamic_hd=4)


def _start_pages(base_url: str, model: str, tokens: int, work: Path,
                 baseline_tree: Path | None) -> list[Service]:
    env = {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_TEMP_DIR": str(work / "gradio")}
    pages = [_phi4ui("phi4ui", ROOT, base_url, work, env)]
    if baseline_tree is not None:
        pages.append(_phi4ui("phi4ui-baseline", baseline_tree.resolve(), base_url, work, env))
    port = free_port()
    pages.append(start("minimal", [
        sys.executable, "-m", "bench.minimal_chat", "--base-url", base_url, "--model", model,
        "--max-tokens", str(tokens), "--port", str(port)], port, work, env))
    try:
        for page in pages:
            page.wait_for("/healthz" if page.name.startswith("phi4ui") else "/", "ready",
                          timeout_s=300)
    except BaseException:
        for page in pages:
            page.stop()
        raise
    return pages


def _phi4ui(name: str, tree: Path, base_url: str, work: Path, env: dict[str, str]) -> Service:
    """phi4ui on the remote engine, run from the repository copy `tree`."""
    port = free_port()
    command = [sys.executable, "-m", "phi4ui", "serve", "--engine", "remote", "--base-url",
               base_url, "--host", "127.0.0.1", "--port", str(port), "--record", "false",
               "--log-level", "warning"]
    log = work / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=tree, stdout=output, stderr=subprocess.STDOUT,
                                   env={**os.environ, **env}, start_new_session=True)
    return Service(name, process, f"http://127.0.0.1:{port}", log)


def _measure(pages: list[Service], server_url: str, rounds: int, tokens: int
             ) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    results: list[dict[str, Any]] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"])
        tabs = {}
        for service in pages:
            context = browser.new_context(viewport={"width": 1366, "height": 768})
            context.add_init_script(WATCH)
            tabs[service.name] = (context.new_page(), service.url)
        for name in tabs:
            if name.startswith("phi4ui"):
                _set_max_tokens(*tabs[name], tokens)
        page_pids = {service.name: service.process.pid for service in pages}
        for number in range(-1, rounds):  # round -1 warms the pages and the server
            for name in (list(tabs) if number % 2 else list(reversed(tabs))):
                result = _round(*tabs[name], server_url, page_pids, name)
                print(f"round {number} {name}: first {result['first_ms']:.0f} ms, last "
                      f"{result['last_ms']:.0f} ms, done {result['done_ms']:.0f} ms, "
                      f"{result['tokens']} tokens", flush=True)
                if number >= 0:
                    results.append({"round": number, "page": name, **result})
        browser.close()
    return results


def _open(page: Any, url: str) -> Any:
    page.goto(url + "/", wait_until="domcontentloaded")
    textbox = page.locator("textarea[data-testid=textbox]").first
    textbox.wait_for(state="visible", timeout=60_000)
    if page.locator("#mm").count():  # phi4ui: also wait until its engine is ready
        page.locator(".p4-state-ready").wait_for(state="visible", timeout=60_000)
    page.wait_for_timeout(1000)  # the page's own start-up requests settle
    return textbox


def _set_max_tokens(page: Any, url: str, tokens: int) -> None:
    """phi4ui keeps its settings in the browser: set once, used by every later round."""
    _open(page, url)
    box = page.locator("#max-tokens input[type=number]")
    box.fill(str(tokens))
    box.press("Enter")
    page.wait_for_timeout(1000)


def _round(page: Any, url: str, server_url: str, page_pids: dict[str, int], name: str
           ) -> dict[str, Any]:
    textbox = _open(page, url)
    textbox.fill(PROMPT)
    page.evaluate(ARM)
    before = _server_counts(server_url)
    cpu_before = round_cpu.snapshot(page_pids, name)
    textbox.press("Enter")
    deadline = time.monotonic() + ROUND_TIMEOUT_S
    while _server_counts(server_url)["finished"] <= before["finished"]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no answer finished on {url} in {ROUND_TIMEOUT_S} s")
        time.sleep(SERVER_POLL_S)
    cpu = round_cpu.used(cpu_before, round_cpu.snapshot(page_pids, name))
    page.wait_for_function(QUIET, arg=QUIET_MS, timeout=ROUND_TIMEOUT_S * 1000)
    result = page.evaluate(READ)
    result["cpu_s"] = cpu
    after = _server_counts(server_url)
    result["tokens"] = int(after["tokens"] - before["tokens"])
    result["requests"] = [{**r, "url": urlparse(r["url"]).path} for r in result["requests"]
                          if not urlparse(r["url"]).path.startswith("/gradio_api/file")]
    return dict(result)


def _server_counts(server_url: str) -> dict[str, float]:
    """Finished requests and generated tokens, from the vLLM server's Prometheus counters."""
    text = httpx.get(f"{server_url}/metrics", timeout=10).text
    counts = {"finished": 0.0, "tokens": 0.0}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name == "vllm:request_success_total":
            counts["finished"] += float(line.rsplit(" ", 1)[1])
        elif name == "vllm:generation_tokens_total":
            counts["tokens"] += float(line.rsplit(" ", 1)[1])
    return counts


def _commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()
    # Any change to the app makes the measured code differ from the commit, not only the
    # chat's own modules (the answer's pacing and the engines count as much).
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "phi4ui"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return head + (" with uncommitted changes to phi4ui" if dirty else "")


def _machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    chromium = subprocess.run([str(CHROMIUM), "--version"], capture_output=True,
                              text=True).stdout.strip()
    return f"{platform.node()}: {os.cpu_count()} cores, {model}; {chromium}"


if __name__ == "__main__":
    main()
