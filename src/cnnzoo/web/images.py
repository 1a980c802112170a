"""Safe image decoding for uploads, and the small PNG helpers the pages need.

Uploads are untrusted: a file may not be an image, or may be a tiny PNG that *declares* 50000×50000
pixels (a decompression bomb: ~2.5 GB once decoded). Pillow reads only the header on ``Image.open``, so
the declared size is checked before any pixel is decoded.
"""

from __future__ import annotations

import base64
import io
import warnings

from PIL import Image, UnidentifiedImageError

from ..errors import CnnzooError

# A 4096×4096 photo is plenty for a 32×32 network; anything bigger is refused before decoding.
MAX_PIXELS = 4096 * 4096


class ImageInputError(CnnzooError, ValueError):
    """An upload that is not a readable image, or one too large to decode."""


def decode_image(data: bytes, filename: str = "upload") -> Image.Image:
    """Bytes -> a decoded RGB/L/RGBA PIL image, refusing non-images and decompression bombs."""
    if not data:
        raise ImageInputError(f"{filename}: the file is empty")
    try:
        with warnings.catch_warnings():
            # Pillow warns (and above 2× its limit raises) on big images; we apply our own, lower limit.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size  # header only: nothing decoded yet
            if w * h > MAX_PIXELS:
                raise ImageInputError(
                    f"{filename}: image declares {w}×{h} pixels, more than the {MAX_PIXELS:,} allowed "
                    "(decompression bomb?)"
                )
            img.load()
    except ImageInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageInputError(
            f"{filename}: image declares more pixels than the {MAX_PIXELS:,} allowed (decompression bomb?)"
        ) from None
    except UnidentifiedImageError:
        raise ImageInputError(f"{filename}: not an image (PNG, JPEG, GIF, BMP, WebP… expected)") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt files
        raise ImageInputError(f"{filename}: corrupt image: {e}") from None
    return img


def to_channels(img: Image.Image, channels: int) -> Image.Image:
    """Grey ('L') for 1-channel networks, 'RGB' for 3; transparency is flattened onto white
    (a canvas exported as PNG is transparent where nothing was drawn)."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img.convert("L" if channels == 1 else "RGB")


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def png_data_url(img: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(img)).decode("ascii")
