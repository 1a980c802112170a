"""The one guarded image decoder: web uploads, ``cnnzoo predict`` and image folders all read images here.

Images come from users and the network, so every file is checked from its header, before a pixel is
decoded:

- **Formats:** PNG, JPEG, BMP, GIF and WebP only (:data:`IMAGE_FORMATS`). Pillow can parse dozens more
  (TIFF, JPEG 2000, PCX, SGI, ...); each is attack surface that a classifier does not need.
- **Pixels:** at most :data:`MAX_PIXELS` = 4096×4096 ≈ 16.7 M. A decompression bomb declares a huge size in
  a tiny file; a server decoding several uploads at once must bound each one. 16.7 M is far above any
  classification input (the zoo's largest is 227×227) and keeps one decoded RGBA image under 70 MB.
- **Shape:** the longer side at most :data:`MAX_SIDE` px, and a long image (over :data:`STRIP_SIDE` px) at
  most :data:`MAX_ASPECT` times as long as it is wide. A 1×16,777,216 PNG is under the pixel cap but is no
  picture, and squaring it (to centre a drawing) asked for 18 M × 18 M pixels; a small strip (3000×2) is
  harmless and still reads.

Every refusal is a :class:`~cnnzoo.errors.DataError` naming the file.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

from .errors import DataError
from .files import regular_file

__all__ = [
    "IMAGE_FORMATS",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "MAX_SIDE",
    "MAX_ASPECT",
    "open_image",
    "decode_image",
    "read_image_file",
    "to_channels",
]

IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MAX_PIXELS = 4096 * 4096
MAX_SIDE = 16384
STRIP_SIDE = 4096  # below this, any aspect ratio is cheap
MAX_ASPECT = 64
MAX_FILE_BYTES = 128 << 20  # an uncompressed 16.7 M-pixel RGBA BMP is 67 MB


def _name(source, name: str | None) -> str:
    if name is not None:
        return name
    return str(source) if isinstance(source, str | os.PathLike) else "image"


def check_size(width: int, height: int, name: str, max_pixels: int | None = None) -> None:
    """Refuse a declared size over the pixel cap, the side cap or the aspect-ratio bound."""
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    long, short = max(width, height), max(1, min(width, height))
    if width * height > max_pixels:
        raise DataError(
            f"{name}: image is {width}×{height} = {width * height:,} pixels, more than the limit of "
            f"{max_pixels:,} (a decompression bomb?)"
        )
    if long > MAX_SIDE:
        raise DataError(
            f"{name}: image is {width}×{height}: a side over {MAX_SIDE:,} px is more than the limit"
        )
    if long > STRIP_SIDE and long > MAX_ASPECT * short:
        raise DataError(
            f"{name}: image is {width}×{height}: longer than {MAX_ASPECT}× its width is more than the limit "
            f"for images over {STRIP_SIDE} px"
        )


def open_image(source: str | os.PathLike | bytes, name: str | None = None, max_pixels: int | None = None):
    """Open ``source`` (a path or the file's bytes) with Pillow, reading the header only, and check its
    format and size. Returns the lazy PIL image (use it in a ``with`` block; pixels decode on ``load()``)."""
    from PIL import Image

    name = _name(source, name)
    if isinstance(source, bytes | bytearray | memoryview):
        if not len(source):
            raise DataError(f"{name}: the file is empty: not an image")
        fp = io.BytesIO(source)
    else:
        fp = _regular_file(Path(source), name)
    try:
        with warnings.catch_warnings():
            # Pillow warns (not raises) between 1× and 2× its own limit; make that an error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(fp, formats=IMAGE_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{name}: image too large (a decompression bomb?): {e}") from None
    except Image.UnidentifiedImageError:
        raise DataError(
            f"{name}: unreadable image: not an image cnnzoo can read (formats: {', '.join(IMAGE_FORMATS)})"
        ) from None
    except OSError as e:
        raise DataError(f"{name}: cannot read ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001 — Pillow's header parsers raise SyntaxError, ValueError, ...
        raise DataError(f"{name}: corrupt or truncated image ({type(e).__name__}: {e})") from None
    try:
        check_size(img.width, img.height, name, max_pixels)
    except DataError:
        img.close()
        raise
    return img


def _regular_file(path: Path, name: str) -> Path:
    """``path`` if it is a regular file of at most MAX_FILE_BYTES: never a FIFO (it would hang), a device
    (``/dev/zero`` never ends) or a directory."""
    regular_file(path, name, DataError, "an image", MAX_FILE_BYTES)
    return path


def _read(path: Path, name: str) -> bytes:
    _regular_file(path, name)
    try:
        with open(path, "rb") as f:
            return f.read(MAX_FILE_BYTES + 1)[:MAX_FILE_BYTES]  # the file may grow after the check
    except OSError as e:
        raise DataError(f"{name}: cannot read ({e.strerror or e})") from None


def read_image_file(path: str | os.PathLike, name: str | None = None) -> bytes:
    """The bytes of the image file ``path``: a regular file of at most MAX_FILE_BYTES (for decoders that
    take bytes, e.g. torchvision.io's, after :func:`open_image` has checked the header)."""
    return _read(Path(path), _name(path, name))


def decode_image(
    source: str | os.PathLike | bytes,
    name: str | None = None,
    max_pixels: int | None = None,
    draft: tuple[str, tuple[int, int]] | None = None,
):
    """Open, check and decode ``source`` (a path or bytes): a loaded PIL image, upright (EXIF rotation
    applied). ``draft=(mode, (w, h))`` lets a JPEG decoder downscale by 1/2..1/8 while decoding. A path is
    read whole first (a regular file, at most MAX_FILE_BYTES), so no file stays open behind the image."""
    from PIL import Image, ImageOps

    name = _name(source, name)
    if not isinstance(source, bytes | bytearray | memoryview):
        source = _read(Path(source), name)
    img = open_image(source, name, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if draft is not None:
                img.draft(*draft)
            img.load()
            ImageOps.exif_transpose(img, in_place=True)  # phone photos store their rotation in EXIF
    except MemoryError:
        img.close()
        raise DataError(f"{name}: image too large to decode") from None
    except Exception as e:  # noqa: BLE001 — corrupt data shows up only when decoding, as any of several types
        img.close()
        raise DataError(f"{name}: corrupt or truncated image ({type(e).__name__}: {e})") from None
    return img


def to_channels(img, channels: int):
    """Grey ('L') for 1 channel, 'RGB' for 3. Transparency is flattened onto white: a canvas drawing is
    black strokes on transparent, and transparent must read as background, not as black."""
    from PIL import Image

    if channels not in (1, 3):
        raise DataError(f"cannot make a {channels}-channel image (1 = grayscale, 3 = RGB)")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("L" if channels == 1 else "RGB")
