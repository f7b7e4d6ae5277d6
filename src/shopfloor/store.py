"""Storage shared by the stream worker, the REST service and the dashboard: SQLite by default, PostgreSQL by URL.

One `Store(url)` per process. The stream worker writes whole batches (`write_batch`: readings, predictions,
alerts and the machines' latest state in one transaction), the REST service records inspections, and the
dashboard reads plain dicts and lists. SQLAlchemy Core keeps the two databases on one code path; the only
dialect-specific statements are the "insert, and ignore what is already there" and "insert or update" of
readings, predictions and machines, which both SQLite and PostgreSQL spell `ON CONFLICT`.

Why readings are unique on (line, machine, time): MQTT QoS 1 delivers at least once, so after a broker or
worker restart a batch may arrive twice. The second copy is ignored here, which makes storing idempotent and
lets the worker acknowledge messages only after their batch is committed.

The tables themselves (and what their times mean), and the columns added to older databases, are in
`store_schema`; here is what is asked of them.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time as clock
from collections.abc import Iterable
from pathlib import Path

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from shopfloor.errors import ShopfloorError
from shopfloor.store_schema import (
    ALERT_KEYS,
    MACHINE_KEYS,
    OUTCOME_KEYS,
    PREDICTION_KEYS,
    READING_KEYS,
    TAIL_KEYS,
    alerts,
    block_tails,
    create_tables,
    dead_letters,
    inspections,
    machines,
    outcomes,
    predictions,
    readings,
)

DATABASE_FILE = "shopfloor.db"


class StoreError(ShopfloorError):
    """The database URL cannot be used, or the database cannot be reached."""


ALERT_ORDERS = {"newest": ("at", True), "oldest": ("at", False), "machine": ("machine", False), "kind": ("kind", False),
                "value": ("value", True)}  # the dashboard's sort keys: column, descending


def default_url(models: str | os.PathLike) -> str:
    """The database that `serve` and `stream` share when no --database is given: a SQLite file in the registry."""
    return f"sqlite:///{Path(models).resolve() / DATABASE_FILE}"


def database_url(url: str | os.PathLike) -> str:
    """A SQLAlchemy URL from what a user typed: a URL, `postgresql://...` (psycopg 3 is used), or a file path."""
    text = os.fspath(url)
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    if "://" not in text:
        return f"sqlite:///{Path(text).resolve()}"
    if not text.startswith(("sqlite://", "postgresql+psycopg://")):
        raise StoreError(f"'{text}' is not a database this version supports: use sqlite:///path/to/file.db "
                         "or postgresql://user@host:port/database")
    return text


class Store:
    """Readings, predictions, machines, alerts, dead letters, block tails, inspections and outcomes in one SQL database."""

    def __init__(self, url: str | os.PathLike):
        self.url = database_url(url)
        self.dialect = "sqlite" if self.url.startswith("sqlite") else "postgresql"
        self._insert = sqlite.insert if self.dialect == "sqlite" else postgresql.insert
        if self.dialect == "sqlite":
            path = self.url.split(":///", 1)[1] if ":///" in self.url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine = sa.create_engine(self.url, connect_args={"timeout": 30})
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            try:
                self.engine = sa.create_engine(self.url, pool_pre_ping=True)
            except ModuleNotFoundError:
                raise StoreError("PostgreSQL needs the psycopg driver: pip install 'shopfloor[postgres]'") from None
        self._checkpointer = None
        paramstyle = self.engine.dialect.paramstyle
        self._sql = {"readings": _insert_ignoring_sql(readings, READING_KEYS, paramstyle),
                     "predictions": _insert_ignoring_sql(predictions, (*PREDICTION_KEYS, "stored_at"), paramstyle)}
        try:
            create_tables(self.engine)
        except sa.exc.OperationalError as err:
            raise StoreError(f"cannot open the database {self.engine.url.render_as_string(hide_password=True)}: "
                             f"{err.orig}") from None

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop.set()
            self._checkpointer.join(5)
        self.engine.dispose()

    # -- writing ------------------------------------------------------------------------------------------
    def write_batch(self, readings_: Iterable[dict], predictions_: Iterable[dict] = (), alerts_: Iterable[dict] = (),
                    machines_: Iterable[dict] = (), dead_letters_: Iterable[dict] = (), tails: Iterable[dict] = ()) -> float:
        """Store one batch in one transaction; readings and predictions already stored are ignored.

        readings: dicts with line, machine, time, values (dict or JSON text), sent_at (or None), received_at.
        predictions: line, machine, time, model, version, risk, rul, rul_low, rul_high, score, score_sensors (None
        where the model does not give it), sent_at. machines: the latest state per machine (see MACHINE_KEYS), upserted.
        dead letters: see `write_dead_letters`; in the same transaction, so that a retried batch never
        stores its alerts twice, and each once (a redelivered message's dead letter is ignored). tails: the samples
        of machines that wait for a full window of a fault-diagnosis model (`stream.blocks`), upserted. Returns the
        stored_at time written on the predictions (epoch seconds, taken as the rows are built: the commit
        follows a few milliseconds later).
        """
        if self.dialect == "sqlite" and self._checkpointer is None:
            self._checkpointer = _Checkpointer(self.engine)
        stored_at = clock.time()
        rows = [_reading_row(r, stored_at) for r in readings_]
        preds = [(*(p.get(k) for k in PREDICTION_KEYS), stored_at) for p in predictions_]
        alert_rows = [{**{k: a.get(k) for k in ALERT_KEYS}, "at": a.get("at") or stored_at} for a in alerts_]
        states = [{**{k: m.get(k) for k in MACHINE_KEYS}, "alerting": bool(m.get("alerting")), "updated_at": stored_at}
                  for m in machines_]
        letters = _dead_letter_rows(dead_letters_, stored_at)
        tail_rows = [{**{k: t[k] for k in TAIL_KEYS}, "updated_at": stored_at} for t in tails]
        with self.engine.begin() as db:
            # readings and predictions go straight to the driver's executemany: at 20,000 readings a second,
            # SQLAlchemy's per-row parameter handling cost three times the insert itself
            if rows:
                db.exec_driver_sql(self._sql["readings"], rows)
            if preds:
                db.exec_driver_sql(self._sql["predictions"], preds)
            if alert_rows:
                db.execute(alerts.insert(), alert_rows)
            if states:
                upsert = self._insert(machines)
                changed = {c: upsert.excluded[c] for c in (*MACHINE_KEYS[2:], "updated_at")}
                db.execute(upsert.on_conflict_do_update(index_elements=["line", "machine"], set_=changed), states)
            if letters:
                db.execute(self._insert(dead_letters).on_conflict_do_nothing(), letters)
            if tail_rows:
                upsert = self._insert(block_tails)
                changed = {c: upsert.excluded[c] for c in (*TAIL_KEYS[3:], "updated_at")}
                db.execute(upsert.on_conflict_do_update(index_elements=["line", "machine", "model"], set_=changed),
                           tail_rows)
        return stored_at

    def write_dead_letter(self, topic: str, payload: bytes, reason: str) -> None:
        self.write_dead_letters([{"topic": topic, "payload": payload, "reason": reason}])

    def write_dead_letters(self, letters: Iterable[dict]) -> None:
        """Many dead letters (dicts with topic, payload bytes, reason, optional at and position: the reading's index
        in the message, None for the whole message) in one transaction; one already stored is ignored."""
        rows = _dead_letter_rows(letters, clock.time())
        if rows:
            with self.engine.begin() as db:
                db.execute(self._insert(dead_letters).on_conflict_do_nothing(), rows)

    def record_inspection(self, model: str, version: int, file: str, verdict: str, score: float | None,
                          image_png: bytes | None, heatmap_png: bytes | None) -> int:
        """One inspected image with its verdict and heatmap; returns its id for `inspection_image`."""
        row = {"model": model, "version": int(version), "file": str(file)[:1000], "verdict": str(verdict),
               "score": None if score is None else float(score), "image": image_png, "heatmap": heatmap_png,
               "at": clock.time()}
        with self.engine.begin() as db:
            return int(db.execute(inspections.insert(), row).inserted_primary_key[0])

    def record_outcomes(self, rows: Iterable[dict]) -> None:
        """Known outcomes ({line, machine, time, model, outcome, prediction_id}, joined by `serve.outcomes`) in one
        transaction; one delivered again replaces the stored one (the last of a key wins), so redelivery is harmless."""
        now = clock.time()
        latest = {(r["line"], r["machine"], float(r["time"]), r["model"]): r for r in rows}  # PostgreSQL refuses a key twice
        stored = [{**{k: r[k] for k in OUTCOME_KEYS}, "received_at": now} for r in latest.values()]
        if stored:
            upsert = self._insert(outcomes)
            changed = {c: upsert.excluded[c] for c in ("outcome", "prediction_id", "received_at")}
            with self.engine.begin() as db:
                db.execute(upsert.on_conflict_do_update(index_elements=["line", "machine", "time", "model"], set_=changed),
                           stored)

    # -- reading --------------------------------------------------------------------------------------------
    def fleet(self) -> list[dict]:
        """The latest state of every machine, by line and machine."""
        query = sa.select(machines).order_by(machines.c.line, machines.c.machine)
        return self._rows(query)

    def machine(self, line: str, machine: str) -> dict | None:
        """One machine's latest state, or None when it has sent nothing yet."""
        rows = self._rows(sa.select(machines).where(machines.c.line == line, machines.c.machine == machine))
        return rows[0] if rows else None

    def trend(self, line: str, machine: str, limit: int = 200) -> list[dict]:
        """A machine's latest predictions, oldest first: one row per reading and model (risk, rul or score set), or
        per window of a block (verdict set)."""
        p = predictions.c
        query = (sa.select(p.time, p.model, p.version, p.risk, p.rul, p.rul_low, p.rul_high, p.score, p.score_sensors,
                           p.verdict, p.verdict_probability, p.runner_up, p.unknown, p.stored_at)
                 .where(p.line == line, p.machine == machine).order_by(p.time.desc(), p.model).limit(int(limit)))
        return self._rows(query)[::-1]

    def readings(self, line: str, machine: str, limit: int = 200) -> list[dict]:
        """A machine's latest readings, oldest first, with the sensor values as a dict."""
        r = readings.c
        query = (sa.select(r.time, r["values"], r.sent_at, r.received_at)
                 .where(r.line == line, r.machine == machine).order_by(r.time.desc()).limit(int(limit)))
        rows = self._rows(query)[::-1]
        for row in rows:
            row["values"] = json.loads(row["values"])
        return rows

    def histories(self, machines: Iterable[tuple[str, str]], first: int, last: int,
                  until: float | None = None) -> dict[tuple[str, str], dict]:
        """What each (line, machine) has sent: count, its `first` earliest and `last` latest sensor values (oldest
        first) with the times of the latest (`times`), and the time of the newest reading; a stream worker starts a
        machine's window from it. One
        query counts them all, so machines never heard of cost almost nothing. `until`: readings stamped later
        are left out (one from the future, stored before the worker quarantined such stamps, froze the window)."""
        keys = list(machines)
        r = readings.c
        bound = (r.time <= until,) if until is not None else ()
        out = {key: {"count": 0, "first": [], "last": [], "times": [], "newest": None} for key in keys}
        if not keys:
            return out
        with self.engine.connect() as db:
            counts = []
            for k in range(0, len(keys), 200):  # OR of key lookups: SQLite scans the table for a tuple IN (...)
                found = sa.or_(*(sa.and_(r.line == line, r.machine == machine) for line, machine in keys[k:k + 200]))
                counts += db.execute(sa.select(r.line, r.machine, sa.func.count(), sa.func.max(r.time))
                                     .where(found, *bound).group_by(r.line, r.machine)).all()
            for line, machine, count, newest in counts:
                mine = (r.line == line, r.machine == machine, *bound)
                early = db.execute(sa.select(r["values"]).where(*mine).order_by(r.time).limit(int(first))).scalars().all()
                late = db.execute(sa.select(r.time, r["values"]).where(*mine).order_by(r.time.desc())
                                  .limit(int(last))).all()[::-1]
                out[(line, machine)] = {"count": int(count), "newest": float(newest),
                                        "first": [orjson.loads(v) for v in early],
                                        "last": [orjson.loads(v) for _, v in late], "times": [t for t, _ in late]}
        return out

    def block_tails(self, machines: Iterable[tuple[str, str]], model: str) -> dict[tuple[str, str], dict]:
        """The samples each (line, machine) has waiting for a full window of `model` (`stream.blocks`), where stored."""
        keys, t = list(machines), block_tails.c
        out = {}
        for k in range(0, len(keys), 200):
            found = sa.or_(*(sa.and_(t.line == line, t.machine == machine) for line, machine in keys[k:k + 200]))
            for row in self._rows(sa.select(block_tails).where(found, t.model == model)):
                out[(row["line"], row["machine"])] = {**row, "samples": bytes(row["samples"])}
        return out

    def alerts(self, limit: int = 50, line: str | None = None, machine: str | None = None, kind: str | None = None,
               acknowledged: bool | None = None, order: str = "newest") -> list[dict]:
        """The latest alerts, newest first (or by `order`: see ALERT_ORDERS); of one line, or one machine of it, of
        one kind, acknowledged or not, when given."""
        if order not in ALERT_ORDERS:
            raise StoreError(f"'{order}' is not a way to sort alerts: use {', '.join(ALERT_ORDERS)}")
        a = alerts.c
        query = sa.select(alerts)
        for column, wanted in (("line", line), ("machine", machine), ("kind", kind)):
            if wanted is not None:
                query = query.where(a[column] == wanted)
        if acknowledged is not None:
            query = query.where(a.acked_at.is_not(None) if acknowledged else a.acked_at.is_(None))
        column, descending = ALERT_ORDERS[order]
        first = a[column].desc() if descending else a[column].asc()
        return self._rows(query.order_by(first, a.at.desc(), a.id.desc()).limit(int(limit)))

    def acknowledge(self, id: int, by: str) -> dict | None:
        """Mark an alert acknowledged by `by` (a token's name), now; one already acknowledged keeps who and when.
        Returns the alert, or None when there is no alert `id`."""
        a = alerts.c
        with self.engine.begin() as db:
            db.execute(alerts.update().where(a.id == int(id), a.acked_at.is_(None))
                       .values(acked_by=str(by)[:64], acked_at=clock.time()))
            row = db.execute(sa.select(alerts).where(a.id == int(id))).first()
        return dict(row._mapping) if row is not None else None

    def dead_letters(self, limit: int = 50) -> list[dict]:
        """The latest dead letters, newest first; payloads as bytes."""
        return self._rows(sa.select(dead_letters).order_by(dead_letters.c.id.desc()).limit(int(limit)))

    def inspections(self, limit: int = 24) -> list[dict]:
        """The latest inspections, newest first, without the image blobs (fetch them with inspection_image)."""
        i = inspections.c
        query = (sa.select(i.id, i.model, i.version, i.file, i.verdict, i.score, i.at,
                           (i.heatmap.is_not(None)).label("has_heatmap"))
                 .order_by(i.id.desc()).limit(int(limit)))
        return self._rows(query)

    def inspection_image(self, id: int, kind: str = "image") -> bytes | None:
        """The PNG of an inspection: kind "image" (the upload) or "heatmap"; None if there is none."""
        if kind not in ("image", "heatmap"):
            raise StoreError(f"'{kind}' is not an inspection image: use 'image' or 'heatmap'")
        with self.engine.connect() as db:
            value = db.execute(sa.select(inspections.c[kind]).where(inspections.c.id == int(id))).scalar()
        return bytes(value) if value is not None else None

    def counts(self, only: tuple[str, ...] | None = None) -> dict:
        """How many readings, predictions, machines (alerting among them), alerts, dead letters, inspections.

        Counting readings or predictions reads the whole table (millions of rows after a day on a busy line):
        pages that refresh every few seconds ask `only` for the small tables.
        """
        count = sa.func.count()
        queries = {"readings": sa.select(count).select_from(readings),
                   "predictions": sa.select(count).select_from(predictions),
                   "machines": sa.select(count).select_from(machines),
                   "alerting": sa.select(count).select_from(machines).where(machines.c.alerting.is_(True)),
                   "alerts": sa.select(count).select_from(alerts),
                   "dead_letters": sa.select(count).select_from(dead_letters),
                   "inspections": sa.select(count).select_from(inspections)}
        with self.engine.connect() as db:
            return {name: int(db.execute(query).scalar() or 0) for name, query in queries.items()
                    if only is None or name in only}

    def _rows(self, query) -> list[dict]:
        with self.engine.connect() as db:
            return [dict(row._mapping) for row in db.execute(query)]


def _dead_letter_rows(letters: Iterable[dict], now: float) -> list[dict]:
    rows = []
    for d in letters:
        payload = d["payload"] if isinstance(d["payload"], bytes) else str(d["payload"]).encode()
        rows.append({"topic": str(d["topic"]), "reason": str(d["reason"]), "at": d.get("at") or now, "payload": payload,
                     "message_key": dead_letter_key(str(d["topic"]), payload, d.get("position"))})
    return rows


def dead_letter_key(topic: str, payload: bytes, position: int | None = None) -> str:
    """The identity of what went to the dead letters: a message (position None) or one reading of it."""
    digest = hashlib.sha256(topic.encode("utf-8", "surrogateescape"))
    digest.update(b"\0" + payload + b"\0" + ("message" if position is None else str(int(position))).encode())
    return digest.hexdigest()


def _reading_row(reading: dict, now: float) -> tuple:
    values = reading.get("values", {})
    return (reading["line"], reading["machine"], float(reading["time"]),
            values if isinstance(values, str) else orjson.dumps(values).decode(),
            reading.get("sent_at"), reading.get("received_at") or now)


def _insert_ignoring_sql(table: sa.Table, columns: tuple[str, ...], paramstyle: str) -> str:
    """`INSERT ... ON CONFLICT DO NOTHING` in the driver's own placeholders (SQLite and PostgreSQL both spell it so)."""
    mark = "?" if paramstyle == "qmark" else "%s"
    names = ", ".join(f'"{c}"' for c in columns)
    return f"INSERT INTO {table.name} ({names}) VALUES ({', '.join([mark] * len(columns))}) ON CONFLICT DO NOTHING"


class _Checkpointer(threading.Thread):
    """Folds SQLite's write-ahead log back into the database once a second, beside the writer.

    SQLite's own checkpoints run inside a committing writer and sync the file to disk: they made the
    average commit of a 1,000-reading batch 13 ms instead of 3. Here they run on a connection of their
    own in a thread (the sqlite3 module lets go of the GIL while SQLite works), and a PASSIVE checkpoint
    never blocks the writer or the readers.
    """

    def __init__(self, engine, every: float = 1.0):
        super().__init__(name="shopfloor-sqlite-checkpoint", daemon=True)
        self.engine, self.every, self.stop = engine, every, threading.Event()
        self.start()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            try:
                with self.engine.connect() as db:
                    db.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except sa.exc.SQLAlchemyError:
                pass  # busy or closing: the next round tries again, and the log only grows meanwhile


def _sqlite_pragmas(connection, _record) -> None:
    # WAL lets the dashboard read while the worker writes; NORMAL sync is safe with WAL (a power cut loses at
    # most the last transactions, never corrupts) and is what makes a commit per batch cheap.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA wal_autocheckpoint=0")  # the writer's Store checkpoints in its own thread
    cursor.close()
