# tests/python/test_examples.py — examples/python/chat.py and retrieve.py run as a user would run
# them, on the demo assets: the chat streams what the API answers in-process, retrieval ranks the
# query file itself first with similarity 1.
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandagpt
from conftest import SOURCE_ROOT, child_env, load_or_skip, run_python

EXAMPLES = SOURCE_ROOT / "examples" / "python"


def test_chat_example(demo_dir: Path) -> None:
    image = load_or_skip(demo_dir / "demo.png")
    audio = load_or_skip(demo_dir / "demo.wav")
    question = "What do you see and hear?"
    with pandagpt.Model(demo_dir / "demo-llm.gguf", encoder=demo_dir / "demo-encoder.gguf",
                        device="cpu") as model, pandagpt.Session(model) as s:
        want = s.chat(question, media=[image, audio], max_tokens=24, temperature=0,
                      stream=False)
    assert want
    run = run_python([str(EXAMPLES / "chat.py"), "-m", str(demo_dir / "demo-llm.gguf"),
                      "-e", str(demo_dir / "demo-encoder.gguf"), "--device", "cpu",
                      "--image", str(demo_dir / "demo.png"), "--audio",
                      str(demo_dir / "demo.wav"), "-p", question, "-n", "24", "--temp", "0"],
                     child_env())
    assert run.returncode == 0, run.stderr
    assert run.stdout == want + "\n"
    assert "n_vocab" in run.stderr and "generated" in run.stderr


def test_chat_example_interactive(demo_dir: Path) -> None:
    run = subprocess.run([sys.executable, str(EXAMPLES / "chat.py"), "-m",
                          str(demo_dir / "demo-llm.gguf"), "-n", "6", "--temp", "0"],
                         input="Hello\nHow are you?\n/reset\nHello\n", env=child_env(),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    answers = [line for line in run.stdout.split("> ") if line.strip()]
    assert len(answers) == 3, run.stdout
    assert answers[0] == answers[2]  # after /reset the same question, the same greedy answer
    reused = [int(line.split("(")[1].split()[0]) for line in run.stderr.splitlines()
              if line.startswith("[prompt")]
    assert reused[1] > 0 and reused[2] == 0, run.stderr


def test_retrieve_example(demo_dir: Path) -> None:
    load_or_skip(demo_dir / "demo.png")
    load_or_skip(demo_dir / "demo.wav")
    png, wav = str(demo_dir / "demo.png"), str(demo_dir / "demo.wav")
    for query, other in ((png, wav), (wav, png)):
        run = run_python([str(EXAMPLES / "retrieve.py"), "-e",
                          str(demo_dir / "demo-encoder.gguf"), "--device", "cpu", "-q", query,
                          other, query], child_env())
        assert run.returncode == 0, run.stderr
        rows = [line.split() for line in run.stdout.splitlines()]
        assert [r[0] for r in rows] == ["1", "2"]
        assert rows[0][3] == query and rows[0][1] == "+1.0000"
        assert rows[1][3] == other and -1.0 <= float(rows[1][1]) < 0.99
        assert rows[0][2] == ("image" if query == png else "audio")


def test_examples_report_errors(tmp_path: Path, demo_dir: Path) -> None:
    run = run_python([str(EXAMPLES / "retrieve.py"), "-e", str(demo_dir / "demo-encoder.gguf"),
                      "-q", str(tmp_path / "missing.png"), str(demo_dir / "demo.png")],
                     child_env())
    assert run.returncode == 1
    assert "FileError" in run.stderr and "missing.png" in run.stderr
