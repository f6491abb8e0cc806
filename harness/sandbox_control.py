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

    def calls(self) -> dict[str, int]:
        r = self.http.get(f"{self.base_url}/_control/calls", timeout=10)
        r.raise_for_status()
        return r.json()

    def authorize_url(self) -> str:
        return f"{self.base_url}/oauth/authorize"
