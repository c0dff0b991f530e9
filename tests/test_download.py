"""`clbudget data download` against a loopback HTTP server serving archives built here."""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.server
import io
import pickle
import socket
import tarfile
import threading

import numpy as np
import pytest

from clbudget.streams import download as dl
from clbudget.streams.data import load_dataset
from tests.helpers import cli

FOLDER = "cifar-10-batches-py"


def _pickled(obj) -> bytes:
    return pickle.dumps(obj, protocol=2)


def cifar10_members(per_class: int = 2) -> dict[str, bytes]:
    """A tiny CIFAR-10 python release: the real file names and keys, 10 classes."""
    rng = np.random.default_rng(0)

    def batch(n):
        return _pickled({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"labels": [i % 10 for i in range(n)]})
    files = {f"{FOLDER}/data_batch_{i}": batch(10 * per_class) for i in range(1, 6)}
    files[f"{FOLDER}/test_batch"] = batch(10)
    files[f"{FOLDER}/batches.meta"] = _pickled(
        {b"label_names": [f"class{i}".encode() for i in range(10)]})
    return files


def tar_gz(members: dict[str, bytes], links: dict[str, str] = {}) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


class Server:
    """Serves one archive on 127.0.0.1; mode "truncate" sends half the body under the full
    Content-Length, then closes.  Records the Range header of every request."""

    def __init__(self, body: bytes, filename: str):
        self.body, self.filename, self.mode, self.ranges = body, filename, "ok", []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.rsplit("/", 1)[-1] != outer.filename:
                    self.send_error(404)
                    return
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                if start >= len(outer.body):
                    self.send_error(416)
                    return
                body = outer.body[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(outer.body) - 1}/{len(outer.body)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if outer.mode == "truncate" else body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mirror"

    @contextlib.contextmanager
    def running(self):
        thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                  daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()
            thread.join(timeout=5)


@pytest.fixture
def serve(monkeypatch):
    """serve(body) -> a running Server for cifar10's archive name, its MD5 patched to body's."""
    with contextlib.ExitStack() as stack:
        def start(body: bytes, md5: str | None = None) -> Server:
            archive = dl.ARCHIVES["cifar10"]
            monkeypatch.setitem(dl.ARCHIVES, "cifar10", dataclasses.replace(
                archive, md5=md5 or hashlib.md5(body).hexdigest()))
            return stack.enter_context(Server(body, archive.filename).running())
        yield start


def test_download_verifies_extracts_and_the_readers_load_it(tmp_path, serve):
    server = serve(tar_gz(cifar10_members()))
    root = dl.download("cifar10", tmp_path, base_url=server.url, timeout_s=5)
    assert root == tmp_path / FOLDER
    data = load_dataset("cifar10", root, cache_dir=tmp_path / "cache")
    assert data.train.x.shape == (100, 3, 32, 32) and data.test.x.shape == (10, 3, 32, 32)
    assert sorted(set(data.train.y.tolist())) == list(range(10))
    assert data.class_names[3] == "class3"
    assert dl.download("cifar10", tmp_path, base_url=server.url) == root   # verified: no fetch
    assert server.ranges == [None]


def test_checksum_mismatch_deletes_and_extracts_nothing(tmp_path, serve):
    server = serve(tar_gz(cifar10_members()), md5="0" * 32)
    with pytest.raises(dl.DownloadError, match="does not match the published 0000"):
        dl.download("cifar10", tmp_path, base_url=server.url, timeout_s=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_truncated_download_is_kept_and_resumed_with_a_range_request(tmp_path, serve):
    body = tar_gz(cifar10_members())
    server = serve(body)
    server.mode = "truncate"
    with pytest.raises(dl.DownloadError, match="rerun the command to resume"):
        dl.download("cifar10", tmp_path, base_url=server.url, timeout_s=5)
    part = tmp_path / "cifar-10-python.tar.gz.part"
    half = len(body) // 2
    assert part.stat().st_size == half and not (tmp_path / FOLDER).exists()
    server.mode = "ok"
    root = dl.download("cifar10", tmp_path, base_url=server.url, timeout_s=5)
    assert server.ranges == [None, f"bytes={half}-"]          # only the rest was fetched
    assert load_dataset("cifar10", root, cache_dir=tmp_path / "c").train.x.shape[0] == 100
    assert not part.exists()


@pytest.mark.parametrize("evil", [
    {"members": {"../escaped.txt": b"x"}},
    {"members": {"/tmp/clbudget-escaped-abs.txt": b"x"}},
    {"links": {f"{FOLDER}/link": "../../outside"}},
    {"links": {f"{FOLDER}/abs": "/etc/passwd"}},
])
def test_member_escaping_the_root_is_refused_before_anything_is_written(tmp_path, serve, evil):
    root = tmp_path / "data"
    members = {f"{FOLDER}/batches.meta": b"first", **evil.get("members", {})}
    server = serve(tar_gz(members, evil.get("links", {})))
    with pytest.raises(dl.DownloadError, match="refusing to extract"):
        dl.download("cifar10", root, base_url=server.url, timeout_s=5)
    assert not (root / FOLDER).exists()                        # not even the good member
    assert not (tmp_path / "escaped.txt").exists()


def test_offline_is_one_line_naming_the_url_and_the_manual_way(tmp_path, capsys):
    with socket.socket() as s:               # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = cli(capsys, "data", "download", "cifar100", "--root", str(tmp_path),
                       "--base-url", f"http://127.0.0.1:{port}", "--timeout", "5")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"cannot reach http://127.0.0.1:{port}/cifar-100-python.tar.gz" in err
    assert f"put cifar-100-python.tar.gz (MD5 eb9058c3a382ffc7106e4002c42a8d85) in {tmp_path}" in err


def test_cli_download_prints_the_data_root_and_run_without_one_names_the_command(
        tmp_path, serve, capsys):
    server = serve(tar_gz(cifar10_members()))
    code, out, _ = cli(capsys, "data", "download", "cifar10", "--root", str(tmp_path),
                       "--base-url", server.url)
    assert code == 0 and f"--data-root {tmp_path / FOLDER}" in out
    code, _, err = cli(capsys, "run", "--method", "finetune", "--budget", "2xconv2",
                       "--dataset", "cifar10", "--init", "0", "--inc", "5", "--device", "cpu")
    assert code == 2 and "clbudget data download cifar10 --root DATA" in err
    assert f"--data-root DATA/{FOLDER}" in err
