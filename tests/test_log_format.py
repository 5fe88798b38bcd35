"""``--log-format json``: one JSON object a line, as log shippers expect; factory chatter at debug."""

from __future__ import annotations

import io
import json
import math
from datetime import datetime

from twisted.internet.protocol import Factory
from twisted.logger import Logger, LogLevel, LogPublisher
from twisted.python.failure import Failure

from gateway.commands._logs import event_as_json, log_observer


def publish(fmt: str, level: str, emit) -> list[dict]:
    stream = io.StringIO()
    publisher = LogPublisher()
    publisher.addObserver(log_observer(fmt, level, stream))
    emit(Logger(namespace="gateway.test", observer=publisher))
    if fmt == "json":
        return [json.loads(line) for line in stream.getvalue().splitlines()]
    return [{"text": line} for line in stream.getvalue().splitlines()]


def test_each_line_has_iso_utc_time_level_logger_rendered_message_and_the_events_fields() -> None:
    (line,) = publish(
        "json",
        "info",
        lambda log: log.warn(
            "Sending to {peer} failed ({code})", peer="PT", code="PEER_UNREACHABLE", attempts=3
        ),
    )
    assert list(line)[:4] == ["time", "level", "logger", "message"]
    assert line["level"] == "warn"
    assert line["logger"] == "gateway.test"
    assert line["message"] == "Sending to PT failed (PEER_UNREACHABLE)"
    assert (line["peer"], line["code"], line["attempts"]) == ("PT", "PEER_UNREACHABLE", 3)
    assert line["time"].endswith("Z")
    parsed = datetime.fromisoformat(line["time"].replace("Z", "+00:00"))
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0
    assert not [key for key in line if key.startswith("log_")]
    assert "unpersistable" not in json.dumps(line)


def test_odd_field_values_become_json_and_bodies_are_never_written() -> None:
    event = {
        "log_format": "x",
        "log_level": LogLevel.info,
        "log_namespace": "n",
        "log_time": 0.0,
        "log_logger": object(),
        "body": b"<Request>personal</Request>",
        "ratio": math.inf,
        "error": ValueError("bad"),
        "items": ("a", 1, {"k": object()}),
    }
    line = event_as_json(event)
    text = json.dumps(line)  # must not raise
    assert line["time"] == "1970-01-01T00:00:00.000Z"
    assert line["body"] == "<27 bytes>" and "personal" not in text
    assert line["ratio"] == "inf"
    assert line["error"] == "ValueError: bad"
    assert line["items"][:2] == ["a", 1]


def test_a_failure_adds_its_type_message_and_traceback() -> None:
    def emit(log: Logger) -> None:
        try:
            raise RuntimeError("trust file unreadable")
        except RuntimeError:
            log.failure("Trust reload failed", Failure())

    (line,) = publish("json", "info", emit)
    assert line["level"] == "critical"
    assert line["error"] == "RuntimeError: trust file unreadable"
    assert "Traceback" in line["traceback"]


def test_twisted_factory_start_and_stop_are_debug_not_info() -> None:
    factory = Factory()
    factory.noisy = True

    def emit(log: Logger) -> None:
        factory.doStart()
        factory.doStop()
        log.info("kept")

    for fmt in ("json", "text"):
        import twisted.logger

        stream = io.StringIO()
        observer = log_observer(fmt, "info", stream)
        twisted.logger.globalLogPublisher.addObserver(observer)
        try:
            emit(Logger(namespace="gateway.test"))
        finally:
            twisted.logger.globalLogPublisher.removeObserver(observer)
        written = stream.getvalue()
        assert "kept" in written, fmt
        assert "Starting factory" not in written and "Stopping factory" not in written, fmt

    stream = io.StringIO()
    observer = log_observer("json", "debug", stream)
    twisted.logger.globalLogPublisher.addObserver(observer)
    try:
        factory.doStart()
        factory.doStop()
    finally:
        twisted.logger.globalLogPublisher.removeObserver(observer)
    levels = {
        json.loads(x)["message"].split(" ")[0]: json.loads(x)["level"]
        for x in stream.getvalue().splitlines()
    }
    assert levels == {"Starting": "debug", "Stopping": "debug"}
