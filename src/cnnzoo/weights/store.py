"""The local weights store: one safetensors file and one JSON card per (model, version), offline-first.

Layout: ``$CNNZOO_WEIGHTS`` (default ``~/.cache/cnnzoo/weights``) / ``MODEL`` / ``imagenet-v2.safetensors``
and ``imagenet-v2.json``. The card is written last: a version is stored when its card is there.

Where weights come from, in order: the store; torch.hub's own cache (``$TORCH_HOME/hub/checkpoints``, a
file torchvision downloaded before, hash-checked); a download from the publisher's URL (or from
``$CNNZOO_WEIGHTS_MIRROR`` + the same file name). ``CNNZOO_OFFLINE=1`` or ``offline=True`` removes the last
step: anything missing is then a one-line error naming the ``cnnzoo weights import`` command to run.
Every file is hash-checked, loaded without running code, checked against the zoo model and converted to
safetensors before it is stored; a failure at any step leaves nothing behind.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..atomic import atomic_write
from ..card import ModelCard
from ..errors import CheckpointError, ChecksumError, CnnzooError
from ..files import regular_file
from .catalogue import PUBLISHER, USER, Preprocessing, WeightsEntry, entries, lookup, split_spec, user_entry
from .files import (
    DEFAULT_TIMEOUT,
    Progress,
    check_fits,
    download,
    load_state_dict,
    max_file_bytes,
    sha256_file,
)

__all__ = [
    "WeightsCard",
    "store_root",
    "is_offline",
    "fetch",
    "import_file",
    "path",
    "load_card",
    "remove",
    "list_stored",
    "resolve",
]

STORE_ENV, OFFLINE_ENV, MIRROR_ENV = "CNNZOO_WEIGHTS", "CNNZOO_OFFLINE", "CNNZOO_WEIGHTS_MIRROR"
CARD_FORMAT = 1


@dataclass(frozen=True)
class WeightsCard:
    """Where a stored copy came from and what it expects."""

    model: str
    version: str  # "imagenet:v2"
    enum: str  # "ResNet50_Weights.IMAGENET1K_V2"
    url: str  # the publisher's URL
    file: str  # the publisher's file name
    sha256: str  # of the file that was downloaded or imported (before conversion)
    verified: bool  # its sha256 starts with the publisher's prefix: it is the publisher's file
    source: str  # where this copy was read from: a URL or a local path
    categories: tuple[str, ...] = ()
    preprocessing: Preprocessing | None = None
    metrics: dict = field(default_factory=dict, hash=False)  # the publisher's figures
    publisher: str = PUBLISHER

    def to_dict(self) -> dict:
        return {
            "format_version": CARD_FORMAT,
            "model": self.model,
            "version": self.version,
            "publisher": self.publisher,
            "enum": self.enum,
            "url": self.url,
            "file": self.file,
            "sha256": self.sha256,
            "verified": self.verified,
            "source": self.source,
            "categories": list(self.categories),
            "preprocessing": self.preprocessing.to_dict() if self.preprocessing else None,
            "published_metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, d: dict) -> WeightsCard:
        pre = d.get("preprocessing")
        return cls(
            model=str(d["model"]),
            version=str(d["version"]),
            enum=str(d["enum"]),
            url=str(d["url"]),
            file=str(d["file"]),
            sha256=str(d["sha256"]),
            verified=bool(d["verified"]),
            source=str(d["source"]),
            categories=tuple(str(c) for c in d.get("categories") or ()),
            preprocessing=Preprocessing.from_dict(pre) if pre else None,
            metrics=dict(d.get("published_metrics") or {}),
            publisher=str(d.get("publisher", PUBLISHER)),
        )

    def model_card(self, base: ModelCard) -> ModelCard:
        """``base`` (the card ``create_model`` attached) completed with these weights' classes and
        normalisation, and the crop as the input size. The resize before the crop has no field there yet:
        read it from :attr:`preprocessing`."""
        pre = self.preprocessing
        changes: dict = {"dataset": "imagenet", "classes": self.categories or base.classes}
        if pre:
            changes |= {"mean": pre.mean, "std": pre.std, "input_size": (3, pre.crop_size, pre.crop_size)}
        return base.replace(**changes)


def store_root() -> Path:
    return Path(os.environ.get(STORE_ENV) or Path.home() / ".cache" / "cnnzoo" / "weights").expanduser()


def is_offline(offline: bool | None = None) -> bool:
    if offline is not None:
        return offline
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _files(entry: WeightsEntry) -> tuple[Path, Path]:
    base = store_root() / entry.model / entry.spec.replace(":", "-")
    return base.with_suffix(".safetensors"), base.with_suffix(".json")


def _writable_dir(model: str) -> Path:
    """The model's folder in the store, created and probed before any byte is downloaded."""
    d = store_root() / model
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise CnnzooError(
            f"cannot write to the weights store {d}: {e.strerror or e} (set {STORE_ENV} to a writable folder)"
        ) from None
    return d


def _entry(name: str, version: str, create: bool = False) -> WeightsEntry:
    """The catalogue's entry; else a version of the user's own that is stored (or, ``create``, to store)."""
    entries(name)  # an unknown model is that error, not an unknown version
    try:
        return lookup(name, version)
    except CnnzooError as unknown:
        try:
            mine = user_entry(name, version)
        except CnnzooError:
            raise unknown from None
        if create or _files(mine)[1].is_file():
            return mine
        raise


def _import_command(entry: WeightsEntry) -> str:
    return f"cnnzoo weights import {entry.model}:{entry.version} {entry.file_name}"


def _card(entry: WeightsEntry, sha256: str, source: str) -> WeightsCard:
    verified = sha256.startswith(entry.sha256_prefix) and bool(entry.sha256_prefix)
    return WeightsCard(
        model=entry.model,
        version=entry.spec,
        enum=entry.enum,
        url=entry.url,
        file=entry.file_name,
        sha256=sha256,
        verified=verified,
        source=source,
        categories=entry.categories,
        preprocessing=entry.preprocessing,
        metrics=entry.to_dict()["published_metrics"] if verified else {},  # of the publisher's file only
        publisher=USER if entry.user else PUBLISHER,
    )


def _distinct(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors that share memory and wants them contiguous; copy only those that need it
    seen, out = set(), {}
    for k, v in tensors.items():
        ptr = v.untyped_storage().data_ptr() if v.numel() else None
        shared = ptr is not None and ptr in seen
        seen.add(ptr)
        out[k] = v.detach().clone() if shared else v.detach().contiguous()
    return out


def _store(entry: WeightsEntry, file: Path, sha256: str, source: str) -> tuple[Path, WeightsCard]:
    """Check ``file`` (already hash-checked by the caller) and store it as safetensors + card."""
    from safetensors.torch import save

    tensors = check_fits(entry.model, load_state_dict(file, max_file_bytes(entry.model)), source)
    card = _card(entry, sha256, source)
    card_json = json.dumps(card.to_dict(), indent=2) + "\n"
    weights, card_path = _files(entry)
    _writable_dir(entry.model)
    ours = None
    try:
        atomic_write(
            weights, save(_distinct(tensors), metadata={"cnnzoo_weights": card_json}), CheckpointError
        )
        ours = _identity(weights)
        atomic_write(card_path, card_json.encode(), CheckpointError)  # the commit point
    except BaseException:  # a full disk, Ctrl-C: no half of our pair stays; another importer's stays
        if ours is not None and _identity(weights) == ours:
            weights.unlink(missing_ok=True)
        raise
    return weights, card


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _check_hash(entry: WeightsEntry, sha256: str, source: str) -> None:
    if not sha256.startswith(entry.sha256_prefix):
        raise ChecksumError(
            f"{source}: SHA-256 {sha256[:16]}… does not start with {entry.sha256_prefix}, the hash of "
            f"{PUBLISHER}'s {entry.file_name} (corrupt, truncated or another file); nothing was stored"
        )


def _hub_copy(entry: WeightsEntry) -> Path | None:
    """torchvision's own download of this file, if it is in torch.hub's cache and intact."""
    hub = Path(torch.hub.get_dir()) / "checkpoints" / entry.file_name
    try:
        return hub if hub.is_file() and sha256_file(hub).startswith(entry.sha256_prefix) else None
    except OSError:
        return None


def _url(entry: WeightsEntry) -> str:
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    return f"{mirror.rstrip('/')}/{entry.file_name}" if mirror else entry.url


def fetch(
    spec: str,
    offline: bool | None = None,
    progress: Progress | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    force: bool = False,
) -> tuple[Path, WeightsCard]:
    """Make ``MODEL[:VERSION]`` present in the store; return (safetensors path, card)."""
    name, version = split_spec(spec)
    entry = _entry(name, version)
    weights, card_path = _files(entry)
    if card_path.is_file() and weights.is_file() and not force:
        return weights, load_card(spec)
    hub = _hub_copy(entry)
    if hub is not None:
        return _store(entry, hub, sha256_file(hub), str(hub))
    if is_offline(offline):
        raise CnnzooError(
            f"{entry.model} {entry.spec} is not in the weights store and downloads are off ({OFFLINE_ENV}): "
            f"get {entry.url} elsewhere, then run `{_import_command(entry)}`"
        )
    url = _url(entry)
    with download(url, _writable_dir(entry.model), timeout, progress) as (tmp, sha256):
        _check_hash(entry, sha256, url)
        return _store(entry, tmp, sha256, url)


def import_file(spec: str, file: str | os.PathLike) -> tuple[Path, WeightsCard]:
    """Store a local ``.pth`` state dict or ``.safetensors`` file as ``MODEL[:VERSION]`` (no network).

    The version is the one named, else the one whose published hash the file has, else the default. A
    file carrying the publisher's file name must have the publisher's hash (else it is corrupt or
    truncated); any other file that fits the model is stored with ``verified: false`` in its card."""
    name, version = split_spec(spec)
    file = Path(file)
    regular_file(file, error=CheckpointError, what="a weights file")
    sha256 = sha256_file(file)
    known = entries(name)
    by_hash = next((e for e in known if e.sha256_prefix and sha256.startswith(e.sha256_prefix)), None)
    entry = _entry(name, version, create=True) if version else by_hash or lookup(name)
    if by_hash is not None and by_hash is not entry:
        raise CheckpointError(f"{file}: this is {PUBLISHER}'s {name} {by_hash.spec} file, not {entry.spec}")
    named = next((e for e in known if e.file_name == file.name), None)
    if named is not None:
        _check_hash(named, sha256, str(file))
    return _store(entry, file, sha256, str(file.resolve()))


def _stored_entry(spec: str) -> WeightsEntry:
    name, version = split_spec(spec)
    entry = _entry(name, version)
    weights, card_path = _files(entry)
    if not (card_path.is_file() and weights.is_file()):
        raise CnnzooError(
            f"{entry.model} {entry.spec} is not in the weights store ({store_root()}); run "
            f"`cnnzoo weights fetch {entry.model}:{entry.version}` or `{_import_command(entry)}`"
        )
    return entry


def path(spec: str) -> Path:
    """The stored safetensors file of ``MODEL[:VERSION]``; :class:`CnnzooError` if it is not stored."""
    return _files(_stored_entry(spec))[0]


def load_card(spec: str) -> WeightsCard:
    card_path = _files(_stored_entry(spec))[1]
    try:
        return WeightsCard.from_dict(json.loads(card_path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(
            f"{card_path}: unreadable card ({type(e).__name__}: {e}); run `cnnzoo weights remove` and fetch again"
        ) from None


def remove(spec: str) -> list[Path]:
    """Remove ``MODEL[:VERSION]`` from the store (a version that is not there is not an error)."""
    name, version = split_spec(spec)
    removed = []
    for p in _files(_entry(name, version)):
        if p.exists():
            p.unlink()
            removed.append(p)
    return removed


def list_stored() -> list[WeightsCard]:
    """The cards of every complete (model, version) in the store."""
    from .catalogue import catalogue

    cards = []
    for model, versions in catalogue().items():
        for e in versions:
            weights, card_path = _files(e)
            if card_path.is_file() and weights.is_file():
                cards.append(load_card(f"{e.model}:{e.version}"))
        published = {_files(e)[1].name for e in versions}
        folder = store_root() / model
        for card_path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
            if card_path.name not in published and card_path.with_suffix(".safetensors").is_file():
                cards.append(load_card(f"{model}:{card_path.stem}"))  # a version of the user's own
    return cards


def _is_users(model: str, version: str) -> bool:
    try:
        return _entry(model, version).user
    except CnnzooError:
        return False


def resolve(
    model: str,
    spec: str,
    offline: bool | None = None,
    progress: Progress | None = None,
    num_classes: int | None = None,
) -> tuple[dict[str, torch.Tensor], WeightsCard]:
    """(state dict, card) for ``create_model(model, weights=spec)``: ``spec`` is ``imagenet``,
    ``imagenet:v2`` (fetched unless stored, or offline) or a file path (read, checked, not stored; a
    classifier of ``num_classes`` outputs is accepted: a fine-tuned model's)."""
    mine = not Path(spec).exists() and _is_users(model, spec)  # a version of the user's own, stored
    if spec in ("imagenet", "default") or spec.startswith("imagenet:") or mine:  # else a file
        weights, card = fetch(f"{model}:{spec}", offline=offline, progress=progress)
        from ..files import load_tensors, read_header

        try:
            tensors = load_tensors(read_header(weights))
        except CheckpointError as e:
            raise CheckpointError(
                f"{weights}: corrupt stored weights ({e}); remove and fetch again"[:300]
            ) from None
        return check_fits(model, tensors, str(weights)), card
    file = Path(spec)
    if not file.exists() and not file.is_symlink():
        raise CheckpointError(f"{spec}: no such file (weights are 'imagenet', 'imagenet:VERSION' or a file)")
    regular_file(file, error=CheckpointError, what="a weights file")
    sha256 = sha256_file(file)
    known = entries(model)
    entry = next((e for e in known if e.sha256_prefix and sha256.startswith(e.sha256_prefix)), lookup(model))
    tensors = load_state_dict(file, max_file_bytes(model))
    try:
        tensors = check_fits(model, tensors, spec)
    except CheckpointError:
        if num_classes is None:
            raise
        tensors = check_fits(model, tensors, spec, num_classes)
    return tensors, _card(entry, sha256, str(file.resolve()))
