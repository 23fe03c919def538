"""PATCH algorithms of the emulated Kubernetes API. All functions return a NEW object and never
mutate their inputs.

* ``application/merge-patch+json`` -- RFC 7386 JSON merge patch (:func:`merge_patch`).
* ``application/strategic-merge-patch+json`` -- Kubernetes strategic merge patch for the lists the
  built-in types mark as ``patchStrategy: merge`` (containers/volumes/env/... by name, conditions by
  type, taints by key, ownerReferences by uid, ...); other lists are replaced. Supports the ``$patch:
  delete|replace`` directive, ignores ``$setElementOrder/...`` and ``$retainKeys`` (:func:`strategic_merge_patch`).
* ``application/json-patch+json`` -- RFC 6902 JSON patch (:func:`json_patch`).
* ``application/apply-patch+yaml`` -- server-side apply, approximated as a merge patch.
"""
from __future__ import annotations

from typing import Any

from local_cluster.kubeapi_errors import Conflict, Invalid, UnsupportedMediaType

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = {"json": JSON_PATCH, "merge": MERGE_PATCH, "strategic": STRATEGIC_MERGE_PATCH, "apply": APPLY_PATCH}

# list field name -> merge key, for the built-in types (patchStrategy=merge in the Go structs).
MERGE_KEYS: dict[str, str] = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "volumes": "name",
    "env": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath", "ports": "containerPort",
    "conditions": "type", "taints": "key", "ownerReferences": "uid", "imagePullSecrets": "name",
    "tolerations": "",  # replace (no merge key in the API)
    "hostAliases": "ip", "addresses": "type", "containerStatuses": "name", "initContainerStatuses": "name",
}


def deep_copy(value: Any) -> Any:
    """Fast deep copy for JSON-shaped data (dict/list/scalars)."""
    if isinstance(value, dict):
        return {k: deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deep_copy(v) for v in value]
    return value


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: dicts merge recursively, ``null`` deletes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return deep_copy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def strategic_merge_patch(target: Any, patch: Any, field: str = "") -> Any:
    if isinstance(patch, dict):
        directive = patch.get("$patch")
        if directive == "delete":
            return None
        if directive == "replace":
            return deep_copy({k: v for k, v in patch.items() if k != "$patch"})
        out = dict(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
                continue
            if key.startswith("$deleteFromPrimitiveList/"):
                name = key.split("/", 1)[1]
                if isinstance(out.get(name), list):
                    out[name] = [v for v in out[name] if v not in (value or [])]
                continue
            if value is None:
                out.pop(key, None)
                continue
            merged = strategic_merge_patch(out.get(key), value, key)
            if merged is None:
                out.pop(key, None)
            else:
                out[key] = merged
        return out
    if isinstance(patch, list):
        merge_key = MERGE_KEYS.get(field, "")
        if not merge_key or not isinstance(target, list) or not all(isinstance(p, dict) for p in patch):
            return [deep_copy(p) for p in patch if not (isinstance(p, dict) and p.get("$patch") == "delete")]
        if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
            return [deep_copy({k: v for k, v in p.items() if k != "$patch"}) for p in patch
                    if set(p) != {"$patch"}]
        out_list = [deep_copy(t) for t in target]
        for item in patch:
            key_value = item.get(merge_key)
            idx = next((i for i, t in enumerate(out_list)
                        if isinstance(t, dict) and t.get(merge_key) == key_value), None)
            if item.get("$patch") == "delete":
                if idx is not None:
                    out_list.pop(idx)
                continue
            if idx is None:
                out_list.append(strategic_merge_patch({}, item))
            else:
                out_list[idx] = strategic_merge_patch(out_list[idx], item)
        return out_list
    return deep_copy(patch)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise Invalid(f"json-patch path {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc: Any, parts: list[str], path: str) -> Any:
    cur = doc
    for part in parts:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise Invalid(f"json-patch path {path!r} does not exist in the object")
    return cur


def _add(doc: Any, parts: list[str], value: Any, path: str) -> Any:
    if not parts:
        return value
    parent = _resolve(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise Invalid(f"json-patch index {last!r} out of range at {path!r}")
    else:
        raise Invalid(f"json-patch parent of {path!r} is not an object or array")
    return doc


def _remove(doc: Any, parts: list[str], path: str) -> Any:
    if not parts:
        raise Invalid("json-patch cannot remove the whole document")
    parent = _resolve(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise Invalid(f"json-patch path {path!r} does not exist in the object")


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 operations: add, remove, replace, move, copy, test."""
    if not isinstance(operations, list):
        raise Invalid("json-patch body must be a JSON array of operations")
    doc = deep_copy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise Invalid(f"json-patch operation {op!r} needs 'op' and 'path'")
        kind, path = op["op"], op["path"]
        parts = _pointer(path)
        if kind == "add":
            doc = _add(doc, parts, deep_copy(op.get("value")), path)
        elif kind == "remove":
            _remove(doc, parts, path)
        elif kind == "replace":
            _resolve(doc, parts, path)
            if parts:
                _remove(doc, parts, path)
            doc = _add(doc, parts, deep_copy(op.get("value")), path)
        elif kind in ("move", "copy"):
            src = op.get("from", "")
            src_parts = _pointer(src)
            value = deep_copy(_resolve(doc, src_parts, src))
            if kind == "move":
                _remove(doc, src_parts, src)
            doc = _add(doc, parts, value, path)
        elif kind == "test":
            if _resolve(doc, parts, path) != op.get("value"):
                raise Conflict(f"json-patch test failed at {path!r}")
        else:
            raise Invalid(f"json-patch op {kind!r} is not one of add, remove, replace, move, copy, test")
    return doc


def apply_patch(target: Any, patch: Any, content_type: str) -> Any:
    """Dispatch on the PATCH Content-Type (parameters like ``; charset=utf-8`` are ignored)."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype == JSON_PATCH:
        return json_patch(target, patch)
    if ctype in (MERGE_PATCH, APPLY_PATCH):
        if not isinstance(patch, dict):
            raise Invalid(f"{ctype} body must be a JSON object")
        return merge_patch(target, patch)
    if ctype == STRATEGIC_MERGE_PATCH:
        if not isinstance(patch, dict):
            raise Invalid(f"{ctype} body must be a JSON object")
        return strategic_merge_patch(target, patch)
    raise UnsupportedMediaType(
        f"PATCH Content-Type {content_type!r} is not supported; use one of {', '.join(PATCH_TYPES.values())}")
