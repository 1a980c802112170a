"""What every experiment leaves behind: ``report.md`` (Markdown, built line by line) and ``results.json``.

Every experiment's ``run`` starts with :func:`begin` (start time, output folder, device) and ends with
:func:`finish` (results.json with the settings, hardware and wall time, then report.md with the same).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from .table import ExperimentInfo, get_experiment

__all__ = ["Report", "pct", "begin", "finish", "hardware_info"]


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
        atomic_write(path, ("\n".join(self.lines).rstrip() + "\n").encode("utf-8"), fsync=False)
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
    (resolved by :func:`cnnzoo.device.resolve_device`, as ``cnnzoo train`` does)."""
    from ..device import resolve_device

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return time.time(), out, str(resolve_device(device))


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
    text = json.dumps(doc, indent=2, default=_json_default) + "\n"
    atomic_write(Path(out_dir) / "results.json", text.encode(), fsync=False)
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
