"""A PNG decoder from the standard library (zlib) and numpy: enough to read what a browser
wrote (8-bit RGB or RGBA, not interlaced) and count its colours."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import numpy.typing as npt

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {2: 3, 6: 4}  # colour type -> bytes per pixel (RGB, RGBA)


def decode(data: bytes) -> npt.NDArray[np.uint8]:
    """height x width x channels."""
    assert data[:8] == SIGNATURE, "not a PNG"
    pos, idat = 8, []
    width = height = bpp = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in CHANNELS and not interlace, (depth, colour)
            bpp = CHANNELS[colour]
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    rows = raw.reshape(height, 1 + width * bpp)
    out = np.zeros((height, width * bpp), dtype=np.uint8)
    previous = np.zeros(width * bpp, dtype=np.uint8)
    for y in range(height):
        out[y] = _unfilter(int(rows[y, 0]), rows[y, 1:], previous, bpp)
        previous = out[y]
    return out.reshape(height, width, bpp)


def _unfilter(kind: int, line: npt.NDArray[np.uint8], up: npt.NDArray[np.uint8],
              bpp: int) -> npt.NDArray[np.uint8]:
    if kind == 0:
        return line
    if kind == 1:  # Sub: a running sum along each channel
        return (np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint64) % 256
                ).astype(np.uint8).reshape(-1)
    if kind == 2:  # Up
        return (line + up).astype(np.uint8)
    out = bytearray(len(line))
    for i, x in enumerate(line.tolist()):
        a = out[i - bpp] if i >= bpp else 0
        b = int(up[i])
        if kind == 3:  # Average
            out[i] = (x + (a + b) // 2) & 0xFF
            continue
        c = int(up[i - bpp]) if i >= bpp else 0  # Paeth
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        out[i] = (x + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    return np.frombuffer(bytes(out), dtype=np.uint8)


def colours(image: npt.NDArray[np.uint8]) -> dict[tuple[int, int, int], int]:
    """RGB -> pixel count."""
    rgb = image[:, :, :3].reshape(-1, 3)
    keys = (rgb[:, 0].astype(np.int64) << 16) | (rgb[:, 1].astype(np.int64) << 8) | rgb[:, 2]
    values, counts = np.unique(keys, return_counts=True)
    return {(v >> 16 & 255, v >> 8 & 255, v & 255): int(n)
            for v, n in zip(values.tolist(), counts.tolist(), strict=True)}
