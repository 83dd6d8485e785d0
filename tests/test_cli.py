"""The `jeeves` command's contracts: what scripts and users rely on, called through cli.main."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from jeeves.cli import main

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An isolated Jeeves: its own SQLite database, the shipped model, console alerts."""
    monkeypatch.setenv("JEEVES_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("JEEVES_CONFIG", raising=False)
    for var in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def _eml(tmp_path, raw: bytes) -> Path:
    path = tmp_path / "message.eml"
    path.write_bytes(raw)
    return path


def test_evaluate_json_contract(env, small_corpus, capsys):
    assert main(["evaluate", "--corpus", str(small_corpus), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("roc_auc", "pr_auc", "precision", "recall", "f1", "threshold", "n", "n_positive"):
        assert key in report
    labels = [int(r["label"]) for r in csv.DictReader(open(small_corpus / "labels.csv"))]
    assert (report["n"], report["n_positive"]) == (len(labels), sum(labels))
    assert 0.5 < report["roc_auc"] <= 1.0


def test_classify_prints_score_and_decision(env, tmp_path, corpus_raw_messages, capsys):
    assert main(["classify", str(_eml(tmp_path, corpus_raw_messages[0])), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0.0 <= result["score"] <= 1.0 and isinstance(result["decision"], bool)
    assert main(["classify", str(_eml(tmp_path, corpus_raw_messages[0]))]) == 0
    assert ("needs a place" in capsys.readouterr().out) == result["decision"]


def test_import_is_idempotent_and_status_reports_it(env, capsys):
    sample = str(REPO / "data/sample/sample.mbox")
    assert main(["import", sample]) == 0
    assert "300 new" in capsys.readouterr().out
    assert main(["import", sample]) == 0
    assert "0 new" in capsys.readouterr().out
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["messages"] == 300 and status["outbox"] == {}
    assert status["accounts"][0]["last_sync"] is not None


def test_relabel_replaces_the_label_and_explain_names_features(env, capsys):
    from jeeves.config import load_settings
    from jeeves.service import Jeeves

    main(["import", str(REPO / "data/sample/sample.mbox")])
    assert main(["label", "1", "1"]) == 0
    assert main(["label", "#1", "0"]) == 0  # the id as the SMS shows it
    current = Jeeves(load_settings()).store.current_labels()
    assert current[1].value == 0 and current[1].source == "cli"
    capsys.readouterr()
    assert main(["explain", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("score ") and ("pushed up by:" in out or "pushed down by:" in out)


def test_unknown_message_is_a_clear_error(env, capsys):
    assert main(["label", "999999", "1"]) == 2
    assert "no stored message" in capsys.readouterr().err


def test_review_labels_the_least_certain_first(env, monkeypatch, capsys):
    from jeeves.config import load_settings
    from jeeves.service import Jeeves

    main(["import", str(REPO / "data/sample/sample.mbox")])
    app = Jeeves(load_settings())
    app.classify()
    expected = app.store.least_certain_unlabelled(3)
    answers = iter(["1", "s", "0"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    assert main(["label", "--review", "--limit", "3"]) == 0
    labels = app.store.current_labels()
    assert {pk: lab.value for pk, lab in labels.items()} == {expected[0][0].id: 1, expected[2][0].id: 0}
    assert all(lab.source == "review" for lab in labels.values())


def test_health_is_zero_when_usable_and_one_without_a_model(env, monkeypatch, tmp_path, capsys):
    assert main(["health"]) == 0
    monkeypatch.setenv("JEEVES_MODEL__DIR", str(tmp_path / "no-models"))
    assert main(["health"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("unhealthy:") and "jeeves train" in err


def test_bad_config_exits_2_naming_the_setting(env, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[notify]\nmax_per_hour = -3\n")
    assert main(["--config", str(bad), "status"]) == 2
    err = capsys.readouterr().err
    assert "notify.max_per_hour" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, says", [
    (["--config", "{tmp}/missing.toml", "status"], "configuration file not found"),
    (["--config", "{tmp}", "status"], "configuration path is not a file"),
    (["classify", "{tmp}/missing.eml"], "cannot read"),
    (["evaluate", "--corpus", "{tmp}"], "is not a corpus directory"),
    (["explain", "4242"], "no stored message '4242'"),
])
def test_a_jeeves_error_is_one_line_on_stderr_and_exit_2(env, tmp_path, capsys, argv, says):
    assert main([arg.format(tmp=tmp_path) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jeeves: ") and err.count("\n") == 1 and says in err, err


def test_an_unexpected_error_is_one_line_and_its_traceback_is_logged(env, monkeypatch, capsys):
    from jeeves.service import Jeeves

    def status_with_a_bug(self):
        return {}["database"]  # a KeyError: a bug, not a JeevesError

    monkeypatch.setattr(Jeeves, "status", status_with_a_bug)
    assert main(["status"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "KeyError" in err and "--verbose" in err and "Traceback" not in err, err
    assert main(["--verbose", "status"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "status_with_a_bug" in err
    assert main(["--log-format", "json", "status"]) == 1
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert any(r["level"] == "error" and "status_with_a_bug" in r.get("error", "") for r in records)


def test_models_lists_the_serving_model(env, capsys):
    assert main(["models"]) == 0
    current = (REPO / "models/CURRENT").read_text().strip()
    assert any(line.startswith("*") and current in line for line in capsys.readouterr().out.splitlines())


def _demo_config(tmp_path: Path) -> Path:
    """A config like config/demo.toml: the sample mailbox, console alerts, its own data dir."""
    config = tmp_path / "conf" / "demo.toml"
    config.parent.mkdir()
    config.write_text(f'data_dir = "{tmp_path / "demo-data"}"\n[[mailboxes]]\npath = "{REPO / "data/sample/sample.mbox"}"\n'
                      '[notify]\nchannel = "console"\n')
    return config


def test_the_alerts_correction_hint_works_as_printed(env, tmp_path, monkeypatch, capsys):
    import re
    import shlex

    config = _demo_config(tmp_path)
    monkeypatch.chdir(config.parent)
    assert main(["--config", "demo.toml", "run", "--once"]) == 0  # a relative path, as a user types it
    first = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("[jeeves alert]"))
    hint = re.search(r"Wrong\? (jeeves .*)$", first).group(1)
    argv = shlex.split(hint)
    assert argv[:2] == ["jeeves", "-c"] and argv[-3:-2] == ["label"]
    monkeypatch.chdir(tmp_path)  # the user types it somewhere else
    assert main(argv[1:]) == 0
    pk = int(argv[-2])
    assert f"message {pk} labelled 0" in capsys.readouterr().out


def test_with_jeeves_config_set_the_hint_is_plain(env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JEEVES_CONFIG", str(_demo_config(tmp_path)))
    assert main(["run", "--once"]) == 0
    first = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("[jeeves alert]"))
    assert " Wrong? jeeves label " in first


def test_message_not_found_names_the_database_searched(env, tmp_path, capsys):
    assert main(["label", "7", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "no stored message '7'" in err and str(tmp_path / "data" / "jeeves.db") in err and "--config" in err


def test_dry_run_leaves_the_alerts_to_a_real_run(env, tmp_path, capsys):
    config = str(_demo_config(tmp_path))
    assert main(["--config", config, "run", "--once", "--dry-run"]) == 0
    out = capsys.readouterr()
    would = [line.removeprefix("[dry run, not sent] ") for line in out.out.splitlines() if line.startswith("[dry run")]
    assert would and "[jeeves alert]" not in out.out and "would be sent" in out.err
    assert main(["--config", config, "run", "--once"]) == 0
    sent = [line.removeprefix("[jeeves alert] ") for line in capsys.readouterr().out.splitlines() if line.startswith("[jeeves alert]")]
    assert sent == would


def test_an_unreachable_database_is_retried_for_connect_retry_seconds(env, monkeypatch, capsys):
    import time

    from tests.fixtures_postgres import free_port

    monkeypatch.setenv("JEEVES_DATABASE__URL", f"postgresql+psycopg2://jeeves:pw@127.0.0.1:{free_port()}/jeeves")
    monkeypatch.setenv("JEEVES_DATABASE__CONNECT_RETRY_SECONDS", "2")
    started = time.monotonic()
    assert main(["status"]) == 2
    assert time.monotonic() - started >= 2.0
    err = capsys.readouterr().err
    assert "retrying for up to" in err and "pw" not in err.replace("psycopg2", "")
    monkeypatch.setenv("JEEVES_DATABASE__CONNECT_RETRY_SECONDS", "0")
    assert main(["status"]) == 2
    assert "retrying" not in capsys.readouterr().err


@pytest.mark.slow
def test_trained_models_go_to_the_data_dir_and_the_shipped_one_serves_until_then(env, small_corpus, capsys):
    from jeeves.resources import shipped_models_dir

    shipped = shipped_models_dir()
    shipped_files = sorted((p.name, p.stat().st_mtime_ns) for p in shipped.iterdir())
    shipped_version = (shipped / "CURRENT").read_text().strip()

    def serving() -> str:
        assert main(["status", "--json"]) == 0
        return json.loads(capsys.readouterr().out)["model"]["version"]

    assert serving() == shipped_version
    assert main(["train", "--quick", "--corpus", str(small_corpus)]) == 0
    capsys.readouterr()
    trained = (env / "data/models/CURRENT").read_text().strip()
    assert trained != shipped_version and serving() == trained
    assert sorted((p.name, p.stat().st_mtime_ns) for p in shipped.iterdir()) == shipped_files

    # Rolling back to the shipped model copies it beside the trained ones; the package is untouched.
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert shipped_version in listed and any(line.startswith("*") and trained in line for line in listed.splitlines())
    assert main(["models", "--use", shipped_version]) == 0
    capsys.readouterr()
    assert serving() == shipped_version
    assert (env / f"data/models/{shipped_version}.joblib").is_file()
    assert sorted((p.name, p.stat().st_mtime_ns) for p in shipped.iterdir()) == shipped_files
