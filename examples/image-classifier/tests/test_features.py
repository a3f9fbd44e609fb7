import numpy as np
import pytest
from PIL import Image

from classifier.features import (
    FEATURES,
    ImageError,
    decode_image,
    features_from_bytes,
    features_from_digits_image,
    features_from_ink,
)
from helpers import encode, stroke_image


def test_png_and_jpeg_give_the_same_features():
    image = stroke_image()
    png = features_from_bytes(encode(image, "PNG"))
    jpeg = features_from_bytes(encode(image, "JPEG"))
    assert png.shape == (FEATURES,)
    assert np.abs(png - jpeg).max() < 0.1


def test_dark_ink_on_paper_and_light_ink_on_black_agree():
    dark_on_light = features_from_bytes(encode(stroke_image(ink=0, paper=255)))
    light_on_dark = features_from_bytes(encode(stroke_image(ink=255, paper=0)))
    np.testing.assert_allclose(dark_on_light, light_on_dark)


def test_position_and_scale_of_the_digit_do_not_matter():
    small = features_from_bytes(encode(stroke_image(size=(40, 60), box=(2, 4, 12, 24))))
    large = features_from_bytes(encode(stroke_image(size=(300, 300), box=(150, 40, 250, 240))))
    assert np.abs(small - large).max() < 0.15


def test_transparent_png_is_drawn_on_white():
    pixels = np.zeros((50, 50, 4), dtype=np.uint8)  # fully transparent
    pixels[10:40, 23:27] = (0, 0, 0, 255)  # opaque black bar
    rgba = Image.fromarray(pixels, mode="RGBA")
    features = features_from_bytes(encode(rgba))
    expected = features_from_bytes(encode(stroke_image(size=(50, 50), box=(15, 10, 35, 40))))
    np.testing.assert_allclose(features, expected, atol=1e-9)


def test_colour_images_are_read_as_grey():
    features = features_from_bytes(encode(stroke_image(mode="RGB")))
    np.testing.assert_allclose(features, features_from_bytes(encode(stroke_image())))


def test_features_are_scaled_to_unit_peak():
    features = features_from_bytes(encode(stroke_image(ink=100)))
    assert features.max() == pytest.approx(1.0)
    assert features.min() >= 0.0


def test_a_digits_image_keeps_its_shape():
    image = np.zeros((8, 8))
    image[1:7, 3:5] = 16
    features = features_from_digits_image(image).reshape(8, 8)
    # The bar spans all rows once cropped, and stays a centred vertical bar.
    assert features[:, 3:5].min() > 0.9
    assert features[:, :2].max() == 0.0 and features[:, 6:].max() == 0.0


def test_blank_image_is_refused():
    with pytest.raises(ImageError, match="blank"):
        features_from_bytes(encode(Image.new("L", (20, 20), 255)))
    with pytest.raises(ImageError, match="blank"):
        features_from_ink(np.zeros((8, 8)))


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image", encode(stroke_image(), "GIF"), encode(stroke_image(), "BMP")],
    ids=["empty", "text", "gif", "bmp"],
)
def test_only_png_and_jpeg_are_decoded(data):
    with pytest.raises(ImageError, match="not a PNG or JPEG"):
        decode_image(data)


def test_truncated_png_is_refused():
    data = encode(stroke_image(size=(200, 200), box=(20, 20, 180, 180)))
    with pytest.raises(ImageError):
        features_from_bytes(data[: len(data) // 2])


def test_huge_images_are_refused_before_decoding():
    data = encode(Image.new("L", (5000, 5000), 255))
    with pytest.raises(ImageError, match="at most"):
        decode_image(data)
