"""The example prompts offered in the empty chat, made from the files in `assets/`.

They cover what the model takes: an image question, a chart to read, an audio
transcription, a translation from speech, an image with a spoken question, and
text alone. `assets/LICENSE.md` says where each file comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gradio.components.chatbot import ExampleMessage

ASSETS = Path(__file__).resolve().parents[2] / "assets"


@dataclass(frozen=True)
class Example:
    text: str
    files: tuple[str, ...] = ()  # names in assets/

    def paths(self) -> list[str]:
        return [str(ASSETS / name) for name in self.files]

    def message(self) -> dict[str, Any]:
        """The example as a MultimodalTextbox value."""
        return {"text": self.text, "files": self.paths()}

    def card(self) -> ExampleMessage:
        """The example as a gr.Chatbot example, with its picture as the icon if it has one."""
        card: ExampleMessage = {"text": self.text, "files": self.paths()}
        pictures = [path for path in self.paths() if path.endswith(".png")]
        if pictures:
            card["icon"] = pictures[0]
        return card


EXAMPLES = (
    Example("Describe this picture in two sentences.", ("house.png",)),
    Example("Which fruit sold the most, and how many more than the least?", ("chart.png",)),
    Example("Transcribe the audio clip into text.", ("weather_en.wav",)),
    Example("Translate the audio to English.", ("table_fr.wav",)),
    Example("Answer the spoken question about the picture.", ("house.png", "windows_en.wav")),
    Example("Write a haiku about a lighthouse in the fog."),
)


def message_for(index: Any) -> dict[str, Any] | None:
    """The example at `index` (as the browser reports it), or None for anything else."""
    if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(EXAMPLES):
        return EXAMPLES[index].message()
    return None
