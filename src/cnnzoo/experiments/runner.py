"""The experiment registry and the helpers every experiment shares.

An experiment is a module under :mod:`cnnzoo.experiments` with one function::

    run(out_dir: Path, quick: bool = False, seeds: int = 1, device: str = "auto") -> dict

It writes ``report.md``, PNG plots and ``results.json`` into ``out_dir`` and returns the results dict.
``quick=True`` must finish in about a minute on two CPU cores (the test suite runs every experiment so);
full runs take as long as the claim needs.

The helpers here keep the experiments short: :class:`Report` (markdown), :func:`begin` and :func:`finish`
(the output folder and device; ``results.json`` with settings, hardware and timing, and ``report.md``), :func:`mean_std`, :func:`seed_everything`, :func:`resolve_device`, and
:func:`train_curves`, the small training loop that records per-epoch training and test error (what the
papers' figures plot).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import json
import math
import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CnnzooError

__all__ = [
    "ExperimentInfo",
    "list_experiments",
    "get_experiment",
    "run_experiment",
    "Report",
    "begin",
    "finish",
    "mean_std",
    "seed_everything",
    "resolve_device",
    "hardware_info",
    "TrainSettings",
    "train_curves",
    "run_jobs",
]


@dataclass(frozen=True)
class ExperimentInfo:
    name: str
    module: str  # module under cnnzoo.experiments with run(out_dir, quick, seeds, device)
    source: str  # the seed document (and paper) whose claim it tests
    claim: str


# The seeds' claims, one row each. `dense-evaluation` is another engineer's module: listed when it exists.
_TABLE = [
    ExperimentInfo("degradation", "degradation", "seed 000; He et al. 2015, Fig. 1/6",
                   "a deeper plain net has higher training error than a shallower one; a residual net does not"),
    ExperimentInfo("lrn", "lrn", "seed 001; Simonyan & Zisserman 2014, Table 3",
                   "local response normalisation (VGG-A-LRN) brings no gain over VGG-A"),
    ExperimentInfo("small-kernels", "small_kernels", "seed 001; Simonyan & Zisserman 2014, Sec. 2.3",
                   "two 3×3 convs see 5×5 with 18C² weights instead of 25C² (28% fewer); three see 7×7 "
                   "with 27C² instead of 49C² (45% fewer), and train at least as well"),
    ExperimentInfo("bottleneck-1x1", "bottleneck_1x1", "seed 000; Szegedy et al. 2014 (Inception), Ng's course",
                   "a 1×1 bottleneck cuts the 5×5 conv's cost from 120,422,400 to 12,443,648 MACs (~10×)"),
    ExperimentInfo("lenet-activations", "lenet_activations", "seed 002; LeCun et al. 1998, d2l",
                   "in LeNet-5, ReLU trains faster than sigmoid (vanishing gradients); tanh, max vs average pooling"),
    ExperimentInfo("dense-evaluation", "dense_evaluation", "seed 001; Simonyan & Zisserman 2014, Sec. 3.2",
                   "VGG's test-time FC→conv conversion gives the same scores and takes any input size"),
]  # fmt: skip


def _module_exists(module: str) -> bool:
    return importlib.util.find_spec(f"{__package__}.{module}") is not None


def list_experiments() -> list[ExperimentInfo]:
    """Experiments whose module is present, in the table's order."""
    return [e for e in _TABLE if _module_exists(e.module)]


def get_experiment(name: str) -> ExperimentInfo:
    for e in list_experiments():
        if e.name == name:
            return e
    names = ", ".join(e.name for e in list_experiments())
    raise CnnzooError(f"unknown experiment {name!r} (`cnnzoo experiment list` shows: {names})")


def run_experiment(
    name: str,
    out_dir: str | Path | None = None,
    quick: bool = False,
    seeds: int = 1,
    device: str = "auto",
    epochs: int | None = None,
) -> dict:
    """Run experiment ``name``; ``out_dir`` defaults to ``runs/experiments/NAME``. ``epochs`` overrides a
    training experiment's default number of epochs (only experiments whose ``run`` takes it)."""
    info = get_experiment(name)
    if seeds < 1:
        raise CnnzooError(f"--seeds must be at least 1, got {seeds}")
    out = Path(out_dir) if out_dir else Path("runs") / "experiments" / name
    out.mkdir(parents=True, exist_ok=True)
    module = importlib.import_module(f"{__package__}.{info.module}")
    extra = {}
    if epochs is not None:
        if epochs < 1 or "epochs" not in inspect.signature(module.run).parameters:
            raise CnnzooError(
                f"experiment {name!r} does not take --epochs {epochs} (it trains nothing or epochs < 1)"
            )
        extra["epochs"] = epochs
    return module.run(out, quick=quick, seeds=seeds, device=device, **extra)


# ---------------------------------------------------------------------------------------------- reports


class Report:
    """A markdown report built line by line; :meth:`write` saves ``report.md``."""

    def __init__(self, title: str, info: ExperimentInfo | str) -> None:
        info = get_experiment(info) if isinstance(info, str) else info
        self.lines = [f"# {title}", "", f"**Claim** ({info.source}): {info.claim}.", ""]

    def heading(self, text: str) -> None:
        self.lines += [f"## {text}", ""]

    def para(self, text: str) -> None:
        self.lines += [text, ""]

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.lines.append("| " + " | ".join(headers) + " |")
        self.lines.append("|" + "---|" * len(headers))
        for row in rows:
            self.lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
        self.lines.append("")

    def image(self, filename: str, caption: str) -> None:
        self.lines += [f"![{caption}]({filename})", ""]

    def settings(self, settings: dict, hardware: dict, seconds: float) -> None:
        self.heading("Settings")
        self.table(["setting", "value"], [(k, v) for k, v in settings.items()])
        hw = ", ".join(f"{k}: {v}" for k, v in hardware.items())
        self.para(f"Hardware: {hw}. Wall time: {seconds:.1f} s.")

    def write(self, out_dir: Path) -> Path:
        path = Path(out_dir) / "report.md"
        path.write_text("\n".join(self.lines).rstrip() + "\n", encoding="utf-8")
        return path


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict) and {"mean", "std"} <= v.keys():
        return f"{v['mean']:.4g} ± {v['std']:.2g}" if v.get("n", 1) > 1 else f"{v['mean']:.4g}"
    return str(v)


def pct(stats: dict) -> str:
    """``{"mean": 0.0812, "std": 0.003, "n": 3}`` -> ``'8.12 ± 0.30%'`` (error rates are stored as fractions)."""
    if stats.get("n", 1) > 1:
        return f"{100 * stats['mean']:.2f} ± {100 * stats['std']:.2f}%"
    return f"{100 * stats['mean']:.2f}%"


def begin(out_dir: str | Path, device: str) -> tuple[float, Path, str]:
    """The start of every experiment's ``run``: its start time, its output folder (created) and the device
    ("auto" resolved)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return time.time(), out, resolve_device(device)


def finish(
    report: Report,
    out_dir: Path,
    name: str,
    settings: dict,
    results: dict,
    started: float,
    device: str,
    hardware: dict | None = None,
) -> dict:
    """The end of every experiment: ``results.json`` (experiment name, settings, hardware, wall time and the
    results), then ``report.md`` with the same settings, hardware and time. Returns the results document.
    ``hardware`` (with its ``seconds``) replaces this machine's for a run rebuilt from another run's log."""
    seconds = round(time.time() - started, 2)
    doc = {
        "experiment": name,
        "settings": settings,
        "hardware": hardware or hardware_info(device),
        "seconds": hardware.get("seconds", seconds) if hardware else seconds,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "results": results,
    }
    (Path(out_dir) / "results.json").write_text(json.dumps(doc, indent=2, default=_json_default) + "\n")
    report.settings(settings, doc["hardware"], doc["seconds"])
    report.write(out_dir)
    return doc


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def save_figure(fig, out_dir: Path, filename: str) -> str:
    """Save a matplotlib figure as PNG (Agg backend, no display needed) and close it."""
    fig.tight_layout()
    fig.savefig(Path(out_dir) / filename, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return filename


def new_figure(ncols: int = 1, width: float = 5.0, height: float = 3.6):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


# ------------------------------------------------------------------------------------- numbers & seeds


def mean_std(values: Sequence[float]) -> dict:
    """Mean and sample standard deviation (0 for a single value), with the values kept."""
    vals = [float(v) for v in values]
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return {"mean": statistics.fmean(vals), "std": std, "n": len(vals), "values": vals}


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CnnzooError(f"device {device!r} asked for, but torch sees no CUDA GPU (use --device cpu)")
    if device not in ("cpu", "mps") and not device.startswith("cuda"):
        raise CnnzooError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps")
    return device


def hardware_info(device: str) -> dict:
    import torch

    info = {
        "device": device,
        "cpu": platform.processor() or platform.machine(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def run_jobs(fn: Callable[..., Any], jobs: Sequence[tuple], parallel: int = 1) -> list[Any]:
    """``[fn(*job) for job in jobs]``, in up to ``parallel`` worker processes.

    Small CIFAR-style nets leave a big GPU mostly idle (each step is a few hundred short kernels), so the
    degradation run trains its models side by side in separate processes; on a CPU one job at a time is
    faster. ``fn`` must be a module-level function (the workers are spawned, not forked, for CUDA)."""
    if parallel <= 1 or len(jobs) <= 1:
        return [fn(*job) for job in jobs]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(
        max_workers=min(parallel, len(jobs)), mp_context=mp.get_context("spawn")
    ) as pool:
        futures = [pool.submit(fn, *job) for job in jobs]
        return [f.result() for f in futures]


# ---------------------------------------------------------------------------------------------- training


@dataclass
class TrainSettings:
    """One training run. Defaults follow He et al. 2015, Sec. 4.2 (CIFAR-10): SGD, momentum 0.9, weight
    decay 1e-4, batch 128, lr 0.1 divided by 10 at 50% and 75% of training, 4-pixel-pad random crops and
    horizontal flips."""

    epochs: int
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of all steps where lr /= 10
    warmup_epochs: float = 0.0  # linear warm-up (He et al. warm ResNet-110 up at lr 0.01)
    optimizer: str = "sgd"  # "sgd" or "adam"
    augment: bool = True  # random crop (pad 4) + horizontal flip
    pad_to: int | None = None  # zero-pad 28×28 images to e.g. 32×32 (CIFAR-style nets, LeNet-5)
    train_subset: int | None = None  # first N training images (quick runs)
    test_subset: int | None = None
    label_smoothing: float = 0.0
    extra: dict = field(default_factory=dict)  # free-form notes recorded in results.json


def _prepare(images, labels, mean: list[float], std: list[float], pad_to: int | None, device: str):
    """uint8 (N, C, H, W) -> normalised float32 on ``device``, zero (background) padded to ``pad_to``."""
    import torch
    import torch.nn.functional as F

    x = images.to(device=device, dtype=torch.float32).div_(255)
    if pad_to and pad_to > x.shape[-1]:
        p = pad_to - x.shape[-1]
        x = F.pad(x, (p // 2, p - p // 2, p // 2, p - p // 2))
    m = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=device).view(1, -1, 1, 1)
    return (x - m) / s, labels.to(device)


def _augment(x, pad: int = 4):
    """Per-image random crop of the ``pad``-padded batch and random horizontal flip. (N, C, H, W) -> same."""
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))  # pads with 0 = the normalised mean, as torchvision's crop on tensors
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (N, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (N, 1, W)
    idx = torch.arange(n, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[idx, rows, cols].permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    flip = torch.rand(n, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


def train_curves(
    model, data, settings: TrainSettings, device: str = "cpu", seed: int = 0, label: str = ""
) -> dict:
    """Train ``model`` on ``data`` (a :class:`cnnzoo.data.ImageDataset`) and record, per epoch, the training
    loss/error (averaged over the epoch's batches, in training mode, as He et al. plot it) and the test
    loss/error. The whole dataset sits on ``device`` as tensors: no DataLoader workers to start.

    Returns ``{"train_loss": [...], "train_error": [...], "test_loss": [...], "test_error": [...],
    "epoch_seconds": [...], "params": int}``; errors are fractions in 0..1."""
    import torch
    import torch.nn.functional as F

    seed_everything(seed)
    cuda = device.startswith("cuda")
    xtr, ytr = data.train_images, data.train_labels
    xte, yte = data.test_images, data.test_labels
    if settings.train_subset:
        xtr, ytr = xtr[: settings.train_subset], ytr[: settings.train_subset]
    if settings.test_subset:
        xte, yte = xte[: settings.test_subset], yte[: settings.test_subset]
    xtr, ytr = _prepare(xtr, ytr, data.mean, data.std, settings.pad_to, device)
    xte, yte = _prepare(xte, yte, data.mean, data.std, settings.pad_to, device)

    model = model.to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest conv algorithms
    if settings.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                              weight_decay=settings.weight_decay)  # fmt: skip
    steps_per_epoch = math.ceil(len(xtr) / settings.batch_size)
    total = settings.epochs * steps_per_epoch
    milestones = [int(f * total) for f in settings.milestones]
    warm = int(settings.warmup_epochs * steps_per_epoch)

    def lr_factor(step: int) -> float:
        factor = 0.1 ** sum(step >= m for m in milestones)
        return factor * min(1.0, (step + 1) / warm) if warm else factor

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    hist: dict[str, list] = {
        k: [] for k in ("train_loss", "train_error", "test_loss", "test_error", "epoch_seconds")
    }
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for _ in range(settings.epochs):
        t0 = time.time()
        model.train()
        order = torch.randperm(len(xtr), generator=gen).to(device)
        loss_sum = torch.zeros((), device=device)
        wrong = torch.zeros((), device=device, dtype=torch.long)
        for i in range(steps_per_epoch):
            idx = order[i * settings.batch_size : (i + 1) * settings.batch_size]
            x, y = xtr[idx], ytr[idx]
            if settings.augment:
                x = _augment(x)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with amp:
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=settings.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            # accumulate on the device: no host sync per step
            loss_sum += loss.detach() * len(y)
            wrong += (logits.argmax(1) != y).sum()
        if not torch.isfinite(loss_sum):
            raise CnnzooError(f"training diverged (loss is {loss_sum.item()}); try a smaller learning rate")
        hist["train_loss"].append(loss_sum.item() / len(xtr))
        hist["train_error"].append(wrong.item() / len(xtr))
        test_loss, test_err = evaluate_tensors(model, xte, yte, device)
        hist["test_loss"].append(test_loss)
        hist["test_error"].append(test_err)
        hist["epoch_seconds"].append(time.time() - t0)
        if label:  # one progress line per epoch (long runs; workers print to the same console)
            print(f"  {label} seed {seed} epoch {len(hist['test_error'])}/{settings.epochs}: train error "
                  f"{100 * hist['train_error'][-1]:.2f}%, test error {100 * test_err:.2f}% "
                  f"({hist['epoch_seconds'][-1]:.1f} s)", flush=True)  # fmt: skip
    hist["params"] = sum(p.numel() for p in model.parameters())
    return hist


def evaluate_tensors(model, x, y, device: str, batch_size: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy and error rate of ``model`` on prepared tensors (eval mode, no gradients)."""
    import torch
    import torch.nn.functional as F

    model.eval()
    cuda = device.startswith("cuda")
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    loss, wrong = 0.0, 0
    with torch.no_grad(), amp:
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size], y[i : i + batch_size]
            if cuda:
                xb = xb.contiguous(memory_format=torch.channels_last)
            logits = model(xb).float()
            loss += F.cross_entropy(logits, yb, reduction="sum").item()
            wrong += (logits.argmax(1) != yb).sum().item()
    return loss / len(x), wrong / len(x)


DATA_DIR_ENV = "CNNZOO_DATA_DIR"


@functools.lru_cache(maxsize=2)
def load_data(name: str = "fashion-mnist"):
    """The dataset through :func:`cnnzoo.data.load_dataset`, never downloading (experiments run offline);
    cached, so the variants of one experiment share it. ``$CNNZOO_DATA_DIR`` (set by ``--data-dir``; an
    environment variable so that spawned workers see it too) is the folder searched first."""
    from ..data import load_dataset

    return load_dataset(name, data_dir=os.environ.get(DATA_DIR_ENV) or None, download=False)


def train_job(builder: Callable, kwargs: dict, settings: TrainSettings, device: str, seed: int,
              dataset: str = "fashion-mnist") -> dict:  # fmt: skip
    """One training run as a picklable job for :func:`run_jobs`: build with ``builder(**kwargs)`` (a
    module-level function, e.g. :func:`cnnzoo.create_model`), train, return the curves."""
    seed_everything(seed)  # the same seed gives the same initial weights
    model = builder(**kwargs)
    # progress lines name the net and what varies, e.g. "lenet5_modern activation=relu,pool=max"
    varies = ",".join(
        f"{k}={v}" for k, v in kwargs.items() if k not in ("name", "in_channels", "num_classes")
    )
    label = f"{getattr(model, 'model_name', '') or builder.__name__}{' ' + varies if varies else ''}"
    return train_curves(model, load_data(dataset), settings, device=device, seed=seed, label=label)


def train_variants(variants: dict[str, tuple[Callable, dict]], settings: TrainSettings, device: str, seeds: int,
                   dataset: str = "fashion-mnist", last: int = 3) -> dict[str, dict]:  # fmt: skip
    """Train each ``name -> (builder, kwargs)`` with ``seeds`` seeds and return ``name -> aggregate(...)``.

    On a GPU all runs go side by side in worker processes (a small net alone leaves the GPU mostly idle);
    on a CPU they run one after another. The final errors average the ``last`` epochs."""
    load_data(dataset)  # once here, so the workers find the tensors cached
    jobs = [(b, kw, settings, device, seed, dataset) for b, kw in variants.values() for seed in range(seeds)]
    histories = run_jobs(train_job, jobs, parallel=len(jobs) if device.startswith("cuda") else 1)
    last = min(last, settings.epochs)
    return {
        name: aggregate(histories[i * seeds : (i + 1) * seeds], last=last) for i, name in enumerate(variants)
    }


def aggregate(histories: Sequence[dict], last: int = 1) -> dict:
    """Per-epoch mean curves over seeds, and mean ± std of the final errors (mean of the ``last`` epochs)."""
    import numpy as np

    out: dict = {"seeds": len(histories), "params": histories[0]["params"]}
    for key in ("train_loss", "train_error", "test_loss", "test_error"):
        curves = np.array([h[key] for h in histories], dtype=float)  # (seeds, epochs)
        out[f"{key}_curve"] = curves.mean(0).tolist()
        out[f"final_{key}"] = mean_std(curves[:, -last:].mean(1))
    out["seconds_per_epoch"] = float(np.mean([np.mean(h["epoch_seconds"]) for h in histories]))
    out["histories"] = list(histories)
    return out
