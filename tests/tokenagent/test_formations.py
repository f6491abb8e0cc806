"""The README's table of Heroku formations against what deploys them: app.json's
formation and add-ons are the default row's, each row's monthly cost is the sum of
the listed prices, each row names only Procfile processes, and the commands that
move between formations name the same plans and the launcher's switch."""

import json
import re
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
README = (BASE_DIR / "README.md").read_text()
APP_JSON = json.loads((BASE_DIR / "app.json").read_text())


def procfile() -> dict[str, str]:
    lines = {}
    for line in (BASE_DIR / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and not line.startswith("#"):
            lines[name.strip()] = command.strip()
    return lines


def section() -> str:
    start = README.index("### Formations and what they cost")
    end = README.index("\n## ", start)
    return README[start:end]


def tables(text: str) -> list[list[dict[str, str]]]:
    """Every Markdown table in ``text``, as rows keyed by the header's cells."""
    found, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("| ---"):
            header = [c.strip() for c in lines[i].strip("|").split("|")]
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip("|").split("|")]
                rows.append(dict(zip(header, cells, strict=True)))
                i += 1
            found.append(rows)
        else:
            i += 1
    return found


def codes(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


PRICES, FORMATIONS = tables(section())[:2]


def price_of(item: str) -> int:
    for row in PRICES:
        if codes(row["item"])[:1] == [item]:
            return int(row["$/month"])
    raise AssertionError(f"no price for {item} in the README's price table")


def dynos_of(row: dict[str, str]) -> dict[str, dict]:
    """``web=1:basic`` -> {"web": {"quantity": 1, "size": "basic"}}, as app.json writes it."""
    out = {}
    for spec in codes(row["dynos"]):
        match = re.fullmatch(r"([a-z]+)=(\d+):([a-z0-9-]+)", spec)
        assert match, spec
        out[match.group(1)] = {"quantity": int(match.group(2)), "size": match.group(3)}
    return out


def test_the_section_has_both_tables_and_dates_its_prices():
    assert {"item", "$/month"} <= set(PRICES[0])
    assert {"formation", "dynos", "add-ons", "$/month", "what it gives"} <= set(FORMATIONS[0])
    assert re.search(r"list prices on \d{1,2} \w+ 20\d\d", section())
    assert "https://www.heroku.com/pricing" in section()


def test_app_json_deploys_the_default_row():
    (default,) = [r for r in FORMATIONS if "app.json's default" in r["formation"]]
    assert dynos_of(default) == APP_JSON["formation"]
    assert codes(default["add-ons"]) == APP_JSON["addons"]


@pytest.mark.parametrize("row", FORMATIONS, ids=lambda r: r["formation"])
def test_each_cost_is_the_sum_of_the_listed_prices(row):
    dynos = dynos_of(row)
    total = sum(
        d["quantity"] * price_of(f"{d['size']}") for d in dynos.values() if d["size"] != "eco"
    )
    if any(d["size"] == "eco" for d in dynos.values()):
        total += price_of("eco")  # one plan for all of the account's Eco dynos
    total += sum(price_of(addon) for addon in codes(row["add-ons"]))
    assert int(row["$/month"]) == total


@pytest.mark.parametrize("row", FORMATIONS, ids=lambda r: r["formation"])
def test_each_row_names_procfile_processes_and_fits_herokus_limits(row):
    lines = procfile()
    for name, dyno in dynos_of(row).items():
        assert name in lines, name
        # Eco and Basic allow one dyno per process type; one beat per worker line.
        assert dyno["quantity"] == 1
    # A worker dyno cannot reach the web dyno's disk: it needs Redis as its broker.
    if "worker" in dynos_of(row):
        assert any(a.startswith("heroku-redis:") for a in codes(row["add-ons"]))


def test_the_web_line_runs_the_launcher_with_the_web_server_and_the_worker_line_exists():
    lines = procfile()
    assert lines["web"].startswith("python scripts/dyno.py python -m tokenagent.web ")
    assert "--beat" in lines["worker"] and "REMAP_SIGTERM=SIGQUIT" in lines["worker"]
    assert lines["release"].startswith("python manage.py migrate")


def test_the_moves_use_the_tables_plans_and_the_launchers_switch():
    text = section()
    redis_plans = {a for r in FORMATIONS for a in codes(r["add-ons"]) if "redis" in a}
    for plan in redis_plans:
        assert f"heroku addons:create {plan}" in text
    assert "heroku config:set EMBEDDED_WORKER=False" in text
    assert "heroku config:set EMBEDDED_WORKER=True" in text
    assert "heroku ps:scale worker=1:basic" in text and "heroku ps:scale worker=0" in text
    assert "heroku addons:destroy heroku-redis" in text
    assert "heroku ps:type web=eco" in text
