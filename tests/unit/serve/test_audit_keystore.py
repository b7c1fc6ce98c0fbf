import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from appliance.config.keys import hash_key
from appliance.config.secrets import Role
from appliance.serve.audit import AuditLog
from appliance.serve.keystore import KeyStore, read_key_records
from tests.helpers import ROOT


def test_each_line_survives_the_process_being_killed(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.log"
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from appliance.serve.audit import AuditLog\n"
        f"log = AuditLog(Path({str(path)!r}))\n"
        "for i in range(3):\n"
        "    log.write({'request_id': f'r{i}', 'status': 200})\n"
        "print('written', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout.readline().strip() == "written"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["request_id"] for line in lines] == ["r0", "r1", "r2"]
    assert oct(path.stat().st_mode & 0o777) == "0o640"


def test_audit_line_has_every_field_and_reopens_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path)
    log.write({"request_id": "a", "unexpected": "dropped"})
    path.rename(tmp_path / "audit.log.1")  # rotated away
    log.write({"request_id": "b", "prompt": "kept when given"})
    (line,) = [json.loads(x) for x in path.read_text().splitlines()]
    assert line["request_id"] == "b" and line["prompt"] == "kept when given"
    first = json.loads((tmp_path / "audit.log.1").read_text())
    assert "unexpected" not in first and first["status"] is None and "time" in first


def test_keystore_reloads_on_change_and_keeps_last_good(tmp_path: Path) -> None:
    path = tmp_path / ".secrets"
    path.write_text(f"API_KEY_A=sha256:{hash_key('k1')};role=user;models=m\n")
    store = KeyStore(read_key_records(path), path, reload_interval=0)
    assert [r.name for r in store.records()] == ["a"]
    time.sleep(0.01)
    path.write_text(
        f"API_KEY_A=sha256:{hash_key('k1')};role=user;models=m\nAPI_KEY_B=sha256:{hash_key('k2')};role=admin\n"
    )
    assert [(r.name, r.role) for r in store.records()] == [("a", Role.USER), ("b", Role.ADMIN)]
    path.write_bytes(b"\xff\xfe broken")
    assert len(store.records()) == 2, "an unreadable file keeps the last good keys"
    path.write_text("API_KEY_C=garbage\n")
    assert store.records() == (), "a parseable file with no valid key means no keys"


def test_a_deleted_key_file_refuses_every_key_and_says_so_once(tmp_path: Path, caplog) -> None:
    path = tmp_path / "api_keys"
    path.write_text(f"API_KEY_A=sha256:{hash_key('k1')};role=user;models=m\n")
    store = KeyStore(read_key_records(path), path, reload_interval=0)
    assert [r.name for r in store.records()] == ["a"]
    path.unlink()
    with caplog.at_level(logging.ERROR, logger="appliance.serve.keystore"):
        assert store.records() == (), "a missing file is an empty key set, not the last good one"
        assert store.records() == ()
    gone = [r for r in caplog.records if "gone" in r.getMessage()]
    assert len(gone) == 1, "logged once while the file stays missing"
    assert hash_key("k1") not in caplog.text
    path.write_text(f"API_KEY_B=sha256:{hash_key('k2')};role=admin\n")
    assert [r.name for r in store.records()] == ["b"], "the keys come back with the file"


def test_a_key_file_missing_from_the_start_refuses_every_key(tmp_path: Path) -> None:
    record = read_key_records(_write(tmp_path / "first", "k1"))
    store = KeyStore(record, tmp_path / "never-written", reload_interval=0)
    assert store.records() == ()


def test_an_atomically_replaced_file_of_the_same_size_is_reloaded(tmp_path: Path) -> None:
    path = _write(tmp_path / "api_keys", "k1")
    store = KeyStore(read_key_records(path), path, reload_interval=0)
    stat = path.stat()
    replacement = _write(tmp_path / "next", "k2")  # same length, another inode
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, path)
    assert [r.sha256 for r in store.records()] == [hash_key("k2")]


def _write(path: Path, key: str) -> Path:
    path.write_text(f"API_KEY_A=sha256:{hash_key(key)};role=user;models=m\n")
    return path
