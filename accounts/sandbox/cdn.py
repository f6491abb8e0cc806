"""The sandbox's media CDN: signed, expiring picture URLs like Instagram's
(``oh=`` signature, ``oe=`` hex expiry; an expired one answers 403 "URL signature
expired"), real JPEG bytes drawn with Pillow (deterministic per picture), and the
hostile bodies the failure kinds ``not_image``, ``image_lie``, ``too_large``,
``truncated_image``, ``bomb_image`` and ``animated_gif`` answer with."""

import hashlib
import hmac
import io
import struct
import time
import zlib
from functools import lru_cache

from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.urls import reverse
from PIL import Image, ImageDraw, ImageFont

from accounts.sandbox import state, tokens

DEFAULT_TTL = 3 * 24 * 3600  # Instagram's oe= is typically a few days ahead
MAX_TTL = 30 * 24 * 3600
TOO_LARGE_BYTES = 32 * 1024 * 1024
BODY_KINDS = frozenset(
    {"not_image", "image_lie", "too_large", "truncated_image", "bomb_image", "animated_gif"}
)
# A video container with no tracks: the agent never downloads videos, only links them.
PLACEHOLDER_MP4 = (
    struct.pack(">I", 24)
    + b"ftypisom"
    + struct.pack(">I", 0x200)
    + b"isomiso2"
    + struct.pack(">I", 8)
    + b"free"
)


def ttl() -> int:
    return int(state.cache.get(state._key("cdn_ttl")) or DEFAULT_TTL)


def set_ttl(data: dict) -> dict:
    """``cdn {"ttl_seconds": N}``: lifetime of the URLs handed out from now on
    (0 or negative: already expired)."""
    seconds = data.get("ttl_seconds")
    if (
        not isinstance(seconds, int)
        or isinstance(seconds, bool)
        or not -MAX_TTL <= seconds <= MAX_TTL
    ):
        raise ValueError(f"ttl_seconds must be an integer from -{MAX_TTL} to {MAX_TTL}")
    state.cache.set(state._key("cdn_ttl"), seconds or -1, None)
    return {"ttl_seconds": seconds}


def _signature(path: str, oe: str) -> str:
    key = (tokens._key() + ":sandbox-cdn").encode()
    return hmac.new(key, f"{path}|{oe}".encode(), hashlib.sha256).hexdigest()[:40]


ASSET_SUFFIX = {"image": "_n.jpg", "thumb": "_thumb.jpg", "video": "_v.mp4"}


def url(request, *, username: str, media_id: str, kind: str) -> str:
    """A signed CDN URL for one picture (or video) of a post, valid for ``ttl()``."""
    path = reverse("sandbox:cdn", args=[username, media_id + ASSET_SUFFIX[kind]])
    oe = format(int(time.time()) + ttl(), "X")
    return request.build_absolute_uri(path) + f"?_nc_cat=101&oh=00_{_signature(path, oe)}&oe={oe}"


def check(path: str, oh: str, oe: str, *, now: float | None = None) -> str | None:
    """Why a CDN URL is refused (Instagram's wording), or None when it is good."""
    expected = "00_" + _signature(path, oe)
    if not hmac.compare_digest(expected.encode(), oh.encode()):
        return "Bad URL hash"
    try:
        expiry = int(oe, 16)
    except ValueError:
        return "Bad URL hash"
    if (now if now is not None else time.time()) >= expiry:
        return "URL signature expired"
    return None


@lru_cache(maxsize=256)
def jpeg(seed: str, width: int, height: int) -> bytes:
    """A deterministic JPEG for ``seed``: a gradient in the seed's hue, a few shapes
    and the seed's text, so each picture differs and compresses like a photo."""
    digest = hashlib.sha256(seed.encode()).digest()
    hue = digest[0] / 255
    base = Image.linear_gradient("L").resize((width, height)).rotate(digest[1] % 4 * 90)
    base = base.resize((width, height))
    h, s = Image.new("L", (width, height), int(hue * 255)), Image.new("L", (width, height), 150)
    img = Image.merge("HSV", (h, s, base.point(lambda v: 110 + v // 2))).convert("RGB")
    draw = ImageDraw.Draw(img)
    for n in range(4):
        x, y = digest[2 + n] * width // 256, digest[6 + n] * height // 256
        r = max(8, digest[10 + n] * min(width, height) // 1024)
        fill = tuple(digest[14 + n * 3 : 17 + n * 3])
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill, outline=(255, 255, 255))
    font = ImageFont.load_default(size=max(12, width // 18))
    draw.text(
        (width // 2, height // 2),
        f"sandbox\n{seed}",
        fill=(255, 255, 255),
        font=font,
        anchor="mm",
        align="center",
    )
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (64, 64), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def _too_large():
    chunk = b"\xff\xd8\xff\xe0" + b"\0" * (64 * 1024 - 4)
    for _ in range(TOO_LARGE_BYTES // len(chunk)):
        yield chunk


def hostile_response(kind: str) -> HttpResponseBase:
    """The body a CDN failure kind answers with (HTTP 200 every time)."""
    if kind == "not_image":
        return HttpResponse(
            "<!DOCTYPE html><html><body>Log in to continue</body></html>", content_type="text/html"
        )
    if kind == "image_lie":
        return HttpResponse(b"<html><body>not a picture</body></html>", content_type="image/jpeg")
    if kind == "too_large":
        # Streamed without Content-Length: only counting the bytes can stop it.
        return StreamingHttpResponse(_too_large(), content_type="image/jpeg")
    if kind == "truncated_image":
        whole = jpeg("truncated", 1080, 1080)
        return HttpResponse(whole[: len(whole) // 2], content_type="image/jpeg")
    if kind == "bomb_image":
        return HttpResponse(bomb_png(), content_type="image/png")
    return HttpResponse(animated_gif(), content_type="image/gif")
