"""Every code block of README.md and the documentation runs, with small budgets substituted.

- ``python`` blocks are executed as they are written, in a fresh namespace and a temporary working directory,
  after the training budgets (``learn(N)``, ``total_timesteps=N``) and evaluation episode counts are made
  small;
- ``bash`` blocks run their ``python -m ...`` lines as subprocesses in one temporary directory per block,
  in order (so ``enjoy`` finds what ``train`` saved), with ``-n`` (training or enjoy steps) and
  ``--n-trials`` made small. Their ``make`` and ``pip`` lines are the set-up commands; CI runs them itself
  (``.ci/run`` is ``make venv``, ``make test``, ``make docs``);
- ``ray ...`` lines (Ray cluster commands, which would start a cluster) are checked against the installed Ray's
  command line: the subcommand and every option they use must exist;
- blocks in other languages (``bibtex``) and MyST directives (``{toctree}``, ``{eval-rst}``) are not code.

The generated benchmark reports under ``docs/benchmarks/`` hold no code blocks to run.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ("benchmarks", "_build")
DOC_PAGES = sorted(p for p in (ROOT / "docs").rglob("*.md") if p.relative_to(ROOT / "docs").parts[0] not in GENERATED)
DOC_FILES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *DOC_PAGES]
FENCE = re.compile(r"^```(?P<lang>[^\n`]*)\n(?P<code>.*?)^```", re.MULTILINE | re.DOTALL)
RUN_LANGUAGES = ("python", "bash")
TEXT_LANGUAGES = ("bibtex",)
SMALL_BUDGET = 300

PYTHON_SUBSTITUTIONS = [
    (re.compile(r"\.learn\(\s*[\d_]+"), f".learn({SMALL_BUDGET}"),
    (re.compile(r"total_timesteps=[\d_]+"), f"total_timesteps={SMALL_BUDGET}"),
    (re.compile(r"n_eval_episodes=\d+"), "n_eval_episodes=2"),
]


def code_blocks() -> list[tuple[str, str, str]]:
    """``(id, language, code)`` of every fenced block, the id being ``file:line``."""
    blocks = []
    for path in DOC_FILES:
        text = path.read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            blocks.append((f"{path.relative_to(ROOT)}:{line}", match["lang"].strip(), match["code"]))
    return blocks


BLOCKS = code_blocks()


def test_every_block_is_known() -> None:
    """A block in a new language must be given a way to run here (or be declared text)."""
    unknown = [
        (block_id, lang)
        for block_id, lang, _ in BLOCKS
        if lang not in RUN_LANGUAGES + TEXT_LANGUAGES and not lang.startswith("{")
    ]
    assert not unknown, f"code blocks of unknown language: {unknown}"


def small_python(code: str) -> str:
    for pattern, replacement in PYTHON_SUBSTITUTIONS:
        code = pattern.sub(replacement, code)
    return code


def test_python_substitution_shrinks_budgets() -> None:
    code = small_python("m.learn(total_timesteps=100_000)\nm.learn(20_000)\nevaluate_policy(m, e, n_eval_episodes=10)")
    expected = f"m.learn(total_timesteps={SMALL_BUDGET})\nm.learn({SMALL_BUDGET})\nevaluate_policy(m, e, n_eval_episodes=2)"
    assert code == expected


@pytest.mark.parametrize(
    "code", [code for _, lang, code in BLOCKS if lang == "python"], ids=[i for i, lang, _ in BLOCKS if lang == "python"]
)
def test_python_block(code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(small_python(code), "<doc block>", "exec"), {"__name__": "__doc_block__"})


def small_command(line: str) -> list[str]:
    """The arguments of a documented ``python -m ...`` line, with a small budget."""
    args = shlex.split(line.split(" #")[0])
    args[0] = sys.executable
    if "--n-trials" in args:
        args[args.index("--n-trials") + 1] = "2"
    if "-n" in args:
        args[args.index("-n") + 1] = str(SMALL_BUDGET)
    elif "sb3_natgrad.train" in args or "sb3_natgrad.enjoy" in args:
        args += ["-n", str(SMALL_BUDGET)]
    return args


def test_command_substitution() -> None:
    args = small_command("python -m sb3_natgrad.train --algo trpo --env Pendulum-v1 -optimize --n-trials 20   # Optuna")
    expected = ["-m", "sb3_natgrad.train", "--algo", "trpo", "--env", "Pendulum-v1", "-optimize", "--n-trials", "2"]
    assert args == [sys.executable, *expected, "-n", str(SMALL_BUDGET)]


def command_lines(code: str) -> list[str]:
    lines = [line.strip() for line in code.splitlines() if line.strip() and not line.strip().startswith("#")]
    unknown = [line for line in lines if not line.startswith(("python ", "make ", "pip ", "ray "))]
    assert not unknown, f"shell lines this test does not know how to run: {unknown}"
    return [line for line in lines if line.startswith(("python ", "ray "))]


def check_ray_command(line: str) -> None:
    """A documented Ray cluster command (it would start a cluster): its subcommand and every option it uses exist in
    the installed Ray's command line (``ray <subcommand> --help``)."""
    ray = Path(sys.executable).parent / "ray"
    if not ray.exists():
        pytest.skip("Ray is not installed (pip install 'sb3_natgrad[distributed]')")
    words = shlex.split(line, comments=True)
    result = subprocess.run([str(ray), words[1], "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{line}: no such Ray subcommand\n{result.stderr[-2000:]}"
    options = {word.split("=")[0] for word in words[2:] if word.startswith("--")}
    unknown = sorted(option for option in options if not re.search(rf"{re.escape(option)}\b", result.stdout))
    assert not unknown, f"{line}: options the installed Ray does not know: {unknown}"


@pytest.mark.parametrize(
    "code", [code for _, lang, code in BLOCKS if lang == "bash"], ids=[i for i, lang, _ in BLOCKS if lang == "bash"]
)
def test_bash_block(code: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for line in command_lines(code):
        if line.startswith("ray "):
            check_ray_command(line)
            continue
        result = subprocess.run(small_command(line), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{line}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
