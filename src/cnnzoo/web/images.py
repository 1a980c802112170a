"""The small PNG helpers the pages need. Uploads are decoded by the one guarded decoder,
:func:`cnnzoo.images.decode_image` (allowed formats, pixel cap, shape bounds), like every other image."""

from __future__ import annotations

import base64
import io

from PIL import Image


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def png_data_url(img: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(img)).decode("ascii")
