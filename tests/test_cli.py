"""``python -m sb3_natgrad.train`` / ``enjoy``: rl-zoo3's CLI with the plugin's algorithms, end to end.

Each command runs in a subprocess, like a user would run it, with tiny budgets.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from algorithms import ALGO_NAMES, env_id

from sb3_natgrad import ALGOS
from sb3_natgrad.zoo import hyperparams_dir, with_default_conf_file

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _saved_config(path: Path) -> dict:
    # The zoo saves the hyperparameters as a Python OrderedDict, which needs the unsafe loader.
    return dict(yaml.load(path.read_text(), Loader=yaml.UnsafeLoader))


def _train_then_enjoy(algo: str, tmp_path: Path, *extra: str, env: str = "CartPole-v1") -> None:
    train = _run(
        "-m", "sb3_natgrad.train", "--algo", algo, "--env", env, "-n", "1000", "-f", "logs",
        "--seed", "0", "--num-threads", "1", *extra, cwd=tmp_path,
    )  # fmt: skip
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    model_file = tmp_path / "logs" / algo / f"{env}_1" / f"{env}.zip"
    assert model_file.exists(), list((tmp_path / "logs").rglob("*"))
    enjoy = _run(
        "-m", "sb3_natgrad.enjoy", "--algo", algo, "--env", env, "-f", "logs", "-n", "300",
        "--no-render", "--num-threads", "1", cwd=tmp_path,
    )  # fmt: skip
    assert enjoy.returncode == 0, enjoy.stdout[-3000:] + enjoy.stderr[-3000:]
    assert "Episode Reward" in enjoy.stdout


def test_zoo_algorithm_through_plugin_cli(tmp_path: Path) -> None:
    _train_then_enjoy("ppo", tmp_path)
    # A zoo algorithm keeps the zoo's own YAML.
    saved = _saved_config(tmp_path / "logs/ppo/CartPole-v1_1/CartPole-v1/config.yml")
    assert dict(saved)["n_steps"] == 32  # rl_zoo3/hyperparams/ppo.yml, CartPole-v1


@pytest.mark.parametrize("algo", ALGO_NAMES)
def test_plugin_algorithm_train_enjoy(algo: str, tmp_path: Path) -> None:
    _train_then_enjoy(algo, tmp_path, env=env_id(algo))


def test_atari_entry_trains(tmp_path: Path) -> None:
    """ACKTR's ``atari`` entry end to end: ALE, SB3's AtariWrapper (OpenCV), frame stack, CnnPolicy, K-FAC."""
    train = _run(
        "-m", "sb3_natgrad.train", "--algo", "acktr", "--env", "PongNoFrameskip-v4", "-n", "32", "-f", "logs",
        "--seed", "0", "--num-threads", "1", "--eval-freq", "-1", "-params", "n_envs:2", "n_steps:4", cwd=tmp_path,
    )  # fmt: skip
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    saved = _saved_config(tmp_path / "logs/acktr/PongNoFrameskip-v4_1/PongNoFrameskip-v4/config.yml")
    assert dict(saved)["policy"] == "CnnPolicy" and dict(saved)["frame_stack"] == 4


@pytest.mark.parametrize("algo", ALGO_NAMES)
def test_explicit_conf_file_wins(algo: str, tmp_path: Path) -> None:
    conf = tmp_path / "my.yml"
    env = env_id(algo)
    conf.write_text(yaml.safe_dump({env: {"policy": "MlpPolicy", "n_timesteps": 300, "n_envs": 1, "n_steps": 96}}))
    train = _run(
        "-m", "sb3_natgrad.train", "--algo", algo, "--env", env, "-f", "logs", "--conf-file", str(conf),
        "--num-threads", "1", cwd=tmp_path,
    )  # fmt: skip
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    saved = _saved_config(tmp_path / f"logs/{algo}/{env}_1/{env}/config.yml")
    assert saved["n_steps"] == 96


@pytest.mark.parametrize("algo", ALGO_NAMES)
def test_optimize(algo: str, tmp_path: Path) -> None:
    opt = _run(
        "-m", "sb3_natgrad.train", "--algo", algo, "--env", env_id(algo), "-f", "logs", "-optimize",
        "--n-trials", "2", "--n-jobs", "1", "-n", "600", "--sampler", "random", "--pruner", "none",
        "--n-evaluations", "1", "--eval-episodes", "2", "--seed", "0", "--num-threads", "1", cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert opt.returncode == 0, opt.stdout[-3000:] + opt.stderr[-3000:]
    assert re.search(r"Number of finished trials:\s+2\b", opt.stdout), opt.stdout[-3000:]


def test_unknown_algo_fails_clearly(tmp_path: Path) -> None:
    result = _run("-m", "sb3_natgrad.train", "--algo", "nosuchalgo", "--env", "CartPole-v1", cwd=tmp_path)
    assert result.returncode != 0
    assert "invalid choice: 'nosuchalgo'" in result.stderr
    assert "ppo" in result.stderr  # the message lists the available choices


def test_default_conf_file_for_plugin_algorithms() -> None:
    for algo in ALGOS:
        argv = with_default_conf_file(["--algo", algo, "--env", "CartPole-v1"])
        assert argv[-2:] == ["--conf-file", str(hyperparams_dir() / f"{algo}.yml")]
        assert (hyperparams_dir() / f"{algo}.yml").is_file()
        assert with_default_conf_file(["--algo", algo, "-conf", "x.yml"]) == ["--algo", algo, "-conf", "x.yml"]
    assert with_default_conf_file(["--algo", "ppo"]) == ["--algo", "ppo"]


def test_plugin_yaml_keys_are_constructor_arguments() -> None:
    """The plugin's YAMLs only name zoo keys or arguments the algorithm's constructor accepts."""
    for algo in ALGOS:
        entries = yaml.safe_load((hyperparams_dir() / f"{algo}.yml").read_text())
        assert "default" in entries, f"{algo}.yml needs a 'default' entry"
        for key, hp in entries.items():
            for name in hp:
                assert name in _zoo_keys() or _accepts(ALGOS[algo], name), f"{algo}.yml[{key}] has unknown '{name}'"


def _zoo_keys() -> set[str]:
    return {"n_timesteps", "n_envs", "policy", "normalize", "env_wrapper", "frame_stack", "callback",
            "vec_env_wrapper", "normalize_kwargs", "policy_kwargs", "env_kwargs", "noise_type", "noise_std"}  # fmt: skip


def _accepts(cls: type, name: str) -> bool:
    import inspect

    return name in inspect.signature(cls.__init__).parameters


def test_yamls_found_after_plain_pip_install(tmp_path: Path) -> None:
    """A non-editable install (a wheel) carries hyperparams/*.yml and the CLI finds them there."""
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", str(ROOT), "-w", str(wheel_dir)]
    subprocess.run(build, check=True, cwd=tmp_path)
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), *map(str, wheel_dir.glob("*.whl"))], check=True)
    code = (
        "from sb3_natgrad.zoo import hyperparams_dir; print(hyperparams_dir());"
        "print(sorted(p.name for p in hyperparams_dir().glob('*.yml')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert Path(out[0]) == target / "sb3_natgrad" / "hyperparams"
    assert out[1] == str(sorted(f"{algo}.yml" for algo in ALGOS))
