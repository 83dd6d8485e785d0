"""A plain install works anywhere: the wheel is built, installed into a fresh virtualenv outside
the checkout, and the demo, ``status``/``health``/``evaluate`` and a ``run --once`` against the
test Dovecot run from a directory outside the checkout, with the migrations, model and data
the wheel carries (nothing read from the checkout, nothing written into site-packages)."""

from __future__ import annotations

import csv
import json
import mailbox
import os
import re
import sqlite3
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_every_package_of_the_source_tree_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "jeeves").rglob("__init__.py")}
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages in pyproject.toml"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """The wheel, and a fresh virtualenv (outside the checkout) with it installed."""
    base = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-w", str(base / "dist")],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    # The build says nothing deprecated (the license used to print four such blocks).
    assert "Deprecat" not in build.stderr and "BuildBackendWarning" not in build.stderr, build.stderr[-3000:]
    (wheel,) = (base / "dist").glob("jeeves-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    install = subprocess.run([str(venv / "bin/pip"), "install", "--no-compile", "-q", str(wheel)],
                             capture_output=True, text=True, timeout=1800)
    assert install.returncode == 0, install.stderr[-3000:]
    outside = base / "elsewhere"
    outside.mkdir()
    return {"wheel": wheel, "venv": venv, "cwd": outside, "data": outside / "data"}


def _jeeves(installed: dict, *args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("JEEVES_", "TWILIO_", "PYTHON"))}
    clean |= {"JEEVES_DATA_DIR": str(installed["data"]), **(env or {})}
    return subprocess.run([str(installed["venv"] / "bin/jeeves"), *args], cwd=installed["cwd"], env=clean,
                          capture_output=True, text=True, timeout=timeout)


def _package_dir(installed: dict) -> Path:
    out = subprocess.run([str(installed["venv"] / "bin/python"), "-c", "import jeeves; print(jeeves.__file__)"],
                         cwd=installed["cwd"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip()).parent


@pytest.mark.slow
def test_the_wheel_carries_the_migrations_the_current_model_and_the_data(installed):
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    current = (REPO / "models/CURRENT").read_text().strip()
    expected = {"jeeves/_models/CURRENT", f"jeeves/_models/{current}.joblib", f"jeeves/_models/{current}.json",
                "jeeves/_migrations/env.py", "jeeves/_migrations/script.py.mako",
                "jeeves/_data/sample/sample.mbox", "jeeves/_data/sample/planted.csv",
                "jeeves/_data/enron-meetings/messages.mbox", "jeeves/_data/enron-meetings/labels.csv",
                "jeeves/model/nlp_data/corpora/wordnet.zip", "jeeves/web/templates/alerts.html",
                "jeeves/web/templates/base.html", "jeeves/web/static/keys.js"}
    expected |= {f"jeeves/_migrations/versions/{p.name}" for p in (REPO / "migrations/versions").glob("*.py")}
    assert expected <= names
    package = _package_dir(installed)
    assert REPO not in package.parents and "site-packages" in package.parts


@pytest.mark.slow
def test_installed_status_health_and_evaluate_work_from_anywhere(installed, small_corpus):
    status = _jeeves(installed, "status", "--json")
    assert status.returncode == 0, status.stderr
    model = json.loads(status.stdout)["model"]
    assert model["version"] == (REPO / "models/CURRENT").read_text().strip()
    assert _jeeves(installed, "health").returncode == 0
    evaluate = _jeeves(installed, "evaluate", "--corpus", str(small_corpus), "--json")
    assert evaluate.returncode == 0, evaluate.stderr
    assert json.loads(evaluate.stdout)["n"] == sum(1 for _ in csv.DictReader(open(small_corpus / "labels.csv")))


@pytest.mark.slow
def test_installed_demo_says_which_messages_were_planted(installed):
    first = _jeeves(installed, "demo")
    assert first.returncode == 0, first.stderr[-3000:]
    alerted = {int(m) for m in re.findall(r"^\[jeeves alert\] .* #(\d+) ", first.stdout, re.M)}
    planted = list(csv.DictReader(open(REPO / "data/sample/planted.csv")))
    requests = sum(r["label"] == "1" for r in planted)
    assert f"{requests} meeting requests that still need a place" in first.stdout
    verdicts = {int(pk): verdict for pk, verdict in
                re.findall(r"^ +#(\d+)  (flagged|MISSED|FALSE ALARM|not flagged|in digest) ", first.stdout, re.M)}
    assert len(verdicts) == len(planted) and alerted
    # Each verdict is what the store holds for that planted message; nothing unflagged was texted.
    with sqlite3.connect(installed["data"] / "demo.db") as db:
        flagged = {pk for (pk,) in db.execute("SELECT message_pk FROM predictions WHERE decision")}
        message_ids = {pk: mid for pk, mid in db.execute("SELECT id, message_id FROM messages")}
        listed = {pk for (pk,) in db.execute("SELECT message_pk FROM digest_entries")}
    labels = {r["message_id"]: r["label"] for r in planted}
    for pk, verdict in verdicts.items():
        assert (verdict in ("flagged", "FALSE ALARM")) == (pk in flagged), (pk, verdict)
        # Unsure messages wait for the digest, whatever their label.
        assert (verdict == "in digest") == (pk in listed and pk not in flagged), (pk, verdict)
        if verdict != "in digest":
            assert (verdict in ("flagged", "MISSED")) == (labels[message_ids[pk]] == "1"), (pk, verdict)
    assert alerted <= flagged
    second = _jeeves(installed, "demo")
    assert second.returncode == 0 and "[jeeves alert]" not in second.stdout
    assert re.findall(r"^ +#.*$", second.stdout, re.M) == re.findall(r"^ +#.*$", first.stdout, re.M)


@pytest.mark.slow
@pytest.mark.dovecot
def test_installed_run_once_against_dovecot(installed, dovecot):
    sample = mailbox.mbox(REPO / "data/sample/sample.mbox", create=False)
    raws = [sample.get_bytes(k) for k in list(sample.iterkeys())[:5]]
    dovecot.append_many("alice", "INBOX", raws)
    config = installed["cwd"] / "jeeves.toml"
    config.write_text("\n".join([
        "[[accounts]]", 'name = "alice"', f'host = "{dovecot.host}"', f"port = {dovecot.port}", 'tls = "none"',
        'username = "alice"', 'first_sync = "all"', "connect_timeout = 5.0", "read_timeout = 20.0",
        "[notify]", 'channel = "console"',
    ]) + "\n")
    env = {"JEEVES_ALICE_PASSWORD": dovecot.passwords["alice"]}
    run = _jeeves(installed, "--config", str(config), "run", "--once", env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "stored 5 new" in run.stderr
    again = _jeeves(installed, "--config", str(config), "run", "--once", env=env)
    assert again.returncode == 0 and "stored 0 new" in again.stderr, again.stderr[-3000:]


@pytest.mark.slow
def test_installed_web_page_serves_its_templates_behind_the_printed_token(installed):
    import requests

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("JEEVES_", "TWILIO_", "PYTHON"))}
    clean["JEEVES_DATA_DIR"] = str(installed["data"])
    web = subprocess.Popen([str(installed["venv"] / "bin/jeeves"), "web", "--port", "0"], cwd=installed["cwd"],
                           env=clean, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        for line in web.stdout:
            if "?token=" in line:
                url = line.strip()
                break
        assert url and url.startswith("http://127.0.0.1:"), web.stderr.read()[-3000:] if web.poll() is not None else url
        base = url.split("/?token=")[0]
        assert requests.get(base + "/", timeout=60).status_code == 403
        with requests.Session() as session:
            page = session.get(url, timeout=60)
            assert page.status_code == 200 and "Recent alerts" in page.text and "Live precision" in page.text
            assert session.get(base + "/static/keys.js", timeout=60).status_code == 200
            assert session.get(base + "/unsure", timeout=60).status_code == 200
    finally:
        web.terminate()
        web.wait(timeout=60)


@pytest.mark.slow
def test_nothing_is_written_into_the_installed_package(installed):
    """After the tests above: the package's files are exactly the wheel's (byte-compiled caches aside)."""
    package = _package_dir(installed)
    on_disk = {str(p.relative_to(package.parent)) for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    in_wheel = {n for n in zipfile.ZipFile(installed["wheel"]).namelist() if n.startswith("jeeves/")}
    assert on_disk == in_wheel
