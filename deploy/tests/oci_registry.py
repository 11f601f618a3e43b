"""A registry for push tests: the push half of the OCI distribution API, with Basic auth.

ECR speaks this API (with Basic auth as AWS:<token>) and moto does not; no registry image can
be pulled here. It keeps blobs and manifests in memory, checks each blob's digest, and
records what it was sent, so a test can see exactly what the Docker engine pushed.
"""

import base64
import hashlib
import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ports import free_port

BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")
UPLOADS = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<id>[0-9a-f-]*)$")
MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")


@dataclass
class Store:
    """What the registry holds and who asked."""

    username: str
    password: str
    blobs: dict[str, bytes] = field(default_factory=dict)
    uploads: dict[str, bytearray] = field(default_factory=dict)
    # (repository, tag or digest) -> (media type, manifest bytes)
    manifests: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)
    refused_logins: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def digest_of(data: bytes) -> str:
    """The content digest the distribution API names data by."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Handler(BaseHTTPRequestHandler):
    """One request of the distribution API."""

    protocol_version = "HTTP/1.1"
    store: Store

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: pytest shows failures, not traffic."""

    def do_GET(self) -> None:
        """API check, blob or manifest."""
        self._route(head=False)

    def do_HEAD(self) -> None:
        """Does a blob or manifest exist."""
        self._route(head=True)

    def _route(self, head: bool) -> None:
        if not self._authorized():
            return
        path = urlsplit(self.path).path
        if path == "/v2/":
            self._reply(200, b"{}", {"Content-Type": "application/json"}, head)
        elif match := BLOB.match(path):
            blob = self.store.blobs.get(match["digest"])
            if blob is None:
                self._reply(404, b"", {}, head)
            else:
                self._reply(200, blob, {"Docker-Content-Digest": match["digest"]}, head)
        elif match := MANIFEST.match(path):
            found = self.store.manifests.get((match["name"], match["ref"]))
            if found is None:
                self._reply(404, b"", {}, head)
            else:
                media_type, body = found
                headers = {"Content-Type": media_type, "Docker-Content-Digest": digest_of(body)}
                self._reply(200, body, headers, head)
        else:
            self._reply(404, b"", {}, head)

    def do_POST(self) -> None:
        """Start a blob upload (a cross-repository mount is refused: upload instead)."""
        if not self._authorized():
            return
        self._body()
        match = UPLOADS.match(urlsplit(self.path).path)
        if match is None or match["id"]:
            self._reply(404, b"", {})
            return
        upload = str(uuid.uuid4())
        with self.store.lock:
            self.store.uploads[upload] = bytearray()
        self._reply(202, b"", self._upload_headers(match["name"], upload, 0))

    def do_PATCH(self) -> None:
        """A chunk of a blob upload."""
        if not self._authorized():
            return
        match = UPLOADS.match(urlsplit(self.path).path)
        body = self._body()
        if match is None or match["id"] not in self.store.uploads:
            self._reply(404, b"", {})
            return
        with self.store.lock:
            data = self.store.uploads[match["id"]]
            data += body
            size = len(data)
        self._reply(202, b"", self._upload_headers(match["name"], match["id"], size))

    def do_PUT(self) -> None:
        """The end of a blob upload, or a manifest."""
        if not self._authorized():
            return
        url = urlsplit(self.path)
        body = self._body()
        if match := UPLOADS.match(url.path):
            self._finish_upload(match["name"], match["id"], parse_qs(url.query), body)
        elif match := MANIFEST.match(url.path):
            digest = digest_of(body)
            media_type = self.headers.get("Content-Type", "")
            with self.store.lock:
                self.store.manifests[(match["name"], match["ref"])] = (media_type, body)
                self.store.manifests[(match["name"], digest)] = (media_type, body)
            location = f"/v2/{match['name']}/manifests/{digest}"
            self._reply(201, b"", {"Location": location, "Docker-Content-Digest": digest})
        else:
            self._reply(404, b"", {})

    def _finish_upload(
        self, name: str, upload: str, query: dict[str, list[str]], body: bytes
    ) -> None:
        expected = query.get("digest", [""])[0]
        with self.store.lock:
            data = self.store.uploads.pop(upload, None)
            if data is None:
                self._reply(404, b"", {})
                return
            data += body
            if digest_of(bytes(data)) != expected:
                self._reply(400, b'{"errors":[{"code":"DIGEST_INVALID"}]}', {})
                return
            self.store.blobs[expected] = bytes(data)
        location = f"/v2/{name}/blobs/{expected}"
        self._reply(201, b"", {"Location": location, "Docker-Content-Digest": expected})

    def _upload_headers(self, name: str, upload: str, size: int) -> dict[str, str]:
        return {
            "Location": f"/v2/{name}/blobs/uploads/{upload}",
            "Docker-Upload-UUID": upload,
            "Range": f"0-{max(size - 1, 0)}",
        }

    def _authorized(self) -> bool:
        given = self.headers.get("Authorization", "")
        expected = f"{self.store.username}:{self.store.password}".encode()
        if given == "Basic " + base64.b64encode(expected).decode():
            return True
        if given:
            with self.store.lock:
                self.store.refused_logins += 1
        self._body()
        error = json.dumps(
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
        )
        headers = {
            "WWW-Authenticate": 'Basic realm="push-test"',
            "Content-Type": "application/json",
        }
        self._reply(401, error.encode(), headers)
        return False

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, body: bytes, headers: dict[str, str], head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


@contextmanager
def running_registry(username: str, password: str) -> Iterator[tuple[str, Store]]:
    """A registry on a free loopback port: its host:port and its store."""
    store = Store(username, password)
    handler = type("BoundHandler", (Handler,), {"store": store})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", store
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
