"""Rebuilds the sample evaluation set in assets/eval-sample/: its cases.jsonl, speech, text
pictures and bar charts. The files are committed; tests and the sample command use them,
and never run this.

    .venv/bin/python scripts/make_eval_sample.py      (needs espeak-ng: scripts/setup.sh --dev)

Speech is English read by espeak-ng, resampled to 16 kHz mono 16-bit WAV with soxr. Pictures
are drawn with Pillow's own font, so they come out the same on any machine. Every answer is
known: the sentences that were spoken, their translations, the text drawn, the tallest bar.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import soundfile
import soxr
from PIL import Image, ImageDraw, ImageFont

FOLDER = Path(__file__).resolve().parents[1] / "assets" / "eval-sample"
SAMPLE_RATE = 16_000

# name -> the sentence spoken
SPEECH = {
    "fox": "The quick brown fox jumps over the lazy dog.",
    "office": "Please call the office before nine in the morning.",
    "train": "The train to Berlin leaves from platform four.",
    "chairs": "We need three more chairs for the meeting room.",
}
# (spoken sentence or None, text to translate or None, language, accepted translations)
TRANSLATIONS = {
    "office-fr": ("office", None, "French",
                  ["Veuillez appeler le bureau avant neuf heures du matin.",
                   "Merci d'appeler le bureau avant neuf heures du matin."]),
    "train-de": ("train", None, "German", ["Der Zug nach Berlin fährt von Gleis vier ab."]),
    "chairs-fr": (None, SPEECH["chairs"], "French",
                  ["Nous avons besoin de trois chaises de plus pour la salle de réunion.",
                   "Il nous faut trois chaises supplémentaires pour la salle de réunion."]),
    "fox-de": (None, SPEECH["fox"], "German",
               ["Der schnelle braune Fuchs springt über den faulen Hund."]),
}
SIGNS = {
    "invoice": "INVOICE 2047",
    "meeting": "Meeting at 3:30 PM",
    "gate": "Gate B12",
    "bakery": "Fresh bread daily",
}
# name -> (title, {label: value}); each chart's tallest bar is its answer
CHARTS = {
    "rainfall": ("Rainfall (mm)", {"Oslo": 31, "Rome": 68, "Lima": 9, "Cork": 52}),
    "visitors": ("Visitors per day", {"Mon": 120, "Tue": 95, "Wed": 180, "Thu": 140}),
    "sales": ("Bikes sold", {"Red": 14, "Blue": 22, "Green": 35, "Black": 28}),
}
TRANSCRIBE = "Transcribe the audio clip into text."
READ_TEXT = "What text is written in the image? Answer with the text only."
TALLEST = "Which bar is tallest? Answer with its label only."


def speak(text: str, target: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), text],
                       check=True)
        samples, rate = soundfile.read(raw, dtype="float32")
    soundfile.write(target, soxr.resample(samples, rate, SAMPLE_RATE), SAMPLE_RATE,
                    subtype="PCM_16")


def sign(text: str) -> Image.Image:
    image = Image.new("RGB", (448, 128), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((6, 6, 441, 121), outline="#1d3557", width=4)
    draw.text((224, 64), text, fill="black", font=ImageFont.load_default(size=40),
              anchor="mm")
    return image


def bar_chart(title: str, bars: dict[str, int]) -> Image.Image:
    size, base, top, left = 448, 380, 80, 50
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=20)
    draw.text((size // 2, 24), title, fill="black", font=ImageFont.load_default(size=24),
              anchor="mt")
    draw.line((left, top, left, base), fill="black", width=2)
    draw.line((left, base, size - 20, base), fill="black", width=2)
    scale = (base - top - 20) / max(bars.values())
    for index, (label, value) in enumerate(bars.items()):
        x = left + 25 + index * 92
        draw.rectangle((x, base - value * scale, x + 60, base), fill="#457b9d")
        draw.text((x + 30, base - value * scale - 6), str(value), fill="black", font=font,
                  anchor="mb")
        draw.text((x + 30, base + 10), label, fill="black", font=font, anchor="mt")
    return image


def cases() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = [
        {"id": f"asr-{name}", "task": "transcription", "prompt": TRANSCRIBE,
         "audio": f"audio/{name}.wav", "expected": text, "tags": ["speech"]}
        for name, text in SPEECH.items()]
    for name, (spoken, text, language, accepted) in TRANSLATIONS.items():
        case: dict[str, Any] = {"id": f"translate-{name}", "task": "translation"}
        if spoken:
            case |= {"prompt": f"Translate the audio to {language}.",
                     "audio": f"audio/{spoken}.wav", "tags": ["speech"]}
        else:
            case |= {"prompt": f"Translate to {language}: {text}", "tags": ["text"]}
        found.append(case | {"expected": accepted})
    found += [{"id": f"ocr-{name}", "task": "ocr", "prompt": READ_TEXT,
               "image": f"images/{name}.png", "expected": text, "tags": ["vision"]}
              for name, text in SIGNS.items()]
    found += [{"id": f"chart-{name}", "task": "vqa", "prompt": TALLEST,
               "image": f"images/chart-{name}.png",
               "expected": max(bars, key=lambda label: bars[label]), "tags": ["vision"]}
              for name, (_, bars) in CHARTS.items()]
    return found


def main() -> None:
    (FOLDER / "audio").mkdir(parents=True, exist_ok=True)
    (FOLDER / "images").mkdir(parents=True, exist_ok=True)
    for name, text in SPEECH.items():
        speak(text, FOLDER / "audio" / f"{name}.wav")
    for name, text in SIGNS.items():
        sign(text).save(FOLDER / "images" / f"{name}.png", optimize=True)
    for name, (title, bars) in CHARTS.items():
        bar_chart(title, bars).save(FOLDER / "images" / f"chart-{name}.png", optimize=True)
    lines = [json.dumps(case, ensure_ascii=False) for case in cases()]
    (FOLDER / "cases.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} cases in {FOLDER / 'cases.jsonl'}")


if __name__ == "__main__":
    main()
