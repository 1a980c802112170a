"""Checkpoints: safetensors weights + JSON metadata, written atomically, loaded without pickle.

A run directory holds::

    model.safetensors   the weights (state_dict), with the metadata also embedded in the header
    checkpoint.json     model name + kwargs, input_size [C,H,W], dataset, classes, mean/std, epoch, metrics
    train_state.pt      optimizer / scheduler / RNG state and the history, for ``--resume``
                        (tensors and plain containers only: read with ``torch.load(weights_only=True)``)

Atomic commit: the three files are first written as ``NAME.pending`` (each flushed and fsync'ed);
``checkpoint.json.pending`` is written last, via a ``.partial`` file and a rename, so its existence means
"the new set is complete". Then the pending files are renamed over the old ones, JSON last. A crash (even
``kill -9`` or a power cut) at any moment leaves either the old checkpoint or a complete pending set, which
the next save, resume or load finishes ("rolls forward"); an incomplete set is discarded.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from torch import nn

from .atomic import write_durable
from .card import ModelCard, attach_card
from .errors import CheckpointError
from .files import SafetensorsHeader, load_tensors, open_regular, read_header, sha256_file
from .fitcheck import check_declared, check_finite, check_input_size

__all__ = [
    "FORMAT_VERSION",
    "CheckpointMeta",
    "save_checkpoint",
    "load_checkpoint",
    "load_meta",
    "load_train_state",
    "check_writable",
    "recover",
    "refuse_pickle",
    "read_safetensors",
]

FORMAT_VERSION = 1
WEIGHTS, META, TRAIN_STATE = "model.safetensors", "checkpoint.json", "train_state.pt"
PENDING, PARTIAL = ".pending", ".partial"
MAX_JSON_BYTES = 64 << 20  # checkpoint.json: 100,000 class names fit many times over
# Pickle-based formats: loading one runs whatever code its author put in it.
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin", ".tar", ".zip")


@dataclass(frozen=True)
class CheckpointMeta(ModelCard):
    """A checkpoint's metadata: the model card (what the model is and expects) plus how far it trained.
    ``checkpoint.json`` is its :meth:`to_dict`, plus the weights' checksum."""

    epoch: int = 0  # epochs completed
    metrics: dict = field(default_factory=dict, hash=False)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "metrics", dict(self.metrics))

    @property
    def card(self) -> ModelCard:
        """The model card alone (what ``load_checkpoint`` attaches to the model)."""
        return ModelCard(**{f.name: getattr(self, f.name) for f in fields(ModelCard)})

    def to_dict(self) -> dict:
        return super().to_dict() | {
            "epoch": self.epoch,
            "metrics": dict(self.metrics),
            "format_version": self.format_version,
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "checkpoint metadata") -> CheckpointMeta:
        """Check a JSON record (checkpoint.json or the safetensors header) and build the meta from it. The
        checks run on the raw JSON, before the dataclass converts its types."""
        if not isinstance(d, dict):
            raise CheckpointError(f"{source}: expected a JSON object, got {type(d).__name__}")
        missing = [k for k in ("model", "model_kwargs", "input_size") if k not in d]
        if missing:
            raise CheckpointError(f"{source}: missing {', '.join(missing)}")
        version = d.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(
                f"{source}: format_version {version!r} is newer than this cnnzoo ({FORMAT_VERSION})"
            )
        known = {f.name for f in fields(cls)}
        record = {k: v for k, v in d.items() if k in known}
        _validate(record, source)
        return cls(**record)


def _validate(d: dict, source: str) -> None:
    """Type- and range-check every field of a metadata record, so a hand-edited or hostile JSON file gives one
    clear error here instead of a crash (or a huge allocation) later."""

    def bad(what: str, value) -> CheckpointError:
        return CheckpointError(f"{source}: {what}, got {value!r}"[:300])

    def is_int(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def is_num(v) -> bool:
        return (is_int(v) or isinstance(v, float)) and v == v and abs(v) != float("inf")

    model, model_kwargs, size = d["model"], d["model_kwargs"], d["input_size"]
    if not isinstance(model, str) or not model:
        raise bad("'model' must be a model name", model)
    if not isinstance(model_kwargs, dict):
        raise bad("'model_kwargs' must be an object", model_kwargs)
    for key in ("num_classes", "in_channels"):
        if key in model_kwargs:
            v = model_kwargs[key]
            if not is_int(v) or not 1 <= v <= 100_000:
                raise bad(f"model_kwargs.{key} must be an integer in 1..100000", v)
    if not (isinstance(size, list) and len(size) == 3 and all(is_int(v) for v in size)):
        raise bad("'input_size' must be [C, H, W] (integers)", size)
    # C up to 4096 (the Inception modules take 192): memory is bounded by check_input_size's activation cap
    if not (1 <= size[0] <= 4096 and 1 <= size[1] <= 8192 and 1 <= size[2] <= 8192):
        raise bad("'input_size' out of range (C in 1..4096, H and W in 1..8192)", size)
    if not isinstance(d.get("dataset", ""), str):
        raise bad("'dataset' must be a string", d["dataset"])
    classes = d.get("classes", [])
    if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise bad("'classes' must be a list of strings", classes)
    for key, default in (("mean", [0.0]), ("std", [1.0])):
        v = d.get(key, default)
        if not (isinstance(v, list) and len(v) in (1, size[0]) and all(is_num(x) for x in v)):
            raise bad(f"'{key}' must be 1 or {size[0]} finite numbers", v)
    if any(x <= 0 for x in d.get("std", [1.0])):
        raise bad("'std' values must be positive", d["std"])
    epoch = d.get("epoch", 0)
    if not is_int(epoch) or epoch < 0:
        raise bad("'epoch' must be a non-negative integer", epoch)
    if not isinstance(d.get("metrics", {}), dict):
        raise bad("'metrics' must be an object", d["metrics"])
    resize = d.get("resize")
    if resize is not None and not (is_int(resize) and 1 <= resize <= 8192):
        raise bad("'resize' must be null or an integer in 1..8192", resize)
    pretrained = d.get("pretrained", {})
    if not (isinstance(pretrained, dict) and all(isinstance(v, (str, bool)) for v in pretrained.values())):
        raise bad("'pretrained' must be an object of strings", pretrained)
    if not isinstance(d.get("source", {}), dict):
        raise bad("'source' must be an object", d["source"])
    if not isinstance(d.get("test_flip", False), bool):
        raise bad("'test_flip' must be true or false", d["test_flip"])


# --- writing ---------------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems do not let a directory be opened; the renames are still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_durable(path: Path, data: bytes) -> None:
    write_durable(path, data, CheckpointError)


def check_writable(run_dir: str | os.PathLike, need_bytes: int = 0) -> Path:
    """Fail before training, not after an hour: create ``run_dir``, write and delete a probe file, and check
    that ``need_bytes`` (about two checkpoints) fit on the disk."""
    import shutil

    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"cannot create output directory {run_dir}: {e.strerror or e}") from None
    probe = run_dir / ".write-probe"
    _write_durable(probe, b"\0" * 4096)
    probe.unlink(missing_ok=True)
    free = shutil.disk_usage(run_dir).free
    if free < need_bytes:
        raise CheckpointError(
            f"not enough space in {run_dir}: {free / 1e6:.1f} MB free, need {need_bytes / 1e6:.1f} MB"
        )
    return run_dir


def _state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    model = getattr(model, "module", model)  # DDP / compiled wrappers
    # clone: safetensors refuses tensors that share storage (tied weights), and the copy is on the CPU anyway
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def save_checkpoint(
    run_dir: str | os.PathLike, model: nn.Module, meta: CheckpointMeta, train_state: dict | None = None
) -> Path:
    """Atomically replace the checkpoint in ``run_dir`` (see the module docstring). Returns ``run_dir``."""
    from safetensors.torch import save

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    recover(run_dir)
    meta_json = json.dumps(meta.to_dict(), indent=2)
    weights = save(_state_tensors(model), metadata={"cnnzoo": meta_json})
    _write_durable(run_dir / (WEIGHTS + PENDING), weights)
    if train_state is not None:
        buf = io.BytesIO()
        torch.save(train_state, buf)
        _write_durable(run_dir / (TRAIN_STATE + PENDING), buf.getvalue())
    record = meta.to_dict() | {"weights_sha256": hashlib.sha256(weights).hexdigest()}
    _write_durable(run_dir / (META + PARTIAL), (json.dumps(record, indent=2) + "\n").encode())
    os.replace(run_dir / (META + PARTIAL), run_dir / (META + PENDING))  # the commit point
    _fsync_dir(run_dir)
    _roll_forward(run_dir)
    if train_state is None:
        (run_dir / TRAIN_STATE).unlink(missing_ok=True)  # a stale state would resume the wrong epoch
    return run_dir


def _roll_forward(run_dir: Path) -> None:
    for name in (WEIGHTS, TRAIN_STATE, META):  # JSON last
        pending = run_dir / (name + PENDING)
        if pending.exists():
            os.replace(pending, run_dir / name)
    _fsync_dir(run_dir)


def recover(run_dir: str | os.PathLike) -> None:
    """Finish a checkpoint commit a crash interrupted, or discard an incomplete one."""
    run_dir = Path(run_dir)
    if (run_dir / (META + PENDING)).exists():
        _roll_forward(run_dir)
        return
    for name in (WEIGHTS, TRAIN_STATE, META):
        for suffix in (PENDING, PARTIAL):
            (run_dir / (name + suffix)).unlink(missing_ok=True)


# --- reading ---------------------------------------------------------------------------------------------


def _committed(run_dir: Path, name: str) -> Path:
    """The file of the newest complete checkpoint: a pending one when its commit is under way (read-only)."""
    pending = run_dir / (name + PENDING)
    if (run_dir / (META + PENDING)).exists() and pending.exists():
        return pending
    return run_dir / name


def refuse_pickle(path: Path) -> None:
    """Raise :class:`CheckpointError` for pickle-based weights (``torch.save``, ``.pkl``): unpickling runs
    arbitrary code, so cnnzoo never opens them. Checked by suffix and, for a file, by its first bytes."""
    if path.is_dir():
        return
    head, size = b"", 0
    if path.is_file():
        try:
            with open(path, "rb") as f:
                head, size = f.read(9), os.fstat(f.fileno()).st_size
        except OSError as e:
            raise CheckpointError(f"{path}: cannot read ({e.strerror})") from None
    # A safetensors file starts with its header's length (u64, little-endian; its first byte may be 0x80)
    # and then the header's "{". Anything else that starts like torch.save's zip ("PK\x03\x04") or a raw
    # pickle (the PROTO opcode 0x80) is a pickle.
    safetensors_like = len(head) == 9 and head[8:] == b"{" and int.from_bytes(head[:8], "little") <= size - 9
    pickle_like = not safetensors_like and (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80")
    if pickle_like or path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{path}: pickle-based weights (torch.save/pickle) are refused because loading them can run "
            "arbitrary code; use a cnnzoo run directory or a .safetensors file "
            "(convert trusted weights with `safetensors.torch.save_file(model.state_dict(), ...)`)"
        )


def _locate(path: str | os.PathLike) -> tuple[Path, Path | None]:
    """(weights file, metadata JSON or None) for a run directory or a .safetensors file."""
    path = Path(path)
    refuse_pickle(path)
    if path.is_dir():
        weights, meta = _committed(path, WEIGHTS), _committed(path, META)
        if not weights.exists():
            raise CheckpointError(f"{path}: no {WEIGHTS} in this directory (is it a cnnzoo run directory?)")
        return weights, meta if meta.exists() else None
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory")
    if path.suffix.lower() != ".safetensors":
        raise CheckpointError(f"{path}: not a .safetensors file or a run directory")
    meta = path.with_name(META)
    return path, meta if meta.exists() else None


def _read_json(path: Path) -> dict:
    try:
        with open_regular(path, CheckpointError, "a JSON file") as f:
            text = f.read(MAX_JSON_BYTES + 1)
        if len(text) > MAX_JSON_BYTES:
            raise CheckpointError(
                f"{path}: more than {MAX_JSON_BYTES >> 20} MiB: not a checkpoint's metadata"
            )
        return json.loads(text.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable or corrupt JSON ({e})") from None
    except RecursionError:
        raise CheckpointError(f"{path}: JSON nested too deeply to be a checkpoint's metadata") from None


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict | None, SafetensorsHeader]:
    """Tensors, the embedded cnnzoo metadata (or None) and the checked header of a safetensors file (a
    regular file; the header is checked against the file's size before the data is read through a memory
    map); any defect -> :class:`CheckpointError`."""
    header = read_header(path)
    return load_tensors(header), _embedded(header), header


def _embedded(header: SafetensorsHeader) -> dict | None:
    """The cnnzoo metadata in a safetensors header (the format's ``__metadata__`` holds strings)."""
    if "cnnzoo" not in header.metadata:
        return None
    try:
        return json.loads(header.metadata["cnnzoo"])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{header.path}: corrupt metadata in the safetensors header ({e})") from None


def load_meta(path: str | os.PathLike) -> CheckpointMeta:
    """The metadata alone (no weights read beyond the header)."""
    weights, meta_path = _locate(path)
    if meta_path is not None:
        return CheckpointMeta.from_dict(_read_json(meta_path), str(meta_path))
    embedded = _embedded(read_header(weights))
    if embedded is None:
        raise CheckpointError(f"{weights}: no checkpoint.json beside it and no cnnzoo metadata in its header")
    return CheckpointMeta.from_dict(embedded, str(weights))


def load_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu", model: nn.Module | None = None
) -> tuple[nn.Module, CheckpointMeta]:
    """Rebuild the model of a run directory or ``.safetensors`` file: ``(model in eval mode, meta)``.

    Nothing big is read before it is checked: the weights file's header first (a regular file, its declared
    sizes against its real size), then the metadata, then the model built on the meta device is compared
    with the declared tensors (names, shapes, dtypes) and run on ``input_size`` (channels, bounded
    activations); only then is the checksum computed and the data read (memory-mapped), and refused if any
    weight is NaN or infinite. ``model``: load into this network built in Python (e.g. the ``nn.Sequential``
    ``cnnzoo.fit`` trained) instead of rebuilding it from the metadata."""
    weights, meta_path = _locate(path)
    header = read_header(weights)
    expected = None
    if meta_path is not None:
        record = _read_json(meta_path)
        meta = CheckpointMeta.from_dict(record, str(meta_path))
        expected = record.get("weights_sha256") if isinstance(record, dict) else None
    else:
        embedded = _embedded(header)
        if embedded is None:
            raise CheckpointError(
                f"{weights}: no checkpoint.json beside it and no cnnzoo metadata in its header"
            )
        meta = CheckpointMeta.from_dict(embedded, str(weights))
    skeleton = copy.deepcopy(model).to("meta") if model is not None else _build(meta, weights, "meta")
    check_declared(skeleton, header, meta.model)
    outputs = check_input_size(skeleton, meta.input_size, meta_path or weights)
    if meta.classes and outputs is not None and outputs != len(meta.classes):
        raise CheckpointError(
            f"{weights}: {len(meta.classes)} class names but the model has {outputs} outputs"
        )
    if expected and expected != sha256_file(weights, CheckpointError):
        raise CheckpointError(
            f"{weights}: does not match {meta_path} (checksum differs; file changed or corrupt)"
        )
    tensors = load_tensors(header)
    check_finite(tensors, weights)
    model = model if model is not None else _build(meta, weights, "cpu")
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise CheckpointError(f"{weights}: weights do not fit model {meta.model!r}: {detail}") from None
    attach_card(model, meta.card)  # what predict/evaluate read to prepare images as training did
    return model.to(device).eval(), meta


def _build(meta: CheckpointMeta, weights: Path, device: str) -> nn.Module:
    """The checkpoint's model on ``device`` ("meta": no memory); every failure names the checkpoint."""
    from .errors import CnnzooError, UnknownModelError
    from .models.source import rebuild_model

    try:
        with torch.device(device):
            return rebuild_model(meta.card)
    except UnknownModelError as e:
        raise CheckpointError(f"{weights}: {e}") from None
    except (TypeError, ValueError, RuntimeError, CnnzooError) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{weights}: cannot rebuild {meta.model!r} with {meta.model_kwargs}: {detail[:200]}"
        ) from None


def load_train_state(run_dir: str | os.PathLike) -> dict:
    """The resume state; read with ``weights_only=True``, so a tampered file cannot run code."""
    path = _committed(Path(run_dir), TRAIN_STATE)
    if not path.exists():
        raise CheckpointError(
            f"{path}: missing; this run cannot be resumed (was it finished without a train state?)"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for forbidden globals, EOFError/RuntimeError for truncation
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path}: unreadable resume state ({type(e).__name__}: {first[:200]})"
        ) from None


def load_weights_into(model: nn.Module, path: str | os.PathLike) -> CheckpointMeta | None:
    """Copy a checkpoint's weights into an already built ``model`` (used by ``--resume``); returns its
    embedded metadata, if any."""
    weights, _ = _locate(path)
    tensors, embedded, _ = read_safetensors(weights)
    try:
        getattr(model, "module", model).load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        detail = " ".join(line.strip() for line in str(e).strip().splitlines()[:3])
        raise CheckpointError(f"{weights}: weights do not fit this model: {detail}") from None
    return CheckpointMeta.from_dict(embedded, str(weights)) if embedded else None
