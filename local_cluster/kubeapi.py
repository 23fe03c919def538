"""Emulated Kubernetes API server of the local k3s cluster.

* :class:`KubeAPI` -- the in-process API: an indexed, thread-safe :class:`~local_cluster.kubeapi_store.ObjectStore`
  (create/get/list/patch/replace/delete/evict + on_event/on_delete callbacks, plain dicts, no HTTP) that can
  also serve itself over HTTP (:meth:`KubeAPI.start`) on 127.0.0.1 and write a kubeconfig for kubectl,
  the ``kubernetes`` Python client and ``kubernetes.core`` modules.
* :class:`KubeAPIHandler` -- the HTTP side: a ``kmock`` (``KubernetesScaffold``) handler whose single
  fallback reaction routes Kubernetes REST paths to the store. kmock still serves as the HTTP
  server/router, so tests may inject faults with kmock's DSL on ``api.handler`` (e.g.
  ``api.handler['get /api/v1/nodes'] << 500``), which take priority over the fallback.

kmock's own ``KubernetesEmulator`` storage scans every object on each request and has no selectors,
LIST kinds, eviction or patch strategies, so it is not used; the store is ours. See KUBEAPI.md.
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import tempfile
import threading
import urllib.parse
from typing import Any, AsyncIterator

import aiohttp.web
import attrs
import kmock
import yaml

from local_cluster.kubeapi_errors import (ApiError, BadRequest, MethodNotAllowed, NotFound, Unauthorized)
from local_cluster.kubeapi_resources import ResourceRegistry, ResourceType
from local_cluster.kubeapi_store import KubeEvent, ObjectStore

SERVER_VERSION = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.4+k3s1", "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean", "buildDate": "2025-04-25T00:00:00Z", "goVersion": "go1.23.6", "compiler": "gc",
    "platform": "linux/amd64",
}
PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")
SUBRESOURCE_INFO: dict[str, dict[str, Any]] = {
    "status": {"verbs": ["get", "patch", "update"]},
    "eviction": {"group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]},
    "binding": {"kind": "Binding", "verbs": ["create"]},
    "scale": {"group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]},
    "finalize": {"verbs": ["update"]},
}
MAX_REQUEST_LOG = 1000  # kmock keeps every request for assertions; we keep only the most recent ones


def _parse_path_namespaces_ok(path: str, _orig=kmock._internal.parsing.parse_path):
    """kmock 0.8's parse_path raises ValueError on the bare ``/api/v1/namespaces`` collection (list/create
    Namespace) before our handler sees the request; parse it as the cluster-scoped ``namespaces`` plural."""
    try:
        return _orig(path)
    except ValueError:
        parts = [p for p in path.strip("/").split("/") if p]
        if parts[-1:] != ["namespaces"]:
            raise
        group = "" if parts[0] == "api" else parts[1]
        return kmock._internal.parsing.ParsedPath(group, parts[-2], "namespaces", None, None, None)


kmock._internal.parsing.parse_path = _parse_path_namespaces_ok


def _json_response(body: Any, status: int = 200) -> kmock.Response:
    return kmock.Response(status=status, payload=json.dumps(body, separators=(",", ":")).encode(),
                          headers={"Content-Type": "application/json"})


def _bool_param(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


@attrs.define(kw_only=True)
class KubeAPIHandler(kmock.KubernetesScaffold):
    """kmock handler serving the Kubernetes REST API from an :class:`ObjectStore`."""

    store: ObjectStore = attrs.field(factory=ObjectStore)
    token: str | None = None  # the bearer token (None: no authentication at all)
    strict_auth: bool = False  # also reject requests without an Authorization header
    _watch_queues: set = attrs.field(factory=set, init=False)
    _stopping: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        # Not calling super(): the scaffold's discovery is derived from kmock reactions; ours comes from
        # the resource registry. One catch-all fallback reaction routes everything to the store.
        self.fallback << self._dispatch

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        try:
            return await super().__call__(raw_request)
        finally:
            if len(self._requests) > 2 * MAX_REQUEST_LOG:
                del self._requests[:-MAX_REQUEST_LOG]
                for payload in self._payloads:
                    reqs = getattr(payload, "_requests", None)
                    if isinstance(reqs, list) and len(reqs) > MAX_REQUEST_LOG:
                        del reqs[:-MAX_REQUEST_LOG]
            for errors in self._errors:
                del errors[:-MAX_REQUEST_LOG]

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        err = exc if isinstance(exc, ApiError) else ApiError(f"internal error in the emulated API: {exc!r}")
        return aiohttp.web.json_response(err.status(), status=err.code)

    def stop_watches(self) -> None:
        self._stopping = True
        for loop, queue in list(self._watch_queues):
            loop.call_soon_threadsafe(queue.put_nowait, None)

    # ------------------------------------------------------------------ routing
    async def _dispatch(self, request: kmock.Request) -> kmock.Response:
        raw = request._raw_request
        path = raw.path.rstrip("/") or "/"
        try:
            if self.token is not None and path not in PUBLIC_PATHS:
                auth = request.headers.get("Authorization") or request.headers.get("authorization")
                # kubectl (client-go) never sends bearer tokens over plain http://, so a missing header is
                # accepted unless strict_auth; a present but wrong token is always rejected.
                if (auth is not None or self.strict_auth) and auth != f"Bearer {self.token}":
                    raise Unauthorized("Unauthorized: send 'Authorization: Bearer <token>' with the token from "
                                       "the kubeconfig written by local_cluster.kubeapi")
            result = self._route(request, path)
            if isinstance(result, kmock.Response):
                return result
            return _json_response(result)
        except ApiError as err:
            return _json_response(err.status(), err.code)

    def _route(self, request: kmock.Request, path: str) -> Any:
        method = request.method.upper()
        parts = [urllib.parse.unquote(p) for p in path.split("/") if p]
        if path in ("/healthz", "/livez", "/readyz"):
            return kmock.Response(status=200, payload=b"ok", headers={"Content-Type": "text/plain"})
        if path == "/version":
            return SERVER_VERSION
        if path == "/":
            return {"paths": sorted({"/api", "/api/v1", "/apis", "/version", "/healthz", "/livez", "/readyz"}
                                    | {f"/apis/{g}" for g in self.store.registry.groups()}
                                    | {f"/apis/{g}/{v}" for g, vs in self.store.registry.groups().items()
                                       for v in vs})}
        if not parts or parts[0] not in ("api", "apis"):
            raise NotFound(f"the server could not find the requested resource (path {path!r})")
        if parts[0] == "api":
            if len(parts) == 1:
                return self._api_versions(request)
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) == 1:
                return self._api_groups()
            if len(parts) == 2:
                return self._api_group(parts[1])
            group, version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            if method != "GET":
                raise MethodNotAllowed(f"{method} is not allowed on {path}")
            return self._resource_list(group, version)
        return self._serve_resource(request, group, version, rest, path)

    # ------------------------------------------------------------------ discovery
    def _api_versions(self, request: kmock.Request) -> dict:
        host = request.headers.get("Host") or "127.0.0.1"
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]}

    def _group_doc(self, group: str, versions: list[str]) -> dict:
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}

    def _api_groups(self) -> dict:
        return {"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [self._group_doc(g, vs) for g, vs in self.store.registry.groups().items()]}

    def _api_group(self, group: str) -> dict:
        versions = self.store.registry.groups().get(group)
        if not versions:
            raise NotFound(f"the server could not find the requested resource: API group {group!r} is not served")
        return {"kind": "APIGroup", "apiVersion": "v1", **self._group_doc(group, versions)}

    def _resource_list(self, group: str, version: str) -> dict:
        resources = self.store.registry.in_group_version(group, version)
        if not resources:
            raise NotFound(f"the server could not find the requested resource: {group or 'core'}/{version} "
                           "is not served")
        out = []
        for res in resources:
            out.append({"name": res.plural, "singularName": res.singular, "namespaced": res.namespaced,
                        "kind": res.kind, "verbs": list(res.verbs), "shortNames": list(res.short_names),
                        "categories": list(res.categories)})
            for sub in res.subresources:
                info = SUBRESOURCE_INFO.get(sub, {"verbs": ["get"]})
                entry = {"name": f"{res.plural}/{sub}", "singularName": "", "namespaced": res.namespaced,
                         "kind": info.get("kind", res.kind), "verbs": info["verbs"]}
                if "group" in info:
                    entry["group"], entry["version"] = info["group"], info["version"]
                out.append(entry)
        for entry in out:
            if not entry.get("shortNames"):
                entry.pop("shortNames", None)
            if not entry.get("categories"):
                entry.pop("categories", None)
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version, "resources": out}

    # ------------------------------------------------------------------ resources
    def _serve_resource(self, request: kmock.Request, group: str, version: str, rest: list[str], path: str) -> Any:
        registry: ResourceRegistry = self.store.registry
        api_version = f"{group}/{version}" if group else version
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            maybe = registry.by_plural(api_version, rest[2])
            if maybe is not None and maybe.namespaced:
                namespace, rest = rest[1], rest[2:]
        res = registry.by_plural(api_version, rest[0])
        if res is None:
            raise NotFound(f"the server could not find the requested resource: {rest[0]!r} in {api_version} "
                           f"(path {path})")
        if namespace is None and res.namespaced and len(rest) > 1:
            raise NotFound(f"the server could not find the requested resource: {res.plural} is namespaced, "
                           f"use {res.collection_path('NAMESPACE')}/{rest[1]}")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3 or (sub is not None and sub not in res.subresources):
            raise NotFound(f"the server could not find the requested resource: subresource {sub!r} of "
                           f"{res.plural} (path {path})")
        method = request.method.upper()
        params = request.params
        dry_run = bool(params.get("dryRun"))
        store = self.store
        if name is None:
            if method == "GET":
                if _bool_param(params.get("watch")):
                    return self._watch(res, namespace, params)
                return self._list(request, res, namespace, params)
            if method == "POST":
                body = self._body(request)
                return _json_response(store._create(res, body, namespace, dry_run=dry_run, copy=False), 201)
            if method == "DELETE":
                items, _, _, _ = store.list_page(res, namespace, label_selector=params.get("labelSelector"),
                                                 field_selector=params.get("fieldSelector"))
                deleted = [store.delete_resource(res, o["metadata"]["name"], o["metadata"].get("namespace"),
                                                 dry_run=dry_run, copy=False) for o in items]
                return {"kind": res.list_kind, "apiVersion": res.api_version,
                        "metadata": {"resourceVersion": store.resource_version}, "items": deleted}
            raise MethodNotAllowed(f"{method} is not allowed on the {res.plural} collection")
        if sub == "eviction":
            if method != "POST":
                raise MethodNotAllowed("pods/eviction only supports POST (create)")
            body = self._body(request)
            if (body.get("metadata") or {}).get("name") not in (None, name):
                raise BadRequest(f"name in the Eviction ({body['metadata']['name']}) does not match the URL ({name})")
            dry = dry_run or bool((body.get("deleteOptions") or {}).get("dryRun"))
            return _json_response(store.evict(name, namespace or "default", dry_run=dry,
                                              delete_options=body.get("deleteOptions")), 201)
        if sub == "binding":
            if method != "POST":
                raise MethodNotAllowed("pods/binding only supports POST (create)")
            body = self._body(request)
            target = (body.get("target") or {}).get("name")
            if not target:
                raise BadRequest("Binding.target.name (the node name) is required")
            store.patch_resource(res, name, {"spec": {"nodeName": target}}, namespace,
                                 content_type="application/merge-patch+json", subresource=None)
            return _json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                   "code": 201}, 201)
        subresource = sub if sub == "status" else "main"
        if method == "GET":
            with store._lock:
                obj = store._get_locked(res, store._ns_key(res, namespace), name)
            return obj
        if method == "PUT":
            body = self._body(request)
            return store.replace_resource(res, name, body, namespace, subresource=subresource, dry_run=dry_run,
                                          copy=False)
        if method == "PATCH":
            body = self._body(request, allow_list=True)
            ctype = request.headers.get("Content-Type") or request.headers.get("content-type") or ""
            return store.patch_resource(res, name, body, namespace, content_type=ctype, subresource=subresource,
                                        dry_run=dry_run, copy=False)
        if method == "DELETE":
            opts: dict[str, Any] = {}
            if request.body:
                opts = self._body(request)
            policy = opts.get("propagationPolicy") or params.get("propagationPolicy")
            if opts.get("orphanDependents") is True:
                policy = "Orphan"
            return store.delete_resource(res, name, namespace, propagation_policy=policy,
                                         preconditions=opts.get("preconditions"),
                                         dry_run=dry_run or bool(opts.get("dryRun")), copy=False)
        raise MethodNotAllowed(f"{method} is not allowed on {res.plural}/{name}")

    @staticmethod
    def _body(request: kmock.Request, allow_list: bool = False) -> Any:
        raw = request.body or b""
        ctype = (request.headers.get("Content-Type") or "").lower()
        try:
            if "yaml" in ctype:
                data = yaml.safe_load(raw.decode() or "null")
            else:
                data = json.loads(raw.decode() or "null")
        except (ValueError, yaml.YAMLError) as exc:
            raise BadRequest(f"request body is not valid JSON/YAML: {exc}")
        if isinstance(data, dict) or (allow_list and isinstance(data, list)):
            return data
        raise BadRequest("request body must be a JSON object" + (" or array" if allow_list else ""))

    def _list(self, request: kmock.Request, res: ResourceType, namespace: str | None, params: dict) -> Any:
        limit = params.get("limit")
        try:
            limit_n = int(limit) if limit else None
        except ValueError:
            raise BadRequest(f"limit={limit!r} must be an integer")
        items, rv, cont, remaining = self.store.list_page(
            res, namespace, label_selector=params.get("labelSelector"), field_selector=params.get("fieldSelector"),
            limit=limit_n if limit_n and limit_n > 0 else None, continue_token=params.get("continue"))
        accept = request.headers.get("Accept") or ""
        if "as=Table" in accept:
            return _table(res, items, rv, cont)
        meta: dict[str, Any] = {"resourceVersion": rv}
        if cont:
            meta["continue"] = cont
            if remaining is not None:
                meta["remainingItemCount"] = remaining
        return {"kind": res.list_kind, "apiVersion": res.api_version, "metadata": meta, "items": items}

    def _watch(self, res: ResourceType, namespace: str | None, params: dict) -> kmock.Response:
        """Minimal watch: initial ADDED events (unless a non-zero resourceVersion is given), then live events
        until timeoutSeconds (default 300) or server stop. No history replay."""
        from local_cluster.kubeapi_selectors import (match_fields, match_labels, parse_field_selector,
                                                     parse_label_selector)
        labels = parse_label_selector(params.get("labelSelector"))
        fields = parse_field_selector(params.get("fieldSelector"), res.supported_field_labels(), res.plural)
        timeout = float(params.get("timeoutSeconds") or 300)
        send_initial = params.get("resourceVersion") in (None, "", "0")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def wanted(obj: dict) -> bool:
            meta = obj.get("metadata", {})
            if namespace and meta.get("namespace") != namespace:
                return False
            return match_labels(labels, meta.get("labels")) and match_fields(fields, obj)

        def listener(event: KubeEvent) -> None:
            if event.resource is res and wanted(event.object):
                loop.call_soon_threadsafe(queue.put_nowait, {"type": event.type, "object": event.object})

        handler = self

        async def stream() -> AsyncIterator[bytes]:
            unsubscribe = handler.store.on_event(listener)
            entry = (loop, queue)
            handler._watch_queues.add(entry)
            try:
                yield b""  # lets kmock send the headers now
                if send_initial:
                    items, _, _, _ = handler.store.list_page(res, namespace, label_selector=params.get("labelSelector"),
                                                             field_selector=params.get("fieldSelector"))
                    for obj in items:
                        yield json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n"
                deadline = loop.time() + timeout
                while not handler._stopping:
                    try:
                        event = await asyncio.wait_for(queue.get(), max(0.0, deadline - loop.time()))
                    except asyncio.TimeoutError:
                        break
                    if event is None:
                        break
                    yield json.dumps(event).encode() + b"\n"
            finally:
                unsubscribe()
                handler._watch_queues.discard(entry)

        return kmock.Response(status=200, payload=stream(), headers={"Content-Type": "application/json"})


def _table(res: ResourceType, items: list[dict], rv: str, cont: str | None) -> dict:
    """meta.k8s.io/v1 Table for kubectl's default (human) output: NAME, STATUS, AGE."""
    import datetime
    now = datetime.datetime.now(datetime.timezone.utc)

    def age(ts: str | None) -> str:
        if not ts:
            return "<unknown>"
        secs = int((now - datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)).total_seconds())
        return f"{secs}s" if secs < 120 else f"{secs // 60}m" if secs < 7200 else f"{secs // 3600}h"

    def status(obj: dict) -> str:
        if res.kind == "Node":
            conds = {c.get("type"): c.get("status") for c in (obj.get("status") or {}).get("conditions") or []}
            text = {"True": "Ready", "False": "NotReady"}.get(conds.get("Ready"), "Unknown")
            return text + (",SchedulingDisabled" if (obj.get("spec") or {}).get("unschedulable") else "")
        return str((obj.get("status") or {}).get("phase") or "")

    meta: dict[str, Any] = {"resourceVersion": rv}
    if cont:
        meta["continue"] = cont
    return {
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": "metadata.name", "priority": 0},
            {"name": "Status", "type": "string", "format": "", "description": "status", "priority": 0},
            {"name": "Age", "type": "string", "format": "", "description": "creationTimestamp", "priority": 0},
        ],
        "rows": [{"cells": [o["metadata"]["name"], status(o), age(o["metadata"].get("creationTimestamp"))],
                  "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": o["metadata"]}} for o in items],
    }


class KubeAPI(ObjectStore):
    """The emulated Kubernetes API: the in-process Python API (inherited from :class:`ObjectStore`) plus an
    optional HTTP server in a background thread with its own event loop.

    >>> api = KubeAPI(kubeconfig_path="/tmp/kc.yaml").start()   # port=0: a free port
    >>> api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    >>> api.url, api.kubeconfig_path, api.token
    >>> api.stop()
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, kubeconfig_path: str | None = None,
                 token: str | None = None, cluster_name: str = "local-k3s", user_name: str = "local-k3s-admin",
                 strict_auth: bool = False, registry: ResourceRegistry | None = None):
        super().__init__(registry)
        self.host = host
        self._requested_port = port
        self.token = token or secrets.token_hex(16)
        self.cluster_name = cluster_name
        self.user_name = user_name
        self.kubeconfig_path = kubeconfig_path
        self.handler = KubeAPIHandler(store=self, token=self.token, strict_auth=strict_auth)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ server lifecycle
    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("KubeAPI HTTP server is not running: call start() first")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._port is not None

    def start(self, timeout: float = 30.0) -> "KubeAPI":
        """Start serving HTTP in a daemon thread and write the kubeconfig. Returns self."""
        if self._thread is not None:
            raise RuntimeError("KubeAPI is already started")
        self._thread = threading.Thread(target=self._run, name=f"kubeapi-{self.cluster_name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._startup_error is not None:
            err = self._startup_error
            self.stop()
            raise RuntimeError(f"KubeAPI failed to listen on {self.host}:{self._requested_port}: {err!r}") from err
        self.write_kubeconfig()
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start()
            self._startup_error = exc
            self._ready.set()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        async with self.handler, kmock.Server(self.handler, host=self.host, port=self._requested_port or None,
                                              user_agent="") as server:
            self._port = server.port
            self._ready.set()
            await self._stop_event.wait()
            self.handler.stop_watches()
            await asyncio.sleep(0)

    def stop(self) -> None:
        """Stop the HTTP server (the store keeps its objects)."""
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None and self._stop_event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._stop_event.set)
        thread.join(30)
        self._thread = None
        self._port = None
        self._ready.clear()

    def __enter__(self) -> "KubeAPI":
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ kubeconfig
    def kubeconfig(self) -> dict[str, Any]:
        """The kubeconfig document: cluster ``local-k3s`` at http://host:port, static bearer token user."""
        return {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": self.cluster_name, "cluster": {"server": self.url}}],
            "users": [{"name": self.user_name, "user": {"token": self.token}}],
            "contexts": [{"name": self.cluster_name, "context": {"cluster": self.cluster_name,
                                                                 "user": self.user_name, "namespace": "default"}}],
            "current-context": self.cluster_name,
        }

    def write_kubeconfig(self, path: str | None = None) -> str:
        """Write the kubeconfig (mode 0600) to ``path`` / ``kubeconfig_path`` / a temp file; returns the path."""
        path = path or self.kubeconfig_path or os.path.join(
            tempfile.gettempdir(), f"{self.cluster_name}-{self.port}.kubeconfig")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(self.kubeconfig(), fh, sort_keys=False)
        self.kubeconfig_path = path
        return path
