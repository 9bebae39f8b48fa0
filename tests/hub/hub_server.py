"""A local stand-in for the Hugging Face Hub HTTP API: the network boundary of the push tests.

It implements the endpoints that ``huggingface_hub`` calls to create a repo and commit files to it
(``/api/repos/create``, ``/api/{type}s/{repo}/preupload|commit|tree|branch/...``, ``/api/validate-yaml``,
the Git LFS batch endpoint and the LFS ``PUT``), and the read endpoints that ``datasets.load_dataset(repo_id)``
calls through ``huggingface_hub`` (repo info at a revision, the ``tree`` listing, and
``HEAD``/``GET`` of ``/{type}s/{repo}/resolve/{revision}/{path}`` with ``X-Repo-Commit``, ``ETag`` and
``Content-Length``). It keeps the files of each repo in memory and records every request so tests can check
what was sent. ``HF_ENDPOINT`` (or ``huggingface_hub.constants.ENDPOINT``, ``datasets.config.HF_ENDPOINT``) is
pointed at :attr:`FakeHub.url`. Unknown endpoints answer 404 and are recorded too.

A revision is a branch name or a commit id; the commit id of a branch is a hash of its files (the same files,
the same id), and every id handed out stays readable, as a snapshot of the files it named. Reads of a public
repo need no token; a private repo reads as missing without the write token, as on the Hub. Files are served
directly (no CDN redirect, no Xet, no ``Range``), with the Hub's headers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

LFS_SUFFIXES = {".parquet", ".png", ".safetensors", ".bin", ".gguf", ".pt", ".arrow"}
GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"


@dataclass
class Request:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    route: str | None = None  # the handler that answered it (None: no route, answered 404)


@dataclass
class Commit:
    """One commit applied to a repo."""

    repo_type: str
    repo_id: str
    revision: str
    summary: str
    added: dict[str, bytes] = field(default_factory=dict)
    lfs: set[str] = field(default_factory=set)
    deleted: list[str] = field(default_factory=list)


class FakeHub:
    """The fake Hub: ``with FakeHub(token=...) as hub: ...``; ``hub.url`` is the endpoint.

    Write endpoints answer 401 unless ``Authorization: Bearer <token>`` carries ``token``.
    ``datasets_info`` maps a dataset id to the ``cardData`` that ``GET /api/datasets/{id}`` returns.
    """

    def __init__(self, token: str, datasets_info: dict[str, dict] | None = None):
        self.token = token
        self.datasets_info = dict(datasets_info or {})
        self.requests: list[Request] = []
        self.commits: list[Commit] = []
        self.repos: dict[tuple[str, str], dict[str, Any]] = {}  # "private", "branches", "snapshots" (id -> files)
        self.blobs: dict[str, bytes] = {}
        self.fail_with: int | None = None  # set to an HTTP status: every request answers it (a Hub in trouble)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- views for tests ------------------------------------------------------------------------------
    def files(self, repo_type: str, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The files of a repo branch now."""
        return dict(self.repos[(repo_type, repo_id)]["branches"][revision])

    def add_repo(self, repo_type: str, repo_id: str, files: dict[str, bytes], private: bool = False) -> None:
        """Create a repo that already holds ``files`` on ``main`` (e.g. an earlier push)."""
        self.repos[(repo_type, repo_id)] = {"private": "private" if private else None, "snapshots": {},
                                            "branches": {"main": {".gitattributes": GITATTRIBUTES, **files}}}

    def endpoints(self) -> list[str]:
        """``"METHOD path"`` of every request, in order, with repo ids and hashes kept."""
        return [f"{r.method} {r.path}" for r in self.requests]


def commit_id(files: dict[str, bytes]) -> str:
    """The commit id of a branch holding ``files``: a SHA-1 over its paths and their git blob ids."""
    h = hashlib.sha1()
    for path, data in sorted(files.items()):
        h.update(f"{path}\0{git_blob_id(data)}\n".encode())
    return h.hexdigest()


def git_blob_id(data: bytes) -> str:
    """Git's object id of a file's bytes (what the Hub reports as ``oid`` / ``ETag`` of a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _is_lfs(path: str) -> bool:
    return PurePosixPath(path).suffix in LFS_SUFFIXES


def _handler_for(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        # -- plumbing ---------------------------------------------------------------------------------
        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, status: int, payload: Any = None, headers: dict[str, str] | None = None) -> None:
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":  # a HEAD answer has the headers of the GET one and no body
                self.wfile.write(data)

        def _authorized(self) -> bool:
            return self.headers.get("Authorization") == f"Bearer {hub.token}"

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            body = self._body()
            request = Request(self.command, path, parse_qs(parts.query),
                              {k.lower(): v for k, v in self.headers.items()}, body)
            with hub._lock:
                hub.requests.append(request)
            if hub.fail_with is not None:
                return self._send(hub.fail_with, {"error": f"the fake Hub answers {hub.fail_with}"})
            for pattern, method, func in ROUTES:
                m = re.fullmatch(pattern, path)
                if m and method == self.command:
                    request.route = func.__name__
                    if func.__name__ not in PUBLIC and not self._authorized():
                        return self._send(401, {"error": "Invalid credentials"})
                    with hub._lock:
                        return func(self, body, **m.groupdict())
            self._send(404, {"error": f"no route {self.command} {path}"}, {"X-Error-Code": "EntryNotFound"})

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle

        # -- helpers ----------------------------------------------------------------------------------
        def _repo(self, rtype: str, repo: str) -> dict | None:
            repo_type = rtype[:-1]
            found = hub.repos.get((repo_type, repo))
            if found is not None and found["private"] == "private" and not self._authorized():
                found = None  # the Hub does not tell strangers that a private repo exists
            if found is None:
                self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            return found

        def _revision(self, state: dict, rev: str) -> tuple[str, dict[str, bytes]] | None:
            """``(commit id, files)`` of a branch or of a commit id handed out before; else answers 404."""
            snapshots = state.setdefault("snapshots", {})
            if rev in state["branches"]:
                files = state["branches"][rev]
                sha = commit_id(files)
                snapshots.setdefault(sha, dict(files))
                return sha, snapshots[sha]
            if rev in snapshots:
                return rev, snapshots[rev]
            self._send(404, {"error": f"Invalid rev id: {rev}"}, {"X-Error-Code": "RevisionNotFound"})
            return None

        def _entry(self, path: str, files: dict[str, bytes]) -> dict | None:
            """The tree entry of a file or folder (``None`` when neither exists)."""
            if path in files:
                data = files[path]
                entry = {"type": "file", "path": path, "size": len(data), "oid": git_blob_id(data)}
                if _is_lfs(path):
                    entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                return entry
            inside = sorted(p for p in files if p.startswith(path + "/"))
            if not path or not inside:
                return None
            return {"type": "directory", "path": path, "oid": commit_id({p: files[p] for p in inside})}

        # -- routes -----------------------------------------------------------------------------------
        def create_repo(self, body: bytes) -> None:
            payload = json.loads(body)
            repo_type = payload.get("type") or "model"
            repo_id = f"{payload['organization']}/{payload['name']}"
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            url = f"{hub.url}/{prefix}{repo_id}"
            if (repo_type, repo_id) in hub.repos:
                return self._send(409, {"error": "You already created this repo", "url": url})
            hub.repos[(repo_type, repo_id)] = {"private": payload.get("visibility"), "snapshots": {},
                                              "branches": {"main": {".gitattributes": GITATTRIBUTES}}}
            self._send(200, {"url": url, "name": repo_id})

        def validate_yaml(self, body: bytes) -> None:
            content = json.loads(body)["content"]
            m = re.match(r"^---\n(.*?)\n---\n", content, re.S)
            try:
                meta = yaml.safe_load(m.group(1)) if m else None
            except yaml.YAMLError as err:
                return self._send(400, {"errors": [{"message": str(err)}]})
            if not isinstance(meta, dict):
                return self._send(400, {"errors": [{"message": "no YAML metadata"}]})
            self._send(200, {"errors": [], "warnings": []})

        def repo_info(self, body: bytes, rtype: str, repo: str, rev: str | None = None) -> None:
            if rtype == "datasets" and ("dataset", repo) not in hub.repos and repo in hub.datasets_info:
                # a source dataset known only by its card (what the card of a pushed subset inherits)
                return self._send(200, {"id": repo, "sha": "0" * 40, "cardData": hub.datasets_info[repo], "tags": []})
            state = self._repo(rtype, repo)
            if state is None:
                return
            found = self._revision(state, rev or "main")
            if found is None:
                return
            sha, files = found
            info = {"id": repo, "sha": sha, "private": state["private"] == "private", "tags": [],
                    "siblings": [{"rfilename": p} for p in sorted(files)]}
            if rtype == "datasets" and repo in hub.datasets_info:
                info["cardData"] = hub.datasets_info[repo]
            self._send(200, info)

        def tree(self, body: bytes, rtype: str, repo: str, rev: str, sub: str | None = None) -> None:
            state = self._repo(rtype, repo)
            if state is None:
                return
            found = self._revision(state, rev)
            if found is None:
                return
            files = found[1]
            folder = sub.strip("/") if sub else ""
            if folder and self._entry(folder, files) is None:
                return self._send(404, {"error": f"{folder} does not exist"}, {"X-Error-Code": "EntryNotFound"})
            recursive = parse_qs(urlsplit(self.path).query).get("recursive", ["false"])[0].lower() in ("true", "1")
            prefix = folder + "/" if folder else ""
            paths: set[str] = set()
            for p in files:
                if not p.startswith(prefix):
                    continue
                parts = p[len(prefix):].split("/")
                depth = len(parts) if recursive else 1  # the folders on the way, and the file when it is in reach
                paths.update(prefix + "/".join(parts[:i]) for i in range(1, min(depth, len(parts)) + 1))
            self._send(200, [self._entry(p, files) for p in sorted(paths)])

        def resolve(self, body: bytes, prefix: str | None, repo: str, rev: str, path: str) -> None:
            state = self._repo((prefix or "models").rstrip("/"), repo)
            if state is None:
                return
            found = self._revision(state, rev)
            if found is None:
                return
            sha, files = found
            if path not in files:
                return self._send(404, {"error": f"{path} does not exist at {rev}"},
                                  {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": sha})
            data = files[path]
            etag = hashlib.sha256(data).hexdigest() if _is_lfs(path) else git_blob_id(data)
            self.send_response(200)
            for key, value in {"Content-Type": "application/octet-stream", "Content-Length": str(len(data)),
                               "ETag": f'"{etag}"', "X-Repo-Commit": sha}.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(data)

        def create_branch(self, body: bytes, rtype: str, repo: str, branch: str) -> None:
            state = self._repo(rtype, repo)
            if state is None:
                return
            if branch in state["branches"]:
                return self._send(409, {"error": "Reference already exists"})
            state["branches"][branch] = dict(state["branches"]["main"])
            self._send(200, {})

        def preupload(self, body: bytes, rtype: str, repo: str, rev: str) -> None:
            if self._repo(rtype, repo) is None:
                return
            out = []
            for f in json.loads(body)["files"]:
                sample = base64.b64decode(f["sample"])
                lfs = PurePosixPath(f["path"]).suffix in LFS_SUFFIXES or b"\0" in sample
                out.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False})
            self._send(200, {"files": out, "commitOid": "0" * 40})

        def lfs_batch(self, body: bytes, prefix: str | None, repo: str) -> None:
            payload = json.loads(body)
            objects = []
            for obj in payload["objects"]:
                entry = {"oid": obj["oid"], "size": obj["size"]}
                if obj["oid"] not in hub.blobs:
                    entry["actions"] = {"upload": {"href": f"{hub.url}/lfs-upload/{obj['oid']}"}}
                objects.append(entry)
            self._send(200, {"transfer": "basic", "objects": objects})

        def lfs_upload(self, body: bytes, oid: str) -> None:
            if hashlib.sha256(body).hexdigest() != oid:
                return self._send(400, {"error": "sha256 mismatch"})
            hub.blobs[oid] = body
            self._send(200, {})

        def commit(self, body: bytes, rtype: str, repo: str, rev: str) -> None:
            state = self._repo(rtype, repo)
            if state is None:
                return
            files = state["branches"].get(rev)
            if files is None:
                return self._send(404, {"error": "Revision not found"}, {"X-Error-Code": "RevisionNotFound"})
            record = Commit(rtype[:-1], repo, rev, "")
            for line in body.splitlines():
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if key == "header":
                    record.summary = value["summary"]
                elif key == "file":
                    record.added[value["path"]] = base64.b64decode(value["content"])
                elif key == "lfsFile":
                    if value["oid"] not in hub.blobs:
                        return self._send(400, {"error": f"LFS object {value['oid']} was never uploaded"})
                    record.added[value["path"]] = hub.blobs[value["oid"]]
                    record.lfs.add(value["path"])
                elif key in ("deletedFile", "deletedFolder"):
                    record.deleted.append(value["path"])
                else:
                    return self._send(400, {"error": f"unknown commit key {key}"})
            for path in record.deleted:
                files.pop(path, None)
            files.update(record.added)
            hub.commits.append(record)
            oid = commit_id(files)
            state.setdefault("snapshots", {}).setdefault(oid, dict(files))
            prefix = "" if rtype == "models" else f"{rtype}/"
            self._send(200, {"commitUrl": f"{hub.url}/{prefix}{repo}/commit/{oid}", "commitOid": oid,
                             "pullRequestUrl": None})

    repo = r"(?P<repo>[^/]+/[^/]+)"
    rtype = r"(?P<rtype>models|datasets|spaces)"
    ROUTES = [
        (r"/api/repos/create", "POST", Handler.create_repo),
        (r"/api/validate-yaml", "POST", Handler.validate_yaml),
        (rf"/api/{rtype}/{repo}(?:/revision/(?P<rev>[^/]+))?", "GET", Handler.repo_info),
        (rf"/api/{rtype}/{repo}/tree/(?P<rev>[^/]+)(?:/(?P<sub>.*))?", "GET", Handler.tree),
        (rf"/(?P<prefix>datasets/|spaces/)?{repo}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "GET", Handler.resolve),
        (rf"/(?P<prefix>datasets/|spaces/)?{repo}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "HEAD", Handler.resolve),
        (rf"/api/{rtype}/{repo}/branch/(?P<branch>.+)", "POST", Handler.create_branch),
        (rf"/api/{rtype}/{repo}/preupload/(?P<rev>.+)", "POST", Handler.preupload),
        (rf"/(?P<prefix>datasets/|spaces/)?{repo}\.git/info/lfs/objects/batch", "POST", Handler.lfs_batch),
        (r"/lfs-upload/(?P<oid>[0-9a-f]{64})", "PUT", Handler.lfs_upload),
        (rf"/api/{rtype}/{repo}/commit/(?P<rev>.+)", "POST", Handler.commit),
    ]
    PUBLIC = {"repo_info", "tree", "resolve", "lfs_upload", "validate_yaml"}  # reads: _repo checks private
    return Handler
