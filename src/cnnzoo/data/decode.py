"""One image file -> a uint8 (C, H, W) tensor, cropped for training or evaluation: what a streaming worker does.

The header is checked by the one guarded decoder (:func:`cnnzoo.images.open_image`: the format allow-list,
the pixel cap, the aspect bound) before a pixel is decoded. JPEG and PNG pixels are then decoded by
torchvision.io (libjpeg-turbo / libpng, straight into a tensor: no PIL image, no numpy copy); CMYK JPEGs
become RGB there and 16-bit PNGs are scaled to 8 bits. Anything torchvision cannot decode (BMP, GIF, WebP,
or a file it refuses) goes through :func:`cnnzoo.images.decode_image` (Pillow), which also decides what is
corrupt: every failure is a :class:`~cnnzoo.errors.DataError` naming the file.

The crops: training takes a random-resized crop (area ``TRAIN_SCALE`` of the image, aspect 3/4..4/3) and a
random mirror, drawn from a ``random.Random`` seeded by (seed, epoch, image index), so an image's crop does
not depend on which worker or rank decodes it, and a resumed run redraws the same crops. Evaluation resizes
the image so that the target covers ``EVAL_FRACTION`` of it and takes the centre (ResNet's 224 of 256).
"""

from __future__ import annotations

import math
import random
import warnings

import numpy as np
import torch

from ..images import decode_image, open_image, read_image_file, to_channels

__all__ = [
    "decode_file",
    "train_crop",
    "eval_crop",
    "crop_rng",
    "header",
    "TRAIN_SCALE",
    "EVAL_FRACTION",
]

# Inception's random-resized crop draws 8%-100% of the area; low-resolution ImageNet recipes (fast.ai's
# progressive resizing, the fast-ImageNet DAWNBench entries) keep a larger minimum at 128-160 px, where an
# 8% crop is a handful of source pixels blown up.
TRAIN_SCALE = (0.25, 1.0)
RATIO = (3 / 4, 4 / 3)
EVAL_FRACTION = 0.875  # 224 / 256


def header(path: str) -> tuple[str, tuple[int, int]]:
    """The PIL mode (``L``, ``RGB``, ``CMYK``, ``I;16``...) and (H, W) the header declares, read without
    decoding (the size before EXIF rotation)."""
    with open_image(path) as img:
        return img.mode, (img.height, img.width)


def decode_file(path: str, channels: int) -> torch.Tensor:
    """The image at ``path`` as uint8 (channels, H, W), upright (EXIF rotation applied)."""
    from torchvision.io import ImageReadMode, decode_jpeg, decode_png

    data = read_image_file(path)
    with open_image(data, path) as img:  # the one allow-list and pixel cap, from the header
        fmt = img.format
    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    buf = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    try:
        with warnings.catch_warnings():
            # torchvision 0.29 points to TorchCodec for images too; its decoders still are libjpeg-turbo/libpng
            warnings.simplefilter("ignore", DeprecationWarning)
            if fmt == "JPEG":
                return decode_jpeg(buf, mode=mode, apply_exif_orientation=True)
            if fmt == "PNG":
                t = decode_png(buf, mode=mode, apply_exif_orientation=True)
                return t if t.dtype == torch.uint8 else (t.to(torch.int32) // 257).to(torch.uint8)  # 16-bit
    except RuntimeError:
        pass  # Pillow decodes it, or names what is wrong with it
    with decode_image(data, path) as img:
        arr = np.asarray(to_channels(img, channels), dtype=np.uint8)
    return torch.from_numpy(arr[None] if channels == 1 else arr.transpose(2, 0, 1).copy())


def crop_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The random stream of one image in one epoch (independent of workers, ranks and batch order)."""
    return random.Random((seed * 1_000_003 + epoch) * 1_000_000_007 + index)


def train_crop(
    img: torch.Tensor, size: tuple[int, int], rng: random.Random, hflip: bool, scale=TRAIN_SCALE
) -> torch.Tensor:
    """A random-resized crop of ``img`` (uint8 C×h×w) to ``size`` = (H, W), mirrored half the time."""
    import torchvision.transforms.v2.functional as TF

    h, w = img.shape[-2:]
    area = h * w
    for _ in range(10):  # torchvision's RandomResizedCrop.get_params, on our own random stream
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(RATIO[0]), math.log(RATIO[1])))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            top, left = rng.randint(0, h - ch), rng.randint(0, w - cw)
            break
    else:  # a very long image: the central crop at the nearest allowed aspect
        ch, cw = min(h, round(w / RATIO[0])), min(w, round(h * RATIO[1]))
        top, left = (h - ch) // 2, (w - cw) // 2
    out = TF.resized_crop(img, top, left, ch, cw, list(size), antialias=True)
    return out.flip(-1) if hflip and rng.random() < 0.5 else out


def eval_crop(img: torch.Tensor, size: tuple[int, int], fraction: float = EVAL_FRACTION) -> torch.Tensor:
    """Resize ``img`` so that ``size`` covers ``fraction`` of it (both sides), then take the centre."""
    import torchvision.transforms.v2.functional as TF

    h, w = img.shape[-2:]
    s = max(size[0] / h, size[1] / w) / fraction
    rh, rw = max(size[0], round(h * s)), max(size[1], round(w * s))
    if (rh, rw) != (h, w):
        img = TF.resize(img, [rh, rw], antialias=True)
    return TF.center_crop(img, list(size))
