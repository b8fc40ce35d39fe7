"""Validation of SDSS cutout JPEGs: the one check that fetching and local reading share.

:func:`check_jpeg` decides whether the bytes of a cutout are a complete, decodable, RGB, non-blank JPEG (of the
expected size); :func:`check_jpeg_file` does so for a file.  The downloader
(:func:`deepmerge_da.data.fetch.fetch_cutouts`) checks every body before storing it, and the offline readers
(:mod:`deepmerge_da.data.sdss_cutouts`, :mod:`deepmerge_da.predict.readers`) check every file they read; this module
imports nothing of the network, so reading a local directory does not need it.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# An image is blank when its pixel standard deviation (0..255 scale, all channels) is below
# BLANK_STD, or when at least BLANK_FRACTION of its pixels are within BLANK_TOLERANCE of the
# modal colour.  SkyServer's blank answers (empty sky / outside the footprint) are a single
# colour (std 0); the faintest real cutouts of the local copy have std ~ 8.
BLANK_STD = 2.0
BLANK_FRACTION = 0.98
BLANK_TOLERANCE = 3


@dataclass(frozen=True)
class JpegCheck:
    """Outcome of :func:`check_jpeg`: ``ok``, the ``reason`` when not, the decoded RGB image when asked."""

    ok: bool
    reason: str | None = None
    image: Image.Image | None = None


def check_jpeg(data: bytes, expected_size: tuple[int, int] | None = None, *, keep_image: bool = False,
               blank_std: float = BLANK_STD, blank_fraction: float = BLANK_FRACTION) -> JpegCheck:
    """Validate the bytes of a cutout; the one check used by fetching and by local loading.

    Reasons, in the order tested: ``"empty body"``; ``"not a jpeg"`` (no FFD8 start of image,
    e.g. an HTML error page, or Pillow finds another format); ``"truncated jpeg"`` (no FFD9 end
    of image, or the decoder runs out of data); ``"corrupt jpeg: ..."`` (``verify()`` or the full
    decode fails otherwise); ``"not an RGB jpeg (mode L)"``; ``"wrong size WxH (expected WxH)"``;
    ``"blank image"`` (see :data:`BLANK_STD`).  With ``keep_image`` the decoded RGB
    :class:`PIL.Image.Image` is returned in ``image``.
    """
    if not data:
        return JpegCheck(False, "empty body")
    if data[:2] != b"\xff\xd8":
        return JpegCheck(False, "not a jpeg")
    if not data.rstrip(b"\x00\r\n\t ").endswith(b"\xff\xd9"):
        return JpegCheck(False, "truncated jpeg")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format != "JPEG":
                return JpegCheck(False, "not a jpeg")
            probe.verify()
        im = Image.open(io.BytesIO(data))
        im.load()  # full decode: raises on truncated / corrupt entropy-coded data
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad data
        msg = str(exc) or type(exc).__name__
        if "truncated" in msg.lower():
            return JpegCheck(False, "truncated jpeg")
        if "cannot identify image file" in msg:
            msg = "unreadable header"
        return JpegCheck(False, f"corrupt jpeg: {msg}")
    if im.mode != "RGB":
        return JpegCheck(False, f"not an RGB jpeg (mode {im.mode})")
    if expected_size is not None and tuple(im.size) != tuple(expected_size):
        w, h = im.size
        return JpegCheck(False, f"wrong size {w}x{h} (expected {expected_size[0]}x{expected_size[1]})")
    if is_blank(im, blank_std=blank_std, blank_fraction=blank_fraction):
        return JpegCheck(False, "blank image")
    return JpegCheck(True, None, im if keep_image else None)


def is_blank(pixels, *, blank_std: float = BLANK_STD, blank_fraction: float = BLANK_FRACTION,
             tolerance: int = BLANK_TOLERANCE) -> bool:
    """True for an image of (almost) one colour: a PIL image, or an (H, W[, C]) uint8 array.

    Blank means: the standard deviation of all pixel values (all channels together) is below
    ``blank_std``, or at least ``blank_fraction`` of the pixels are within ``tolerance`` (in every
    channel) of the modal colour.  Computed from the per-channel histograms (fast); the joint
    fraction is evaluated only when every single channel could pass it.
    """
    if isinstance(pixels, Image.Image):
        im = pixels
        arr = None
    else:
        arr = np.asarray(pixels)
        if arr.dtype != np.uint8:
            raise TypeError(f"is_blank expects uint8 pixels, not {arr.dtype}")
        im = Image.fromarray(arr if arr.ndim == 2 or arr.shape[-1] in (3, 4) else arr[..., 0])
    bands = len(im.getbands())
    hist = np.asarray(im.histogram(), np.float64).reshape(bands, 256)
    n = hist[0].sum()
    if n == 0:
        return True
    v = np.arange(256, dtype=np.float64)
    total = hist.sum(axis=0)
    mean = (total * v).sum() / total.sum()
    var = (total * (v - mean) ** 2).sum() / total.sum()
    if var < blank_std ** 2:
        return True
    mode = hist.argmax(axis=1)
    per_channel = [hist[c, max(0, m - tolerance):m + tolerance + 1].sum() / n for c, m in enumerate(mode)]
    if min(per_channel) < blank_fraction:
        return False
    a = (np.asarray(im) if arr is None else arr).reshape(int(n), -1).astype(np.int16)
    close = np.all(np.abs(a - mode.astype(np.int16)) <= tolerance, axis=1)
    return float(close.mean()) >= blank_fraction


def check_jpeg_file(path: str | os.PathLike, expected_size: tuple[int, int] | None = None, *,
                    keep_image: bool = False) -> JpegCheck:
    """:func:`check_jpeg` on a file; ``"missing file"`` / ``"unreadable file: ..."`` when it cannot be read."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return JpegCheck(False, "missing file")
    except OSError as exc:
        return JpegCheck(False, f"unreadable file: {exc}")
    return check_jpeg(data, expected_size, keep_image=keep_image)
