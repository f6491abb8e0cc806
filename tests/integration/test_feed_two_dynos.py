"""Heroku's two-dyno case for the feed: the Procfile's ``web`` and ``worker``, each
run from its own copy of the app (its own slug, its own disk: no shared file
system), on one PostgreSQL and one Redis. The owner signs in on the web dyno; the
worker dyno reads the feed and mirrors the pictures into the database; the web
dyno's code reads them back from PostgreSQL alone. (The public /feed URLs are
another branch's; the web side is checked through its /healthz and the selector
run with the web dyno's code and environment.)
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from django.conf import settings

from accounts.models import FeedImage, FeedSnapshot, InstagramAccount, RefresherHeartbeat
from harness.processes import HOST, ROOT, Process, free_port, wait_for
from harness.procfile_stack import agent_env, procfile_lines, web_answers
from tests.integration import PROCESS_MARKS
from tests.integration.feed_support import OWNER, POSTS, RENDITIONS, owner_env, sign_in

pytestmark = [
    *PROCESS_MARKS,
    pytest.mark.timeout(600),
]

# Run in the web dyno's copy with its environment: the served feed's pictures
# (posts and carousel items), each read back by its URL, as the web's views would.
READ_BACK = """
import hashlib, json, sys
import django
django.setup()
import accounts
from accounts.models import InstagramAccount
from accounts.selectors.feed import IMAGE_PATH_PREFIX, feed_get, feed_image_get
feed = feed_get(account=InstagramAccount.objects.get(username=sys.argv[1]), base_url="https://x")
items = [i for p in feed["posts"] for i in [p, *p.get("children", [])]]
names = [s["url"].rsplit(IMAGE_PATH_PREFIX, 1)[1] for i in items for s in i["image"]["sizes"]]
found = {n: feed_image_get(name=n) for n in names}
print(json.dumps({
    "code": accounts.__file__,
    "posts": len(feed["posts"]),
    "names": len(set(names)),
    "missing": [n for n, f in found.items() if f is None],
    "digests_match": all(hashlib.sha256(f[0]).hexdigest() == n[:64] for n, f in found.items() if f),
    "types": sorted({f[1] for f in found.values() if f}),
    "bytes": sum(len(f[0]) for f in found.values() if f),
}))
"""


def slug_copy(target: Path) -> Path:
    """The app as a build would ship it: the repository's files (tracked and new,
    not ignored ones: no var/, no node_modules, no virtualenv), copied."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def dyno(name: str, slug: Path, env: dict[str, str], logdir: Path) -> Process:
    """The Procfile's ``name`` line, run from the dyno's own copy of the app."""
    line = procfile_lines(slug / "Procfile")[name]
    return Process(name, ["bash", "-c", f"cd {slug} && {line}"], env, logdir)


def run_in(slug: Path, env: dict[str, str], *argv: str) -> str:
    """``python <argv>`` in a dyno's copy with its environment (``heroku run``)."""
    done = subprocess.run(
        [sys.executable, *argv], cwd=slug, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def files_under(path: Path, suffix: str) -> list[Path]:
    return [p for p in path.rglob(f"*{suffix}") if p.is_file()]


def test_web_and_worker_from_separate_copies_share_the_pictures_through_postgres(
    pg_url, own_redis, stoppable_sandbox, tmp_path
):
    web_slug = slug_copy(tmp_path / "web-slug")
    worker_slug = slug_copy(tmp_path / "worker-slug")
    port = free_port()
    common = {
        "database_url": pg_url,
        "redis_url": own_redis.url,
        "instagram_url": stoppable_sandbox.base_url,
        "secret_key": settings.SECRET_KEY,
        "port": port,
        "TOKEN_ENCRYPTION_KEY": settings.TOKEN_ENCRYPTION_KEY,
        "REFRESH_TICK_SECONDS": 3600,
        **owner_env(stoppable_sandbox.base_url),
    }
    web_env = agent_env(
        var_dir=web_slug / "var",
        STATIC_ROOT=str(web_slug / "staticfiles"),
        DYNO="web.1",
        TRUST_PROXY_HEADERS="False",
        **common,
    )
    worker_env = agent_env(var_dir=worker_slug / "var", DYNO="worker.1", **common)
    run_in(web_slug, web_env, "manage.py", "collectstatic", "--noinput", "-v", "0")  # the build

    web = dyno("web", web_slug, web_env, tmp_path).start()
    worker = dyno("worker", worker_slug, worker_env, tmp_path).start()
    try:
        wait_for(lambda: web_answers(port), timeout=60, what="the web dyno")
        wait_for(
            lambda: RefresherHeartbeat.objects.exists() or not worker.running(),
            timeout=90,
            what="the worker dyno's first tick",
        )
        assert worker.running(), worker.tail()

        sign_in(f"http://{HOST}:{port}")
        account = InstagramAccount.objects.get(username=OWNER)
        wait_for(
            lambda: (
                (s := FeedSnapshot.objects.filter(account=account).first())
                and s.synced_at
                and FeedImage.objects.count() == RENDITIONS
            ),
            timeout=90,
            what="the worker dyno to mirror the feed",
        )
        # In the database, not on either dyno's disk.
        assert FeedImage.objects.filter(data__isnull=True).count() == 0
        assert files_under(web_slug / "var", ".jpg") == []
        assert files_under(worker_slug / "var", ".jpg") == []

        # The web dyno's own code and environment read every picture back.
        found = json.loads(run_in(web_slug, web_env, "-c", READ_BACK, OWNER).splitlines()[-1])
        assert Path(found["code"]).is_relative_to(web_slug)
        assert found["posts"] == POSTS and found["names"] == RENDITIONS
        assert found["missing"] == [] and found["digests_match"] is True
        assert found["types"] == ["image/jpeg"]
        assert found["bytes"] > 100_000

        # The web process itself sees the fresh feed the worker wrote.
        health = requests.get(f"http://{HOST}:{port}/healthz", timeout=10).json()
        assert health["feeds"]["fresh"] == 1 and health["feeds"]["never_synced"] == 0
    finally:
        web.stop()
        worker.stop()
