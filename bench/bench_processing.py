"""Benchmark (not a test): preprocessing time for a 12 MP photo, 30 s of audio and a 60 s 1080p clip.

Measures `Processor.apply_chat_template` end to end (decode, resize, patchify, prompt,
tokenize) on generated media, with a breakdown, and transformers' `Gemma4UnifiedProcessor`
on the same photo and audio for comparison (the reference, same run). Media and a tiny
checkpoint are written once under `.bench/processing/`.

    .venv/bin/python bench/bench_processing.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = ROOT / ".bench" / "processing"


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def make_photo(path: Path) -> Path:
    from PIL import Image

    if not path.exists():
        rng = np.random.default_rng(0)
        h, w = 3024, 4032  # 12.2 MP, an iPhone photo
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        rgb = np.stack(
            [128 + 90 * np.sin(x / (60 + 20 * c)) * np.cos(y / (45 + 10 * c)) for c in range(3)], -1
        )
        rgb += rng.normal(0, 12, rgb.shape)
        exif = Image.Exif()
        exif[0x0112] = 6  # stored landscape, shown portrait
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(
            path, quality=90, exif=exif.tobytes()
        )
    return path


def make_audio(path: Path) -> Path:
    import soundfile as sf

    if not path.exists():
        rate = 44_100
        t = np.arange(30 * rate) / rate
        rng = np.random.default_rng(0)
        mono = 0.4 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.shape)
        sf.write(path, np.stack([mono, 0.8 * mono], -1).astype(np.float32), rate)
    return path


def make_video(path: Path, gop: int = 60) -> Path:
    """A 60 s 1080p30 H.264 clip (key frame every `gop` frames) with an AAC tone."""
    import av

    if path.exists():
        return path
    w, h, fps, seconds = 1920, 1080, 30, 60
    base = np.zeros((h, w * 2, 3), np.uint8)
    base[..., 0] = (np.arange(w * 2) % 256)[None, :]
    base[..., 1] = (np.arange(h) % 256)[:, None]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(gop)}
        audio = container.add_stream("aac", rate=48_000)
        audio.layout = "stereo"
        for i in range(fps * seconds):
            shift = (i * 8) % w
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(base[:, shift : shift + w]), format="rgb24"
            )
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        t = np.arange(seconds * 48_000) / 48_000
        tone = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            chunk = np.ascontiguousarray(np.stack([tone[start : start + 1024]] * 2))
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48_000, start
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    return path


def decoded_packets(path: Path) -> str:
    """How many of the clip's packets the sampled decode feeds to the decoder."""
    import av

    from mlx_model.processing import video

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        wanted = video.sample_indices(stream.frames, float(stream.average_rate))
        index = video.index_packets(container, stream)
    segments = video.plan_segments(index, wanted, video._MIN_SKIPPED_PACKETS) or []
    fed = sum(last - first + 1 for first, last in segments) or len(index.pts)
    return f"{fed} of {len(index.pts)} packets decoded ({len(segments)} runs)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)

    from mlx_model.processing import Processor
    from mlx_model.processing.audio import load_audio
    from mlx_model.processing.image import load_image, patchify, resize_for_budget
    from mlx_model.processing.video import extract_audio_track, load_video, preprocess_frames
    from mlx_model.testing.checkpoint_factory import write_tiny_checkpoint

    checkpoint = WORK / "checkpoint"
    if not (checkpoint / "tokenizer.json").exists():
        write_tiny_checkpoint(checkpoint)
    start = time.perf_counter()
    photo, audio, video, video_gop30 = (
        make_photo(WORK / "photo.jpg"),
        make_audio(WORK / "audio.wav"),
        make_video(WORK / "clip.mp4"),
        make_video(WORK / "clip-gop30.mp4", gop=30),
    )
    print(f"media ready ({time.perf_counter() - start:.1f} s)")
    proc = Processor.from_pretrained(checkpoint)
    r = args.repeats
    rows: list[tuple[str, float, str]] = []

    def user(block):
        return [{"role": "user", "content": [block, {"type": "text", "text": "Describe it."}]}]

    for budget in (280, 1120):
        t, out = timed(
            lambda b=budget: proc.apply_chat_template(
                user({"type": "image", "image": str(photo)}), image_budget=b
            ),
            r,
        )
        rows.append(
            (
                f"12 MP JPEG photo, budget {budget}: end to end",
                t,
                f"{out['input_ids'].shape[1]} tokens",
            )
        )
    t_decode, rgb = timed(lambda: load_image(str(photo)), r)
    t_resize, small = timed(lambda: resize_for_budget(rgb, 280), r)
    t_patch, _ = timed(lambda: patchify(small, 280), r)
    rows += [
        ("  decode + EXIF + RGB", t_decode, ""),
        ("  resize (280)", t_resize, ""),
        ("  patchify (280)", t_patch, ""),
    ]

    t, out = timed(
        lambda: proc.apply_chat_template(user({"type": "audio", "audio": str(audio)})), r
    )
    rows.append(
        ("30 s WAV 44.1 kHz stereo: end to end", t, f"{out['input_features'].shape[1]} frames")
    )
    t_load, _ = timed(lambda: load_audio(str(audio)), r)
    rows.append(("  decode + downmix + resample", t_load, ""))

    rv = max(1, r // 2)
    t, out = timed(
        lambda: proc.apply_chat_template(user({"type": "video", "video": str(video)})), rv
    )
    rows.append(
        (
            "60 s 1080p30 H.264 clip, key frame every 60: end to end",
            t,
            f"{out['input_ids'].shape[1]} tokens",
        )
    )
    t, out = timed(
        lambda: proc.apply_chat_template(user({"type": "video", "video": str(video_gop30)})), rv
    )
    rows.append(
        ("same, key frame every 30 frames (1 s): end to end", t, decoded_packets(video_gop30))
    )
    t_dec, clip = timed(lambda: load_video(str(video)), rv)
    t_pre, _ = timed(lambda: preprocess_frames(clip.frames, 70), rv)
    t_aud, _ = timed(lambda: extract_audio_track(str(video), policy="split"), rv)
    rows += [
        ("  decode + RGB, 60 frames kept", t_dec, decoded_packets(video)),
        ("  resize + patchify 60 frames", t_pre, ""),
        ("  sound track (60 s AAC -> 2 clips)", t_aud, ""),
    ]

    try:
        from mlx_model.testing.reference import prepare_torchvision_import

        prepare_torchvision_import()
        from PIL import Image, ImageOps
        from transformers import AutoProcessor

        hf = AutoProcessor.from_pretrained(checkpoint)

        def hf_photo():
            image = ImageOps.exif_transpose(Image.open(photo))
            return hf.apply_chat_template(
                user({"type": "image", "image": image}),
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                return_tensors="np",
            )

        def hf_audio():
            return hf.apply_chat_template(
                user({"type": "audio", "audio": str(audio)}),
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                return_tensors="np",
            )

        rows.append(
            ("reference (transformers): 12 MP photo, budget 280", timed(hf_photo, r)[0], "")
        )
        rows.append(("reference (transformers): 30 s WAV", timed(hf_audio, r)[0], ""))
    except ImportError as exc:
        print(f"reference skipped: {exc}")

    print(f"\n{'case':58s} {'median':>9s}  note")
    for name, seconds, note in rows:
        print(f"{name:58s} {seconds * 1000:8.1f} ms  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
