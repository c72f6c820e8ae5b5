"""Cloud Storage objects: the JSON API's uploads (media, multipart, resumable), object and
bucket metadata, downloads and listings, as `google-cloud-storage` calls them.

Shapes follow https://cloud.google.com/storage/docs/json_api/v1/objects and the upload
protocols in https://cloud.google.com/storage/docs/uploads-downloads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import quote

from mafine.providers.fake_gemini import routing
from mafine.providers.fake_gemini.routing import FakeError, Reply, Request, Route, route
from mafine.providers.fake_gemini.state import Collection

_BUCKET = r"/storage/v1/b/(?P<bucket>[^/]+)"


class Storage:
    """Objects by `gs://bucket/name`, with the metadata resource the JSON API returns."""

    ROUTES: ClassVar[list[Route]] = [
        route("POST", "/upload" + _BUCKET + "/o", "upload", "upload"),
        route("PUT", "/upload" + _BUCKET + "/o", "upload", "upload"),
        route("GET", r"(?:/download)?" + _BUCKET + "/o/(?P<name>.+)", "object_get", "get_object"),
        route("GET", _BUCKET + "/o", "object_list", "list_objects"),
        route("GET", _BUCKET, "bucket_get", "get_bucket"),
    ]

    def __init__(self, url: Callable[[], str], state: Collection) -> None:
        self._url = url  # the server's base URL, known once it is bound
        self._state = state
        self._lock = threading.Lock()
        # Resources are kept without their links: those name the server's URL, which a
        # later process serving the same state directory does not share.
        self._objects: dict[str, tuple[bytes, dict[str, Any]]] = {}
        self._uploads: dict[str, dict[str, Any]] = {}  # unfinished: not kept across processes
        for record in state.records():
            resource = record["resource"]
            self._objects[record["uri"]] = (base64.b64decode(record["data"]), resource)
        self._generation = 1 + max(
            (int(resource["generation"]) for _, resource in self._objects.values()), default=0
        )

    def read(self, uri: str) -> bytes | None:
        """The stored bytes of `gs://bucket/name`, or None."""
        with self._lock:
            stored = self._objects.get(uri)
        return stored[0] if stored else None

    def store(self, bucket: str, name: str, data: bytes, content_type: str) -> dict[str, Any]:
        """Store an object and return its metadata resource."""
        with self._lock:
            generation = self._generation
            self._generation += 1
            stamp = routing.now()
            resource = {
                "kind": "storage#object",
                "id": f"{bucket}/{name}/{generation}",
                "name": name,
                "bucket": bucket,
                "generation": str(generation),
                "metageneration": "1",
                "contentType": content_type,
                "storageClass": "STANDARD",
                "size": str(len(data)),
                "md5Hash": base64.b64encode(hashlib.md5(data).digest()).decode(),
                "crc32c": base64.b64encode(_crc32c(data).to_bytes(4, "big")).decode(),
                "etag": base64.b64encode(f"{generation}".encode()).decode(),
                "timeCreated": stamp,
                "updated": stamp,
            }
            uri = f"gs://{bucket}/{name}"
            self._objects[uri] = (data, resource)
            record = {"uri": uri, "resource": resource, "data": base64.b64encode(data).decode()}
            self._state.put(uri, record)
        return self._linked(resource)

    def _linked(self, resource: dict[str, Any]) -> dict[str, Any]:
        """The resource with its links, which name this server."""
        url, bucket, generation = self._url(), resource["bucket"], resource["generation"]
        name = quote(resource["name"], safe="")
        return {
            **resource,
            "selfLink": f"{url}/storage/v1/b/{bucket}/o/{name}",
            "mediaLink": f"{url}/download/storage/v1/b/{bucket}/o/{name}"
            f"?generation={generation}&alt=media",
        }

    # ---- routes ----------------------------------------------------------------------
    def upload(self, request: Request, bucket: str) -> Reply:
        upload_type = request.query.get("uploadType", "")
        if request.method == "PUT" or request.query.get("upload_id"):
            return self._resumable_chunk(request)
        if upload_type == "media":
            name = request.query.get("name")
            if not name:
                raise FakeError(400, "uploadType=media needs a name")
            content_type = request.headers.get("content-type", "application/octet-stream")
            return Reply.json(200, self.store(bucket, name, request.body, content_type))
        if upload_type == "multipart":
            metadata, data, content_type = _split_multipart(request)
            name = metadata.get("name") or request.query.get("name")
            if not name:
                raise FakeError(400, "multipart upload metadata has no name")
            content_type = metadata.get("contentType") or content_type
            return Reply.json(200, self.store(bucket, name, data, content_type))
        if upload_type == "resumable":
            return self._start_resumable(request, bucket)
        raise FakeError(400, f"unsupported uploadType {upload_type!r}")

    def _start_resumable(self, request: Request, bucket: str) -> Reply:
        metadata = routing.json_body(request) if request.body else {}
        name = metadata.get("name") or request.query.get("name")
        if not name:
            raise FakeError(400, "resumable upload has no name")
        upload_id = uuid.uuid4().hex
        content_type = metadata.get("contentType") or request.headers.get(
            "x-upload-content-type", "application/octet-stream"
        )
        with self._lock:
            self._uploads[upload_id] = {
                "bucket": bucket,
                "name": name,
                "content_type": content_type,
                "data": bytearray(),
            }
        location = (
            f"{self._url()}/upload/storage/v1/b/{quote(bucket, safe='')}/o"
            f"?uploadType=resumable&upload_id={upload_id}"
        )
        return Reply(200, b"", {"Location": location})

    def _resumable_chunk(self, request: Request) -> Reply:
        upload_id = request.query.get("upload_id", "")
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None:
            raise FakeError(404, "unknown upload_id")
        content_range = request.headers.get("content-range", "")
        match = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", content_range.strip())
        data: bytearray = upload["data"]
        if match is None and content_range:
            raise FakeError(400, f"bad Content-Range {content_range!r}")
        if match and match.group(1) is not None:
            start = int(match.group(1))
            if start != len(data):
                return Reply(308, b"", _range_header(len(data)))
        data.extend(request.body)
        total = match.group(3) if match else str(len(data))
        if total != "*" and int(total) == len(data):
            with self._lock:
                self._uploads.pop(upload_id, None)
            resource = self.store(
                upload["bucket"], upload["name"], bytes(data), upload["content_type"]
            )
            return Reply.json(200, resource)
        return Reply(308, b"", _range_header(len(data)))

    def get_object(self, request: Request, bucket: str, name: str) -> Reply:
        with self._lock:
            stored = self._objects.get(f"gs://{bucket}/{name}")
        if stored is None:
            raise FakeError(404, f"No such object: {bucket}/{name}")
        data, resource = stored
        if request.query.get("alt") == "media" or request.path.startswith("/download/"):
            headers = {
                "Content-Type": resource["contentType"],
                "x-goog-hash": f"crc32c={resource['crc32c']},md5={resource['md5Hash']}",
                "x-goog-generation": resource["generation"],
            }
            return Reply(200, data, headers)
        return Reply.json(200, self._linked(resource))

    def list_objects(self, request: Request, bucket: str) -> Reply:
        prefix = request.query.get("prefix", "")
        with self._lock:
            items = [
                self._linked(resource)
                for uri, (_, resource) in sorted(self._objects.items())
                if uri.startswith(f"gs://{bucket}/") and resource["name"].startswith(prefix)
            ]
        return Reply.json(200, {"kind": "storage#objects", "items": items})

    def get_bucket(self, request: Request, bucket: str) -> Reply:
        # Buckets exist implicitly: the storage client looks its bucket up before uploading.
        return Reply.json(
            200,
            {
                "kind": "storage#bucket",
                "id": bucket,
                "name": bucket,
                "projectNumber": "0",
                "metageneration": "1",
                "location": routing.FAKE_LOCATION.upper(),
                "storageClass": "STANDARD",
                "locationType": "region",
                "timeCreated": "2026-01-01T00:00:00.000Z",
                "updated": "2026-01-01T00:00:00.000Z",
            },
        )


def _split_multipart(request: Request) -> tuple[dict[str, Any], bytes, str]:
    """The (JSON metadata, data, data content type) of a multipart/related upload."""
    content_type = request.headers.get("content-type", "")
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise FakeError(400, "multipart upload without a boundary")
    delimiter = b"--" + match.group(1).encode()
    sections = request.body.split(delimiter)
    parts: list[tuple[dict[str, str], bytes]] = []
    for section in sections[1:]:
        if section.startswith(b"--"):
            break
        section = section.removeprefix(b"\r\n")
        head, sep, payload = section.partition(b"\r\n\r\n")
        if not sep:
            continue
        payload = payload.removesuffix(b"\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, payload))
    if len(parts) < 2:
        raise FakeError(400, "multipart upload needs a metadata part and a data part")
    try:
        metadata = json.loads(parts[0][1] or b"{}")
    except ValueError:
        raise FakeError(400, "multipart metadata is not JSON") from None
    data_type = parts[1][0].get("content-type", "application/octet-stream")
    return metadata, parts[1][1], data_type


def _range_header(received: int) -> dict[str, str]:
    return {"Range": f"bytes=0-{received - 1}"} if received else {}


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def _crc32c(data: bytes) -> int:
    try:  # the C implementation when the storage client brought it along
        import google_crc32c

        return int(google_crc32c.value(data))
    except ImportError:
        pass
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
