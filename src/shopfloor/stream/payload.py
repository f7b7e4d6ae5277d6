"""Telemetry messages: the topic and payload format the worker accepts and the replay writes.

Topic: `<prefix>/<line>/<machine>/telemetry` (by default `plant/<line>/<machine>/telemetry`); the line
and the machine are the two levels before `telemetry`.

Payload: UTF-8 JSON, at most `MAX_PAYLOAD` bytes, either one reading or a list of readings of that
machine (a gateway's batch, at most `MAX_READINGS`). A reading is a flat JSON object:

    {"time": 187, "sent_at": 1795357000.25, "setting_1": -0.0007, "sensor_2": 641.82, ...}
    {"time": 1795357000.0, "Type": "L", "Air temperature [K]": 298.1, "Torque [Nm]": 42.8, ...}

- `time` (required, a number): the machine's clock, a cycle number or epoch seconds; a reading is
  stored once per (line, machine, time), so a redelivered message is not counted twice; a time far ahead
  of the wall clock or of the machine's own pace is quarantined (`stream.stamps`);
- `sent_at` (optional, epoch seconds): when the gateway sent it; the worker measures latency from it;
- every other key is a setting or a sensor, named as in the models' training data: a number or null
  (missing); short text (at most 64 characters) is accepted in columns no live model reads as a number
  (a category such as AI4I's `Type`, a product id).

A vibration gateway sends a block of high-rate samples of that machine instead, one JSON object per message:

    {"time": 1795357000.0, "rate": 12000, "channels": {"DE": [0.012, -0.034, ...], "FE": [0.008, ...]}}

- `time`: the machine's clock at the block's first sample (epoch seconds); the block's samples follow it at `rate`
  samples a second (Hz, required), so the next block of a steady gateway starts at time + samples / rate;
- `channels`: every channel's samples, as many for each (at most `MAX_CHANNELS` channels), numbers only; the
  message's `MAX_PAYLOAD` bytes hold about 50,000 samples of one channel at a float's full precision;
- `sent_at` as above. A fault-diagnosis model whose channels the block carries scores it (`stream.blocks`); the
  store keeps the block's rate, sample count and each channel's RMS as its reading, not the samples.

Anything else (not JSON, not an object or a list of objects, no `time`, text where a number belongs,
nested values, too large, a topic of another shape) is rejected whole with a reason, and the worker
sends it to the dead-letter topic.
"""

from __future__ import annotations

import json

import numpy as np
import orjson

MAX_PAYLOAD = 1 << 20  # bytes
MAX_READINGS = 10_000  # per message
MAX_TEXT = 64  # characters in a category value
MAX_NAME = 128  # characters in a line or machine name (the database's column width)
MAX_CHANNELS = 64  # channels in a block of samples
MAX_RATE = 1e7  # samples a second in a block (10 MHz: beyond any vibration or acoustic sensor)
NUMBER = frozenset((int, float))  # exact types: JSON true/false parse as bool, which is not a reading
PLAIN = frozenset((int, float, type(None)))


class BadMessage(ValueError):
    """A telemetry message the worker cannot use; the text is the dead letter's reason, `kind` its short name."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind


def topic_parts(topic: str) -> tuple[str, str, str]:
    """(prefix, line, machine) from `<prefix>/<line>/<machine>/telemetry`; names are 1-128 printable characters,
    as stored. The prefix (`plant` by default) is where alerts go back to."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[-1] != "telemetry" or not parts[-2] or not parts[-3]:
        raise BadMessage("topic", f"topic '{topic[:200]}' is not <prefix>/<line>/<machine>/telemetry")
    for part in parts[-3:-1]:
        if len(part) > MAX_NAME or not part.isprintable():
            raise BadMessage("topic", f"line and machine names are 1-{MAX_NAME} printable characters; "
                                      f"'{part[:40]!r}...' in the topic is not")
    return "/".join(parts[:-3]), parts[-3], parts[-2]


def parse(topic: str, payload: bytes, numeric_columns: frozenset = frozenset(), max_bytes: int = MAX_PAYLOAD) -> list[dict]:
    """Readings of one message as dicts: line, machine, time, sent_at, values (the settings and sensors), and
    whether it is the message's newest reading.

    `numeric_columns`: the columns a live model reads as numbers; text there is refused. Short text
    elsewhere (a product id, a category such as AI4I's 'Type') is kept as it came. orjson refuses NaN,
    Infinity and numbers beyond a double, so every number that gets through is finite. This runs for every
    reading of the line (20,000 a second on 2 cores): the checks are plain type tests on the parsed dicts,
    which are kept as the readings' values instead of being copied.
    """
    prefix, line, machine = topic_parts(topic)
    if len(payload) > max_bytes:
        raise BadMessage("too large", f"payload of {len(payload):,} bytes is over the limit of {max_bytes:,}")
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as err:
        raise BadMessage("not JSON", f"payload is not JSON ({err})") from None
    if type(body) is dict and type(body.get("channels")) is dict:  # a block of samples, not a reading
        return [block_reading(body, line, machine, prefix)]
    items = body if isinstance(body, list) else [body]
    if not items or len(items) > MAX_READINGS:
        raise BadMessage("shape", f"a message carries 1 to {MAX_READINGS:,} readings, not {len(items):,}")
    readings = []
    for index, item in enumerate(items):
        where = f"reading {index}" if isinstance(body, list) else "the reading"
        if type(item) is not dict:
            raise BadMessage("shape", f"{where} is a JSON {type(item).__name__}, not an object")
        time, sent_at = item.pop("time", None), item.pop("sent_at", None)
        if type(time) not in NUMBER:
            raise BadMessage("time", f"{where} has no numeric 'time' (got {time!r:.40})")
        if sent_at is not None and type(sent_at) not in NUMBER:
            raise BadMessage("time", f"{where} has a 'sent_at' that is not epoch seconds (got {sent_at!r:.40})")
        if not set(map(type, item.values())) <= PLAIN:  # one pass in C; text or worse is looked at closely
            _check_text(item, numeric_columns, where)
        readings.append({"line": line, "machine": machine, "prefix": prefix, "time": float(time),
                         "sent_at": None if sent_at is None else float(sent_at), "values": item, "newest": False})
    max(readings, key=_time)["newest"] = True  # RUL is estimated once per message, at its newest reading
    return readings


def block_reading(body: dict, line: str, machine: str, prefix: str) -> dict:
    """A block of samples (module docstring) as one reading: its values are what the store keeps of it (rate, sample
    count, each channel's RMS), `block` holds the samples [channels, samples] (float32) and their channel names."""
    time, sent_at, rate, channels = (body.pop(k, None) for k in ("time", "sent_at", "rate", "channels"))
    if body:
        raise BadMessage("shape", f"a block carries time, rate, channels and sent_at only, not {', '.join(body)[:80]}")
    if type(time) not in NUMBER:
        raise BadMessage("time", f"the block has no numeric 'time' (got {time!r:.40})")
    if sent_at is not None and type(sent_at) not in NUMBER:
        raise BadMessage("time", f"the block has a 'sent_at' that is not epoch seconds (got {sent_at!r:.40})")
    if type(rate) not in NUMBER or not 0 < rate <= MAX_RATE:
        raise BadMessage("rate", f"a block names its sample rate in Hz ('rate', above 0 and at most {MAX_RATE:g}), "
                                 f"not {rate!r:.40}")
    if type(channels) is not dict or not 0 < len(channels) <= MAX_CHANNELS:
        raise BadMessage("shape", f"a block's 'channels' is an object of 1 to {MAX_CHANNELS} channels, each a list of "
                                  "samples")
    lengths = set()
    for name, samples in channels.items():
        if type(samples) is not list or not samples:
            raise BadMessage("shape", f"channel '{name[:64]}' of the block is not a list of samples")
        if not set(map(type, samples)) <= NUMBER:  # one pass in C
            at = next(i for i, v in enumerate(samples) if type(v) not in NUMBER)
            raise BadMessage("type", f"sample {at} of channel '{name[:64]}' is {samples[at]!r:.40}, not a number")
        lengths.add(len(samples))
    if len(lengths) > 1:
        raise BadMessage("shape", f"the block's channels carry {min(lengths)} to {max(lengths)} samples; every channel "
                                  "of a block carries as many")
    values = np.array(list(channels.values()), dtype=np.float64)
    if not (np.abs(values) <= np.finfo(np.float32).max).all():
        raise BadMessage("type", "a sample of the block is beyond the range of a 32-bit float")
    values = values.astype(np.float32)
    rms = np.sqrt(np.mean(np.square(values, dtype=np.float64), axis=1))  # of the float32 samples the models read
    summary = {"rate": float(rate), "samples": values.shape[1],
               **{f"{n} rms": float(v) for n, v in zip(channels, rms, strict=True)}}
    return {"line": line, "machine": machine, "prefix": prefix, "time": float(time),
            "sent_at": None if sent_at is None else float(sent_at), "values": summary, "newest": True,
            "block": {"channels": list(channels), "samples": values, "rate": float(rate)}}


def _time(reading: dict) -> float:
    return reading["time"]


def _check_text(values: dict, numeric_columns: frozenset, where: str) -> None:
    for key, value in values.items():
        kind = type(value)
        if kind in PLAIN or (kind is str and len(value) <= MAX_TEXT and key not in numeric_columns):
            continue
        wanted = "a number or null" if key in numeric_columns else f"a number, null or text of at most {MAX_TEXT} chars"
        raise BadMessage("type", f"{where}: '{key[:64]}' must be {wanted}, not {kind.__name__} {value!r:.40}")


def encode_reading(time: float, values: dict) -> str:
    """One reading as JSON text without its closing brace, so that `sent_at` can be added at send time."""
    body = json.dumps({"time": time, **values}, separators=(",", ":"), allow_nan=False)
    return body[:-1]


def encode_message(readings: list[str], sent_at: float) -> bytes:
    """A list of readings from `encode_reading`, each stamped with the same `sent_at`."""
    tail = f',"sent_at":{sent_at:.6f}}}'
    return ("[" + ",".join(r + tail for r in readings) + "]").encode()
