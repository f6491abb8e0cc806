"""Run Python in a child process with exactly the environment a test chooses.

Settings are read from the environment at import time, so tests of settings,
deploy configuration and URL mounting import them in a fresh interpreter. This is
the one way they do it: a minimal environment (no developer variables leak in),
the project on PYTHONPATH, and the last line of the child's output read as JSON."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent

# Prepend to a child's code to switch off the settings module's .env reading.
NO_DOTENV = "import environ\nenviron.Env.read_env = classmethod(lambda cls, *a, **kw: None)\n"


def child_env(var_dir: Path | str, **environment: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(BASE_DIR),
        "DJANGO_SETTINGS_MODULE": "tokenagent.settings",
        "TOKENAGENT_VAR_DIR": str(var_dir),
        **environment,
    }


def run_python(
    code: str, *args: str, env: dict[str, str], cwd: Path | str = BASE_DIR, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def json_result(result: subprocess.CompletedProcess) -> Any:
    """The child's last output line as JSON; the child must have succeeded."""
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
