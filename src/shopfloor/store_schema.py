"""What the shared database holds: its tables, the shape of the rows written to them, and the one upgrade path
for databases made by an older shopfloor (columns and indexes added since, all nullable).

Readings are unique on (line, machine, time) because MQTT delivers at least once: see `store` for why a second
copy is ignored.

Times: `time` is the machine's own clock (a cycle number or epoch seconds, as the reading carried it);
`sent_at`, `received_at`, `stored_at`, `updated_at` and `at` are epoch seconds (floats, UTC).
"""

from __future__ import annotations

import time as clock

import sqlalchemy as sa

metadata = sa.MetaData()
CLASS_TEXT = 128  # characters of a fault class's name (a class folder's name)
SENSORS_TEXT = 400  # characters of "sensor share, ..." kept with a score (three sensors with long historian names fit)

# Keyed by (line, machine, time) itself, without a row id (SQLite's WITHOUT ROWID): one B-tree per insert
# instead of a table and a unique index, which halved the cost of storing a reading.
readings = sa.Table(
    "readings", metadata,
    sa.Column("line", sa.String(128), nullable=False),
    sa.Column("machine", sa.String(128), nullable=False),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("values", sa.Text, nullable=False),  # the sensor values as a JSON object
    sa.Column("sent_at", sa.Float),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.PrimaryKeyConstraint("line", "machine", "time", name="readings_once"),
    sqlite_with_rowid=False,
)

predictions = sa.Table(
    "predictions", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("line", sa.String(128), nullable=False),
    sa.Column("machine", sa.String(128), nullable=False),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("risk", sa.Float),
    sa.Column("rul", sa.Float),
    sa.Column("rul_low", sa.Float),
    sa.Column("rul_high", sa.Float),
    sa.Column("sent_at", sa.Float),  # copied from the reading, so that latency needs no join
    sa.Column("score", sa.Float),  # a monitor model's anomaly score (0-1, anomaly at 0.5)
    sa.Column("score_sensors", sa.String(SENSORS_TEXT)),  # and the sensors behind it: "flow 0.62, pressure 0.21, ..."
    sa.Column("stored_at", sa.Float, nullable=False),
    # a fault-diagnosis model's verdict on one window of a block of samples (time: the window's last sample)
    sa.Column("verdict", sa.String(CLASS_TEXT)),
    sa.Column("verdict_probability", sa.Float),
    sa.Column("runner_up", sa.String(CLASS_TEXT)),
    sa.Column("unknown", sa.Boolean),
    sa.UniqueConstraint("line", "machine", "time", "model", name="predictions_once"),
)

machines = sa.Table(
    "machines", metadata,
    sa.Column("line", sa.String(128), primary_key=True),
    sa.Column("machine", sa.String(128), primary_key=True),
    sa.Column("time", sa.Float),
    sa.Column("risk", sa.Float),
    sa.Column("risk_threshold", sa.Float),
    sa.Column("risk_model", sa.String(80)),  # "<model>@<version>"
    sa.Column("rul", sa.Float),
    sa.Column("rul_low", sa.Float),
    sa.Column("rul_high", sa.Float),
    sa.Column("rul_model", sa.String(80)),
    sa.Column("alerting", sa.Boolean, nullable=False, default=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("alarms", sa.Text),  # JSON: each model's alarm state (stream.machines.MachineState), for restarts
    sa.Column("score", sa.Float),
    sa.Column("score_sensors", sa.String(SENSORS_TEXT)),
    sa.Column("score_model", sa.String(80)),
    sa.Column("verdict", sa.String(CLASS_TEXT)),
    sa.Column("verdict_probability", sa.Float),
    sa.Column("runner_up", sa.String(CLASS_TEXT)),
    sa.Column("unknown", sa.Boolean),
    sa.Column("verdict_model", sa.String(80)),
)

alerts = sa.Table(
    "alerts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("line", sa.String(128), nullable=False),
    sa.Column("machine", sa.String(128), nullable=False),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # "risk", "rul", "score", "verdict" or "drift" (`watch.line`)
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("value", sa.Float, nullable=False),  # the value the rule watches (risk, low end of the RUL interval, score)
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("rule", sa.String(64)),  # the alarm rule the machine met, e.g. "rul<=20"
    sa.Column("clear", sa.String(64)),  # and where the alarm clears, e.g. "rul>=30"
    sa.Column("acked_by", sa.String(64)),  # the name of the token that acknowledged the alert
    sa.Column("acked_at", sa.Float),
    sa.Column("sensors", sa.String(SENSORS_TEXT)),  # a monitor model's alert: the sensors behind it, with their shares
    sa.Index("alerts_by_time", "at"),
    sa.Index("alerts_by_machine", "line", "machine", "at"),
)

# A dead letter is stored once per message identity (`message_key`: topic, payload and the reading's position in
# it): the broker delivers a message again when a worker stopped between the commit and the acknowledgement.
dead_letters = sa.Table(
    "dead_letters", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("message_key", sa.String(64)),  # null in rows stored before it existed
    sa.Index("dead_letters_once", "message_key", unique=True),
)

# A fault-diagnosis model's samples of a machine that wait for a full window (`stream.blocks`): at most one window
# per machine and model, written with the batch, so that a restarted worker cuts the windows one that ran on would.
block_tails = sa.Table(
    "block_tails", metadata,
    sa.Column("line", sa.String(128), primary_key=True),
    sa.Column("machine", sa.String(128), primary_key=True),
    sa.Column("model", sa.String(64), primary_key=True),
    sa.Column("window", sa.Integer, nullable=False),
    sa.Column("rate", sa.Float),
    sa.Column("channels", sa.Text, nullable=False),  # the model's channels, comma-separated, in its order
    sa.Column("seen", sa.BigInteger, nullable=False),  # samples since the machine's samples (re)started
    sa.Column("next_time", sa.Float, nullable=False),  # where they end: the time of the next sample
    sa.Column("newest", sa.Float, nullable=False),  # the newest block's time
    sa.Column("samples", sa.LargeBinary, nullable=False),  # float32 [channels, seen % window], C order
    sa.Column("updated_at", sa.Float, nullable=False),
)

inspections = sa.Table(
    "inspections", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("file", sa.Text, nullable=False),
    sa.Column("verdict", sa.String(64), nullable=False),
    sa.Column("score", sa.Float),
    sa.Column("image", sa.LargeBinary),  # PNG
    sa.Column("heatmap", sa.LargeBinary),  # PNG
    sa.Column("at", sa.Float, nullable=False),
)

# The drift watch's verdicts (`watch.line`): per live model and input, every few hundred readings, so that the
# model-health view can show drift per input over time. A table of its own: nothing above changes.
drift_verdicts = sa.Table(
    "drift_verdicts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("input", sa.String(256), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # "input" or "output"
    sa.Column("verdict", sa.String(8), nullable=False),  # "ok", "watch" or "drift"
    sa.Column("psi", sa.Float),
    sa.Column("wasserstein_sd", sa.Float),
    sa.Column("js", sa.Float),
    sa.Column("p_value", sa.Float),
    sa.Column("readings", sa.Integer, nullable=False),
    sa.Column("findings", sa.Text),  # "stuck: the last 40 readings are all 12.5; ..."
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("drift_verdicts_by_model", "model", "at"),
)

# What a machine's reading turned out to be, once known (the machine failed or not, the part was scrap or not, found
# at end-of-line inspection hours later): sent to the service's outcomes route (`serve.outcomes`), one row per
# (line, machine, time, model), so that a label delivered again replaces itself. `prediction_id` is the stored
# prediction it was joined to, null while none matched: unmatched labels are kept, never dropped, and a label sent
# again is matched again. A table of its own, as drift_verdicts: nothing above changes.
outcomes = sa.Table(
    "outcomes", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("line", sa.String(128), nullable=False),  # as the sender named it; "" where it named none
    sa.Column("machine", sa.String(128), nullable=False),
    sa.Column("time", sa.Float, nullable=False),  # the reading's time, on the machine's own clock
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(CLASS_TEXT), nullable=False),  # one of the model's classes, as text
    sa.Column("prediction_id", sa.BigInteger().with_variant(sa.Integer, "sqlite")),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.UniqueConstraint("line", "machine", "time", "model", name="outcomes_once"),
    sa.Index("outcomes_by_prediction", "prediction_id"),
)

READING_KEYS = ("line", "machine", "time", "values", "sent_at", "received_at")
PREDICTION_KEYS = ("line", "machine", "time", "model", "version", "risk", "rul", "rul_low", "rul_high", "sent_at", "score",
                   "score_sensors", "verdict", "verdict_probability", "runner_up", "unknown")
MACHINE_KEYS = ("line", "machine", "time", "risk", "risk_threshold", "risk_model", "rul", "rul_low", "rul_high",
                "rul_model", "alerting", "alarms", "score", "score_sensors", "score_model", "verdict", "verdict_probability",
                "runner_up", "unknown", "verdict_model")
OUTCOME_KEYS = ("line", "machine", "time", "model", "outcome", "prediction_id")
TAIL_KEYS = ("line", "machine", "model", "window", "rate", "channels", "seen", "next_time", "newest", "samples")
ALERT_KEYS = ("line", "machine", "time", "kind", "model", "version", "value", "threshold", "message", "at", "rule",
              "clear", "sensors")


def create_tables(engine: sa.Engine) -> None:
    """Create what a database lacks: the tables of a new one, the columns and indexes added since an older one."""
    # Two processes (service and worker) may create the tables at the same moment; the loser retries once.
    for attempt in range(2):
        try:
            metadata.create_all(engine, checkfirst=True)
            add_new_columns(engine)
            return
        except (sa.exc.OperationalError, sa.exc.IntegrityError, sa.exc.ProgrammingError):
            if attempt:
                raise
            clock.sleep(0.2)


def add_new_columns(engine: sa.Engine) -> None:
    """Columns and indexes added since a database was made (alarm states, acknowledgements, dead-letter keys, the
    monitor models' scores and sensors, the fault-diagnosis models' verdicts; new tables such as block_tails,
    drift_verdicts and outcomes come from `create_all`):
    the columns are nullable, so an ALTER adds them and the rows already stored keep null there."""
    existing = sa.inspect(engine)
    with engine.begin() as db:
        for table in metadata.sorted_tables:
            have = {c["name"] for c in existing.get_columns(table.name)}
            for column in table.columns:
                if column.name not in have and column.nullable:
                    kind = column.type.compile(dialect=engine.dialect)
                    db.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')
            for index in table.indexes:
                index.create(db, checkfirst=True)
