"""Real faults from outside: permission denied (root without its file capabilities), a full
disk and a read-only file system (a tiny tmpfs in a private mount namespace), an endpoint
that answers in the wrong shape, and Vertex AI without credentials. Each is one line."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.hostile import assert_refused, copy_run, files, refused_unchanged, run_dir, small_config

NO_FILE_CAPABILITIES = [
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search,-fowner",
    "--inh-caps=-dac_override,-dac_read_search,-fowner",
]


@dataclass
class Finished:
    exit_code: int
    output: str
    stderr: str


def mafine(*args: object, prefix: list[str] | None = None) -> Finished:
    command = [*(prefix or []), sys.executable, "-m", "mafine", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    return Finished(done.returncode, done.stdout, done.stderr)


def works(*command: str) -> bool:
    if shutil.which(command[0]) is None:
        return False
    return subprocess.run([*command, "true"], capture_output=True).returncode == 0


needs_setpriv = pytest.mark.skipif(
    not works(*NO_FILE_CAPABILITIES), reason="setpriv cannot drop file capabilities here"
)
needs_mount_namespace = pytest.mark.skipif(
    not works("unshare", "-m"), reason="no private mount namespace here"
)


# Permission denied ------------------------------------------------------------------------------
@needs_setpriv
def test_unreadable_config(tmp_path):
    config = small_config(tmp_path)
    config.chmod(0)
    result = mafine("prepare", config, prefix=NO_FILE_CAPABILITIES)
    line = assert_refused(result, str(config))
    assert "not readable" in line or "permission denied" in line


@needs_setpriv
@pytest.mark.parametrize("relative", ["manifest.json", "journal.jsonl", "iter-1/eval-debate.jsonl"])
def test_unreadable_run_file(finished, tmp_path, relative):
    config = copy_run(finished, tmp_path)
    root = run_dir(config)
    (root / relative).chmod(0)
    before = files(root)  # root reads it here; the command, without the capability, cannot
    result = mafine("evaluate", config, "-i", "1", prefix=NO_FILE_CAPABILITIES)
    assert_refused(result, relative.split("/")[-1], "permission denied")
    assert files(root) == before


@needs_setpriv
def test_run_directory_that_cannot_be_written(finished, tmp_path):
    config = copy_run(finished, tmp_path)
    root = run_dir(config)
    (root / ".lock").write_text("mafine pid 1")
    for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        directory.chmod(0o555)
    before = files(root)
    result = mafine("evaluate", config, "-i", "1", prefix=NO_FILE_CAPABILITIES)
    assert_refused(result, str(root), "permission denied")
    assert files(root) == before


# Full disk, read-only file system ---------------------------------------------------------------
NAMESPACE_SCRIPT = """
import hashlib, json, os, shutil, subprocess, sys
source, mount, config, mode = sys.argv[1:5]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mount], check=True)
root = os.path.join(mount, "run")
shutil.copytree(source, root)
if mode == "full":
    with open(os.path.join(mount, "filler"), "wb") as filler:
        try:
            while True:
                filler.write(b"0" * 65536)
                filler.flush()
        except OSError:
            pass
else:
    subprocess.run(["mount", "-o", "remount,ro", mount], check=True)
def digest():
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            if name == ".lock":
                continue
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root)] = hashlib.sha256(handle.read()).hexdigest()
    return found
before = digest()
done = subprocess.run(
    [sys.executable, "-m", "mafine", "evaluate", config, "-i", "1"],
    capture_output=True, text=True,
)
print(json.dumps({"code": done.returncode, "stderr": done.stderr, "before": before,
                  "after": digest()}))
"""


@needs_mount_namespace
@pytest.mark.parametrize(("mode", "fragment"), [("full", "no space left"), ("ro", "read-only")])
def test_full_disk_and_read_only_file_system(finished, tmp_path, mode, fragment):
    mount = tmp_path / "mnt"
    mount.mkdir()
    config = copy_run(finished, tmp_path)
    source = run_dir(config)
    config.write_text(config.read_text().replace(str(source), str(mount / "run")))
    script = tmp_path / "inside.py"
    script.write_text(NAMESPACE_SCRIPT)
    done = subprocess.run(
        ["unshare", "-m", sys.executable, str(script), str(source), str(mount), str(config), mode],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert_refused(Finished(report["code"], "", report["stderr"]), fragment)
    kept = {k: v for k, v in report["after"].items() if k != "manifest.json"}
    assert kept == {k: v for k, v in report["before"].items() if k != "manifest.json"}
    assert not [name for name in report["after"] if name.endswith(".tmp")]


# Providers --------------------------------------------------------------------------------------
class WrongShape(http.server.BaseHTTPRequestHandler):
    """Answers every request with JSON that is not a Gemini response."""

    body = b"{}"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST

    def log_message(self, *args: object) -> None:
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up on a wrong answer is expected here


@pytest.fixture
def wrong_shape() -> Iterator[http.server.HTTPServer]:
    server = QuietServer(("127.0.0.1", 0), WrongShape)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"candidates": "nope", "usageMetadata": [1]}', "unexpected shape"),
        (b"<html>hello</html>", ""),
        (b"[]", "had no text"),  # parsed as a response without candidates: recorded, then stop
    ],
)
def test_an_endpoint_that_answers_in_the_wrong_shape(
    cli, tmp_path, monkeypatch, wrong_shape, body, fragment
):
    monkeypatch.setattr(WrongShape, "body", body)
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaSyWrongShapeTestKey000000000000000")
    url = f"http://127.0.0.1:{wrong_shape.server_address[1]}"
    gemini = {"base_url": url, "tier": "none", "max_attempts": 1, "retry_initial_s": 0.01}
    config = small_config(tmp_path, provider__name="gemini", provider__gemini=gemini)
    assert cli("prepare", config).exit_code == 0
    root = run_dir(config)
    before = files(root)
    line = assert_refused(cli("debate", config), fragment)
    assert "AIzaSy" not in line
    after = files(root)
    sent = {"manifest.json", "journal.jsonl", "journal.sent.jsonl"}  # the requests it sent
    assert {k: v for k, v in after.items() if k not in sent} == {
        k: v for k, v in before.items() if k != "manifest.json"
    }
    for row in (root / "journal.jsonl").read_text().splitlines() if "no text" in fragment else []:
        assert json.loads(row)["completion"]["text"] == ""  # only what the endpoint returned


def test_vertex_without_credentials(cli, tmp_path, monkeypatch):
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    gemini = {"vertex": True, "project": "p", "tier": "none", "max_attempts": 1}
    config = small_config(tmp_path, provider__name="gemini", provider__gemini=gemini)
    assert cli("prepare", config).exit_code == 0
    refused_unchanged(cli, run_dir(config), "debate", config, fragments=("credentials", "gcloud"))
