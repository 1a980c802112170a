"""The Train page's runs: what may be trained, launching one run at a time, stopping it, and the run folder.

A run is ``cnnzoo train MODEL --snapshots --out RUNS/ID`` in a child process: the same engine and run
directory as the command line, so a stopped run continues with ``cnnzoo train --resume --out RUNS/ID``. The
child runs at a lower priority (``nice``) with fewer threads than cores, so that the server, which shares the
machine, keeps answering predictions while it trains. It has its own session (process group): a Ctrl-C in
the server's terminal reaches the server, which then stops the run cleanly; a killed server leaves the
child to finish, and every epoch's checkpoint is crash-safe either way.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import TrainConfig
from ..errors import CnnzooError
from ..models.source import check_model_arg, is_layer_string
from ..options import OptionError, check
from ..rundir import lock_for_child, lock_holder, new_run_name
from ..train.memory import check_train_memory
from ..train.recipes import RECIPE_NAMES, recipe_for
from ..train.snapshots import PROGRESS, SNAPSHOTS

__all__ = [
    "TrainError",
    "Job",
    "Adopted",
    "Trainer",
    "running_trainers",
    "datasets_on_disk",
    "models_for",
    "list_runs",
    "run_path",
]

DEFAULT_DATASET, DEFAULT_MODEL = "fashion-mnist", "lenet5_modern"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")
STOP_SECONDS = 20  # a stopped run gets this long to finish its step and exit before it is killed
NICE = 10
PAGE_BYTES = 1 << 20  # progress served at most this much per request: a 10,000-epoch run writes ~50 MB


class TrainError(CnnzooError):
    """A Train page request that cannot be served; ``status`` is its HTTP code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def datasets_on_disk(data_dir: str | None = None) -> list[str]:
    """The named datasets whose files are already here (the page never starts a download)."""
    from ..data.datasets import locate
    from ..data.sources import SPECS, get_spec

    return [name for name in SPECS if locate(get_spec(name), data_dir) is not None]


def models_for(dataset: str) -> list[str]:
    """The zoo's models that fit ``dataset``: 1- or 3-channel inputs at most twice the images' side (a LeNet
    or a CIFAR ResNet for 28×28 images, not a 224×224 VGG); the LeNet family first."""
    from ..data import dataset_facts
    from ..models import get_model_info, list_models

    side = max(dataset_facts(dataset).native_size or (32, 32))
    fits = [
        n
        for n in list_models()
        if get_model_info(n).input_size[0] in (1, 3) and max(get_model_info(n).input_size[1:]) <= 2 * side
    ]
    return sorted(fits, key=lambda n: (get_model_info(n).family != "lenet", n))


def run_path(runs_dir: Path, run_id: str) -> Path:
    """The folder of run ``run_id``, which must be one of the listing's names: no path ever comes from a
    client (``..``, ``/``, a symlink out of the runs folder are all simply not in the listing)."""
    if not _RUN_ID.match(run_id or "") or run_id not in {r["id"] for r in list_runs(runs_dir)}:
        raise TrainError(404, f"no run {run_id[:80]!r} with snapshots in {runs_dir}: see /api/runs")
    return runs_dir / run_id


def list_runs(runs_dir: Path) -> list[dict]:
    """The runs directly under ``runs_dir`` that have snapshots, newest first."""
    rows = []
    try:
        folders = [p for p in Path(runs_dir).iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []
    for path in folders:
        files = sorted(
            (int(p.stem[6:]), p) for p in (path / SNAPSHOTS).glob("epoch-*.json") if p.stem[6:].isdigit()
        )
        snaps = [epoch for epoch, _ in files]
        if not snaps or not _RUN_ID.match(path.name):
            continue
        try:
            when = files[-1][1].stat().st_mtime
        except OSError:  # removed since the listing
            continue
        try:
            config = json.loads((path / "config.json").read_text())
        except (OSError, ValueError, RecursionError):
            config = {}
        config = config if isinstance(config, dict) else {}
        rows.append(
            {
                "id": path.name,
                "model": config.get("model"),
                "dataset": config.get("dataset"),
                "epochs": config.get("epochs"),
                "snapshots": snaps,
                "finished": (path / "result.json").is_file(),
                "checkpoint": (path / "checkpoint.json").is_file(),
                "time": when,
            }
        )
    return sorted(rows, key=lambda r: -r["time"])


class Adopted:
    """A trainer this server did not start (its predecessor did, then crashed), seen through its run's lock:
    it runs while the lock is held, and it is stopped with a signal to the pid in the lock file. The same
    methods as the ``subprocess.Popen`` of a job this server starts."""

    def __init__(self, pid: int, path: Path) -> None:
        self.pid, self.path = pid, path

    def poll(self) -> int | None:
        if lock_holder(self.path) is not None:
            return None
        return 0 if (self.path / "result.json").is_file() else 1

    def send_signal(self, sig: int) -> None:
        pid = self.pid or lock_holder(self.path)  # 0: the lock was seen before its trainer's pid was written
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.1)
        return code


def running_trainers(runs_dir: Path) -> list[tuple[str, int]]:
    """(run id, pid) of every run directly under ``runs_dir`` whose writer lock a live process holds."""
    try:
        folders = [p for p in Path(runs_dir).iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []
    return [(p.name, pid) for p in folders if (pid := lock_holder(p)) is not None]


@dataclass
class Job:
    """One run launched from the page."""

    id: str
    path: Path
    params: dict
    process: subprocess.Popen
    started: float = field(default_factory=time.time)
    stopping: bool = False

    @property
    def status(self) -> str:
        code = self.process.poll()
        if code is None:
            return "stopping" if self.stopping else "running"
        if code == 0:
            return "finished"
        return "stopped" if self.stopping else "failed"

    def to_dict(self) -> dict:
        status = self.status
        return {
            "id": self.id,
            "status": status,
            "params": self.params,
            "started": self.started,
            "returncode": self.process.poll(),
            "message": self._last_line() if status == "failed" else "",
            "resume": f"cnnzoo train --resume --out {self.path}",
        }

    def _last_line(self) -> str:
        try:
            lines = (self.path / "train.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1][:300] if lines else ""


class Trainer:
    """Launches and stops the page's runs: one at a time per server."""

    def __init__(self) -> None:
        self.job: Job | None = None
        self._lock = threading.Lock()

    def validate(self, params: dict, data_dir: str | None = None) -> dict:
        """The start form's fields, checked with TrainConfig's rules (one line each) and the page's lists."""
        on_disk = datasets_on_disk(data_dir)
        dataset = params.get("dataset") or DEFAULT_DATASET
        if dataset not in on_disk:
            raise TrainError(
                422, f"dataset {dataset[:80]!r} is not on this machine; here: {', '.join(on_disk) or 'none'}"
            )
        model = params.get("model") or DEFAULT_MODEL
        fitting = models_for(dataset)
        if model not in fitting and not is_layer_string(model):
            raise TrainError(422, f"model {model[:80]!r} is not one for {dataset}: {', '.join(fitting)}")
        try:  # a layer string is built with the dataset's channels; zoo names only otherwise, never code
            check_model_arg(model, allow_code=False)
        except CnnzooError as e:  # a layer string's caret line is for a terminal: the page shows one line
            raise TrainError(422, str(e).split("\n")[0]) from None
        recipe = params.get("recipe") or "default"
        recipe = "default" if recipe == "auto" else recipe  # the page's first name for it
        if recipe not in RECIPE_NAMES:
            raise TrainError(422, f"recipe {recipe[:80]!r} is not one of: {', '.join(RECIPE_NAMES)}")
        try:  # the same check `cnnzoo train --recipe` makes (e.g. `paper` is LeNet-5's alone)
            recipe_for(model, recipe)
        except CnnzooError as e:
            raise TrainError(422, str(e)) from None
        checked = {"model": model, "dataset": dataset, "recipe": recipe}
        for name in ("epochs", "limit", "lr", "batch_size", "validation_split"):
            if params.get(name) is not None:
                try:
                    checked[name] = check(TrainConfig, name, params[name])
                except OptionError as e:
                    raise TrainError(422, str(e)) from None
        batch = (
            checked.get("batch_size") or recipe_for(model, recipe).get("batch_size") or TrainConfig.batch_size
        )
        try:  # before a process starts: a batch the machine cannot hold is refused with the estimate
            check_train_memory(model, _input_size(model, dataset), batch)
        except CnnzooError as e:
            raise TrainError(422, str(e)) from None
        return checked

    def adopt(self, runs_dir: Path) -> None:
        """Show (and let the page stop) a trainer that an earlier server started and left running, instead
        of starting a second one beside it; a live pid holds its run's lock (:mod:`cnnzoo.rundir`)."""
        with self._lock:
            if self.job is not None and self.job.process.poll() is None:
                return
            for run_id, pid in running_trainers(runs_dir):
                path = Path(runs_dir) / run_id
                try:
                    config = json.loads((path / "config.json").read_text())
                except (OSError, ValueError, RecursionError):
                    config = {}
                config = config if isinstance(config, dict) else {}
                params = {k: config.get(k) for k in ("model", "dataset", "epochs", "recipe")}
                self.job = Job(run_id, path, params | {"adopted_pid": pid}, Adopted(pid, path))
                return

    def start(self, params: dict, runs_dir: Path, data_dir: str | None = None) -> dict:
        params = self.validate(params, data_dir)
        self.adopt(runs_dir)
        with self._lock:
            if self.job is not None and self.job.process.poll() is None:
                raise TrainError(
                    409, f"a run is in progress: {self.job.id} ({self.job.status}); stop it first"
                )
            run_id = _new_id(runs_dir, params["model"], params["dataset"])
            path = Path(runs_dir) / run_id
            path.mkdir(parents=True)
            # the run's lock is taken here and handed to the child: a restarted server sees it at once
            with lock_for_child(path) as handed, open(path / "train.log", "wb") as log:
                process = subprocess.Popen(
                    _command(params, path, data_dir),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=_child_env() | handed.env,
                    pass_fds=(handed.fd,),
                    start_new_session=True,
                )
                handed.started(process.pid)
            self.job = Job(run_id, path, params, process)
            return self.job.to_dict()

    def stop(self) -> dict:
        """Interrupt the run (SIGTERM, which ``cnnzoo train`` takes as Ctrl-C: it exits between two steps) and
        wait for it; the checkpoint of its last finished epoch stays, and ``cnnzoo train --resume`` continues
        it."""
        with self._lock:
            job = self.job
            if job is None or job.process.poll() is not None:
                raise TrainError(409, "no run is in progress")
            job.stopping = True
            job.process.send_signal(signal.SIGTERM)  # not SIGINT: `cnnzoo serve &` in a script ignores it
        try:
            job.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            job.process.kill()  # the checkpoint is crash-safe: the last complete one survives this too
            job.process.wait()
        return job.to_dict()

    def state(self) -> dict | None:
        return self.job.to_dict() if self.job else None

    def running_id(self) -> str | None:
        job = self.job
        return job.id if job is not None and job.process.poll() is None else None

    def shutdown(self) -> None:
        if self.running_id():
            self.stop()


def run_state(runs_dir: Path, run_id: str, offset: int = 0, max_bytes: int = PAGE_BYTES) -> dict:
    """A run's progress lines from byte ``offset``, at most ``max_bytes`` of them (whole lines), and the epochs
    that have snapshots. ``offset`` is where the next page starts; ``more`` says whether there is one."""
    path = Path(runs_dir) / run_id / SNAPSHOTS
    snaps = sorted(int(p.stem[6:]) for p in path.glob("epoch-*.json") if p.stem[6:].isdigit())
    lines, end, size = _progress_page(path / PROGRESS, max(0, offset), max_bytes)
    more = offset < end < size  # a whole line is ready beyond this page (a half-written one is not)
    return {"progress": lines, "offset": end, "more": more, "snapshots": snaps}


def _progress_page(path: Path, start: int, max_bytes: int) -> tuple[list[dict], int, int]:
    """(lines, end offset, file size) of the whole lines in ``path`` from ``start``, reading at most
    ``max_bytes`` (a line longer than that is skipped, never held whole)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if start >= size:
                return [], size, size
            f.seek(start)
            data = f.read(max_bytes)
    except OSError:
        return [], start, start
    cut = data.rfind(b"\n") + 1
    if cut == 0:  # no whole line in a full page: an oversized line, skipped; else a half-written one
        return [], (start + len(data) if len(data) == max_bytes else start), size
    lines = []
    for raw in data[:cut].split(b"\n")[:-1]:
        try:
            lines.append(json.loads(raw))
        except (ValueError, RecursionError):
            continue
    return lines, start + cut, size


def _new_id(runs_dir: Path, model: str, dataset: str) -> str:
    run_id = new_run_name(f"{model}-{dataset}")
    while (Path(runs_dir) / run_id).exists():
        run_id = new_run_name(f"{model}-{dataset}")
    return run_id


def _input_size(model: str, dataset: str) -> tuple[int, int, int]:
    """The input the page's run of ``model`` on ``dataset`` trains at: the model's own size (a zoo name's
    registered size, a layer string's own input)."""
    from ..models.source import default_input_size

    return tuple(default_input_size(model))


def _command(params: dict, out: Path, data_dir: str | None) -> list[str]:
    """``cnnzoo train`` with the page's choices (the page's fields override the recipe's, as on the CLI)."""
    cmd = [sys.executable, "-m", "cnnzoo", "train", params["model"], "--dataset", params["dataset"]]
    cmd += ["--recipe", params["recipe"]]
    options = {
        k: params[k] for k in ("epochs", "limit", "lr", "batch_size", "validation_split") if k in params
    }
    for name, value in options.items():
        cmd += ["--" + name.replace("_", "-"), str(value)]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    cmd += ["--snapshots", "--out", str(out), "--threads", str(_child_threads())]
    if shutil.which("nice") and os.name == "posix":
        cmd = ["nice", "-n", str(NICE), *cmd]  # nice execs the command: its pid is the trainer's
    return cmd


def _child_threads() -> int:
    """All cores but one: the server keeps one for the predictions (on two cores the trainer gets one)."""
    return max(1, (os.cpu_count() or 2) - 1)


def _child_env() -> dict:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(_child_threads())
    env["PYTHONUNBUFFERED"] = "1"
    src = str(Path(__file__).resolve().parents[2])  # this cnnzoo, even when it is not installed
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env
