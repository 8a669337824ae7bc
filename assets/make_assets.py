"""Makes the example files in this folder. They are committed; the app never runs this.

    python assets/make_assets.py        (needs Pillow, espeak-ng and sox)

Pictures are drawn with Pillow; speech is synthesised with espeak-ng and
converted to 16 kHz mono 16-bit WAV with sox. See LICENSE.md.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
SIZE = 448  # one crop of the vision encoder: the cheapest image to answer about

SPEECH = {
    "weather_en.wav": ("en-us", "What is the weather usually like in Paris in the spring?"),
    "table_fr.wav": ("fr", "Bonjour, je voudrais réserver une table pour deux personnes "
                           "ce soir, s'il vous plaît."),
    "windows_en.wav": ("en-us", "How many windows does the house in the picture have?"),
}


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def house() -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), "#8ecae6")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 300, SIZE, SIZE), fill="#52b788")
    draw.ellipse((340, 30, 410, 100), fill="#ffd60a")
    draw.rectangle((90, 180, 290, 320), fill="#d62828")
    draw.polygon([(70, 185), (190, 95), (310, 185)], fill="#6c584c")
    draw.rectangle((170, 250, 210, 320), fill="#7f5539")
    for left in (110, 230):
        for top in (200, 265):
            if left == 230 and top == 265:
                continue
            draw.rectangle((left, top, left + 40, top + 35), fill="#e0fbfc", outline="#1d3557",
                           width=3)
    draw.rectangle((345, 230, 365, 320), fill="#7f5539")
    draw.ellipse((310, 160, 400, 250), fill="#2d6a4f")
    return image


def chart() -> Image.Image:
    sold = {"Apples": 42, "Pears": 17, "Plums": 29, "Figs": 8}
    image = Image.new("RGB", (SIZE, SIZE), "white")
    draw = ImageDraw.Draw(image)
    draw.text((SIZE // 2, 24), "Fruit sold on Saturday", fill="black", font=font(24),
              anchor="mt")
    base, top, left = 380, 80, 60
    draw.line((left, top, left, base), fill="black", width=2)
    draw.line((left, base, SIZE - 20, base), fill="black", width=2)
    scale = (base - top - 20) / max(sold.values())
    colours = ("#e63946", "#a8c686", "#6a4c93", "#bc6c25")
    for index, ((name, count), colour) in enumerate(zip(sold.items(), colours, strict=True)):
        x = left + 25 + index * 90
        draw.rectangle((x, base - count * scale, x + 60, base), fill=colour)
        draw.text((x + 30, base - count * scale - 6), str(count), fill="black", font=font(20),
                  anchor="mb")
        draw.text((x + 30, base + 10), name, fill="black", font=font(20), anchor="mt")
    return image


def speak(name: str, voice: str, text: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "145", "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(HERE / name)],
                       check=True)


def main() -> None:
    house().save(HERE / "house.png", optimize=True)
    chart().save(HERE / "chart.png", optimize=True)
    for name, (voice, text) in SPEECH.items():
        speak(name, voice, text)


if __name__ == "__main__":
    main()
