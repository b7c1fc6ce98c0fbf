import asyncio
import io
import json
import logging

import pytest

from appliance.logs.setup import bind_request_id, register_secret, setup_logging


@pytest.fixture
def stream():
    buffer = io.StringIO()
    handler = setup_logging("DEBUG", "json", component="test", stream=buffer)
    yield buffer
    logging.getLogger().removeHandler(handler)


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_lines_carry_request_id_and_component(stream: io.StringIO) -> None:
    log = logging.getLogger("appliance.test")
    log.info("outside")
    with bind_request_id("req-1"):
        log.warning("inside %d", 42)
    first, second = lines(stream)
    assert first["request_id"] is None and first["component"] == "test"
    assert second == {
        **second,
        "message": "inside 42",
        "request_id": "req-1",
        "level": "WARNING",
        "logger": "appliance.test",
    }


def test_request_id_follows_each_task(stream: io.StringIO) -> None:
    async def handle(rid: str) -> None:
        with bind_request_id(rid):
            await asyncio.sleep(0)
            logging.getLogger("x").info(rid)

    async def both() -> None:
        await asyncio.gather(handle("a"), handle("b"))

    asyncio.run(both())
    records = {(r["message"], r["request_id"]) for r in lines(stream) if r["logger"] == "x"}
    assert records == {("a", "a"), ("b", "b")}


def test_registered_secrets_are_scrubbed_from_messages_args_and_tracebacks(stream: io.StringIO) -> None:
    register_secret("s3cr3t-value-xyz")
    log = logging.getLogger("x")
    log.info("key is %s", "s3cr3t-value-xyz")
    try:
        raise RuntimeError("boom s3cr3t-value-xyz")
    except RuntimeError:
        log.exception("failed")
    assert "s3cr3t-value-xyz" not in stream.getvalue()
    assert "<redacted>" in stream.getvalue()


def test_text_format_on_request(stream: io.StringIO) -> None:
    buffer = io.StringIO()
    handler = setup_logging("INFO", "text", stream=buffer)
    with bind_request_id("r9"):
        logging.getLogger("y").info("hello")
    logging.getLogger().removeHandler(handler)
    assert "INFO" in buffer.getvalue() and "[r9]" in buffer.getvalue() and "hello" in buffer.getvalue()
    assert not buffer.getvalue().startswith("{")


def test_loading_the_config_registers_every_secret_value(stream: io.StringIO, tmp_path) -> None:
    from appliance.config import ConfigFiles, load_config
    from tests.helpers import make_config_dir, set_line

    make_config_dir(tmp_path)
    set_line(tmp_path / ".secrets", "DASHBOARD_PASSWORD", "dash-pass-4711-unique")
    load_config(ConfigFiles(env=tmp_path / ".env", secrets=tmp_path / ".secrets", models=tmp_path / "models.yaml"))
    logging.getLogger("x").warning("connecting with %s", "dash-pass-4711-unique")
    assert "dash-pass-4711-unique" not in stream.getvalue() and "<redacted>" in stream.getvalue()


def test_the_dashboard_user_name_is_not_scrubbed_as_a_secret(stream: io.StringIO, tmp_path) -> None:
    from appliance.config import ConfigFiles, load_config
    from tests.helpers import make_config_dir, set_line

    make_config_dir(tmp_path)
    set_line(tmp_path / ".secrets", "DASHBOARD_USER", "operator-4711")
    set_line(tmp_path / ".secrets", "DASHBOARD_PASSWORD", "dash-pass-4712-unique")
    load_config(ConfigFiles(env=tmp_path / ".env", secrets=tmp_path / ".secrets", models=tmp_path / "models.yaml"))
    logging.getLogger("x").warning("disabled by operator-4711 with %s", "dash-pass-4712-unique")
    assert "disabled by operator-4711 with <redacted>" in stream.getvalue()
