import io

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def stroke_image(size=(40, 60), box=(10, 10, 30, 50), ink=0, paper=255, mode="L") -> Image.Image:
    """A vertical bar (a rough "1") drawn in `ink` on `paper` inside `box` (left, top, right, bottom)."""
    pixels = np.full((size[1], size[0]), paper, dtype=np.uint8)
    left, top, right, bottom = box
    middle = (left + right) // 2
    pixels[top:bottom, middle - 2 : middle + 2] = ink
    return Image.fromarray(pixels, mode="L").convert(mode)
