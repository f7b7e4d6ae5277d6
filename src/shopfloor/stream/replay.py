"""Replay recorded data to MQTT as a simulated line: `shopfloor replay --data FILE --rate N`.

Two kinds of data:
- run histories (C-MAPSS text files, or CSV/Parquet with `unit` and `time` columns): each unit becomes a
  machine (`unit-<id>`), replayed cycle by cycle in time order, all machines interleaved as on a real
  line. With `machines` larger than the number of units, units are reused (`unit-<id>-<copy>`), which
  is how the load benchmark simulates 10,000 machines from 100 recorded engines;
- snapshot tables (one row per observation, like the AI4I holdout): the rows are dealt in turn to
  `machines` machines (`machine-001`, ...), each reading's time being its row's turn on that machine.

Messages go to `plant/<line>/<machine>/telemetry` with QoS 1, `readings_per_message` consecutive readings of
one machine per message (a gateway's batch; see `stream.payload` for the format), each stamped with the
`sent_at` of its message. `rate` is readings per second over the whole line. With `loop`, the data
starts again with its times shifted past the last ones, so that the stored history keeps growing.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time as clock
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from paho.mqtt.client import MQTTv311

from shopfloor.errors import BadOption
from shopfloor.stream.broker import BrokerUnreachable, mqtt_client, parse_url
from shopfloor.stream.payload import encode_message, encode_reading

log = logging.getLogger("shopfloor.stream")


def machine_histories(data: str | os.PathLike | pd.DataFrame, machines: int | None = None, unit: str | None = None,
                      time: str | None = None, date_order: str = "auto") -> tuple[list[str], list[list[tuple[float, dict]]]]:
    """(machine names, each machine's readings [(time, values), ...] in time order) from a data file."""
    from shopfloor.data.runs import is_cmapss_file, read_runs
    from shopfloor.data.tables import read_table

    frame = data if isinstance(data, pd.DataFrame) else None
    if (frame is None and is_cmapss_file(data)) or (unit and time):
        runs = read_runs(data, unit=unit, time=time, date_order=date_order)
        columns = [*runs.settings, *runs.sensors]
        names, histories = [], []
        for unit_id, rows in runs.frame.groupby(runs.unit, sort=False):
            times = rows[runs.time].to_numpy(np.float64)
            histories.append([(t, _values(columns, row)) for t, row in zip(times, rows[columns].to_numpy(), strict=True)])
            names.append(f"unit-{unit_id}")
        if machines and machines > len(names):
            copies = math.ceil(machines / len(names))
            width = len(str(copies - 1))
            names = [f"{n}-{c:0{width}d}" for c in range(copies) for n in names][:machines]
            histories = [histories[i % len(histories)] for i in range(len(names))]
        elif machines:
            names, histories = names[:machines], histories[:machines]
        return names, histories
    frame = frame if frame is not None else read_table(data)
    if frame.empty:
        raise BadOption("the replay data has no rows")
    count = machines or 10
    width = len(str(count))
    names = [f"machine-{i + 1:0{width}d}" for i in range(count)]
    histories = [[] for _ in names]
    columns = list(map(str, frame.columns))
    for i, row in enumerate(frame.itertuples(index=False, name=None)):
        histories[i % count].append((float(i // count), _values(columns, row)))
    return names, histories


def _values(columns: list[str], row) -> dict:
    out = {}
    for name, value in zip(columns, row, strict=True):
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[name] = value
    return out


def messages(names: list[str], histories: list, readings_per_message: int, loop: bool) -> Iterator[tuple[int, list[str]]]:
    """(machine index, encoded readings) in line order: every machine's next batch, machine after machine."""
    span = max((h[-1][0] - h[0][0] + 1 for h in histories if h), default=1.0)
    once: dict[int, list[str]] = {}  # copies of a unit share one history: encode it once
    encoded = []
    for h in histories:
        if id(h) not in once:
            once[id(h)] = [encode_reading(t, v) for t, v in h]
        encoded.append(once[id(h)])
    lap = 0
    while True:
        longest = max(map(len, encoded))
        for start in range(0, longest, readings_per_message):
            for m, readings in enumerate(encoded):
                if start < len(readings):
                    chunk = readings[start:start + readings_per_message]
                    if lap:
                        chunk = [encode_reading(t + lap * span, v)
                                 for t, v in histories[m][start:start + readings_per_message]]
                    yield m, chunk
        if not loop:
            return
        lap += 1


def replay(data: Path, broker: str, rate: float, line: str | list[str] = "line-1", readings_per_message: int = 10,
           loop: bool = False, machines: int | None = None, unit: str | None = None, time: str | None = None,
           prefix: str = "plant", client_id: str | None = None, limit: int | None = None, progress: float | None = 5.0,
           stop=None, date_order: str = "auto") -> dict:
    """Publish recorded data at `rate` readings/s; returns counts. `stop` (a threading.Event) ends it early.

    With several `line`s the machines are dealt to them in turn (machine i to line i mod lines)."""
    if rate <= 0 or readings_per_message < 1:
        raise BadOption("--rate must be above 0 and --readings-per-message at least 1")
    host, port = parse_url(broker)
    names, histories = machine_histories(data, machines, unit, time, date_order)
    lines = [line] if isinstance(line, str) else list(line)
    topics = [f"{prefix}/{lines[i % len(lines)]}/{name}/telemetry" for i, name in enumerate(names)]
    # MQTT 3.1.1: every broker speaks it (amqtt, the demo's fallback, speaks nothing newer), and a publisher
    # needs none of MQTT 5; its persistent session (clean_session False) resends what a broker restart cut off
    client = mqtt_client(client_id or f"shopfloor-replay-{uuid.uuid4().hex[:8]}", protocol=MQTTv311)
    acked = [0]  # PUBACKs: a message published while the broker is away is queued, sent and acknowledged later

    def on_publish(_client, _userdata, _mid, _reason, _properties) -> None:
        acked[0] += 1

    client.on_publish = on_publish
    try:
        client.connect(host, port, keepalive=30)
    except OSError as err:
        raise BrokerUnreachable(f"cannot reach the MQTT broker at {host}:{port} ({err})") from None
    client.loop_start()
    sent = published = 0
    started = last_progress = clock.monotonic()
    try:
        for m, chunk in messages(names, histories, readings_per_message, loop):
            if stop is not None and stop.is_set():
                break
            if limit is not None and sent >= limit:
                break
            ahead = started + sent / rate - clock.monotonic()
            if ahead > 0:
                clock.sleep(ahead)
            client.publish(topics[m], encode_message(chunk, clock.time()), qos=1)
            sent += len(chunk)
            published += 1
            if progress and clock.monotonic() - last_progress >= progress:
                last_progress = clock.monotonic()
                print(f"replay: {sent:,} readings in {published:,} messages to {len(names):,} machines "
                      f"({sent / (last_progress - started):,.0f}/s)", file=sys.stderr, flush=True)
        deadline = clock.monotonic() + 60
        while acked[0] < published and clock.monotonic() < deadline:
            clock.sleep(0.05)  # QoS 1: done when the broker has acknowledged every message
    finally:
        client.disconnect()
        client.loop_stop()
    seconds = clock.monotonic() - started
    return {"readings": sent, "messages": published, "acknowledged": acked[0], "machines": len(names), "seconds": seconds,
            "readings_per_s": sent / max(seconds, 1e-9)}
