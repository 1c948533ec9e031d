"""A local fake Kubernetes API server for tests.

No kube-apiserver binary is installable here, so the exporter is tested against this stdlib HTTP server.
It keeps the semantics that matter to a client (see DESIGN.md §9): JSON ``Status`` bodies with
``Content-Type: application/json`` exactly (lightkube only raises its typed ``ApiError`` then), 404 NotFound,
409 AlreadyExists, 409 Conflict on a stale resourceVersion, 422 Invalid on changing an immutable ConfigMap,
403 Forbidden from deny rules, a global etcd-like resourceVersion, and watch streams with replay, 410 Expired
after compaction and timeouts. It also injects faults (failures, latency, the server being down) and records
what happened (requests, writes, how long an object was absent between a delete and the following create).

What it does not do (a real cluster would): namespaces need not exist, no admission, no managedFields,
no field-level server-side-apply ownership (apply is a merge), no subresources, and core/v1 Events and
events.k8s.io/v1 Events are kept in separate stores (a real server converts between them).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import json
import queue
import re
import secrets
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlencode, urlsplit

import lightkube
import yaml

__all__ = [
    "DenyRule",
    "FakeKubeAPI",
    "RequestRecord",
    "WriteRecord",
    "fake_kube_api",
]

JSON = dict[str, Any]

#: Kinds of the plural resource names a test is likely to use (any other plural works too).
_KINDS = {
    "configmaps": "ConfigMap",
    "secrets": "Secret",
    "events": "Event",
    "leases": "Lease",
    "pods": "Pod",
    "services": "Service",
    "serviceaccounts": "ServiceAccount",
    "endpoints": "Endpoints",
    "deployments": "Deployment",
    "roles": "Role",
    "rolebindings": "RoleBinding",
}
#: Core (group "") plurals, so that ``get_object("configmaps", ...)`` and ``"leases"`` resolve unambiguously.
_CORE_PLURALS = {"configmaps", "secrets", "events", "pods", "services", "serviceaccounts", "endpoints"}
_DEFAULT_GROUPS = {
    "leases": "coordination.k8s.io",
    "deployments": "apps",
    "roles": "rbac.authorization.k8s.io",
    "rolebindings": "rbac.authorization.k8s.io",
}
_STATUS_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
_IMMUTABLE_MSG = "field is immutable when `immutable` is set"
_CONFIGMAP_MAX_BYTES = 1024 * 1024
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_DEFAULT_WATCH_TIMEOUT = 1800.0


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request as the server saw it (user is None without a bearer token)."""

    user: str | None
    verb: str
    path: str
    method: str
    resource: str | None
    namespace: str | None
    name: str | None
    status: int
    query: str = ""


@dataclass(frozen=True)
class WriteRecord:
    """One successful mutation; ``time`` is ``time.monotonic()`` taken while the store lock was held.

    ``user`` is None for state seeded with ``put_object`` / ``delete_object``.
    """

    time: float
    user: str | None
    verb: str
    resource: str
    namespace: str
    name: str
    resource_version: str


@dataclass(frozen=True)
class DenyRule:
    """Deny (user, verb, resource, namespace); a None field matches anything, like a missing RBAC grant."""

    user: str | None = None
    verb: str | None = None
    resource: str | None = None
    namespace: str | None = None


@dataclass
class _Fault:
    count: int
    status: int
    verb: str | None
    resource: str | None
    dry_run: bool | None = None


@dataclass(frozen=True)
class _Route:
    group: str
    version: str
    plural: str
    namespace: str | None
    name: str | None

    @property
    def key(self) -> str:
        return _resource_key(self.group, self.plural)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


@dataclass(frozen=True)
class _Event:
    rv: int
    key: str
    namespace: str
    type: str
    obj: JSON
    old: JSON | None


class _StatusError(Exception):
    """Raised inside request handling; turned into a Status body with the same HTTP code."""

    def __init__(self, code: int, message: str, reason: str | None = None, details: JSON | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = _STATUS_REASONS.get(code, "") if reason is None else reason
        self.details = details

    def body(self) -> JSON:
        return _status_body(self.code, self.message, self.reason, self.details)


class _Selector:
    """Label selector (``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``, ``a in (x,y)``, ``a notin (x)``) plus
    field selector on metadata.name / metadata.namespace."""

    _SET_RE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")

    def __init__(self, label_selector: str, field_selector: str) -> None:
        self.labels = [self._parse_label(p) for p in _split_selector(label_selector)]
        self.fields = [self._parse_field(p) for p in _split_selector(field_selector)]

    @classmethod
    def _parse_label(cls, part: str) -> tuple[str, str, frozenset[str]]:
        m = cls._SET_RE.match(part)
        if m:
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            return m.group(1), m.group(2), values
        for op in ("!=", "==", "="):
            if op in part:
                k, v = part.split(op, 1)
                return k.strip(), "!=" if op == "!=" else "=", frozenset({v.strip()})
        part = part.strip()
        if part.startswith("!"):
            return part[1:].strip(), "!exists", frozenset()
        if not part or " " in part:
            raise _StatusError(400, f"unable to parse requirement: {part!r}")
        return part, "exists", frozenset()

    @staticmethod
    def _parse_field(part: str) -> tuple[str, bool, str]:
        for op in ("!=", "==", "="):
            if op in part:
                k, v = part.split(op, 1)
                k = k.strip()
                if k not in ("metadata.name", "metadata.namespace"):
                    raise _StatusError(400, f"field label not supported: {k}")
                return k, op == "!=", v.strip()
        raise _StatusError(400, f"invalid selector: '{part}'; can't understand '{part}'")

    def matches(self, obj: JSON) -> bool:
        meta = obj.get("metadata") or {}
        labels: dict[str, str] = meta.get("labels") or {}
        for key, op, values in self.labels:
            present = key in labels
            if op == "exists" and not present:
                return False
            if op == "!exists" and present:
                return False
            if op in ("=", "in") and (not present or labels[key] not in values):
                return False
            if op in ("!=", "notin") and present and labels[key] in values:
                return False
        for fkey, negate, value in self.fields:
            actual = meta.get(fkey.split(".", 1)[1], "")
            if (actual == value) == negate:
                return False
        return True


@dataclass(eq=False)
class _Watcher:
    key: str
    namespace: str | None
    selector: _Selector
    api_version: str
    conn: socket.socket
    queue: queue.Queue[tuple[str, JSON] | str] = field(default_factory=queue.Queue)


_DROP = "drop"  # queue sentinel: close the connection abruptly (like a server or network failure)
_END = "end"  # queue sentinel: end the stream cleanly (like timeoutSeconds)


def _split_selector(text: str) -> list[str]:
    """Split on commas that are not inside ``(...)``."""
    parts: list[str] = []
    depth = 0
    cur = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def _resource_key(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def _split_key(key: str) -> tuple[str, str]:
    plural, _, group = key.partition(".")
    return plural, group


def _resolve(resource: str) -> str:
    """Map a user-facing name ("configmaps", "leases", "leases.coordination.k8s.io") to a store key."""
    if "." in resource or resource in _CORE_PLURALS:
        return resource
    group = _DEFAULT_GROUPS.get(resource)
    return _resource_key(group, resource) if group else resource


def _status_body(code: int, message: str, reason: str | None, details: JSON | None) -> JSON:
    body: JSON = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
    }
    if reason:
        body["reason"] = reason
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def _now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _kind_of(plural: str) -> str:
    return _KINDS.get(plural) or (plural[:-1] if plural.endswith("s") else plural).capitalize()


def _qualified(key: str) -> str:
    """The resource as the real server names it: ``configmaps``, ``leases.coordination.k8s.io``."""
    return key


def _details(key: str, name: str | None, uid: str | None = None) -> JSON:
    plural, group = _split_key(key)
    details: JSON = {}
    if name is not None:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = plural
    if uid:
        details["uid"] = uid
    return details


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (also used for strategic-merge and apply patches)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: JSON = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = _merge_patch(result.get(k), v)
    return result


def _json_pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _StatusError(422, f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _json_patch(doc: JSON, ops: Any) -> JSON:
    """RFC 6902 JSON patch: add, remove, replace, test (enough for tests)."""
    if not isinstance(ops, list):
        raise _StatusError(400, "json patch must be a list of operations")
    result: Any = copy.deepcopy(doc)
    for op in ops:
        parts = _json_pointer(str(op.get("path", "")))
        if not parts:
            raise _StatusError(422, "json patch on the document root is not supported")
        parent: Any = result
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent.get(p)
            if parent is None:
                raise _StatusError(422, f"doc is missing path: {op.get('path')}")
        last = parts[-1]
        kind = op.get("op")
        if kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op.get("value"):
                raise _StatusError(422, f"testing value {op.get('path')} failed")
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                idx = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(idx, op.get("value"))
                else:
                    parent[idx] = op.get("value")
            else:
                if kind == "replace" and last not in parent:
                    raise _StatusError(422, f"replace operation does not apply: doc is missing key: {last}")
                parent[last] = op.get("value")
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            elif last in parent:
                del parent[last]
            else:
                raise _StatusError(422, f"remove operation does not apply: doc is missing path: {op.get('path')}")
        else:
            raise _StatusError(400, f"unsupported json patch op {kind!r}")
    return cast(JSON, result)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: FakeKubeAPI) -> None:
        self.api = api
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet for connection errors (tests cut connections on purpose); print anything else."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive like a real API server; watch streams are chunked
    # Go's net/http sets TCP_NODELAY; without it, headers and body in two writes meet the client's delayed
    # ACK and every response pays ~40 ms that a real API server does not.
    disable_nagle_algorithm = True

    @property
    def api(self) -> FakeKubeAPI:
        return cast(_Server, self.server).api

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``api.requests`` instead."""

    def setup(self) -> None:
        super().setup()
        self.api._track_connection(self.connection, True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.api._track_connection(self.connection, False)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _abort(self) -> None:
        """Drop the connection without an answer, so the client sees a connection error."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _handle(self, method: str) -> None:
        api = self.api
        latency = api.latency
        if latency > 0:
            time.sleep(latency)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if api._is_down():
            self._abort()
            return
        auth = self.headers.get("Authorization", "")
        user = auth[len("Bearer ") :].strip() or None if auth.startswith("Bearer ") else None
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        content_type = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        result = api._dispatch(method, split.path, query, raw, content_type, user, self.connection)
        if isinstance(result, _Watcher):
            self._stream(result, query)
            return
        code, body = result
        self._send_json(code, body)

    def _send_json(self, code: int, body: JSON) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, watcher: _Watcher, query: dict[str, str]) -> None:
        """Serve a watch: chunked newline-delimited events until timeoutSeconds, a drop or a write error."""
        api = self.api
        try:
            timeout = float(query.get("timeoutSeconds") or _DEFAULT_WATCH_TIMEOUT)
        except ValueError:
            timeout = _DEFAULT_WATCH_TIMEOUT
        deadline = time.monotonic() + timeout
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = watcher.queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if item == _DROP:
                    self._abort()
                    return
                if item == _END:
                    break
                etype, obj = cast(tuple[str, JSON], item)
                line = json.dumps({"type": etype, "object": obj}).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True
        finally:
            api._unregister_watcher(watcher)


class FakeKubeAPI:
    """In-process fake kube-apiserver on ``http://127.0.0.1:<ephemeral port>``; see the module docstring."""

    def __init__(self, history_limit: int = 10_000) -> None:
        self.history_limit = history_limit
        self.latency: float = 0.0
        self.requests: list[RequestRecord] = []
        self.write_log: list[WriteRecord] = []
        self.errors: list[Exception] = []  # unexpected exceptions inside the fake (should stay empty)
        self._lock = threading.RLock()
        self._rv = 0
        self._compacted_rv = 0
        self._history: list[_Event] = []
        self._objects: dict[str, dict[tuple[str, str], JSON]] = {}
        self._api_versions: dict[str, str] = {}
        self._watchers: set[_Watcher] = set()
        self._connections: set[socket.socket] = set()
        self._deny_rules: list[DenyRule] = []
        self._faults: list[_Fault] = []
        self._down = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._start_server()

    # ---------------------------------------------------------------- lifecycle

    def _start_server(self) -> None:
        server = _Server(("127.0.0.1", self._port), self)
        self._port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-kubeapi", daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread

    def _stop_server(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123``; stable across ``set_down`` cycles."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    def stop(self) -> None:
        """Close all watches and connections and stop listening."""
        self.drop_watches()
        with self._lock:
            self._down = True
        self._stop_server()

    def __enter__(self) -> FakeKubeAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- client configuration

    def kubeconfig_dict(self, user: str = "exporter", namespace: str = "default") -> JSON:
        """A kubeconfig whose bearer token is the user name (the fake maps token ``X`` to user ``X``)."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": user, "user": {"token": user}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": user, "namespace": namespace}}],
            "current-context": "fake",
        }

    def kubeconfig(self, path: str | Path, user: str = "exporter", namespace: str = "default") -> Path:
        """Write a kubeconfig YAML file for ``user`` (e.g. for ``KUBECONFIG``) and return its path."""
        p = Path(path)
        p.write_text(yaml.safe_dump(self.kubeconfig_dict(user, namespace)))
        return p

    def client_config(self, user: str = "exporter", namespace: str = "default") -> lightkube.KubeConfig:
        """A ``lightkube.KubeConfig`` for ``lightkube.Client(config=...)``."""
        return lightkube.KubeConfig.from_dict(self.kubeconfig_dict(user, namespace))

    def client(self, user: str = "exporter", namespace: str = "default", **kwargs: Any) -> lightkube.Client:
        """A real lightkube sync client for ``user``; ``trust_env=False`` so proxy variables cannot interfere.

        Callers need not close it: ``stop()`` cuts its connections.
        """
        kwargs.setdefault("trust_env", False)
        return lightkube.Client(config=self.client_config(user, namespace), **kwargs)

    # ---------------------------------------------------------------- policy and fault injection

    def deny(
        self,
        user: str | None = None,
        verb: str | None = None,
        resource: str | None = None,
        namespace: str | None = None,
    ) -> DenyRule:
        """Answer 403 Forbidden to matching requests (None matches anything); returns the rule."""
        rule = DenyRule(user, verb, resource, namespace)
        with self._lock:
            self._deny_rules.append(rule)
        return rule

    def allow(self, rule: DenyRule | None = None) -> None:
        """Remove one deny rule, or all of them."""
        with self._lock:
            if rule is None:
                self._deny_rules.clear()
            elif rule in self._deny_rules:
                self._deny_rules.remove(rule)

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        verb: str | None = None,
        resource: str | None = None,
        dry_run: bool | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with a Status of code ``status``.

        ``dry_run`` True / False matches only dry-run / real requests (None: both).
        """
        with self._lock:
            self._faults.append(_Fault(count, status, verb, resource, dry_run))

    def set_down(self, down: bool) -> None:
        """Down: stop listening (connects are refused) and cut connections; up: listen on the same port."""
        with self._lock:
            if down == self._down:
                return
            self._down = down
        if down:
            self._stop_server()  # first stop listening, so that reconnects are refused
            self._drop_all_watchers(_DROP)
        else:
            self._start_server()

    def drop_watches(self, graceful: bool = False) -> None:
        """Close every open watch stream: abruptly (connection cut, the client sees a protocol error) or, with
        ``graceful``, by ending the stream like a server-side timeout (lightkube then silently re-watches)."""
        self._drop_all_watchers(_END if graceful else _DROP)

    def compact(self) -> None:
        """Forget the event history, like etcd compaction: watches from an older resourceVersion get 410."""
        with self._lock:
            self._compacted_rv = self._rv
            self._history.clear()

    @property
    def resource_version(self) -> int:
        """The current global resourceVersion."""
        with self._lock:
            return self._rv

    @property
    def open_watches(self) -> int:
        with self._lock:
            return len(self._watchers)

    # ---------------------------------------------------------------- direct state access

    def get_object(self, resource: str, namespace: str, name: str) -> JSON | None:
        """A copy of the stored object, or None."""
        with self._lock:
            obj = self._objects.get(_resolve(resource), {}).get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list_objects(self, resource: str, namespace: str | None = None) -> list[JSON]:
        """Copies of the stored objects of ``resource`` (in one namespace, or all)."""
        with self._lock:
            store = self._objects.get(_resolve(resource), {})
            return [copy.deepcopy(o) for (ns, _), o in sorted(store.items()) if namespace in (None, ns)]

    def put_object(self, obj: JSON, resource: str | None = None) -> JSON:
        """Seed or overwrite an object without checks (watchers see ADDED/MODIFIED); returns the stored copy.

        ``resource`` defaults to the plural of ``obj["kind"]`` (ConfigMap -> configmaps, Lease -> leases).
        """
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if resource is None:
            kind = str(obj.get("kind", ""))
            plurals = [p for p, k in _KINDS.items() if k == kind]
            resource = plurals[0] if plurals else kind.lower() + "s"
            group = str(obj.get("apiVersion", "v1")).rpartition("/")[0]
            key = _resource_key(group, resource) if group else _resolve(resource)
        else:
            key = _resolve(resource)
        plural, group = _split_key(key)
        namespace = meta.setdefault("namespace", "default")
        name = meta["name"]
        with self._lock:
            api_version = self._api_versions.get(key) or (f"{group}/v1" if group else "v1")
            obj.setdefault("apiVersion", api_version)
            obj.setdefault("kind", _kind_of(plural))
            old = self._objects.get(key, {}).get((namespace, name))
            meta.setdefault("uid", (old or {}).get("metadata", {}).get("uid") or str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", _now_rfc3339())
            rv = self._next_rv()
            meta["resourceVersion"] = str(rv)
            self._objects.setdefault(key, {})[(namespace, name)] = obj
            verb = "update" if old else "create"
            self._log_write(None, verb, key, namespace, name, rv)
            self._emit(key, "MODIFIED" if old else "ADDED", obj, old, rv)
            return copy.deepcopy(obj)

    def delete_object(self, resource: str, namespace: str, name: str) -> bool:
        """Delete directly (as another actor would); watchers see DELETED. Returns whether it existed."""
        key = _resolve(resource)
        with self._lock:
            old = self._objects.get(key, {}).pop((namespace, name), None)
            if old is None:
                return False
            self._record_delete(None, key, namespace, name, old)
            return True

    # ---------------------------------------------------------------- observation

    def writes(
        self, resource: str | None = None, namespace: str | None = None, name: str | None = None
    ) -> list[WriteRecord]:
        """The write log filtered by resource / namespace / name."""
        key = _resolve(resource) if resource else None
        with self._lock:
            return [
                w
                for w in self.write_log
                if key in (None, w.resource) and namespace in (None, w.namespace) and name in (None, w.name)
            ]

    def absence_windows(self, resource: str, namespace: str, name: str) -> list[float]:
        """Seconds between each delete of the object and the create that followed it (the replacement gap)."""
        windows: list[float] = []
        deleted_at: float | None = None
        for w in self.writes(resource, namespace, name):
            if w.verb in ("delete", "deletecollection"):
                deleted_at = w.time
            elif w.verb == "create" and deleted_at is not None:
                windows.append(w.time - deleted_at)
                deleted_at = None
        return windows

    def requests_by(self, user: str | None = None, verb: str | None = None) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.requests if user in (None, r.user) and verb in (None, r.verb)]

    # ---------------------------------------------------------------- internals: bookkeeping

    def _is_down(self) -> bool:
        with self._lock:
            return self._down

    def _track_connection(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _unregister_watcher(self, watcher: _Watcher) -> None:
        with self._lock:
            self._watchers.discard(watcher)

    def _drop_all_watchers(self, sentinel: str) -> None:
        with self._lock:
            watchers = list(self._watchers)
            self._watchers.clear()
        for w in watchers:
            w.queue.put(sentinel)

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _log_write(self, user: str | None, verb: str, key: str, ns: str, name: str, rv: int) -> None:
        self.write_log.append(WriteRecord(time.monotonic(), user, verb, key, ns, name, str(rv)))

    def _record_delete(self, user: str | None, key: str, ns: str, name: str, old: JSON) -> None:
        rv = self._next_rv()
        gone = copy.deepcopy(old)
        gone["metadata"]["resourceVersion"] = str(rv)  # like the watch cache: DELETED carries the delete's RV
        self._log_write(user, "delete", key, ns, name, rv)
        self._emit(key, "DELETED", gone, old, rv)

    def _emit(self, key: str, etype: str, obj: JSON, old: JSON | None, rv: int) -> None:
        ns = obj["metadata"]["namespace"]
        event = _Event(rv, key, ns, etype, copy.deepcopy(obj), copy.deepcopy(old) if old else None)
        self._history.append(event)
        if len(self._history) > self.history_limit:
            dropped = self._history.pop(0)
            self._compacted_rv = dropped.rv
        for w in self._watchers:
            translated = self._translate(w, event)
            if translated is not None:
                w.queue.put(translated)

    @staticmethod
    def _translate(w: _Watcher, ev: _Event) -> tuple[str, JSON] | None:
        """What a watcher with a selector sees: leaving the selection is DELETED, entering it is ADDED."""
        if ev.key != w.key or w.namespace not in (None, ev.namespace):
            return None
        now = w.selector.matches(ev.obj)
        if ev.type == "DELETED":
            return ("DELETED", ev.obj) if now else None
        before = ev.old is not None and w.selector.matches(ev.old)
        if ev.type == "ADDED" or not before:
            return ("ADDED", ev.obj) if now else None
        return ("MODIFIED" if now else "DELETED", ev.obj)

    # ---------------------------------------------------------------- internals: request handling

    def _dispatch(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        raw: bytes,
        content_type: str,
        user: str | None,
        conn: socket.socket,
    ) -> tuple[int, JSON] | _Watcher:
        route = self._parse_path(path)
        verb = self._verb(method, route, query)
        try:
            result = self._serve(method, route, verb, query, raw, content_type, user, conn)
        except _StatusError as e:
            result = (e.code, e.body())
        except Exception as e:  # a bug in the fake: answer 500 so the test sees it instead of a hang
            self.errors.append(e)
            result = (500, _status_body(500, f"fake kubeapi error: {e!r}", "InternalError", None))
        status = 200 if isinstance(result, _Watcher) else result[0]
        with self._lock:
            self.requests.append(
                RequestRecord(
                    user,
                    verb,
                    path,
                    method,
                    route.key if route else None,
                    route.namespace if route else None,
                    route.name if route else None,
                    status,
                    urlencode(query),
                )
            )
        return result

    @staticmethod
    def _parse_path(path: str) -> _Route | None:
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        if len(rest) in (3, 4) and rest[0] == "namespaces":
            return _Route(group, version, rest[2], rest[1], rest[3] if len(rest) == 4 else None)
        if len(rest) == 1 and rest[0] != "namespaces":
            return _Route(group, version, rest[0], None, None)  # all-namespaces list / watch
        return None

    @staticmethod
    def _verb(method: str, route: _Route | None, query: dict[str, str]) -> str:
        named = route is not None and route.name is not None
        if method == "GET":
            if named:
                return "get"
            return "watch" if query.get("watch", "").lower() in ("true", "1") else "list"
        if method == "DELETE":
            return "delete" if named else "deletecollection"
        return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())

    def _check_access(
        self, route: _Route, verb: str, user: str | None, method: str, dry_run: bool = False
    ) -> None:
        if user is None:
            raise _StatusError(401, "Unauthorized")
        plural, group = _split_key(route.key)
        with self._lock:
            denied = any(
                r.user in (None, user)
                and r.verb in (None, verb)
                and r.resource in (None, plural, route.key)
                and r.namespace in (None, route.namespace)
                for r in self._deny_rules
            )
            fault = next(
                (
                    f
                    for f in self._faults
                    if f.count > 0
                    and f.verb in (None, verb)
                    and f.resource in (None, plural, route.key)
                    and f.dry_run in (None, dry_run)
                ),
                None,
            )
        if denied:
            target = f'{route.key} "{route.name}"' if route.name else route.key
            where = f' in the namespace "{route.namespace}"' if route.namespace else " at the cluster scope"
            raise _StatusError(
                403,
                f'{target} is forbidden: User "{user}" cannot {verb} resource "{plural}" in API group "{group}"{where}',
                details=_details(route.key, route.name),
            )
        if fault is not None:
            with self._lock:
                fault.count -= 1
                if fault.count <= 0 and fault in self._faults:
                    self._faults.remove(fault)
            message = {
                500: "Internal error occurred: injected failure",
                503: "the server is currently unable to handle the request",
                429: "Too many requests, please try again later.",
                504: "the server was unable to return a response in the time allotted, but may still be "
                "processing the request",
            }.get(fault.status, f"injected failure with code {fault.status}")
            raise _StatusError(fault.status, message, details=_details(route.key, route.name))

    def _serve(
        self,
        method: str,
        route: _Route | None,
        verb: str,
        query: dict[str, str],
        raw: bytes,
        content_type: str,
        user: str | None,
        conn: socket.socket,
    ) -> tuple[int, JSON] | _Watcher:
        if route is None:
            raise _StatusError(404, "the server could not find the requested resource", details={})
        self._check_access(route, verb, user, method, dry_run=bool(query.get("dryRun")))
        with self._lock:
            self._api_versions.setdefault(route.key, route.api_version)
        if route.namespace is None and verb not in ("list", "watch"):
            raise _StatusError(405, f"the server does not allow this method on the requested resource ({verb})")
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as e:
                raise _StatusError(400, f"couldn't get version/kind; json parse error: {e}") from e
        selector = _Selector(query.get("labelSelector", ""), query.get("fieldSelector", ""))
        if verb == "get":
            return 200, self._get(route)
        if verb == "list":
            return 200, self._list(route, selector)
        if verb == "watch":
            return self._watch(route, selector, query, conn)
        if verb == "create":
            return self._create(route, body, user, query)
        if verb == "update":
            return self._update(route, body, user, query)
        if verb == "patch":
            return self._patch(route, body, content_type, user, query)
        if verb == "delete":
            return self._delete(route, body, user)
        if verb == "deletecollection":
            return self._delete_collection(route, selector, user)
        raise _StatusError(405, f"the server does not allow this method on the requested resource ({method})")

    def _store(self, key: str) -> dict[tuple[str, str], JSON]:
        return self._objects.setdefault(key, {})

    def _not_found(self, route: _Route) -> _StatusError:
        return _StatusError(
            404, f'{_qualified(route.key)} "{route.name}" not found', details=_details(route.key, route.name)
        )

    def _get(self, route: _Route) -> JSON:
        assert route.namespace is not None and route.name is not None
        with self._lock:
            obj = self._store(route.key).get((route.namespace, route.name))
            if obj is None:
                raise self._not_found(route)
            return copy.deepcopy(obj)

    def _list(self, route: _Route, selector: _Selector) -> JSON:
        plural, _ = _split_key(route.key)
        with self._lock:
            items = []
            for (ns, _name), obj in sorted(self._store(route.key).items()):
                if route.namespace in (None, ns) and selector.matches(obj):
                    item = copy.deepcopy(obj)
                    item.pop("kind", None)  # like the real server: list items carry no kind/apiVersion
                    item.pop("apiVersion", None)
                    items.append(item)
            return {
                "kind": _kind_of(plural) + "List",
                "apiVersion": route.api_version,
                "metadata": {"resourceVersion": str(self._rv)},
                "items": items,
            }

    def _watch(self, route: _Route, selector: _Selector, query: dict[str, str], conn: socket.socket) -> _Watcher:
        watcher = _Watcher(route.key, route.namespace, selector, route.api_version, conn)
        rv_param = query.get("resourceVersion", "")
        with self._lock:
            if rv_param in ("", "0"):
                objs = [
                    o
                    for (ns, _), o in self._store(route.key).items()
                    if route.namespace in (None, ns) and selector.matches(o)
                ]
                for o in sorted(objs, key=lambda o: int(o["metadata"]["resourceVersion"])):
                    watcher.queue.put(("ADDED", copy.deepcopy(o)))
            else:
                try:
                    since = int(rv_param)
                except ValueError as e:
                    raise _StatusError(400, f'invalid resource version "{rv_param}"') from e
                if since < self._compacted_rv:
                    status = _status_body(
                        410, f"too old resource version: {since} ({self._compacted_rv})", "Expired", None
                    )
                    watcher.queue.put(("ERROR", status))
                    watcher.queue.put(_END)
                    return watcher
                for ev in self._history:
                    if ev.rv > since:
                        translated = self._translate(watcher, ev)
                        if translated is not None:
                            watcher.queue.put(translated)
            self._watchers.add(watcher)
        return watcher

    def _validate(self, route: _Route, obj: JSON, old: JSON | None) -> None:
        """The validation the exporter can trip on: names, ConfigMap keys and size, immutability."""
        plural, _ = _split_key(route.key)
        kind = _kind_of(plural)
        name = obj["metadata"].get("name", "")
        errors: list[tuple[str, str]] = []
        if old is None and not _DNS_SUBDOMAIN.match(name):
            errors.append(
                (
                    "metadata.name",
                    f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
                    "alphanumeric characters, '-' or '.', and must start and end with an "
                    "alphanumeric character",
                )
            )
        if plural in ("configmaps", "secrets") and route.group == "":
            data = obj.get("data") or {}
            binary = obj.get("binaryData") or {}
            if not isinstance(data, dict) or not isinstance(binary, dict):
                raise _StatusError(400, f'{kind} in version "v1" cannot be handled: data must be an object')
            size = 0
            for field_name, mapping in (("data", data), ("binaryData", binary)):
                for k, v in mapping.items():
                    if not _CONFIG_KEY.match(k):
                        errors.append(
                            (
                                f"{field_name}[{k}]",
                                f'Invalid value: "{k}": a valid config key must consist of alphanumeric '
                                "characters, '-', '_' or '.'",
                            )
                        )
                    if not isinstance(v, str):
                        raise _StatusError(400, f"{kind}.{field_name}: expected string, got {type(v).__name__}")
                    if field_name == "binaryData" or plural == "secrets":
                        try:
                            size += len(base64.b64decode(v, validate=True))
                        except (binascii.Error, ValueError) as e:
                            raise _StatusError(
                                400, f"{kind}.{field_name}: illegal base64 data in value of key {k!r}"
                            ) from e
                    else:
                        size += len(v.encode())
            for k in set(data) & set(binary):
                errors.append((f"data[{k}]", f'Invalid value: "{k}": duplicate of key present in binaryData'))
            if size > _CONFIGMAP_MAX_BYTES:
                errors.append(("[]", f"Too long: must have at most {_CONFIGMAP_MAX_BYTES} bytes"))
            if old is not None and old.get("immutable") is True:
                if obj.get("immutable") is not True:
                    errors.append(("immutable", f"Forbidden: {_IMMUTABLE_MSG}"))
                if (old.get("data") or {}) != data:
                    errors.append(("data", f"Forbidden: {_IMMUTABLE_MSG}"))
                if (old.get("binaryData") or {}) != binary:
                    errors.append(("binaryData", f"Forbidden: {_IMMUTABLE_MSG}"))
        if errors:
            text = [f"{f}: {m}" for f, m in errors]
            joined = text[0] if len(text) == 1 else "[" + ", ".join(text) + "]"
            causes = [
                {"reason": "FieldValue" + m.split(":", 1)[0].replace(" ", ""), "message": m, "field": f}
                for f, m in errors
            ]
            raise _StatusError(
                422,
                f'{kind} "{name}" is invalid: {joined}',
                details={"name": name, "group": route.group, "kind": kind, "causes": causes}
                if route.group
                else {"name": name, "kind": kind, "causes": causes},
            )

    def _check_body(self, route: _Route, body: Any) -> JSON:
        if not isinstance(body, dict):
            raise _StatusError(400, "the body of the request was in an unknown format")
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise _StatusError(400, "metadata must be an object")
        ns = meta.get("namespace")
        if ns and ns != route.namespace:
            raise _StatusError(
                400, "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["namespace"] = route.namespace
        plural, _ = _split_key(route.key)
        body["apiVersion"] = route.api_version
        body["kind"] = body.get("kind") or _kind_of(plural)
        return body

    def _create(self, route: _Route, body: Any, user: str | None, query: dict[str, str]) -> tuple[int, JSON]:
        if route.name is not None:
            raise _StatusError(405, "the server does not allow this method on the requested resource")
        obj = self._check_body(route, body)
        meta = obj["metadata"]
        assert route.namespace is not None
        if meta.get("resourceVersion"):
            # The real apiserver answers 500 without a reason: re-creating a fetched object as is fails.
            raise _StatusError(500, "resourceVersion should not be set on objects to be created", reason="")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        name = meta.get("name")
        if not name:
            raise _StatusError(
                422,
                f'{obj["kind"]} "" is invalid: metadata.name: Required value: name or generateName is required',
            )
        with self._lock:
            store = self._store(route.key)
            if (route.namespace, name) in store:
                raise _StatusError(
                    409,
                    f'{_qualified(route.key)} "{name}" already exists',
                    reason="AlreadyExists",
                    details=_details(route.key, name),
                )
            named = _Route(route.group, route.version, _split_key(route.key)[0], route.namespace, name)
            self._validate(named, obj, None)
            for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
                meta.pop(k, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now_rfc3339()
            if query.get("dryRun"):
                meta["resourceVersion"] = str(self._rv)
                return 201, copy.deepcopy(obj)
            rv = self._next_rv()
            meta["resourceVersion"] = str(rv)
            store[(route.namespace, name)] = obj
            self._log_write(user, "create", route.key, route.namespace, name, rv)
            self._emit(route.key, "ADDED", obj, None, rv)
            return 201, copy.deepcopy(obj)

    def _replace(
        self, route: _Route, old: JSON, new: JSON, user: str | None, verb: str, query: dict[str, str]
    ) -> tuple[int, JSON]:
        """Common tail of update and patch: optimistic concurrency, validation, system fields, store, emit."""
        assert route.namespace is not None and route.name is not None
        meta = new["metadata"]
        sent_rv = meta.get("resourceVersion")
        if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
            raise _StatusError(
                409,
                f'Operation cannot be fulfilled on {_qualified(route.key)} "{route.name}": '
                "the object has been modified; please apply your changes to the latest version and try again",
                details=_details(route.key, route.name),
            )
        if meta.get("name") not in (None, route.name):
            raise _StatusError(
                400,
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({route.name})",
            )
        meta["name"] = route.name
        self._validate(route, new, old)
        for k in ("uid", "creationTimestamp"):
            meta[k] = old["metadata"][k]
        if query.get("dryRun"):
            meta["resourceVersion"] = old["metadata"]["resourceVersion"]
            return 200, copy.deepcopy(new)
        if _strip_rv(new) == _strip_rv(old):
            return 200, copy.deepcopy(old)  # a no-op write does not bump the resourceVersion
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        self._store(route.key)[(route.namespace, route.name)] = new
        self._log_write(user, verb, route.key, route.namespace, route.name, rv)
        self._emit(route.key, "MODIFIED", new, old, rv)
        return 200, copy.deepcopy(new)

    def _update(self, route: _Route, body: Any, user: str | None, query: dict[str, str]) -> tuple[int, JSON]:
        new = self._check_body(route, body)
        assert route.namespace is not None and route.name is not None
        with self._lock:
            old = self._store(route.key).get((route.namespace, route.name))
            if old is None:
                raise self._not_found(route)
            return self._replace(route, old, new, user, "update", query)

    def _patch(
        self, route: _Route, body: Any, content_type: str, user: str | None, query: dict[str, str]
    ) -> tuple[int, JSON]:
        assert route.namespace is not None and route.name is not None
        with self._lock:
            old = self._store(route.key).get((route.namespace, route.name))
            if content_type == "application/apply-patch+yaml":
                if old is None:
                    created = self._create(
                        _Route(route.group, route.version, _split_key(route.key)[0], route.namespace, None),
                        body,
                        user,
                        query,
                    )
                    return 200, created[1]
                new = _merge_patch(old, body)
            elif old is None:
                raise self._not_found(route)
            elif content_type == "application/json-patch+json":
                new = _json_patch(old, body)
            elif content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                if not isinstance(body, dict):
                    raise _StatusError(400, "the body of the request was in an unknown format")
                new = _merge_patch(old, body)
            else:
                raise _StatusError(
                    415,
                    f"the body of the request was in an unknown format - accepted media types include: "
                    f"application/json-patch+json, application/merge-patch+json, "
                    f"application/apply-patch+yaml (got {content_type})",
                    reason="UnsupportedMediaType",
                )
            new = self._check_body(route, new)
            return self._replace(route, old, new, user, "patch", query)

    def _delete(self, route: _Route, body: Any, user: str | None) -> tuple[int, JSON]:
        assert route.namespace is not None and route.name is not None
        with self._lock:
            store = self._store(route.key)
            old = store.get((route.namespace, route.name))
            if old is None:
                raise self._not_found(route)
            pre = body.get("preconditions") if isinstance(body, dict) else None
            if isinstance(pre, dict):
                for field_name in ("uid", "resourceVersion"):
                    want, have = pre.get(field_name), old["metadata"].get(field_name)
                    if want and want != have:
                        label = "UID" if field_name == "uid" else "ResourceVersion"
                        raise _StatusError(
                            409,
                            f'Operation cannot be fulfilled on {_qualified(route.key)} "{route.name}": '
                            f"Precondition failed: {label} in precondition: {want}, "
                            f"{label} in object meta: {have}",
                            details=_details(route.key, route.name),
                        )
            del store[(route.namespace, route.name)]
            self._record_delete(user, route.key, route.namespace, route.name, old)
            details = _details(route.key, route.name, old["metadata"]["uid"])
            body_out = _status_body(200, "", None, details)
            body_out.pop("message")
            return 200, body_out

    def _delete_collection(self, route: _Route, selector: _Selector, user: str | None) -> tuple[int, JSON]:
        with self._lock:
            store = self._store(route.key)
            victims = [k for k, o in store.items() if route.namespace in (None, k[0]) and selector.matches(o)]
            for ns, name in sorted(victims):
                old = store.pop((ns, name))
                self._record_delete(user, route.key, ns, name, old)
        return 200, self._list(route, selector)


def _strip_rv(obj: JSON) -> JSON:
    out = copy.deepcopy(obj)
    out.get("metadata", {}).pop("resourceVersion", None)
    return out


@contextlib.contextmanager
def fake_kube_api(**kwargs: Any) -> Iterator[FakeKubeAPI]:
    """``with fake_kube_api() as api:`` — for a conftest fixture (``yield from``-style or ``with``)."""
    api = FakeKubeAPI(**kwargs)
    try:
        yield api
    finally:
        api.stop()
