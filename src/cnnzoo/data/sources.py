"""Where each dataset's files come from: names, checksums, mirrors, and the places searched for them.

Search order (first hit wins): the ``data_dir`` argument, the cache (``$CNNZOO_DATA`` or
``~/.cache/cnnzoo/data``), system copies (Debian's ``/usr/share/datasets/...``), then a download into
``data_dir`` (when given) or the cache. The datasets are data tables below.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ChecksumError, DataError

__all__ = [
    "DatasetFacts",
    "DatasetSpec",
    "FileSpec",
    "SPECS",
    "DEFAULT_DATASET",
    "cache_root",
    "dataset_facts",
    "get_spec",
    "mirror_urls",
    "verify_md5",
]

DEFAULT_DATASET = "fashion-mnist"
CACHE_ENV = "CNNZOO_DATA"
MIRROR_ENV = "CNNZOO_MIRROR"  # a base URL that replaces every dataset's mirrors (tests, local mirrors)


@dataclass(frozen=True)
class FileSpec:
    filename: str  # as published, e.g. "train-images-idx3-ubyte.gz"
    md5: str  # MD5 of the published file (torchvision's / the authors')
    raw_md5: str | None = None  # MD5 of the decompressed bytes, where known (survives re-compression)


@dataclass(frozen=True)
class DatasetFacts:
    """What the images of a dataset look like, for everyone who prepares images like them: training
    (may a mirror image be used as augmentation?), ``cnnzoo predict`` and the web app (which size to read a
    user's image at, whether a drawing must be inverted, how much margin a centred drawing gets)."""

    name: str
    native_size: tuple[int, int] | None = None  # (H, W) of the stored images; None: the model's input size
    light_on_dark: bool | None = None  # light strokes on a dark background (MNIST); None: not known
    mirroring: bool = True  # a left-right flip shows the same class (a shoe), not another symbol (a 2)
    ink_margin: float = 1 / 28  # share of the side left blank around the centred object


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: str  # the loader (datasets.LOADERS): "idx" (MNIST family: 4 gzip files), "cifar" (binary tar.gz)
    files: tuple[FileSpec, ...]
    mirrors: tuple[str, ...]
    classes: tuple[str, ...]
    dirnames: tuple[str, ...]  # sub-folders of a data_dir also searched (torchvision's layout)
    facts: DatasetFacts
    system_dirs: tuple[str, ...] = ()
    description: str = ""


# MD5s of Fashion-MNIST's decompressed files (computed from upstream's .gz files, whose own MD5s Xiao et al.
# publish in the dataset's README): Debian re-gzipped its copies, so their .gz MD5s differ from upstream's
# while the decompressed bytes are the same.
FASHION_RAW_MD5 = {
    "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
}


def _idx_files(md5s: tuple[str, str, str, str], raw: dict[str, str] | None = None) -> tuple[FileSpec, ...]:
    names = (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    )
    return tuple(FileSpec(n, m, (raw or {}).get(n)) for n, m in zip(names, md5s, strict=True))


# The MNIST family: mirrors, .gz MD5s and classes exactly as torchvision's MNIST / FashionMNIST / KMNIST
# classes (torchvision/datasets/mnist.py) declare them. They are copied, not imported, because importing
# torchvision costs seconds and a warm load must not; tests/test_data.py checks they stay equal.
MNIST_CLASSES = (
    "0 - zero",
    "1 - one",
    "2 - two",
    "3 - three",
    "4 - four",
    "5 - five",
    "6 - six",
    "7 - seven",
    "8 - eight",
    "9 - nine",
)
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
KMNIST_CLASSES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# The *binary* archives (fixed-size records, no pickle). MD5s: the download table of
# https://www.cs.toronto.edu/~kriz/cifar.html ("CIFAR-10 binary version (suitable for C programs)"),
# also used by tensorflow-datasets' cifar builders and e.g. dataeval's CIFAR10 (_resources md5).
CIFAR_HOST = "https://www.cs.toronto.edu/~kriz/"  # torchvision's CIFAR10.url host
CIFAR10_BINARY = FileSpec("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530")
CIFAR100_BINARY = FileSpec("cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8")

# The datasets: adding one is one entry here (plus a loader module in datasets.LOADERS for a new format).
_SPECS = {
    s.name: s
    for s in (
        DatasetSpec(
            name="mnist",
            kind="idx",
            files=_idx_files(
                (
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "d53e105ee54ea40749a09fcbcd1e9432",
                    "9fb629c4189551a2d022fa330f9573f3",
                    "ec29112dd5afa0611ce80d1b7f02629c",
                )
            ),
            mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
            classes=MNIST_CLASSES,
            dirnames=("MNIST", "mnist"),
            # LeCun et al. centre each digit's 20×20 box in the 28×28 field: a 4-pixel margin
            facts=DatasetFacts("mnist", (28, 28), light_on_dark=True, mirroring=False, ink_margin=4 / 28),
            description="handwritten digits, 28x28 grey (LeCun et al. 1998)",
        ),
        DatasetSpec(
            name="fashion-mnist",
            kind="idx",
            files=_idx_files(
                (
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "25c81989df183df01b3e8a0aad5dffbe",
                    "bef4ecab320f06d8554ea6380940ec79",
                    "bb300cfdad3c16e7a12a480ee83cd310",
                ),
                FASHION_RAW_MD5,
            ),
            mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
            classes=FASHION_CLASSES,
            dirnames=("FashionMNIST", "fashion-mnist"),
            # the items fill the frame; a mirrored shoe is still a shoe
            facts=DatasetFacts(
                "fashion-mnist", (28, 28), light_on_dark=True, mirroring=True, ink_margin=1 / 28
            ),
            system_dirs=("/usr/share/datasets/fashion-mnist",),
            description="Zalando clothing, 28x28 grey (Xiao et al. 2017)",
        ),
        DatasetSpec(
            name="kmnist",
            kind="idx",
            files=_idx_files(
                (
                    "bdb82020997e1d708af4cf47b453dcf7",
                    "e144d726b3acfaa3e44228e80efcd344",
                    "5c965bf0a639b31b8f53240b1b52f4d7",
                    "7320c461ea6c1c855c0b718fb2a4b134",
                )
            ),
            mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
            classes=KMNIST_CLASSES,
            dirnames=("KMNIST", "kmnist"),
            # a mirrored character is another (or no) character; about a 2-pixel margin
            facts=DatasetFacts("kmnist", (28, 28), light_on_dark=True, mirroring=False, ink_margin=2 / 28),
            description="Kuzushiji (cursive Japanese), 28x28 grey (Clanuwat et al. 2018)",
        ),
        DatasetSpec(
            name="cifar10",
            kind="cifar",
            files=(CIFAR10_BINARY,),
            mirrors=(CIFAR_HOST,),
            classes=CIFAR10_CLASSES,
            dirnames=("cifar-10-batches-bin", "cifar10", "CIFAR10"),
            facts=DatasetFacts("cifar10", (32, 32), light_on_dark=False, mirroring=True),
            description="32x32 colour, 10 classes (Krizhevsky 2009)",
        ),
        DatasetSpec(
            name="cifar100",
            kind="cifar",
            files=(CIFAR100_BINARY,),
            mirrors=(CIFAR_HOST,),
            classes=(),  # fine_label_names.txt
            dirnames=("cifar-100-binary", "cifar100", "CIFAR100"),
            facts=DatasetFacts("cifar100", (32, 32), light_on_dark=False, mirroring=True),
            description="32x32 colour, 100 classes (Krizhevsky 2009)",
        ),
    )
}
SPECS = tuple(_SPECS)


def get_spec(name: str) -> DatasetSpec:
    key = name.lower()
    if key in SPECS:
        return _SPECS[key]
    choices = [*SPECS, "imagefolder:PATH"]
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    hint = f" — did you mean {close[0]!r}?" if close else f" (known: {', '.join(choices)})"
    raise DataError(f"unknown dataset {name!r}{hint}")


def dataset_facts(name: str) -> DatasetFacts:
    """The facts of dataset ``name``; for ``imagefolder:PATH``, an unknown name or "" (a fresh model),
    the defaults: images read at the model's input size, polarity unknown, mirroring allowed."""
    spec = _SPECS.get((name or "").lower())
    return spec.facts if spec is not None else DatasetFacts(name or "")


def verify_md5(f: FileSpec, path: Path, file_md5: str, raw_md5: str | None) -> str:
    """Check a file against its published MD5s; raise ChecksumError on a definite mismatch, else say how
    it was verified."""
    if file_md5 == f.md5:
        return "verified"
    if f.raw_md5 and raw_md5 is not None:
        if raw_md5 != f.raw_md5:
            raise ChecksumError(
                f"{path}: checksum mismatch (expected MD5 {f.raw_md5} of the decompressed bytes, got {raw_md5})"
            )
        return "verified (decompressed bytes)"
    if path.name == f.filename:  # the published file itself, byte for byte, yet different
        raise ChecksumError(f"{path}: checksum mismatch (expected MD5 {f.md5}, got {file_md5})")
    return "not verified (no published MD5 for a decompressed copy; structure checked)"


def cache_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cnnzoo" / "data"


def mirror_urls(
    spec: DatasetSpec, filename: str, mirrors: tuple[str, ...] | list[str] | None = None
) -> list[str]:
    """Candidate URLs for ``filename``: ``mirrors`` if given, else ``$CNNZOO_MIRROR``, else the spec's."""
    env = os.environ.get(MIRROR_ENV)
    bases = list(mirrors) if mirrors else ([env] if env else list(spec.mirrors))
    return [b.rstrip("/") + "/" + filename for b in bases]


def candidate_dirs(spec: DatasetSpec, data_dir: str | os.PathLike | None) -> list[tuple[str, Path]]:
    """(label, directory) pairs in search order; download target is the first writable-place one."""
    out: list[tuple[str, Path]] = []
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        out.append(("data-dir", d))
        for sub in spec.dirnames:
            out.append(("data-dir", d / sub))
            out.append(("data-dir", d / sub / "raw"))  # torchvision's root/FashionMNIST/raw
    out.append(("cache", cache_root() / spec.name))
    out.extend(("system", Path(p)) for p in spec.system_dirs)
    return out


def download_dir(spec: DatasetSpec, data_dir: str | os.PathLike | None) -> Path:
    return Path(data_dir).expanduser() if data_dir is not None else cache_root() / spec.name
