"""Turns an image of a handwritten digit into the 8x8 feature vector the model reads.

Training and serving share this module, so a photo or a drawing sent to /score goes through
exactly the steps the training images went through: ink isolated from the background, the
digit cropped to its bounding box, centred in a square, averaged down to 8x8 cells and scaled
to [0, 1].
"""

import io

import numpy as np
from PIL import Image

GRID = 8
FEATURES = GRID * GRID
# Decoding is refused beyond this many pixels (a decompression bomb, or simply not a digit).
MAX_PIXELS = 4096 * 4096
ACCEPTED_FORMATS = ("PNG", "JPEG")
# Pixels with less ink than this share of the darkest stroke count as background when cropping.
INK_THRESHOLD = 0.2


class ImageError(ValueError):
    """The bytes are not an image this app can read, or the image shows no digit."""


def decode_image(data: bytes) -> Image.Image:
    """Decodes PNG or JPEG bytes; anything else is an ImageError."""
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ImageError(
                f"image is {width}x{height} pixels; at most {MAX_PIXELS} pixels are accepted"
            )
        image.load()
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageError(f"not a PNG or JPEG image ({error})") from error
    return image


def ink_from_image(image: Image.Image) -> np.ndarray:
    """Ink intensity in [0, 1] per pixel: dark-on-light and light-on-dark images both work."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels are paper: composite onto white before looking at the ink.
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    gray = np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    border = np.concatenate([gray[0, :], gray[-1, :], gray[:, 0], gray[:, -1]])
    # The border is mostly paper: a light border means dark ink, so invert.
    return 1.0 - gray if border.mean() > 0.5 else gray


def features_from_ink(ink: np.ndarray) -> np.ndarray:
    """Crops the ink to its bounding box, centres it in a square and averages it to 8x8."""
    ink = np.asarray(ink, dtype=np.float64)
    if ink.ndim != 2:
        raise ImageError(f"expected a 2-D image, got shape {ink.shape}")
    peak = ink.max(initial=0.0)
    if peak <= 0.05:
        raise ImageError("the image shows no digit (it is blank)")
    rows = np.flatnonzero((ink >= peak * INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink >= peak * INK_THRESHOLD).any(axis=0))
    cropped = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = cropped.shape
    side = max(height, width)
    square = np.zeros((side, side), dtype=np.float64)
    top, left = (side - height) // 2, (side - width) // 2
    square[top : top + height, left : left + width] = cropped
    # Upsample small crops first so each of the 8x8 cells averages whole pixels.
    if side < GRID * 4:
        factor = -(-GRID * 4 // side)
        square = np.kron(square, np.ones((factor, factor)))
    cells = Image.fromarray(square.astype(np.float32), mode="F").resize(
        (GRID, GRID), Image.Resampling.BOX
    )
    features = np.asarray(cells, dtype=np.float64).reshape(FEATURES)
    top_value = features.max()
    return features / top_value if top_value > 0 else features


def features_from_bytes(data: bytes) -> np.ndarray:
    """PNG or JPEG bytes to the model's 64 features."""
    return features_from_ink(ink_from_image(decode_image(data)))


def features_from_digits_image(image: np.ndarray) -> np.ndarray:
    """One image of scikit-learn's digits data set (8x8, values 0..16) to the model's features."""
    return features_from_ink(np.asarray(image, dtype=np.float64) / 16.0)
