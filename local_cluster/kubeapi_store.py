"""Thread-safe, indexed, in-memory object store behind the emulated Kubernetes API.

Objects are plain JSON-shaped dicts, stored per resource as ``{namespace: {name: object}}``
(``""`` is the namespace of cluster-scoped objects). Pods are additionally indexed by
``spec.nodeName`` and by ``status.phase`` so that ``fieldSelector=spec.nodeName=X`` or
``status.phase=Pending`` lists never scan all pods. Stored dicts are never mutated in place
(copy-on-write), so a reference obtained with ``copy=False`` is a consistent snapshot.

Every write bumps one global ``metadata.resourceVersion`` counter and notifies subscribers
(:meth:`ObjectStore.on_event`, :meth:`ObjectStore.on_delete`) after the lock is released.
"""
from __future__ import annotations

import base64
import datetime
import json
import logging
import math
import secrets
import string
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from local_cluster import kubeapi_patch as patching
from local_cluster.kubeapi_errors import (ApiError, BadRequest, Conflict, Invalid, NotFound, TooManyRequests,
                                          already_exists, not_found)
from local_cluster.kubeapi_resources import ResourceRegistry, ResourceType
from local_cluster.kubeapi_selectors import (match_fields, match_label_selector_object, match_labels,
                                             parse_field_selector, parse_label_selector)

log = logging.getLogger(__name__)
deep_copy = patching.deep_copy

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
TERMINAL_PHASES = ("Succeeded", "Failed")
KINDS_WITHOUT_SPEC = frozenset({"ConfigMap", "Secret", "ServiceAccount", "Event", "ClusterRole", "ClusterRoleBinding",
                                "Role", "RoleBinding"})
KINDS_WITHOUT_STATUS = KINDS_WITHOUT_SPEC | {"Lease"}


@dataclass(frozen=True)
class KubeEvent:
    """A change notification. ``type`` is ADDED, MODIFIED or DELETED; ``reason`` says why:
    ``created``, ``updated``, ``deleted`` (DELETE call), ``evicted`` (pods/eviction),
    ``garbage-collected`` (owner deleted) or ``namespace-deleted``. ``object`` is the new state
    (for DELETED: the last state); ``old_object`` the previous state (None for ADDED). Treat both as
    read-only; copy before mutating."""
    type: str
    resource: ResourceType
    object: dict[str, Any]
    old_object: dict[str, Any] | None
    reason: str

    @property
    def namespace(self) -> str | None:
        return self.object.get("metadata", {}).get("namespace")

    @property
    def name(self) -> str:
        return self.object["metadata"]["name"]


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _random_suffix(n: int = 5) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"  # the apiserver's generateName alphabet
    return "".join(secrets.choice(alphabet) for _ in range(n))


_DNS_OK = set(string.ascii_lowercase + string.digits + "-.")


class ObjectStore:
    """The Python API of the emulated cluster. All methods are thread-safe and return plain dicts
    (deep copies unless ``copy=False``). ``api_version`` is e.g. ``"v1"`` or ``"apps/v1"``;
    ``kind`` accepts a kind (``"Pod"``), plural (``"pods"``), singular or short name (``"po"``)."""

    def __init__(self, registry: ResourceRegistry | None = None, *, create_default_namespaces: bool = True):
        self.registry = registry or ResourceRegistry()
        self._lock = threading.RLock()
        self._rv = 0
        self._objects: dict[tuple[str, str, str], dict[str, dict[str, dict[str, Any]]]] = {
            r.key: {} for r in self.registry.resources}
        self._pods_by_node: dict[str, set[tuple[str, str]]] = {}
        self._pods_by_phase: dict[str, set[tuple[str, str]]] = {}
        self._dependents: dict[str, set[tuple[tuple[str, str, str], str, str]]] = {}
        self._listeners: list[Callable[[KubeEvent], None]] = []
        self._pods = self.registry.by_plural("v1", "pods")
        self._namespaces = self.registry.by_plural("v1", "namespaces")
        self._pdbs = self.registry.by_plural("policy/v1", "poddisruptionbudgets")
        if create_default_namespaces:
            for ns in DEFAULT_NAMESPACES:
                self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    # ------------------------------------------------------------------ subscriptions
    def on_event(self, callback: Callable[[KubeEvent], None]) -> Callable[[], None]:
        """Call ``callback(KubeEvent)`` after every ADDED/MODIFIED/DELETED change, in the thread that
        made the change, after the store lock is released (the callback may call the store).
        Exceptions are logged and swallowed. Returns an unsubscribe function."""
        with self._lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)
        return unsubscribe

    def on_delete(self, callback: Callable[[KubeEvent], None]) -> Callable[[], None]:
        """Like :meth:`on_event`, for DELETED events only (deletes, evictions, garbage collection)."""
        def only_deleted(event: KubeEvent) -> None:
            if event.type == "DELETED":
                callback(event)
        return self.on_event(only_deleted)

    def _emit(self, events: list[KubeEvent]) -> None:
        if not events:
            return
        listeners = list(self._listeners)
        for event in events:
            for listener in listeners:
                try:
                    listener(event)
                except Exception:  # a broken simulator callback must not break the API request
                    log.exception("kubeapi event listener %r failed on %s %s", listener, event.type, event.name)

    # ------------------------------------------------------------------ lookups
    def resolve(self, api_version: str, kind: str) -> ResourceType:
        res = self.registry.lookup(api_version, kind)
        if res is None:
            raise NotFound(f"the server could not find the requested resource: no kind or resource {kind!r} "
                           f"in apiVersion {api_version!r} (served: "
                           f"{', '.join(sorted({r.api_version + '/' + r.kind for r in self.registry.resources}))})")
        return res

    def _ns_key(self, res: ResourceType, namespace: str | None, *, required: bool = True) -> str:
        if not res.namespaced:
            return ""
        if not namespace:
            if required:
                raise BadRequest(f"{res.kind} is namespaced: a namespace is required (metadata.namespace "
                                 f"or the namespace argument)")
            return ""
        return namespace

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    @property
    def resource_version(self) -> str:
        """The current (latest) global resourceVersion."""
        with self._lock:
            return str(self._rv)

    def _get_locked(self, res: ResourceType, ns: str, name: str) -> dict[str, Any]:
        obj = self._objects[res.key].get(ns, {}).get(name)
        if obj is None:
            raise not_found(res.plural, res.group, name)
        return obj

    # ------------------------------------------------------------------ indexes
    def _index(self, res: ResourceType, ns: str, name: str, old: dict | None, new: dict | None) -> None:
        if res is self._pods:
            key = (ns, name)
            if old is not None:
                for index, value in ((self._pods_by_node, (old.get("spec") or {}).get("nodeName") or ""),
                                     (self._pods_by_phase, (old.get("status") or {}).get("phase") or "")):
                    bucket = index.get(value)
                    if bucket is not None:
                        bucket.discard(key)
                        if not bucket:
                            del index[value]
            if new is not None:
                self._pods_by_node.setdefault((new.get("spec") or {}).get("nodeName") or "", set()).add(key)
                self._pods_by_phase.setdefault((new.get("status") or {}).get("phase") or "", set()).add(key)
        old_owners = {o.get("uid") for o in ((old or {}).get("metadata", {}).get("ownerReferences") or [])}
        new_owners = {o.get("uid") for o in ((new or {}).get("metadata", {}).get("ownerReferences") or [])}
        for uid in old_owners - new_owners:
            deps = self._dependents.get(uid)
            if deps is not None:
                deps.discard((res.key, ns, name))
                if not deps:
                    del self._dependents[uid]
        for uid in new_owners - old_owners:
            if uid:
                self._dependents.setdefault(uid, set()).add((res.key, ns, name))

    def _put(self, res: ResourceType, ns: str, name: str, old: dict | None, new: dict | None) -> None:
        bucket = self._objects[res.key]
        if new is None:
            names = bucket.get(ns)
            if names is not None:
                names.pop(name, None)
                if not names:
                    del bucket[ns]
        else:
            bucket.setdefault(ns, {})[name] = new
        self._index(res, ns, name, old, new)

    # ------------------------------------------------------------------ create
    def create(self, obj: dict[str, Any], namespace: str | None = None, *, dry_run: bool = False,
               copy: bool = True) -> dict[str, Any]:
        """Create ``obj`` (its ``apiVersion``/``kind`` pick the resource). Fills uid, resourceVersion,
        creationTimestamp, generation, ``metadata.name`` from ``generateName``; pods default
        ``status.phase`` to Pending. Raises AlreadyExists (409), NotFound (404, missing namespace),
        Invalid (422, missing name)."""
        if not isinstance(obj, dict):
            raise BadRequest("object must be a JSON object")
        res = self.resolve(obj.get("apiVersion") or "", obj.get("kind") or "")
        return self._create(res, obj, namespace, dry_run=dry_run, copy=copy)

    def _create(self, res: ResourceType, obj: dict[str, Any], namespace: str | None, *, dry_run: bool = False,
                copy: bool = True) -> dict[str, Any]:
        new = deep_copy(obj)
        new["apiVersion"], new["kind"] = res.api_version, res.kind
        meta = new.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise Invalid("metadata must be an object")
        if res.namespaced:
            if namespace and meta.get("namespace") and meta["namespace"] != namespace:
                raise BadRequest(f"the namespace of the provided object ({meta['namespace']}) does not match "
                                 f"the namespace sent on the request ({namespace})")
            meta["namespace"] = namespace or meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        events = []
        with self._lock:
            if not meta.get("name"):
                if meta.get("generateName"):
                    ns_objs = self._objects[res.key].get(self._ns_key(res, meta.get("namespace")), {})
                    name = meta["generateName"] + _random_suffix()
                    while name in ns_objs:
                        name = meta["generateName"] + _random_suffix()
                    meta["name"] = name
                else:
                    raise Invalid(f"{res.kind}: metadata.name: Required value: name or generateName is required",
                                  details={"kind": res.kind, "causes": [{"field": "metadata.name",
                                                                         "reason": "FieldValueRequired"}]})
            name = meta["name"]
            if not isinstance(name, str) or not name or not set(name) <= _DNS_OK and res.kind not in (
                    "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
                raise Invalid(f'{res.kind} "{name}" is invalid: metadata.name: must be a lowercase RFC 1123 name')
            ns = self._ns_key(res, meta.get("namespace"))
            if res.namespaced and ns not in self._objects[self._namespaces.key].get("", {}):
                raise NotFound(f'namespaces "{ns}" not found',
                               details={"name": ns, "kind": "namespaces"})
            if name in self._objects[res.key].get(ns, {}):
                raise already_exists(res.plural, res.group, name)
            meta.pop("deletionTimestamp", None)
            meta.pop("resourceVersion", None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            if res.has_spec_generation:
                meta["generation"] = 1
            if res.kind not in KINDS_WITHOUT_SPEC:
                new.setdefault("spec", {})  # a struct in the Go types: always serialized
            if res.kind not in KINDS_WITHOUT_STATUS:
                new.setdefault("status", {})
            if res is self._pods:
                status = new.setdefault("status", {})
                if not status.get("phase"):
                    status["phase"] = "Pending"
                status.setdefault("qosClass", "BestEffort")
            elif res is self._namespaces:
                new.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
                new.setdefault("status", {})["phase"] = "Active"
            if dry_run:
                return new
            meta["resourceVersion"] = self._next_rv()
            self._put(res, ns, name, None, new)
            events.append(KubeEvent("ADDED", res, new, None, "created"))
        self._emit(events)
        return deep_copy(new) if copy else new

    # ------------------------------------------------------------------ read
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None, *,
            copy: bool = True) -> dict[str, Any]:
        """Return one object; raises NotFound (404)."""
        res = self.resolve(api_version, kind)
        with self._lock:
            obj = self._get_locked(res, self._ns_key(res, namespace), name)
        return deep_copy(obj) if copy else obj

    def exists(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        res = self.resolve(api_version, kind)
        with self._lock:
            return name in self._objects[res.key].get(self._ns_key(res, namespace), {})

    def list(self, api_version: str, kind: str, namespace: str | None = None, *,
             label_selector: str | None = None, field_selector: str | None = None,
             copy: bool = True) -> list[dict[str, Any]]:
        """Objects sorted by (namespace, name); ``namespace=None`` lists all namespaces. Selector strings
        use the apiserver syntax (see :mod:`local_cluster.kubeapi_selectors`)."""
        res = self.resolve(api_version, kind)
        items, _, _, _ = self.list_page(res, namespace, label_selector=label_selector,
                                        field_selector=field_selector)
        return [deep_copy(i) for i in items] if copy else items

    def count(self, api_version: str, kind: str, namespace: str | None = None) -> int:
        res = self.resolve(api_version, kind)
        with self._lock:
            if namespace is not None and res.namespaced:
                return len(self._objects[res.key].get(namespace, {}))
            return sum(len(v) for v in self._objects[res.key].values())

    def list_page(self, res: ResourceType, namespace: str | None, *, label_selector: str | None = None,
                  field_selector: str | None = None, limit: int | None = None,
                  continue_token: str | None = None) -> tuple[list[dict], str, str | None, int | None]:
        """LIST with selectors and pagination. Returns (items NOT copied, resourceVersion, continue token or
        None, remainingItemCount or None). Items are shared snapshots: do not mutate them."""
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, res.supported_field_labels(), res.plural)
        start: tuple[str, str] | None = None
        if continue_token:
            try:
                start = tuple(json.loads(base64.urlsafe_b64decode(continue_token.encode()))["start"])  # type: ignore
            except Exception:
                raise BadRequest(f"continue token {continue_token!r} is invalid; restart the list without it")
        ns_filter = namespace if (res.namespaced and namespace) else None
        with self._lock:
            rv = str(self._rv)
            bucket = self._objects[res.key]
            keys: list[tuple[str, str]] | None = None
            remaining_fields = fields
            if res is self._pods:
                candidates: set[tuple[str, str]] | None = None
                rest = []
                for req in fields:
                    index = {"spec.nodeName": self._pods_by_node, "status.phase": self._pods_by_phase}.get(req.path)
                    if index is not None and req.op == "=":
                        found = index.get(req.value, set())
                        candidates = set(found) if candidates is None else candidates & found
                    else:
                        rest.append(req)
                if candidates is not None:
                    remaining_fields = tuple(rest)
                    keys = sorted(k for k in candidates if ns_filter is None or k[0] == ns_filter)
            if keys is None:
                if ns_filter is not None:
                    keys = [(ns_filter, n) for n in sorted(bucket.get(ns_filter, {}))]
                else:
                    keys = [(ns, n) for ns in sorted(bucket) for n in sorted(bucket[ns])]
            if start is not None:
                import bisect
                keys = keys[bisect.bisect_right(keys, start):]
            items: list[dict] = []
            next_token = None
            remaining = None
            for i, (ns, n) in enumerate(keys):
                obj = bucket[ns][n]
                if labels and not match_labels(labels, obj.get("metadata", {}).get("labels")):
                    continue
                if remaining_fields and not match_fields(remaining_fields, obj):
                    continue
                if limit is not None and len(items) >= limit:
                    last = items[-1]["metadata"]
                    next_token = base64.urlsafe_b64encode(json.dumps(
                        {"start": [last.get("namespace", ""), last["name"]]}).encode()).decode()
                    if not labels and not remaining_fields:
                        remaining = len(keys) - i
                    break
                items.append(obj)
        return items, rv, next_token, remaining

    # ------------------------------------------------------------------ update
    def _finish_update(self, res: ResourceType, old: dict, new: dict, *, subresource: str | None,
                       expected_rv: str | None) -> dict:
        """Validate & normalise an updated object (lock held). Returns the object to store."""
        meta, old_meta = new.setdefault("metadata", {}), old["metadata"]
        if expected_rv and expected_rv != old_meta.get("resourceVersion"):
            raise Conflict(f'Operation cannot be fulfilled on {res.plural} "{old_meta["name"]}": the object has '
                           f"been modified; please apply your changes to the latest version and try again "
                           f"(sent resourceVersion {expected_rv}, current {old_meta.get('resourceVersion')})",
                           details={"name": old_meta["name"], "group": res.group, "kind": res.plural})
        if meta.get("name", old_meta["name"]) != old_meta["name"]:
            raise BadRequest(f"metadata.name is immutable: cannot change {old_meta['name']!r} to {meta.get('name')!r}")
        new["apiVersion"], new["kind"] = res.api_version, res.kind
        for immutable in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                          "deletionGracePeriodSeconds", "generation"):
            if immutable in old_meta:
                meta[immutable] = old_meta[immutable]
            else:
                meta.pop(immutable, None)
        if subresource == "status":  # only .status may change
            new = {**{k: v for k, v in old.items() if k != "status"}, "status": new.get("status", {}),
                   "metadata": old_meta}
            meta = new["metadata"] = dict(old_meta)
        elif subresource == "main" and "status" in res.subresources:  # status changes ignored
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        if res.has_spec_generation and "generation" in old_meta:
            strip = ("metadata", "status")
            if {k: v for k, v in new.items() if k not in strip} != {k: v for k, v in old.items() if k not in strip}:
                meta["generation"] = old_meta["generation"] + 1
        if res is self._pods:
            old_node = (old.get("spec") or {}).get("nodeName")
            new_node = (new.get("spec") or {}).get("nodeName")
            if old_node and new_node != old_node:
                raise Invalid(f'Pod "{old_meta["name"]}" is invalid: spec.nodeName: Forbidden: pod updates may '
                              f"not change the node binding ({old_node!r} -> {new_node!r})")
        return new

    def _commit_update(self, res: ResourceType, ns: str, name: str, old: dict, new: dict,
                       events: list[KubeEvent], dry_run: bool) -> dict:
        meta = new["metadata"]
        if dry_run:
            return new
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove_locked(res, ns, name, events, "deleted", last=new)
            return new
        if new == old:
            return old  # no-op writes keep the resourceVersion (as the apiserver does)
        meta["resourceVersion"] = self._next_rv()
        self._put(res, ns, name, old, new)
        events.append(KubeEvent("MODIFIED", res, new, old, "updated"))
        return new

    def patch(self, api_version: str, kind: str, name: str, patch: Any, namespace: str | None = None, *,
              patch_type: str = "merge", subresource: str | None = None, dry_run: bool = False,
              copy: bool = True, _http: bool = False) -> dict[str, Any]:
        """Patch one object. ``patch_type``: ``merge`` (RFC 7386), ``strategic`` (strategic merge patch),
        ``json`` (RFC 6902 list of ops), ``apply`` (server-side apply, approximated as merge; creates
        if missing) or a full Content-Type. ``subresource="status"`` changes only ``.status``. From Python
        (``subresource=None``) spec and status may change together. A ``metadata.resourceVersion`` in the
        patch is a precondition (409 Conflict if stale)."""
        res = self.resolve(api_version, kind)
        return self.patch_resource(res, name, patch, namespace, content_type=patching.PATCH_TYPES.get(
            patch_type, patch_type), subresource=subresource, dry_run=dry_run, copy=copy)

    def patch_resource(self, res: ResourceType, name: str, patch: Any, namespace: str | None, *,
                       content_type: str, subresource: str | None = None, dry_run: bool = False,
                       copy: bool = True) -> dict[str, Any]:
        ctype = content_type.split(";")[0].strip().lower()
        events: list[KubeEvent] = []
        with self._lock:
            ns = self._ns_key(res, namespace)
            old = self._objects[res.key].get(ns, {}).get(name)
            if old is None:
                if ctype == patching.APPLY_PATCH and isinstance(patch, dict):
                    body = deep_copy(patch)
                    body.setdefault("metadata", {})["name"] = name
                    return self._create(res, body, ns or None, dry_run=dry_run, copy=copy)
                raise not_found(res.plural, res.group, name)
            expected_rv = None
            if isinstance(patch, dict):
                expected_rv = (patch.get("metadata") or {}).get("resourceVersion")
            new = patching.apply_patch(old, patch, ctype)
            if not isinstance(new, dict):
                raise Invalid("the patch must produce a JSON object")
            new = self._finish_update(res, old, new, subresource=subresource, expected_rv=expected_rv)
            new["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
            result = self._commit_update(res, ns, name, old, new, events, dry_run)
        self._emit(events)
        return deep_copy(result) if copy else result

    def replace(self, obj: dict[str, Any], namespace: str | None = None, *, subresource: str | None = None,
                dry_run: bool = False, copy: bool = True) -> dict[str, Any]:
        """PUT semantics: replace the whole object. If ``metadata.resourceVersion`` is set it must match
        (409 Conflict otherwise)."""
        res = self.resolve(obj.get("apiVersion") or "", obj.get("kind") or "")
        name = (obj.get("metadata") or {}).get("name")
        return self.replace_resource(res, name, obj, namespace or (obj.get("metadata") or {}).get("namespace"),
                                     subresource=subresource, dry_run=dry_run, copy=copy)

    def replace_resource(self, res: ResourceType, name: str | None, obj: dict[str, Any], namespace: str | None, *,
                         subresource: str | None = None, dry_run: bool = False, copy: bool = True) -> dict:
        if not isinstance(obj, dict):
            raise BadRequest("object must be a JSON object")
        if not name:
            raise Invalid(f"{res.kind}: metadata.name: Required value")
        body_name = (obj.get("metadata") or {}).get("name")
        if body_name and body_name != name:
            raise BadRequest(f"the name of the object ({body_name}) does not match the name on the URL ({name})")
        events: list[KubeEvent] = []
        with self._lock:
            ns = self._ns_key(res, namespace)
            old = self._get_locked(res, ns, name)
            new = deep_copy(obj)
            new.setdefault("metadata", {})
            expected_rv = new["metadata"].get("resourceVersion")
            new = self._finish_update(res, old, new, subresource=subresource, expected_rv=expected_rv)
            new["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
            result = self._commit_update(res, ns, name, old, new, events, dry_run)
        self._emit(events)
        return deep_copy(result) if copy else result

    # ------------------------------------------------------------------ delete
    def _remove_locked(self, res: ResourceType, ns: str, name: str, events: list[KubeEvent], reason: str,
                       last: dict | None = None, propagation: str = "Background") -> None:
        old = self._objects[res.key].get(ns, {}).get(name)
        if old is None:
            return
        final = last if last is not None else old
        if last is not None:
            final["metadata"]["resourceVersion"] = self._next_rv()
        self._put(res, ns, name, old, None)
        events.append(KubeEvent("DELETED", res, final, old, reason))
        uid = old["metadata"].get("uid")
        if res is self._namespaces:
            for rkey, bucket in self._objects.items():
                for child in list(bucket.get(name, {})):
                    child_res = next(r for r in self.registry.resources if r.key == rkey)
                    self._remove_locked(child_res, name, child, events, "namespace-deleted")
        if propagation != "Orphan" and uid in self._dependents:
            for rkey, dns, dname in sorted(self._dependents.pop(uid, set())):
                dep = self._objects[rkey].get(dns, {}).get(dname)
                if dep is None:
                    continue
                others = [o for o in dep["metadata"].get("ownerReferences") or [] if o.get("uid") != uid]
                if any(self._uid_exists(o.get("uid")) for o in others):
                    continue
                dep_res = next(r for r in self.registry.resources if r.key == rkey)
                self._remove_locked(dep_res, dns, dname, events, "garbage-collected")

    def _uid_exists(self, uid: str | None) -> bool:
        # Only owners that have dependents indexed are tracked cheaply; fall back to a scan of kinds
        # that usually own objects.
        if not uid:
            return False
        for res in self.registry.resources:
            if res.kind in ("ReplicaSet", "Deployment", "DaemonSet", "Job", "CronJob", "Node", "Namespace"):
                for names in self._objects[res.key].values():
                    if any(o["metadata"].get("uid") == uid for o in names.values()):
                        return True
        return False

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None, *,
               propagation_policy: str | None = None, preconditions: dict[str, str] | None = None,
               reason: str = "deleted", dry_run: bool = False, copy: bool = True) -> dict[str, Any]:
        """Delete one object and return its last state. Objects with ``metadata.finalizers`` only get
        ``deletionTimestamp`` (removed once the finalizers are patched away). Dependents (by
        ``ownerReferences`` uid) are deleted too unless ``propagation_policy="Orphan"``; deleting a
        Namespace deletes everything in it. Pods are removed immediately (no grace period)."""
        res = self.resolve(api_version, kind)
        return self.delete_resource(res, name, namespace, propagation_policy=propagation_policy,
                                    preconditions=preconditions, reason=reason, dry_run=dry_run, copy=copy)

    def delete_resource(self, res: ResourceType, name: str, namespace: str | None, *,
                        propagation_policy: str | None = None, preconditions: dict[str, str] | None = None,
                        reason: str = "deleted", dry_run: bool = False, copy: bool = True) -> dict[str, Any]:
        if propagation_policy not in (None, "Background", "Foreground", "Orphan"):
            raise BadRequest(f"propagationPolicy {propagation_policy!r} must be Background, Foreground or Orphan")
        events: list[KubeEvent] = []
        with self._lock:
            ns = self._ns_key(res, namespace)
            old = self._get_locked(res, ns, name)
            meta = old["metadata"]
            for field in ("uid", "resourceVersion"):
                want = (preconditions or {}).get(field)
                if want and want != meta.get(field):
                    raise Conflict(f'Precondition failed for {res.plural} "{name}": {field} in precondition '
                                   f"{want}, in object {meta.get(field)}")
            if dry_run:
                return deep_copy(old) if copy else old
            if meta.get("finalizers"):
                if meta.get("deletionTimestamp"):
                    return deep_copy(old) if copy else old
                new = deep_copy(old)
                new["metadata"]["deletionTimestamp"] = now_rfc3339()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                new["metadata"]["resourceVersion"] = self._next_rv()
                self._put(res, ns, name, old, new)
                events.append(KubeEvent("MODIFIED", res, new, old, "deleting"))
                result = new
            else:
                result = deep_copy(old)
                result["metadata"]["deletionTimestamp"] = now_rfc3339()
                result["metadata"]["deletionGracePeriodSeconds"] = 0
                self._remove_locked(res, ns, name, events, reason, last=result,
                                    propagation=propagation_policy or "Background")
        self._emit(events)
        return deep_copy(result) if copy else result

    # ------------------------------------------------------------------ eviction
    def evict(self, name: str, namespace: str, *, dry_run: bool = False,
              delete_options: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``pods/eviction`` subresource (policy/v1 Eviction). Deletes the pod (on_delete reason
        ``evicted``) unless the one PodDisruptionBudget of its namespace whose ``spec.selector`` matches
        the pod would drop below ``minAvailable`` / exceed ``maxUnavailable``: then raises
        TooManyRequests (429, cause DisruptionBudget). Pods that are Pending, Succeeded, Failed or
        already terminating are always evictable. Healthy = Running and not Ready=False. Returns the
        success Status."""
        events: list[KubeEvent] = []
        with self._lock:
            pod = self._get_locked(self._pods, namespace, name)
            phase = (pod.get("status") or {}).get("phase")
            if not (pod["metadata"].get("deletionTimestamp") or phase in ("Pending",) + TERMINAL_PHASES):
                labels = pod["metadata"].get("labels") or {}
                pdbs = [p for p in self._objects[self._pdbs.key].get(namespace, {}).values()
                        if match_label_selector_object((p.get("spec") or {}).get("selector"), labels)]
                if len(pdbs) > 1:
                    raise ApiError("This pod has more than one PodDisruptionBudget, which the eviction subresource "
                                   f"does not support ({', '.join(p['metadata']['name'] for p in pdbs)})")
                if pdbs:
                    self._check_pdb(pdbs[0], pod, namespace)
            if not dry_run:
                result = deep_copy(pod)
                result["metadata"]["deletionTimestamp"] = now_rfc3339()
                self._remove_locked(self._pods, namespace, name, events, "evicted", last=result,
                                    propagation=(delete_options or {}).get("propagationPolicy") or "Background")
        self._emit(events)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def _check_pdb(self, pdb: dict, pod: dict, namespace: str) -> None:
        spec = pdb.get("spec") or {}
        matching = [p for p in self._objects[self._pods.key].get(namespace, {}).values()
                    if (p.get("status") or {}).get("phase") not in TERMINAL_PHASES
                    and not p["metadata"].get("deletionTimestamp")
                    and match_label_selector_object(spec.get("selector"), p["metadata"].get("labels"))]
        expected = self._expected_pods(matching, namespace)
        healthy = sum(1 for p in matching if _is_healthy(p))

        def scaled(value: Any, field: str) -> int:
            if isinstance(value, str) and value.endswith("%"):
                try:
                    return math.ceil(expected * int(value[:-1]) / 100)
                except ValueError:
                    pass
            elif isinstance(value, int):
                return value
            raise Invalid(f"PodDisruptionBudget {pdb['metadata']['name']}: spec.{field} {value!r} must be an "
                          "integer or a percentage like '50%'")
        if spec.get("minAvailable") is not None:
            desired = scaled(spec["minAvailable"], "minAvailable")
        elif spec.get("maxUnavailable") is not None:
            desired = max(0, expected - scaled(spec["maxUnavailable"], "maxUnavailable"))
        else:
            desired = expected  # no budget fields: no voluntary disruption allowed
        allowed = healthy - desired
        if not _is_healthy(pod) and healthy >= desired:
            return  # unhealthy pods may go when the budget is met (IfHealthyBudget)
        if allowed <= 0:
            pdb_name = pdb["metadata"]["name"]
            raise TooManyRequests(
                "Cannot evict pod as it would violate the pod's disruption budget.",
                details={"causes": [{"reason": "DisruptionBudget",
                                     "message": f"The disruption budget {pdb_name} needs {desired} healthy pods "
                                                f"and has {healthy} currently"}]})


    def _expected_pods(self, pods: list[dict], namespace: str) -> int:
        """Like the disruption controller: the sum of ``spec.replicas`` of the pods' controllers
        (ReplicaSet, Deployment, Job ``parallelism``); pods without such a controller count as 1 each."""
        by_uid: dict[str, dict] = {}
        for kind in ("replicasets", "deployments"):
            res = self.registry.by_plural("apps/v1", kind)
            for obj in self._objects[res.key].get(namespace, {}).values():
                by_uid[obj["metadata"]["uid"]] = obj
        seen: set[str] = set()
        expected = 0
        for pod in pods:
            ref = next((o for o in pod["metadata"].get("ownerReferences") or [] if o.get("controller")), None)
            owner = by_uid.get(ref.get("uid")) if ref else None
            replicas = (owner.get("spec") or {}).get("replicas") if owner else None
            if owner is None or not isinstance(replicas, int):
                expected += 1
            elif owner["metadata"]["uid"] not in seen:
                seen.add(owner["metadata"]["uid"])
                expected += replicas
        return expected


def _is_healthy(pod: dict) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return True
