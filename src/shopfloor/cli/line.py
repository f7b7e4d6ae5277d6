"""The commands that put models on the line: `serve`, `stream`, `replay`, `models` and `token`.

Kept apart from the training and scoring commands so that each file stays readable; the same
conventions hold (`shopfloor.cli.app`): known problems exit with code 2 and one line, heavy imports
stay inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shopfloor.alarms import BadAlarm
from shopfloor.cli.app import DayFirstOpt, app, friendly, stderr, stdout
from shopfloor.display import plain

RegistryOpt = Annotated[Path, typer.Option("--models", help="The model registry folder (created by 'shopfloor models add').")]
BrokerOpt = Annotated[str, typer.Option("--broker", help="MQTT broker, mqtt://HOST:PORT.")]
AlarmOpt = Annotated[str | None, typer.Option("--alarm", help="Enter the alarm when this holds, e.g. 'rul<=20' (values: "
                                              "rul, rul_low, rul_high for RUL models; risk for failure models; score for "
                                              "sensor-monitoring models; fault_run, fault windows in a row, for "
                                              "fault-diagnosis models: default 'fault_run>=3', clear 'fault_run<=-3').")]
ClearOpt = Annotated[str | None, typer.Option("--clear", help="Leave the alarm when this holds, e.g. 'rul>=30' (default: "
                                              "as soon as --alarm no longer holds).")]
DatabaseOpt = Annotated[str | None, typer.Option("--database", help="Where readings and predictions are stored: a "
                                                 "SQLAlchemy URL (default sqlite:///MODELS/shopfloor.db; PostgreSQL: "
                                                 "postgresql+psycopg://user@host/db).")]

models_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="The model registry: versions, which one is live, alarm rules.")
token_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="API tokens for the REST service (stored hashed).")
app.add_typer(models_app, name="models")
app.add_typer(token_app, name="token")


@models_app.command("add")
@friendly
def models_add(models: RegistryOpt, name: Annotated[str, typer.Argument(help="Model name, e.g. 'failure'.")],
               folder: Annotated[Path, typer.Argument(help="A model folder written by 'shopfloor train'.")],
               stage: Annotated[bool, typer.Option("--stage", help="Add without making it live.")] = False,
               alarm: AlarmOpt = None, clear: ClearOpt = None):
    """Add a trained model as the next version of NAME (live at once unless --stage), with its alarm rule if given."""
    from shopfloor.alarms import AlarmRule
    from shopfloor.artifacts import read_manifest
    from shopfloor.registry import Registry

    if clear and not alarm:
        raise BadAlarm("--clear needs --alarm: give the level that enters the alarm too")
    if alarm:
        AlarmRule.parse(alarm, clear, task=read_manifest(folder)["task"])  # refused before anything is copied
    registry = Registry(models, create=True)
    version = registry.add(name, folder, promote=not stage)
    stderr().print(f"[green]added[/] {plain(name)} version {version}" + (" (staged, not live)" if stage else " (live)"))
    if alarm:
        rule = registry.set_alarm(name, alarm, clear)
        stderr().print(f"alarm: {plain(rule.text)}")


@models_app.command("alarm")
@friendly
def models_alarm(models: RegistryOpt, name: Annotated[str, typer.Argument()], alarm: AlarmOpt = None,
                 clear: ClearOpt = None,
                 default: Annotated[bool, typer.Option("--default", help="Remove the model's own rule (failure models "
                                                       "then alarm at their threshold; RUL models at the stream's "
                                                       "--rul-alert; monitor models at a score of 0.5, clearing "
                                                       "below 0.4).")] = False):
    """Set when NAME's alarm enters and clears, e.g. --alarm 'rul<=20' --clear 'rul>=30'; stream workers apply it within
    seconds. Without options, show the rule in force."""
    from shopfloor.registry import Registry

    registry = Registry(models)
    if alarm is None and not default:
        if clear:
            raise BadAlarm("--clear needs --alarm: give the level that enters the alarm too")
        rule = registry.alarm(name)
        typer.echo(rule.text if rule else "no rule of its own (the default applies)")
        return
    rule = registry.set_alarm(name, None if default else alarm, clear)
    stderr().print(f"[green]{plain(name)}[/]: " + (f"alarm {plain(rule.text)}" if rule else "the default alarm applies"))


@models_app.command("list")
@friendly
def models_list(models: RegistryOpt):
    """Every model with its versions and the live one."""
    from rich.table import Table

    from shopfloor.registry import Registry

    table = Table("model", "task", "live", "versions", "created", "alarm")
    entries = Registry(models).describe()
    for entry in entries:
        alarm = entry.get("alarm")
        table.add_row(entry["name"], entry.get("task", "?"), str(entry["live"] or "-"),
                      ", ".join(map(str, entry["versions"])), entry.get("created") or "",
                      f"{alarm['enter']}, clears {alarm['clear']}" if alarm else "default")
    stdout().print(table)
    for entry in entries:
        if entry.get("problem"):  # a damaged model is listed with the reason, the others as usual
            stderr().print(f"[red]{plain(entry['name'])}[/]: {plain(entry['problem'])}")


@models_app.command("promote")
@friendly
def models_promote(models: RegistryOpt, name: Annotated[str, typer.Argument()],
                   version: Annotated[int, typer.Argument(help="The version to make live.")]):
    """Make VERSION the live version of NAME; the service and stream workers switch within a few seconds."""
    from shopfloor.registry import Registry

    Registry(models).promote(name, version)
    stderr().print(f"[green]{plain(name)} version {version} is live[/]")


@models_app.command("sign")
@friendly
def models_sign(models: RegistryOpt, name: Annotated[str | None, typer.Argument(help="One model; all when left out.")] = None):
    """Sign the versions a registry from before signatures holds (each is loaded whole first; versions already
    signed are left alone, so a tampered one is never trusted again)."""
    from shopfloor.registry import Registry

    signed = Registry(models).sign(name)
    for model, version in signed:
        stderr().print(f"signed {plain(model)} version {version}")
    stderr().print(f"[green]{len(signed)} version(s) signed[/]" if signed else "nothing to sign: every version is signed")


@models_app.command("rollback")
@friendly
def models_rollback(models: RegistryOpt, name: Annotated[str, typer.Argument()]):
    """Make the previously live version of NAME live again (a second rollback undoes the first)."""
    from shopfloor.registry import Registry

    version = Registry(models).rollback(name)
    stderr().print(f"[green]{plain(name)} rolled back to version {version}[/]")


@token_app.command("create")
@friendly
def token_create(models: RegistryOpt, name: Annotated[str, typer.Option("--name", help="Who uses it, e.g. 'mes' or 'anna'.")],
                 scope: Annotated[str, typer.Option("--scope", help="read (predict, inspect, dashboard) or admin "
                                                    "(also promote and roll back models).")] = "read"):
    """Create an API token; it is printed once, and only its hash is kept."""
    from shopfloor.registry import Registry
    from shopfloor.serve.auth import create_token

    Registry(models)  # a clear message when the folder is not a registry
    token = create_token(models, name, scope)
    typer.echo(token)
    stderr().print(f"[green]created[/] {scope} token '{plain(name)}': copy it now, it is not stored in plain text")


@token_app.command("list")
@friendly
def token_list(models: RegistryOpt):
    """Name, scope and creation time of every token (never the token itself)."""
    from rich.table import Table

    from shopfloor.serve.auth import list_tokens

    table = Table("name", "scope", "created", "starts with")
    for entry in list_tokens(models):
        table.add_row(entry["name"], entry["scope"], entry.get("created") or "", (entry.get("hint") or "") + "...")
    stdout().print(table)


@token_app.command("revoke")
@friendly
def token_revoke(models: RegistryOpt, name: Annotated[str, typer.Argument(help="The token's name.")]):
    """Revoke a token: the service refuses it within a second."""
    from shopfloor.serve.auth import revoke_token

    revoke_token(models, name)
    stderr().print(f"[green]revoked[/] token '{plain(name)}'")


@app.command()
@friendly
def serve(models: RegistryOpt,
          host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: every network).")] = "127.0.0.1",
          port: Annotated[int, typer.Option("--port")] = 8000,
          database: DatabaseOpt = None,
          max_body_mb: Annotated[float, typer.Option("--max-body-mb", help="Largest JSON request accepted.")] = 8.0,
          max_image_mb: Annotated[float, typer.Option("--max-image-mb", help="Largest image upload accepted.")] = 10.0):
    """Serve the registry's live models over REST, with the dashboard at / and the API docs at /docs."""
    from shopfloor.registry import Registry
    from shopfloor.serve.app import run_service

    Registry(models)
    stderr().print(f"serving {plain(models)} on http://{host}:{port} (dashboard /, API docs /docs); Ctrl-C stops")
    run_service(models, host, port, database, max_body_bytes=int(max_body_mb * 2**20),
                max_image_bytes=int(max_image_mb * 2**20))


@app.command()
@friendly
def stream(broker: BrokerOpt, models: RegistryOpt,
           topic: Annotated[list[str] | None, typer.Option("--topic", help="Telemetry topics, repeatable; '+' matches "
                                                           "one level (default plant/+/+/telemetry).")] = None,
           database: DatabaseOpt = None,
           model: Annotated[list[str] | None, typer.Option("--model", help="Score with these registry models only "
                                                           "(default: every live failure and RUL model).")] = None,
           rul_alert: Annotated[float | None, typer.Option("--rul-alert", help="For RUL models without an alarm rule of "
                                                           "their own ('shopfloor models alarm'): alert when the low end "
                                                           "of a machine's RUL interval reaches this many cycles.")] = None,
           group: Annotated[str | None, typer.Option("--group", help="Workers of one group share the messages (an MQTT 5 "
                                                     "shared subscription: failure risk only; give each worker its "
                                                     "own --client-id so that a restart resumes its session).")] = None,
           client_id: Annotated[str | None, typer.Option("--client-id", help="The broker keeps the readings that arrive "
                                                         "while the worker is away under this id (default: the same "
                                                         "for this host and topics at every start).")] = None,
           ready_file: Annotated[Path | None, typer.Option("--ready-file", help="Written once the worker is subscribed "
                                                           "(removed when it stops): a script publishes after it.")] = None):
    """Score live sensor readings from MQTT, store them, and publish alerts to plant/<line>/<machine>/alerts."""
    from shopfloor.stream.worker import run_worker

    counts = run_worker(broker, topic or ["plant/+/+/telemetry"], models, database, group=group, client_id=client_id,
                        model_names=model or None,
                        rul_alert=rul_alert, ready_file=ready_file)
    stderr().print(f"stopped: {plain(_counts(counts))}")


@app.command()
@friendly
def replay(broker: BrokerOpt,
           data: Annotated[Path, typer.Option("--data", help="Run histories (C-MAPSS text, CSV or Parquet with "
                                              "--unit/--time) or a table of snapshots.")],
           rate: Annotated[float, typer.Option("--rate", help="Readings per second over the whole line.")] = 100.0,
           line: Annotated[list[str] | None, typer.Option("--line", help="Line name in the topics; repeat to deal "
                                                          "the machines over several lines.")] = None,
           machines: Annotated[int | None, typer.Option("--machines", help="Snapshots: machines to deal the rows to; "
                                                        "histories: copies of the units up to this many machines.")] = None,
           unit: Annotated[str | None, typer.Option("--unit", help="Unit column of a CSV/Parquet history.")] = None,
           time: Annotated[str | None, typer.Option("--time", help="Time or cycle column of a CSV/Parquet history.")] = None,
           readings_per_message: Annotated[int, typer.Option("--readings-per-message", help="A gateway's batch: "
                                                             "consecutive readings of one machine per message.")] = 10,
           loop: Annotated[bool, typer.Option("--loop", help="Start again at the end, until Ctrl-C.")] = False,
           dayfirst: DayFirstOpt = None):
    """Publish recorded data to MQTT as a simulated line (plant/<line>/<machine>/telemetry)."""
    from shopfloor.data.times import date_order
    from shopfloor.stream.replay import replay as publish

    counts = publish(data, broker, rate, line=line or ["line-1"], readings_per_message=readings_per_message, loop=loop,
                     machines=machines, unit=unit, time=time, date_order=date_order(dayfirst))
    stderr().print(f"[green]replayed[/] {plain(_counts(counts))}")


def _counts(counts: dict) -> str:
    return ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items() if isinstance(v, int))

