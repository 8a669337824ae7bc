"""Chat with phi4ui from Python, as the page does: the same engine, prompt format, adapters,
limits and statistics. Streams an answer about an image and an audio clip, then asks a
follow-up with the earlier conversation, and rates the answer.

    python examples/api_chat.py http://127.0.0.1:7860 photo.png clip.wav [user:password]
"""

import sys

from gradio_client import Client, handle_file

url, image, audio = sys.argv[1:4]
login = tuple(sys.argv[4].split(":", 1)) if len(sys.argv) > 4 else None
client = Client(url, auth=login, verbose=False)

job = client.submit(
    "What do you see and hear?",
    [handle_file(image), handle_file(audio)],  # images and audio, uploaded by the client
    None,  # no earlier conversation
    "Be brief.",  # system prompt
    0.0,  # temperature
    1.0,  # top-p
    64,  # max new tokens
    1,  # seed
    api_name="/chat",
)
for partial, _ in job:  # the answer so far, as it grows
    print(f"\r{len(partial)} characters", end="", flush=True)
answer, stats = job.result()
print(f"\n{answer}")
print(f"{stats['completion_tokens']} tokens, first after {stats['ttft_s']:.2f} s, "
      f"adapter {stats['adapter']}, prompt {stats['prompt_image_tokens']} image + "
      f"{stats['prompt_audio_tokens']} audio + {stats['prompt_text_tokens']} text tokens")

history = [{"role": "user", "content": "What do you see and hear?"},
           {"role": "assistant", "content": answer}]
follow_up, follow_up_stats = client.predict("Say it in one word.", history=history,
                                            max_new_tokens=16, api_name="/chat")
print(follow_up, follow_up_stats["finish_reason"])

print(client.predict(stats["record_id"], 1, "clear answer", api_name="/rate"))
