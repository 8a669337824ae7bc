"""Every knob of phi4ui in one frozen object, read from flags and `PHI4UI_*` variables.

A flag beats its environment variable, which beats the default. Each value is
checked at start; a bad one raises `SettingsError` naming the flag, and the app
stops with that one line instead of failing later inside the engine.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phi4ui.errors import SettingsError

DEFAULT_MODEL = "microsoft/Phi-4-multimodal-instruct"
# The remote code of later revisions may not load on the transformers that vLLM pins.
DEFAULT_REVISION = "0ae13bd0f508a906f8b8288fc5e36b01b903c132"
ENV_PREFIX = "PHI4UI_"
# Most 448-pixel crops per image: the real model's own processor default, and few enough for
# random weights to stay quick on CPU.
REAL_DYNAMIC_HD = 16
RANDOM_DYNAMIC_HD = 4


def _option(default: Any, help: str, *, choices: Sequence[str] | None = None,
            check: Callable[[Any], str | None] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices, "check": check})


def _at_least(low: float) -> Callable[[Any], str | None]:
    return lambda value: None if value >= low else f"must be at least {low}"


def _between(low: float, high: float) -> Callable[[Any], str | None]:
    return lambda value: None if low <= value <= high else f"must be between {low} and {high}"


def _port(value: int) -> str | None:
    return None if 0 < value < 65536 else "must be a TCP port, 1 to 65535"


def _csp_sources(value: str) -> str | None:
    if not value.strip() or any(c in value for c in ";,\n\r"):
        return "must be CSP sources separated by spaces, e.g. 'self' https://example.org"
    return None


def _url(value: str) -> str | None:
    if value and not value.startswith(("http://", "https://")):
        return "must start with http:// or https://"
    return None


@dataclass(frozen=True)
class Settings:
    engine: str = _option("embedded", "where answers come from: the embedded vLLM engine or a "
                          "remote OpenAI-compatible server", choices=("embedded", "remote"))
    model: str = _option(DEFAULT_MODEL, "Hugging Face model id or a local checkpoint folder")
    revision: str = _option(DEFAULT_REVISION, "model revision (commit) to download")
    weights: str = _option("auto", "real: load the model; random: a tiny random-weight "
                           "Phi-4-MM built locally (answers are noise); auto: real on a GPU, "
                           "random elsewhere", choices=("auto", "real", "random"))
    vision_lora: str = _option("", "vision adapter folder (default: <model>/vision-lora)")
    speech_lora: str = _option("", "speech adapter folder (default: <model>/speech-lora)")
    max_model_len: int = _option(16384, "context length in tokens", check=_at_least(1024))
    max_images: int = _option(2, "images per prompt (whole conversation)", check=_between(0, 16))
    max_audios: int = _option(1, "audio clips per prompt (whole conversation)",
                              check=_between(0, 8))
    dynamic_hd: int = _option(0, "most 448-pixel crops per image; 0: "
                              f"{REAL_DYNAMIC_HD} for the real model, {RANDOM_DYNAMIC_HD} for "
                              "random weights", check=_between(0, 64))
    audio_min_seconds: float = _option(0.3, "shortest accepted recording", check=_at_least(0.03))
    audio_max_seconds: float = _option(180.0, "longest accepted recording",
                                       check=_between(1.0, 3600.0))
    image_max_pixels: int = _option(448 * 448 * 16, "images larger than this are downscaled",
                                    check=_at_least(448 * 448))
    upload_max_mb: float = _option(50.0, "largest accepted upload in MB",
                                   check=_between(0.1, 4096.0))
    gpu_memory_utilization: float = _option(0.85, "fraction of GPU memory vLLM may take",
                                            check=_between(0.05, 1.0))
    cpu_kv_cache_gib: float = _option(2.0, "KV-cache size in GiB when vLLM runs on the CPU",
                                      check=_between(0.25, 1024.0))
    max_num_seqs: int = _option(64, "requests the engine batches at once",
                                check=_between(1, 1024))
    stream_interval: int = _option(1, "tokens vLLM gathers into one streamed chunk (the first "
                                   "comes at once); the page already sends all new text per "
                                   "update, so more gave no throughput on an H200; for a "
                                   "remote server, its own vllm serve --stream-interval",
                                   check=_between(1, 64))
    tensor_parallel_size: int = _option(1, "GPUs to split the model over",
                                        check=_between(1, 64))
    data_parallel_size: int = _option(1, "copies of the model, one per GPU (or group of "
                                      "--tensor-parallel-size GPUs); vLLM spreads the requests "
                                      "over them", check=_between(1, 64))
    frontends: int = _option(1, "page processes: more than 1 runs them behind HAProxy "
                             "(sticky sessions) on --host:--port, sharing one engine (see "
                             "--scale-out)", check=_between(1, 64))
    scale_out: str = _option("core", "with --frontends and the embedded engine: how the page "
                             "processes share the model; core: one vLLM engine core, each page "
                             "a direct client of it (no HTTP between them; a page process that "
                             "ends is not started again); server: vLLM's own OpenAI server, "
                             "the pages its HTTP clients", choices=("core", "server"))
    api_servers: int = _option(0, "with --frontends and --scale-out server: vLLM's API server "
                               "processes (0: as many as front ends)", check=_between(0, 64))
    public_host: str = _option("", "the address visitors reach, when it is not --host: set by "
                               "--frontends for the page processes behind HAProxy")
    enforce_eager: bool = _option(False, "disable CUDA graphs / compilation (faster start)")
    cuda_graph_mode: str = _option("auto", "vLLM's CUDA graph mode on a GPU; auto: vLLM's "
                                   "default (full_and_piecewise: one graph for a step of "
                                   "answers only, the layers' graphs for a step that also "
                                   "reads a prompt); full: one graph for those steps too, "
                                   "where the attention backend allows (vLLM falls back "
                                   "where it does not)",
                                   choices=("auto", "full", "full_and_piecewise", "piecewise",
                                            "full_decode_only"))
    dtype: str = _option("auto", "number type of the weights and activations; auto: the "
                         "checkpoint's own, but float32 on a CPU without native bfloat16 "
                         "(vLLM runs bfloat16 there about 7x slower)",
                         choices=("auto", "bfloat16", "float16", "float32"))
    base_url: str = _option("", "remote engine: the server's OpenAI API root, e.g. "
                            "http://127.0.0.1:8000/v1", check=_url)
    api_key: str = _option("", "remote engine: API key (prefer the environment variable)")
    remote_model: str = _option("", "remote engine: base model name (default: the server's "
                                "first listed model)")
    request_timeout: float = _option(120.0, "remote engine: seconds without a byte before "
                                     "giving up", check=_between(1.0, 3600.0))
    connect_timeout: float = _option(5.0, "remote engine: seconds to connect",
                                     check=_between(0.1, 600.0))
    record: bool = _option(True, "keep a record of every answer (prompt, media, settings, "
                           "statistics, ratings) in the SQLite database")
    db_path: str = _option(str(Path.home() / ".local" / "share" / "phi4ui" / "phi4ui.db"),
                           "the SQLite database of answers and ratings; media are kept in a "
                           "folder beside it")
    media_store_max_mb: float = _option(2048.0, "most space the recorded media may take; the "
                                        "oldest unreferenced files go first",
                                        check=_between(1.0, 1_000_000.0))
    cache_dir: str = _option(str(Path.home() / ".cache" / "phi4ui"),
                             "where phi4ui keeps built checkpoints")
    auth: str = _option("", "require a login: user:password pairs separated by commas "
                        "(prefer the environment variable)")
    auth_file: str = _option("", "require a login: a file of user:password lines")
    share: bool = _option(False, "also publish a temporary public gradio.live link "
                          "(needs internet access; off by default)")
    mcp: bool = _option(True, "serve the MCP tool `ask` at /gradio_api/mcp (behind the "
                        "login when there is one)")
    mcp_fetch_hosts: str = _option("", "hosts (comma-separated) from whose http(s) URLs the "
                                   "MCP tool may fetch images and audio; empty: none, media "
                                   "come inline (base64) or uploaded")
    root_path: str = _option("", "the public path prefix when served behind a reverse proxy, "
                             "e.g. /phi4ui")
    frame_ancestors: str = _option(
        "'self' https://huggingface.co https://*.hf.space",
        "pages that may show the app in a frame (the Content-Security-Policy's "
        "frame-ancestors; the default lets a Hugging Face Space embed it)",
        check=_csp_sources)
    max_active_events: int = _option(512, "page events run at once, streaming answers "
                                     "included (Gradio's own default, 40, would queue the "
                                     "41st person behind the others)", check=_between(8, 8192))
    session_idle_minutes: float = _option(
        60.0, "a page unused this long is taken to be closed, and its conversation is "
        "forgotten (an open page checks in every few seconds, a hidden tab about once a minute)",
        check=_between(0.1, 10080.0))
    closed_page_minutes: float = _option(
        10.0, "a page whose connection ended (closed, or asleep) and that has not come back "
        "for this long is taken to be closed, and its conversation is forgotten",
        check=_between(0.1, 10080.0))
    max_sessions: int = _option(2000, "pages whose conversations are kept at once; past "
                                "it the least recently used is forgotten (each costs the "
                                "server about 0.3 MB and more with its conversation)",
                                check=_between(10, 100_000))
    thread_switch_ms: float = _option(
        1.0, "how long a busy worker thread (decoding media, planning a prompt) may keep "
        "Python's lock before the thread serving the pages gets it back, in ms (Python's "
        "default is 5)", check=_between(0.1, 100.0))
    host: str = _option("127.0.0.1", "address to listen on (0.0.0.0 for all interfaces)")
    port: int = _option(7860, "port to listen on", check=_port)
    log_level: str = _option("info", "log verbosity",
                             choices=("debug", "info", "warning", "error"))

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict that is safe to log or show."""
        values = dataclasses.asdict(self)
        for secret in ("api_key", "auth"):
            if values[secret]:
                values[secret] = "***"
        return values

    def logins(self) -> list[tuple[str, str]]:
        """The (user, password) pairs of --auth and --auth-file."""
        lines = [p for p in self.auth.split(",") if p.strip()]
        if self.auth_file:
            lines += Path(self.auth_file).read_text().splitlines()
        pairs = []
        for line in (line.strip() for line in lines):
            if line and not line.startswith("#"):
                user, _, password = line.partition(":")
                pairs.append((user.strip(), password.strip()))
        return pairs


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phi4ui",
        description="Chat with Phi-4-multimodal (text, images, speech) through vLLM.",
        epilog=f"Every flag can also be set as an environment variable: {ENV_PREFIX}<FLAG>, "
               "e.g. PHI4UI_MAX_MODEL_LEN=8192.",
    )
    for spec in dataclasses.fields(Settings):
        help_text = f"{spec.metadata['help']} (env {env_name(spec.name)}; default {spec.default!r})"
        if isinstance(spec.default, bool):
            parser.add_argument(flag_name(spec.name), dest=spec.name, default=None, nargs="?",
                                const="true", metavar="BOOL", help=help_text)
        else:
            parser.add_argument(flag_name(spec.name), dest=spec.name, default=None,
                                metavar="VALUE", help=help_text)
    return parser


def load_settings(argv: Sequence[str] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags (`argv`), then `PHI4UI_*` variables, then defaults."""
    environ = os.environ if environ is None else environ
    given = vars(build_parser().parse_args(argv))
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(Settings):
        if given[spec.name] is not None:
            raw, source = given[spec.name], flag_name(spec.name)
        elif env_name(spec.name) in environ:
            raw, source = environ[env_name(spec.name)], env_name(spec.name)
        else:
            continue
        values[spec.name] = _convert(spec, raw, source)
    settings = Settings(**values)
    _check_combination(settings)
    return settings


def _convert(spec: dataclasses.Field[Any], raw: str, source: str) -> Any:
    kind: type[Any] = type(spec.default)
    try:
        value = _parse_bool(raw) if kind is bool else kind(raw.strip())
    except ValueError:
        raise SettingsError(f"{source}: expected {_describe(kind)}, got {raw!r}") from None
    choices = spec.metadata["choices"]
    if choices and value not in choices:
        raise SettingsError(f"{source}: expected one of {', '.join(choices)}, got {raw!r}")
    problem = spec.metadata["check"] and spec.metadata["check"](value)
    if problem:
        raise SettingsError(f"{source}: {problem}, got {raw!r}")
    return value


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(raw)


def _describe(kind: type) -> str:
    return {int: "a whole number", float: "a number", bool: "true or false"}.get(kind, "text")


def _check_combination(settings: Settings) -> None:
    if settings.audio_min_seconds >= settings.audio_max_seconds:
        raise SettingsError("--audio-min-seconds: must be below --audio-max-seconds "
                            f"({settings.audio_min_seconds} >= {settings.audio_max_seconds})")
    _check_logins(settings)
    if settings.engine == "remote" and not settings.base_url:
        raise SettingsError("--base-url: required with --engine remote "
                            "(e.g. http://127.0.0.1:8000/v1)")


def _check_logins(settings: Settings) -> None:
    if settings.auth_file and not Path(settings.auth_file).is_file():
        raise SettingsError(f"--auth-file: no such file: {settings.auth_file}")
    for user, password in settings.logins():
        if not user or not password:
            flag = "--auth-file" if settings.auth_file else "--auth"
            raise SettingsError(f"{flag}: each login must be user:password with both parts "
                                f"set (got a login for {user or 'an empty user'!r})")


def markdown_table() -> str:
    """The README's configuration table, made from the settings themselves."""
    rows = ["| Flag | Environment variable | Default | Meaning |", "|---|---|---|---|"]
    for spec in dataclasses.fields(Settings):
        default = {"cache_dir": "~/.cache/phi4ui",
                   "db_path": "~/.local/share/phi4ui/phi4ui.db"}.get(spec.name, spec.default)
        choices = f" ({' / '.join(spec.metadata['choices'])})" if spec.metadata["choices"] else ""
        shown = f"`{default}`" if default != "" else "(none)"
        rows.append(f"| `{flag_name(spec.name)}` | `{env_name(spec.name)}` | {shown} | "
                    f"{spec.metadata['help']}{choices} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
