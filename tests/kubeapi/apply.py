"""Server-side apply: field ownership per manager in managedFields (lists are atomic)."""

from __future__ import annotations

import copy
from typing import Any

from tests.kubeapi import meta
from tests.kubeapi.meta import ApiError, Obj
from tests.kubeapi.resources import ResourceType

Path = tuple[str, ...]
# Identity fields never count as owned: they name the object rather than describe it.
_SKIP: set[Path] = {
    ("apiVersion",),
    ("kind",),
    ("metadata", "name"),
    ("metadata", "namespace"),
    ("metadata", "resourceVersion"),
    ("metadata", "uid"),
    ("metadata", "creationTimestamp"),
    ("metadata", "generation"),
    ("metadata", "managedFields"),
}


def leaf_paths(obj: Any, prefix: Path = ()) -> set[Path]:
    """Every leaf (scalar or list) of a configuration, as a key path."""
    if isinstance(obj, dict) and obj:
        paths: set[Path] = set()
        for key, value in obj.items():
            path = (*prefix, key)
            if path not in _SKIP:
                paths |= leaf_paths(value, path)
        return paths
    return {prefix} if prefix else set()


def _get(obj: Any, path: Path) -> Any:
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def _delete(obj: Obj, path: Path) -> None:
    parents = [obj]
    for part in path[:-1]:
        child = parents[-1].get(part)
        if not isinstance(child, dict):
            return
        parents.append(child)
    parents[-1].pop(path[-1], None)
    # Drop maps the removal left empty, as the real server does.
    for depth in range(len(parents) - 1, 0, -1):
        if not parents[depth]:
            parents[depth - 1].pop(path[depth - 1], None)


def _overlaps(a: Path, b: Path) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _to_fields(paths: set[Path]) -> Obj:
    tree: Obj = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return tree


def _from_fields(tree: Obj, prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    for key, sub in tree.items():
        if key.startswith("f:"):
            path = (*prefix, key[2:])
            paths |= _from_fields(sub, path) if sub else {path}
    return paths


Managers = dict[tuple[str, str], set[Path]]


def read_managers(obj: Obj) -> Managers:
    return {
        (e["manager"], e["operation"]): _from_fields(e.get("fieldsV1") or {})
        for e in obj.get("metadata", {}).get("managedFields") or []
    }


def write_managers(
    obj: Obj, managers: Managers, rt: ResourceType, touched: tuple[str, str]
) -> None:
    old = {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields") or []}
    entries = []
    for (manager, op), paths in managers.items():
        if not paths:
            continue
        entry = {
            "manager": manager,
            "operation": op,
            "apiVersion": rt.api_version,
            "time": meta.now(),
            "fieldsType": "FieldsV1",
            "fieldsV1": _to_fields(paths),
        }
        previous = old.get((manager, op))
        if previous is not None and (manager, op) != touched:
            entry["time"] = previous.get("time", entry["time"])
        entries.append(entry)
    obj["metadata"]["managedFields"] = entries


def _conflicts(
    live: Obj, applied: Obj, paths: set[Path], managers: Managers, me: tuple[str, str]
) -> dict[Path, str]:
    found: dict[Path, str] = {}
    for owner, owned in managers.items():
        if owner == me:
            continue
        for path in paths:
            if any(_overlaps(path, o) for o in owned) and _get(live, path) != _get(applied, path):
                found[path] = owner[0]
    return found


def _conflict_error(rt: ResourceType, name: str, found: dict[Path, str]) -> ApiError:
    lines = [f'conflict with "{m}": .{".".join(p)}' for p, m in sorted(found.items())]
    plural = "conflict" if len(lines) == 1 else "conflicts"
    message = f"Apply failed with {len(lines)} {plural}: " + "\n".join(lines)
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f'conflict with "{m}"',
            "field": "." + ".".join(p),
        }
        for p, m in sorted(found.items())
    ]
    return ApiError(
        409,
        "Conflict",
        message,
        {"name": name, "kind": rt.plural, "causes": causes}
        | ({"group": rt.group} if rt.group else {}),
    )


def _deep_merge(target: Obj, applied: Obj) -> None:
    for key, value in applied.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        elif value is None:
            target.pop(key, None)
        else:
            target[key] = copy.deepcopy(value)


def apply(rt: ResourceType, live: Obj | None, applied: Obj, manager: str, force: bool) -> Obj:
    """The object after `manager` applies `applied` to `live` (None: it does not exist yet)."""
    if rt.has_status:
        applied = {k: v for k, v in applied.items() if k != "status"}
    me = (manager, "Apply")
    paths = leaf_paths(applied)
    if live is None:
        result = copy.deepcopy(applied)
        result.setdefault("metadata", {}).pop("managedFields", None)
        write_managers(result, {me: paths}, rt, me)
        return result
    managers = read_managers(live)
    found = _conflicts(live, applied, paths, managers, me)
    if found and not force:
        raise _conflict_error(rt, live["metadata"]["name"], found)
    for owner, owned in managers.items():
        if owner != me:
            managers[owner] = {o for o in owned if not any(_overlaps(o, p) for p in found)}
    result = copy.deepcopy(live)
    others = set().union(*(o for k, o in managers.items() if k != me))
    for gone in managers.get(me, set()) - paths:
        if not any(_overlaps(gone, o) for o in others):
            _delete(result, gone)
    _deep_merge(result, {k: v for k, v in applied.items() if k not in ("apiVersion", "kind")})
    managers[me] = paths
    write_managers(result, managers, rt, me)
    return result


def record_update(rt: ResourceType, old: Obj | None, new: Obj, manager: str) -> None:
    """Give `manager` (operation Update) the fields an update changed, as the server does."""
    before = old or {}
    managers = read_managers(before) if old is not None else {}
    changed = {
        p
        for p in leaf_paths(new) | leaf_paths(before)
        if _get(new, p) != _get(before, p) and p[0] != "status"
    }
    if not changed:
        new["metadata"]["managedFields"] = copy.deepcopy(
            before.get("metadata", {}).get("managedFields", [])
        )
        return
    me = (manager, "Update")
    for owner in managers:
        if owner != me:
            managers[owner] = {
                o for o in managers[owner] if not any(_overlaps(o, c) for c in changed)
            }
    managers[me] = managers.get(me, set()) | {p for p in changed if _get(new, p) is not None}
    write_managers(new, managers, rt, me)
