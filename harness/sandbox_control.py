"""A client for the sandbox Instagram's control API (accounts/sandbox/README.md):
queue failures, slow an endpoint down, mint tokens, count calls. Used by the
benchmarks and, through tests/sandbox_control.py's fixtures, by the tests."""

from __future__ import annotations

from typing import Any

import requests


class SandboxControl:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()

    def _post(self, action: str, **body: Any) -> dict[str, Any]:
        r = self.http.post(f"{self.base_url}/_control/{action}", json=body, timeout=10)
        r.raise_for_status()
        return r.json()

    def reset(self) -> None:
        self._post("reset")

    def fail(self, endpoint: str, failures: list[str]) -> None:
        """Queue failures, consumed one per call to ``endpoint`` (or "*")."""
        self._post("fail", endpoint=endpoint, failures=failures)

    def mode(self, endpoint: str, failure: str | None) -> None:
        """Fail every call to ``endpoint`` with ``failure`` until set to None."""
        self._post("mode", endpoint=endpoint, failure=failure)

    def delay(self, endpoint: str, seconds: float) -> None:
        self._post("delay", endpoint=endpoint, seconds=seconds)

    def shape(self, shape: str) -> None:
        self._post("shape", shape=shape)

    def revoke(self, username: str) -> None:
        self._post("revoke", username=username)

    def mint(self, username: str = "acme_bakery", age_hours: float = 48, **kw: Any) -> dict:
        """A long-lived sandbox token issued ``age_hours`` ago."""
        return self._post("mint", username=username, age_hours=age_hours, **kw)

    def feed(self, username: str = "acme_bakery", count: int = 12) -> None:
        """The user's feed becomes ``count`` default posts."""
        self._post("feed", username=username, count=count)

    def add_post(self, username: str = "acme_bakery", **fields: Any) -> dict[str, Any]:
        """A new newest post (media_type, caption, width, height, children); its ids."""
        return self._post("post", username=username, **fields)

    def delete_post(self, media_id: str, username: str = "acme_bakery") -> None:
        self._post("delete_post", username=username, id=media_id)

    def caption(self, media_id: str, caption: str | None, username: str = "acme_bakery") -> None:
        self._post("caption", username=username, id=media_id, caption=caption)

    def cdn_ttl(self, seconds: int) -> None:
        """Lifetime of the CDN URLs handed out from now on (<= 0: already expired)."""
        self._post("cdn", ttl_seconds=seconds)

    def journal(self) -> list[dict[str, Any]]:
        r = self.http.get(f"{self.base_url}/_control/requests", timeout=10)
        r.raise_for_status()
        return r.json()["requests"]

    def calls(self) -> dict[str, int]:
        r = self.http.get(f"{self.base_url}/_control/calls", timeout=10)
        r.raise_for_status()
        return r.json()

    def authorize_url(self) -> str:
        return f"{self.base_url}/oauth/authorize"
