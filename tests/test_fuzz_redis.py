"""A fleet's shared corpus on a real Redis server (Debian's redis-server, started here on a loopback
port and stopped after): the second fuzz session starts by replaying what the first found; keys are
prefixed by suite version and hardware class; a server that goes away mid-run leaves every find in
the local copy, said so; one that is not there at the start is refused at once."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
from cli_helpers import CEILING_BUDGET, cli, fuzz_budget, worker_startup_s
from test_fuzz_session import PLANT

redis = pytest.importorskip("redis", reason="the redis client is not installed (pip install redis)")
SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(SERVER is None, reason="redis-server is not installed (apt-get install redis-server)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: How long redis-server may take to answer its first ping, or to exit when told to (it takes milliseconds;
#: a loaded machine may not schedule it for seconds).
SERVER_WAIT_S = 60.0


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server on 127.0.0.1, no persistence; yields (url, process)."""
    port = _free_port()
    proc = subprocess.Popen([SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + SERVER_WAIT_S
    while True:  # polled until it answers: how soon it does is up to the scheduler
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"redis-server did not answer within {SERVER_WAIT_S:.0f} s (exit status {proc.poll()})")
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0", proc
    proc.terminate()
    proc.wait(timeout=SERVER_WAIT_S)


def test_a_second_session_starts_by_replaying_what_the_first_found(tmp_path, redis_server):
    url, _ = redis_server
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "cwd").mkdir(parents=True)
    (second / "cwd").mkdir(parents=True)  # separate local copies: only Redis connects the two
    # The first session fuzzes about five seconds after its worker started (startup measured, not assumed):
    # the planted bug fails every decode case.
    budget = fuzz_budget(5, worker_startup_s(tmp_path, "test_decode_eager"))
    code, text = cli(first / "cwd", "fuzz", "--budget", budget, "--plant", PLANT, "-k", "test_decode_eager",
                     "--out", first / "out", "--database", url, "--backend", "emulated")
    assert code == 1, text[-3000:]
    from conformance.report import load_report

    found = load_report(first / "out" / "report.json")
    failing = [r for r in found["records"] if r["verdict"] == "fail" and "test_decode_eager" in r["test_id"]]
    assert failing, found["fuzz"]["failures"]
    keys = redis.Redis.from_url(url).keys("*")
    assert keys and all(k.startswith(b"npu-conformance:") and b":emulated-cpu:" in k for k in keys)

    # The second session only has to show its first case: one slice, stopped by --max-cases.
    code, text = cli(second / "cwd", "fuzz", "--budget", CEILING_BUDGET, "--max-cases", "1", "--plant", PLANT,
                     "-k", "test_decode_eager", "--out", second / "out", "--database", url, "--backend", "emulated")
    assert code == 1, text[-3000:]
    replayed = load_report(second / "out" / "report.json")
    mine = [r for r in replayed["records"] if "test_decode_eager" in r["test_id"]]
    # Hypothesis' reuse phase runs the saved failure before generating anything new.
    assert mine[0]["verdict"] == "fail" and mine[0]["case_id"] in {r["case_id"] for r in failing}


def test_a_server_lost_mid_run_leaves_every_find_in_the_local_copy(tmp_path, redis_server):
    from hypothesis.database import DirectoryBasedExampleDatabase

    from conformance.fuzz.database import SharedWithLocalCopy, open_database

    url, proc = redis_server
    db = open_database(url, "emulated-cpu", local=tmp_path / "local")
    assert isinstance(db, SharedWithLocalCopy)
    db.save(b"k", b"before")
    assert set(db.fetch(b"k")) == {b"before"} and db.degraded is None
    proc.terminate()
    proc.wait(timeout=SERVER_WAIT_S)
    db.save(b"k", b"after")  # the server is gone: kept locally, and said so
    assert db.degraded is not None and url in db.degraded and "local" in db.degraded
    assert set(db.fetch(b"k")) == {b"before", b"after"}
    assert set(DirectoryBasedExampleDatabase(str(tmp_path / "local")).fetch(b"k")) == {b"before", b"after"}


def test_hardware_classes_and_suite_versions_get_their_own_keys():
    from conformance.fuzz.database import key_prefix, suite_version

    assert key_prefix("emulated-cpu") != key_prefix("npu-Ascend910B3")
    assert key_prefix("npu-Ascend 910B3") == f"npu-conformance:{suite_version()}:npu-Ascend-910B3:".encode()


def test_a_server_that_is_not_there_is_refused_at_the_start(tmp_path):
    port = _free_port()  # nothing listens there
    code, text = cli(tmp_path, "fuzz", "--budget", "10s", "--database", f"redis://127.0.0.1:{port}/0",
                     "--out", tmp_path / "o")
    assert code == 2 and f"--database redis://127.0.0.1:{port}/0: no Redis server answers" in text, text
    assert not (tmp_path / "o" / "workers").exists()
