"""The line commands end to end: `models`, `token`, `serve` and `stream` as their own processes, `replay` through the CLI.

`demo.line.simulated_line` starts a broker, `shopfloor serve` and `shopfloor stream` exactly as `make demo`
does; the readings come from `shopfloor replay`, and the answers are read back from the dashboard and the API.
"""

from __future__ import annotations

import time

import httpx
import pytest
from conftest import RUL_COLUMNS
from typer.testing import CliRunner

from shopfloor.cli import app
from shopfloor.stream.broker import mosquitto_path

runner = CliRunner()


def _ok(args: list[str]):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def test_registry_and_token_commands(binary_model, tmp_path):
    models = str(tmp_path / "models")
    _ok(["models", "add", "--models", models, "failure", str(binary_model.folder)])
    _ok(["models", "add", "--models", models, "failure", str(binary_model.folder), "--stage"])
    listed = _ok(["models", "list", "--models", models]).output
    assert "failure" in listed and "1, 2" in listed
    _ok(["models", "promote", "--models", models, "failure", "2"])
    assert "rolled back to version 1" in _ok(["models", "rollback", "--models", models, "failure"]).output
    token = _ok(["token", "create", "--models", models, "--name", "mes"]).stdout.strip().splitlines()[0]
    assert token.startswith("sf_") and token not in (tmp_path / "models" / "tokens.json").read_text()
    assert "mes" in _ok(["token", "list", "--models", models]).output
    _ok(["token", "revoke", "--models", models, "mes"])
    unknown = runner.invoke(app, ["models", "promote", "--models", models, "../x", "1"])
    assert unknown.exit_code == 2 and "not a valid model name" in unknown.output


@pytest.mark.skipif(mosquitto_path() is None, reason="Mosquitto is not installed (apt-get install mosquitto)")
def test_serve_stream_and_replay_as_on_a_line(binary_model, rul_model, tmp_path):
    from shopfloor.demo.line import simulated_line
    from shopfloor.store import Store, default_url

    history = tmp_path / "line-3.csv"
    rul_model.test.to_csv(history, index=False)
    with simulated_line(tmp_path / "line", {"failure": binary_model.folder, "rul": rul_model.folder}, port=0) as line:
        result = _ok(["replay", "--broker", line.broker.url, "--data", str(history), "--unit", RUL_COLUMNS["unit"],
                      "--time", RUL_COLUMNS["time"], "--rate", "2000", "--line", "line-3"])
        assert "replayed" in result.output
        sent = len(rul_model.test)
        store = Store(default_url(line.registry.root))
        for _ in range(120):
            if store.counts()["readings"] >= sent:
                break
            time.sleep(0.25)
        counts = store.counts()
        store.close()
        assert counts["readings"] == sent
        assert counts["machines"] == rul_model.test[RUL_COLUMNS["unit"]].nunique()
        fleet = httpx.get(f"{line.url}/fragments/fleet", cookies={"shopfloor_token": line.token}, timeout=30)
        assert fleet.status_code == 200 and fleet.text.count('class="machine') == counts["machines"]
        models = httpx.get(f"{line.url}/api/models", headers={"Authorization": f"Bearer {line.token}"}, timeout=30)
        assert {m["name"] for m in models.json()} == {"failure", "rul"}


def test_alarm_rules_are_set_with_the_model_and_changed_later(binary_model, tmp_path):
    models = str(tmp_path / "models")
    added = _ok(["models", "add", "--models", models, "failure", str(binary_model.folder), "--alarm", "risk>=0.7",
                 "--clear", "risk<0.5"])
    assert "risk>=0.7 (clears at risk<0.5)" in added.output
    assert "risk>=0.7 (clears at risk<0.5)" in _ok(["models", "alarm", "--models", models, "failure"]).output
    listed = _ok(["models", "list", "--models", models]).output
    assert "risk>=0.7" in listed and "risk<0.5" in listed
    _ok(["models", "alarm", "--models", models, "failure", "--alarm", "risk>=0.8"])
    assert "risk>=0.8 (clears at risk<0.8)" in _ok(["models", "alarm", "--models", models, "failure"]).output
    wrong = runner.invoke(app, ["models", "alarm", "--models", models, "failure", "--alarm", "rul<=20"])
    assert wrong.exit_code == 2 and "only remaining-useful-life models give" in wrong.output
    refused = runner.invoke(app, ["models", "add", "--models", models, "other", str(binary_model.folder), "--alarm",
                                  "risk>=0.7", "--clear", "risk<0.9"])
    assert refused.exit_code == 2 and "both hold" in refused.output and not (tmp_path / "models" / "other").exists()
    _ok(["models", "alarm", "--models", models, "failure", "--default"])
    assert "no rule of its own" in _ok(["models", "alarm", "--models", models, "failure"]).output
