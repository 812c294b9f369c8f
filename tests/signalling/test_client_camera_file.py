"""`python -m signalling.client CLIP OUT.y4m [FRAMES]`, the fake-camera maker the demo hint names:
a real fixture clip becomes a looping y4m; bad input gets one line and exit 1, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from signalling.client import main

ROOT = Path(__file__).resolve().parents[2]
CLEAN = ROOT / "fixtures" / "clips" / "clean.webm"
PREFIX = "python -m signalling.client: error: "


def y4m_frames(path: Path) -> tuple[bytes, int]:
    header, _, body = path.read_bytes().partition(b"\n")
    return header, body.count(b"FRAME\n")


def test_a_fixture_clip_becomes_a_seamless_looping_camera_file(tmp_path: Path) -> None:
    out = tmp_path / "clean.y4m"
    assert main([str(CLEAN), str(out), "5"]) == 0
    header, frames = y4m_frames(out)
    assert header.startswith(b"YUV4MPEG2 W640 H480 F30:1")
    assert frames == 5 + 3  # forwards, then back without repeating either end


def audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return path


def test_bad_input_gets_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "out.y4m")
    unwritable = tmp_path / "no" / "out.y4m"
    cases = [
        ([str(tmp_path / "missing.webm"), out], f"{tmp_path / 'missing.webm'}: video file not found"),
        ([str(ROOT / "README.md"), out], f"{ROOT / 'README.md'}: cannot read video: "),
        ([str(audio_only(tmp_path / "tone.wav")), out], f"{tmp_path / 'tone.wav'}: no video stream"),
        ([str(CLEAN), out, "many"], "FRAMES must be a whole number of frames, at least 1, got 'many'"),
        ([str(CLEAN), out, "0"], "FRAMES must be a whole number of frames, at least 1, got '0'"),
        ([str(CLEAN), str(unwritable), "2"], f"{unwritable}: cannot write: "),
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith(PREFIX + message) and err.count("\n") == 1, (argv, err)
    assert not Path(out).exists()
    assert main([str(CLEAN)]) == 2
    assert capsys.readouterr().err == "usage: python -m signalling.client CLIP OUT.y4m [FRAMES]\n"


def test_run_as_a_module_a_missing_clip_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nope.webm"
    done = subprocess.run(
        [sys.executable, "-m", "signalling.client", str(missing), str(tmp_path / "out.y4m")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr == f"{PREFIX}{missing}: video file not found\n"
