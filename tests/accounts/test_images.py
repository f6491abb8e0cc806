"""accounts/images.py with real pictures made by Pillow and hostile ones: what is
accepted, the renditions (widths, never upscaled, aspect kept, JPEG without
metadata), and everything refused with ImageRejected, never another exception."""

import hashlib
import io
import random
import struct
import zlib

import pytest
from PIL import Image

from accounts import images
from accounts.sandbox import cdn


def encode(img, fmt, **kw):
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    return out.getvalue()


def photo(width, height, fmt="JPEG", mode="RGB", **kw):
    """A photo-like picture: a gradient plus noise, so the encoder has work to do."""
    rng = random.Random(width * 7919 + height)
    base = Image.linear_gradient("L").resize((width, height))
    noise = Image.frombytes("L", (width, height), rng.randbytes(width * height))
    img = Image.merge("RGB", (base, Image.blend(base, noise, 0.3), noise.point(lambda v: v // 2)))
    return encode(img.convert(mode), fmt, **kw)


def decoded(rendition):
    img = Image.open(io.BytesIO(rendition.content))
    img.load()
    return img


# --- accepted pictures -------------------------------------------------------------------------


def test_a_portrait_photo_becomes_three_widths_smallest_first():
    out = images.image_renditions(photo(1080, 1350))
    assert [(r.width, r.height) for r in out] == [(320, 400), (640, 800), (1080, 1350)]
    for r in out:
        img = decoded(r)
        assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (r.width, r.height))
        assert r.content_type == "image/jpeg"
        assert r.sha256 == hashlib.sha256(r.content).hexdigest()
    assert len({r.sha256 for r in out}) == 3
    assert r.content not in repr(r).encode()


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1440, 1800), [(320, 400), (640, 800), (1080, 1350)]),  # capped at 1080
        ((1080, 566), [(320, 168), (640, 335), (1080, 566)]),
        ((800, 800), [(320, 320), (640, 640), (800, 800)]),
        ((640, 640), [(320, 320), (640, 640)]),
        ((200, 150), [(200, 150)]),  # never upscaled
        ((1, 1), [(1, 1)]),
    ],
)
def test_widths_are_never_upscaled_and_keep_the_aspect(size, expected):
    out = images.image_renditions(photo(*size))
    assert [(r.width, r.height) for r in out] == expected


def test_the_same_picture_gives_the_same_bytes():
    data = cdn.jpeg("18000000000000001_n.jpg", 1080, 1080)
    first = [r.sha256 for r in images.image_renditions(data)]
    assert [r.sha256 for r in images.image_renditions(data)] == first


def test_metadata_is_stripped_and_the_exif_orientation_applied():
    img = Image.open(io.BytesIO(photo(600, 400)))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
    exif[0x010F] = "SpyCam Inc."  # Make
    exif[0x8825] = {2: (48.0, 51.0, 24.0)}  # GPS latitude
    data = encode(img, "JPEG", exif=exif.tobytes(), icc_profile=b"\0" * 200, comment=b"secret")
    assert b"SpyCam" in data

    out = images.image_renditions(data)

    assert [(r.width, r.height) for r in out] == [(320, 480), (400, 600)]  # upright
    for r in out:
        assert b"SpyCam" not in r.content and b"secret" not in r.content
        img = decoded(r)
        assert not img.getexif()
        assert "icc_profile" not in img.info and "comment" not in img.info


def test_a_transparent_png_is_flattened_onto_white():
    img = Image.new("RGBA", (400, 300), (255, 0, 0, 0))
    img.paste((0, 0, 255, 255), (0, 0, 200, 300))
    [small, full] = images.image_renditions(encode(img, "PNG"))
    pixels = decoded(full)
    assert pixels.getpixel((350, 150))[0] > 240  # was transparent: white now
    assert pixels.getpixel((50, 150))[2] > 200  # opaque blue stays blue
    assert small.width == 320


@pytest.mark.parametrize(
    "data",
    [
        photo(500, 500, "WEBP"),
        photo(500, 500, "PNG"),
        photo(500, 500, "JPEG", mode="CMYK"),
        photo(500, 500, "JPEG", mode="L"),
        photo(500, 500, "PNG", mode="P"),
        encode(Image.new("I;16", (300, 300), 40000), "PNG"),
    ],
    ids=["webp", "png", "cmyk-jpeg", "grey-jpeg", "palette-png", "16-bit-png"],
)
def test_still_jpeg_png_and_webp_in_any_mode_become_rgb_jpegs(data):
    out = images.image_renditions(data)
    assert all(decoded(r).mode == "RGB" and decoded(r).format == "JPEG" for r in out)


# --- refused pictures ---------------------------------------------------------------------------


def _apng():
    frames = [Image.new("RGB", (50, 50), c) for c in ("red", "green")]
    return encode(frames[0], "PNG", save_all=True, append_images=frames[1:])


def _animated_webp():
    frames = [Image.new("RGB", (50, 50), c) for c in ("red", "green")]
    return encode(frames[0], "WEBP", save_all=True, append_images=frames[1:])


def _png_claiming(width, height):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


HOSTILE = {
    "zero-bytes": b"",
    "html": b"<!DOCTYPE html><html><body>Log in to continue</body></html>",
    "html-as-jpeg-magic": b"\xff\xd8\xff<html><script>alert(1)</script></html>",
    "bomb-20000x20000": cdn.bomb_png(),
    "bomb-within-pillows-limit": _png_claiming(9000, 9000),  # 81 MP: over MAX_PIXELS
    "too-wide": _png_claiming(12000, 10),
    "zero-size": _png_claiming(0, 10),
    "truncated-jpeg": photo(1080, 1080)[:20000],
    "truncated-png": photo(300, 300, "PNG")[:3000],
    "gif-animation": cdn.animated_gif(),
    "still-gif": encode(Image.new("RGB", (40, 40)), "GIF"),
    "apng": _apng(),
    "animated-webp": _animated_webp(),
    "bmp": encode(Image.new("RGB", (40, 40)), "BMP"),
    "tiff": encode(Image.new("RGB", (40, 40)), "TIFF"),
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
    "garbage": random.Random(1).randbytes(5000),
    "jpeg-header-then-garbage": photo(200, 200)[:200] + random.Random(2).randbytes(4000),
}


@pytest.mark.parametrize("data", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_and_broken_pictures_are_refused(data):
    with pytest.raises(images.ImageRejected):
        images.image_renditions(data)


def test_the_pixel_limit_applies_before_decoding():
    data = photo(1000, 1000, "PNG")
    with pytest.raises(images.ImageRejected, match="too many pixels"):
        images.image_renditions(data, max_pixels=999_999)
    assert images.image_renditions(data, max_pixels=1_000_000)


def test_jpeg_sizes_stay_small():
    # What one post costs: three renditions of a noisy (worst-case) 1080x1350 photo.
    total = sum(len(r.content) for r in images.image_renditions(photo(1080, 1350)))
    assert total < 1_200_000
