import gzip
import io

import pytest
from PIL import Image

from teams_bridge.media_util import (
    SNIFF_BYTES,
    choose_mimetype,
    is_inline_image,
    sniff_mimetype,
)

SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


def _image(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        SVG,
        b'<?xml version="1.0"?>\n' + SVG,
        b"<!-- a comment -->\n" + SVG,
        b"   \n" + SVG,
        b"\xef\xbb\xbf" + SVG,
        b"<!--" + b"x" * SNIFF_BYTES + b"-->" + SVG,  # the <svg> is past what is sniffed
        gzip.compress(SVG, mtime=0),  # .svgz (a fixed header: the same test id each time)
    ],
)
@pytest.mark.parametrize("declared", ["image/png", "image/svg+xml", None])
def test_an_svg_is_never_an_inline_image_whatever_it_is_declared_as(data, declared):
    mimetype = choose_mimetype(sniff_mimetype(data[:SNIFF_BYTES]), declared)
    assert not is_inline_image(mimetype), mimetype


@pytest.mark.parametrize(
    ("fmt", "mimetype"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")],
)
def test_common_pictures_are_inline_images(fmt, mimetype):
    data = _image(fmt)
    chosen = choose_mimetype(sniff_mimetype(data[:SNIFF_BYTES]), "application/octet-stream")
    assert chosen == mimetype
    assert is_inline_image(chosen)


@pytest.mark.parametrize(
    "mimetype", ["image/svg+xml", "image/tiff", "image/bmp", "image/x-icon", "text/html"]
)
def test_other_types_are_not_inline_images(mimetype):
    assert not is_inline_image(mimetype)


def test_inline_check_ignores_parameters_and_case():
    assert is_inline_image("Image/PNG; charset=binary")


def test_text_declared_as_a_picture_stays_text():
    assert choose_mimetype("text/plain", "image/png") == "text/plain"
    # A generic binary answer still defers to what the sender said.
    assert choose_mimetype("application/octet-stream", "image/avif") == "image/avif"
    assert choose_mimetype("text/plain", "text/csv") == "text/csv"
