"""The sandbox Instagram's posts: a deterministic default feed per test user, the
changes the control API makes to it (add, delete, caption, count), and the Graph
``/me/media`` rendering of it (``fields`` with ``children{...}`` expansion, newest
first, cursor paging) as docs/instagram.md section 6 describes.

The default feed of a user cycles through ``PATTERN``: a portrait photo, a video
(thumbnail + video URL), a carousel (two photos and a video), a photo whose caption
carries markup, a landscape photo without a caption, a reel whose ``media_url``
Instagram withholds (licensed audio), then square and portrait photos. A user's
feed is stored in the sandbox state only once the control API changes it."""

import base64
import time

from accounts.sandbox import state, tokens

DEFAULT_COUNT = 12
MAX_POSTS = 500
MAX_CHILDREN = 20
MEDIA_TYPES = ("IMAGE", "VIDEO", "CAROUSEL_ALBUM")
FIRST_TIMESTAMP = 1741944413  # 2025-03-14T09:26:53Z, the newest default post
MARKUP_CAPTION = (
    'Hostile caption x"><img src=x onerror=alert(1)> <script>alert("caption")</script> '
    "& <b>bold</b> #sandbox"
)
# (media type, width, height of its picture, flags) per position, cycled.
PATTERN = (
    ("IMAGE", 1080, 1350, ""),
    ("VIDEO", 640, 640, ""),
    ("CAROUSEL_ALBUM", 1080, 1080, ""),
    ("IMAGE", 1080, 1080, "markup"),
    ("IMAGE", 1080, 566, "no_caption"),
    ("VIDEO", 640, 640, "withheld"),
    ("IMAGE", 1080, 1080, ""),
    ("IMAGE", 1080, 1350, ""),
    ("IMAGE", 1080, 1080, ""),
    ("IMAGE", 1080, 1350, ""),
    ("IMAGE", 1080, 1080, ""),
    ("IMAGE", 1080, 1350, ""),
)
CAROUSEL_CHILDREN = (("IMAGE", 1080, 1080), ("IMAGE", 1080, 1350), ("VIDEO", 640, 640))

# Fields /me/media knows (IG Media reference); anything else is Graph's error 100.
MEDIA_FIELDS = frozenset(
    {
        "id",
        "caption",
        "media_type",
        "media_url",
        "thumbnail_url",
        "permalink",
        "timestamp",
        "username",
        "children",
        "shortcode",
        "media_product_type",
    }
)
CHILD_FIELDS = frozenset(
    {"id", "media_type", "media_url", "thumbnail_url", "timestamp", "username"}
)
_KEY = "posts"


def _uid_digits(username: str) -> int:
    return int(tokens.user_id_for(username)[-8:])


def default_post(username: str, i: int) -> dict:
    """The i-th newest post of ``username``'s default feed (a JSON-able record)."""
    kind, width, height, flag = PATTERN[i % len(PATTERN)]
    uid = _uid_digits(username)
    post = {
        "id": f"18{uid:08d}{i:07d}",
        "type": kind,
        "ts": FIRST_TIMESTAMP - i * 86400,
        "code": f"Sbx{uid % 10**6:06d}{i:03d}",
        "w": width,
        "h": height,
        "video": kind == "VIDEO" and flag != "withheld",
        "children": [],
    }
    if flag == "markup":
        post["caption"] = f"Sandbox post {i + 1}: {MARKUP_CAPTION}"
    elif flag != "no_caption":
        post["caption"] = f"Sandbox post {i + 1} by @{username}"
    if kind == "CAROUSEL_ALBUM":
        post["children"] = [
            {"id": f"17{uid:08d}{i:05d}{c:02d}", "type": t, "w": w, "h": h, "video": t == "VIDEO"}
            for c, (t, w, h) in enumerate(CAROUSEL_CHILDREN)
        ]
    return post


def _all() -> dict[str, list[dict]]:
    return state.cache.get(state._key(_KEY)) or {}


def posts(username: str) -> list[dict]:
    """The user's posts, newest first."""
    stored = _all().get(username.lower())
    if stored is None:
        return [default_post(username, i) for i in range(DEFAULT_COUNT)]
    return sorted(stored, key=lambda p: (p["ts"], p["id"]), reverse=True)


def _save(username: str, items: list[dict]) -> None:
    with state._lock:
        everything = _all()
        everything[username.lower()] = items
        state.cache.set(state._key(_KEY), everything, None)


def find(username: str, media_id: str) -> tuple[dict, dict | None] | None:
    """(post, child or None) holding ``media_id``, or None when it does not exist."""
    for post in posts(username):
        if post["id"] == media_id:
            return post, None
        for child in post["children"]:
            if child["id"] == media_id:
                return post, child
    return None


# --- Control API changes ----------------------------------------------------------------------


class PostNotFound(Exception):  # noqa: N818 (an answer: 404)
    """The control API was asked to change a post the user does not have."""


def _username(data: dict) -> str:
    name = data.get("username") or "acme_bakery"
    if not isinstance(name, str) or not name.replace("_", "").replace(".", "").isalnum():
        raise ValueError("username: letters, digits, _ and .")
    return name


def _dimension(data: dict, key: str, default: int) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 16 <= value <= 4096:
        raise ValueError(f"{key} must be an integer from 16 to 4096")
    return value


def set_count(data: dict) -> dict:
    """``feed {"username", "count"}``: the user's feed becomes N default posts."""
    username, count = _username(data), data.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_POSTS:
        raise ValueError(f"count must be an integer from 0 to {MAX_POSTS}")
    _save(username, [default_post(username, i) for i in range(count)])
    return {"username": username, "count": count}


def add_post(data: dict) -> dict:
    """``post {"username", "media_type", "caption", "width", "height", "children"}``:
    a new newest post; returns its id (and its children's)."""
    username = _username(data)
    kind = data.get("media_type", "IMAGE")
    if kind not in MEDIA_TYPES:
        raise ValueError(f"media_type must be one of {', '.join(MEDIA_TYPES)}")
    caption = data.get("caption")
    if caption is not None and not isinstance(caption, str):
        raise ValueError("caption must be a string or null")
    width = _dimension(data, "width", 640 if kind == "VIDEO" else 1080)
    height = _dimension(data, "height", 640 if kind == "VIDEO" else 1080)
    current = posts(username)
    if len(current) >= MAX_POSTS:
        raise ValueError(f"at most {MAX_POSTS} posts per user")
    serial_key = state._key("post_serial")
    serial = 0 if state.cache.add(serial_key, 0, None) else state.cache.incr(serial_key)
    uid = _uid_digits(username)
    n = 5_000_000 + serial
    post = {
        "id": f"18{uid:08d}{n:07d}",
        "type": kind,
        # Newer than everything the user has, to the second (Instagram's precision).
        "ts": max([int(time.time()), *(p["ts"] + 1 for p in current)]),
        "code": f"SbxN{uid % 10**6:06d}{serial:04d}",
        "w": width,
        "h": height,
        "video": kind == "VIDEO",
        "children": [],
    }
    if caption is not None:
        post["caption"] = caption
    if kind == "CAROUSEL_ALBUM":
        count = data.get("children", 2)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_CHILDREN:
            raise ValueError(f"children must be an integer from 1 to {MAX_CHILDREN}")
        post["children"] = [
            {"id": f"17{uid:08d}{n:07d}{c:02d}", "type": "IMAGE", "w": width, "h": height}
            for c in range(count)
        ]
    _save(username, [post, *current])
    return {"id": post["id"], "children": [c["id"] for c in post["children"]]}


def _existing(data: dict) -> tuple[str, list[dict], dict]:
    username = _username(data)
    current = posts(username)
    for post in current:
        if post["id"] == data.get("id"):
            return username, current, post
    raise PostNotFound(f"{username} has no post {data.get('id')!r}")


def delete_post(data: dict) -> dict:
    """``delete_post {"username", "id"}``: the post and its CDN pictures are gone."""
    username, current, post = _existing(data)
    _save(username, [p for p in current if p is not post])
    return {"deleted": post["id"]}


def set_caption(data: dict) -> dict:
    """``caption {"username", "id", "caption"}``: a new caption, or none with null."""
    caption = data.get("caption")
    if caption is not None and not isinstance(caption, str):
        raise ValueError("caption must be a string or null")
    username, current, post = _existing(data)
    post.pop("caption", None)
    if caption is not None:
        post["caption"] = caption
    _save(username, current)
    return {"id": post["id"], "caption": caption}


# --- Graph rendering --------------------------------------------------------------------------


def parse_fields(raw: str) -> dict[str, dict | None]:
    """``a,b{c,d}`` -> ``{"a": None, "b": {"c": None, "d": None}}`` (field expansion).
    Raises ValueError on unbalanced braces."""
    fields: dict[str, dict | None] = {}
    depth, start, name, sub_start = 0, 0, "", 0
    for i, ch in enumerate(raw + ","):
        if ch == "{":
            if depth == 0:
                name, sub_start = raw[start:i].strip(), i + 1
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                raise ValueError("unbalanced braces in fields")
            if depth == 0:
                fields[name] = parse_fields(raw[sub_start:i])
                start = i + 1
        elif ch == "," and depth == 0:
            plain = raw[start:i].strip()
            if plain:
                fields[plain] = None
            start = i + 1
    if depth:
        raise ValueError("unbalanced braces in fields")
    return {k: v for k, v in fields.items() if k}


def unknown_fields(fields: dict[str, dict | None]) -> list[str]:
    bad = [f for f in fields if f not in MEDIA_FIELDS]
    bad += [f for f in (fields.get("children") or {}) if f not in CHILD_FIELDS]
    return bad


def _iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(ts))


def render(post: dict, fields: dict, *, username: str, url_for) -> dict:
    """One post as /me/media answers it: only the fields asked for, plus ``id``.
    ``url_for(record, kind)`` builds a signed CDN URL (kind: image, thumb, video)."""
    item: dict = {"id": post["id"]}
    kind = post["type"]
    first = post["children"][0] if post["children"] else None
    values = {
        "media_type": kind,
        "timestamp": _iso(post["ts"]),
        "username": username,
        "permalink": f"https://www.instagram.com/{'reel' if kind == 'VIDEO' else 'p'}/"
        f"{post['code']}/",
        "shortcode": post["code"],
        "media_product_type": "REELS" if kind == "VIDEO" else "FEED",
    }
    if "caption" in post:
        values["caption"] = post["caption"]
    if kind == "VIDEO":
        values["thumbnail_url"] = url_for(post, "thumb")
        if post.get("video"):
            values["media_url"] = url_for(post, "video")
    elif kind == "CAROUSEL_ALBUM" and first is not None:
        # A carousel's media_url is its first item's.
        values["media_url"] = url_for(first, "video" if first["type"] == "VIDEO" else "image")
    else:
        values["media_url"] = url_for(post, "image")
    for name in fields:
        if name in values:
            item[name] = values[name]
    if "children" in fields and kind == "CAROUSEL_ALBUM":
        sub = fields["children"] or {"id": None}
        item["children"] = {
            "data": [
                _render_child(c, sub, post=post, username=username, url_for=url_for)
                for c in post["children"]
            ]
        }
    return item


def _render_child(child: dict, fields: dict, *, post: dict, username: str, url_for) -> dict:
    values = {
        "media_type": child["type"],
        "timestamp": _iso(post["ts"]),
        "username": username,
    }
    if child["type"] == "VIDEO":
        values["thumbnail_url"] = url_for(child, "thumb")
        values["media_url"] = url_for(child, "video")
    else:
        values["media_url"] = url_for(child, "image")
    return {"id": child["id"], **{k: values[k] for k in fields if k in values}}


# --- Cursors: the boundary post (timestamp, id), so deletions do not shift pages -------------


def cursor(post: dict) -> str:
    raw = f"ts:{post['ts']}:{post['id']}".encode()
    return "QVFI" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def uncursor(value: str) -> tuple[int, str] | None:
    if not value.startswith("QVFI"):
        return None
    body = value[4:]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        _, ts, media_id = raw.split(":", 2)
        return int(ts), media_id
    except (ValueError, UnicodeDecodeError):
        return None


def page(
    items: list[dict], *, after: str, before: str, limit: int
) -> tuple[list[dict], bool, bool]:
    """The page of ``items`` (newest first) after/before a cursor: (page, has_newer,
    has_older). An unreadable cursor reads as "from the start"."""
    keys = [(p["ts"], p["id"]) for p in items]
    if before and (edge := uncursor(before)):
        newer = [i for i, k in enumerate(keys) if k > edge]
        chosen = newer[-limit:]
    else:
        edge = uncursor(after) if after else None
        older = [i for i, k in enumerate(keys) if edge is None or k < edge]
        chosen = older[:limit]
    if not chosen:
        return [], False, False
    return [items[i] for i in chosen], chosen[0] > 0, chosen[-1] < len(items) - 1
