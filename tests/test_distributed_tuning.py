"""Distributed tuning against a real PostgreSQL server: two ``python -m sb3_natgrad.train -optimize`` workers share
one study, the median pruner reads the shared storage, the best trial loads into a model, and the storage
password appears nowhere the runs write or print.

The server is Debian's PostgreSQL (``apt-get install postgresql``, done by ``.ci/run``), started by the fixture in a
temporary data directory on 127.0.0.1 and a free port, as the ``postgres`` user when the tests run as root
(``initdb`` and ``postgres`` refuse root). The tests are skipped, saying why, only where the server's binaries
cannot be found.
"""

from __future__ import annotations

import glob
import io
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import torch as th
import yaml
from optuna.trial import TrialState

from sb3_natgrad import TRPO
from sb3_natgrad.hyperparams_opt import HYPERPARAMS_CONVERTER
from sb3_natgrad.tuning import MaskedRDBStorage, mask_password, password_of, prepare_argv, resolve_storage, scrub

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "tuner-pw-5e81c0d94a"  # distinctive: any occurrence in an output is a leak
PG_USER, PG_DB = "tuner", "tuning"


def _pg_bindir() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``: Debian's newest ``/usr/lib/postgresql/<version>/bin``, else ``PATH``."""
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if debian:
        return Path(debian[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str  # postgresql://tuner:PASSWORD@127.0.0.1:PORT/tuning


@pytest.fixture(scope="module")
def postgres() -> Iterator[Server]:
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or on PATH: "
                    "install Debian's postgresql package (.ci/run does: apt-get install -y postgresql)")  # fmt: skip
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' system user to run the server as")
        as_user = ["runuser", "-u", "postgres", "--"]
    # Under /tmp (not pytest's tmp_path, whose parents are private to root) so that the postgres user reaches it.
    base = Path(tempfile.mkdtemp(prefix="sb3ng-pg-"))
    if as_user:
        os.chown(base, owner.pw_uid, owner.pw_gid)
    data, port = base / "data", _free_port()

    def run(*cmd: str) -> None:
        result = subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, f"{cmd[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8", "--no-sync",
            "--auth-local=trust", "--auth-host=scram-sha-256")  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c full_page_writes=off"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-o", options, "-w", "-t", "60", "start")
        run(str(bindir / "psql"), "-h", str(base), "-p", str(port), "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q",
            "-c", f"CREATE ROLE {PG_USER} LOGIN PASSWORD '{PASSWORD}'",
            "-c", f"CREATE DATABASE {PG_DB} OWNER {PG_USER}")  # fmt: skip
        yield Server(f"postgresql://{PG_USER}:{PASSWORD}@127.0.0.1:{port}/{PG_DB}")
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60, check=False)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **extra}


def _train_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "sb3_natgrad.train", "--algo", "trpo", "--env", "CartPole-v1", "--num-threads", "1",
            "--eval-episodes", "2", "--no-optim-plots", "-params", "n_envs:1", *args]  # fmt: skip


def _start(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str], timeout: int = 240) -> str:
    """Wait for ``proc``; its stdout and stderr together, after checking that it succeeded."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    assert proc.returncode == 0, f"{proc.args}\n{out[-3000:]}\n{err[-3000:]}"
    return out + err


def _contains(data: bytes, secret: bytes) -> bool:
    """Whether ``secret`` is in ``data`` or in any member (recursively) of ``data`` read as a zip archive."""
    if secret in data:
        return True
    if data[:4] != b"PK\x03\x04":
        return False
    with zipfile.ZipFile(io.BytesIO(data)) as archive:  # SB3's model zip is deflated: look inside
        return any(_contains(archive.read(name), secret) for name in archive.namelist())


def _leaks(folder: Path, secret: str) -> list[str]:
    """Files under ``folder`` holding ``secret`` (zip members included)."""
    return [str(p) for p in sorted(folder.rglob("*")) if p.is_file() and _contains(p.read_bytes(), secret.encode())]


def test_two_workers_share_one_study(postgres: Server, tmp_path: Path) -> None:
    study_name = "trpo-cartpole"
    common = ["-optimize", "--study-name", study_name, "--n-trials", "2", "-n", "256", "--n-evaluations", "1",
              "--pruner", "median", "-tb", "tb"]  # fmt: skip
    # Worker 1 has the URL on its command line, worker 2 reads it from the environment.
    w1 = _start(
        _train_command(*common, "--storage", postgres.url, "--seed", "10", "-f", "logs_w1",
                       "--optimization-log-path", "logs_w1/trials"),
        tmp_path, _env(),
    )  # fmt: skip
    w2 = _start(
        _train_command(*common, "--storage", "env:SB3_NATGRAD_STORAGE", "--seed", "4", "-f", "logs_w2",
                       "--optimization-log-path", "logs_w2/trials"),
        tmp_path, _env(SB3_NATGRAD_STORAGE=postgres.url),
    )  # fmt: skip
    outputs = [_finish(w1), _finish(w2)]

    study = optuna.load_study(study_name=study_name, storage=postgres.url)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    by_worker = {trial.user_attrs.get("worker") for trial in complete}
    assert by_worker == {f"{socket.gethostname()}:{w.pid}" for w in (w1, w2)}, [t.user_attrs for t in study.trials]
    assert len(complete) == 4

    # The best parameters, through the zoo's converter, build a TRPO model that trains.
    kwargs = HYPERPARAMS_CONVERTER["trpo"](study.best_params)
    model = TRPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu", **kwargs)
    assert model.n_steps == 2 ** study.best_params["n_steps_pow"]
    assert model.target_kl == pytest.approx(study.best_params["target_kl"])
    model.learn(64)
    assert all(bool(th.isfinite(p).all()) for p in model.policy.parameters())

    # A training run from a stored trial (--trial-id, as the zoo loads it) writes args.yml, config.yml,
    # command.txt, tensorboard events and the model zip. rl-zoo3 skips --trial-id 0, so take a later one.
    trial = max(complete, key=lambda t: t.number)
    outputs.append(_finish(_start(
        _train_command("--storage", postgres.url, "--study-name", study_name, "--trial-id", str(trial.number),
                       "-n", "128", "--seed", "3", "-f", "logs_best", "-tb", "tb", "--eval-freq", "-1"),
        tmp_path, _env(),
    )))  # fmt: skip
    saved = tmp_path / "logs_best/trpo/CartPole-v1_1/CartPole-v1"
    # The zoo saves OrderedDicts, which need the unsafe loader.
    config = yaml.load((saved / "config.yml").read_text(), yaml.UnsafeLoader)
    assert config["n_critic_updates"] == trial.params["n_critic_updates"]
    assert yaml.load((saved / "args.yml").read_text(), yaml.UnsafeLoader)["storage"] == mask_password(postgres.url)
    assert mask_password(postgres.url) in (saved / "command.txt").read_text()
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*")), "the tensorboard run wrote no events"
    assert list((tmp_path / "logs_w1/trpo").glob("report_*.pkl")), "worker 1 wrote no study report"

    # The password: in no file any run wrote (zip members read), in no output, in nothing the study stores.
    leaks = [leak for folder in ("logs_w1", "logs_w2", "logs_best", "tb") for leak in _leaks(tmp_path / folder, PASSWORD)]
    assert not leaks, f"storage password written to {leaks}"
    assert not [out for out in outputs if PASSWORD in out], "storage password printed"
    assert PASSWORD not in repr(study.user_attrs) + repr([t.user_attrs for t in study.trials])
    assert mask_password(postgres.url) in study.user_attrs["command"] or "env:SB3" in study.user_attrs["command"]


def test_pruner_reads_other_workers_trials(postgres: Server, tmp_path: Path) -> None:
    """The zoo's median pruner prunes a worker's trial against a trial another process stored in the study."""
    study_name = "pruning"
    study = optuna.create_study(study_name=study_name, storage=postgres.url, direction="maximize")
    # Another worker's trial, better at the first report than CartPole's maximal return (500).
    study.add_trial(optuna.trial.create_trial(value=1000.0, intermediate_values={1: 1000.0}))
    output = _finish(_start(
        _train_command("-optimize", "--storage", postgres.url, "--study-name", study_name, "--n-trials", "1",
                       "-n", "256", "--n-evaluations", "2", "--pruner", "median", "--n-startup-trials", "1",
                       "--sampler", "random", "--seed", "4", "-f", "logs"),
        tmp_path, _env(),
    ))  # fmt: skip
    trials = optuna.load_study(study_name=study_name, storage=postgres.url).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED], output[-2000:]
    assert list(trials[1].intermediate_values) == [1]  # pruned at its first report, not after training
    assert PASSWORD not in output and not _leaks(tmp_path / "logs", PASSWORD)


def test_storage_url_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+psycopg2://me:p%40ss:w@db.example:5432/tuning?sslmode=require"
    assert mask_password(url) == "postgresql+psycopg2://me:***@db.example:5432/tuning?sslmode=require"
    assert set(password_of(url)) == {"p%40ss:w", "p@ss:w"}
    assert mask_password("postgresql://me@db/tuning?password=xyz&x=1") == "postgresql://me@db/tuning?password=***&x=1"
    for unchanged in ("sqlite:///study.db", "logs/journal.log", "postgresql://me@db/tuning"):
        assert mask_password(unchanged) == unchanged
    masked = "postgresql+psycopg2://me:***@db.example:5432/tuning?sslmode=require"
    assert scrub(f"--storage={url} (p@ss:w)", url) == f"--storage={masked} (***)"

    monkeypatch.setenv("MY_STORAGE", url)
    assert resolve_storage("env:MY_STORAGE") == url
    monkeypatch.delenv("MY_STORAGE")
    with pytest.raises(ValueError, match="MY_STORAGE is not set"):
        resolve_storage("env:MY_STORAGE")

    monkeypatch.setattr(sys, "orig_argv", [sys.executable, "-m", "sb3_natgrad.train", "--storage", url])
    argv = prepare_argv(["--algo", "trpo", f"--storage={url}", "-optimize"])
    assert argv == ["--algo", "trpo", f"--storage={mask_password(url)}", "-optimize"]
    assert sys.orig_argv[-1] == mask_password(url)


def test_masked_storage_pickles_without_password(postgres: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    storage = MaskedRDBStorage(postgres.url, env_var="MY_STORAGE")
    assert PASSWORD not in str(storage) + repr(storage) and not storage.endswith(".log")
    blob = pickle.dumps(optuna.create_study(study_name="pickled", storage=storage))
    assert PASSWORD.encode() not in blob
    monkeypatch.delenv("MY_STORAGE", raising=False)
    with pytest.raises(RuntimeError, match="set the environment variable MY_STORAGE"):
        pickle.loads(blob)
    monkeypatch.setenv("MY_STORAGE", postgres.url)
    assert pickle.loads(blob).study_name == "pickled"
