"""Search cells -> the chosen point: every point of a searched cell's grid is its own record
(``record["search"]``: the grid's ``axes`` and the record's ``point``); analysis keeps, per
searched cell, the point whose mean evaluation (dev) score over its completed seeds is best, as
the official P-Tuning v2 ``search.py`` keeps the best ``best_eval_<metric>`` over
``search_script/`` runs. Ties go to the point listed first in the grid.

A searched cell is its group, cell (method, model, task), the grid's axes, and every identity
option but the grid's (so a cell searched twice with other fixed settings is two searches).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pandas as pd

#: one row per grid point of every search (``frame.attrs["search"]``)
POINT_COLUMNS = ("group", "task", "model", "method", "search", "point", "grid_index", "points", "status",
                 "seeds", "eval_mean", "metric", "chosen")


def _search_key(record: dict[str, Any]) -> str:
    """What the points of one search share: cell, grid, and the identity options off the grid."""
    axes = record["search"]["axes"]
    identity = record["identity"]
    options = {k: v for k, v in identity["options"].items() if k not in axes}
    cell = record["cell"]
    return json.dumps([record["group"], cell["task"], cell["model"], cell["method"], axes, options,
                       identity.get("task_version"), identity.get("data_fingerprint")], sort_keys=True, default=str)


def point_label(point: dict[str, Any]) -> str:
    """``lr=2e-05, epochs=10, length=32`` (an option's last name)."""
    return ", ".join(f"{key.rsplit('.', 1)[-1]}={value:g}" if isinstance(value, float) else
                     f"{key.rsplit('.', 1)[-1]}={value}" for key, value in point.items())


def select_points(records: list[tuple[str, dict[str, Any]]]
                  ) -> tuple[list[tuple[str, dict[str, Any]]], pd.DataFrame, list[str]]:
    """``(origin, record)`` pairs with each search reduced to its chosen point's records (every
    status of it; all of a search's records when no point completed, so its failures show), a
    frame of every point (:data:`POINT_COLUMNS`) and notes on incomplete searches. A kept
    record of a search carries ``search.choice``: points completed and in the grid, the score
    chosen on and the chosen point's label."""
    searches: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    kept = []
    for origin, record in records:
        if record.get("search"):
            searches.setdefault(_search_key(record), []).append((origin, record))
        else:
            kept.append((origin, record))
    rows, notes = [], []
    for members in searches.values():
        first = members[0][1]
        axes = first["search"]["axes"]
        grid = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
        order = {json.dumps(p, sort_keys=True): i for i, p in enumerate(grid)}
        by_point: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for origin, record in members:
            by_point.setdefault(json.dumps(record["search"]["point"], sort_keys=True), []).append((origin, record))
        metric = first["task"]["primary_metric"]
        scores = {}
        for point, runs in by_point.items():
            done = [r["metrics"][metric] for _, r in runs if r["status"] == "completed" and metric in r["metrics"]]
            if done:
                scores[point] = sum(done) / len(done)
        chosen = max(scores, key=lambda p: (scores[p], -order.get(p, len(grid)))) if scores else None
        cell = first["cell"]
        label = f"{cell['task']}/{cell['model']}/{cell['method']} ({first['group']})"
        if len(scores) < len(grid):
            notes.append(f"search {label}: {len(scores)} of {len(grid)} grid points completed"
                         + ("; chosen among those" if scores else "; no point completed, shown as not run"))
        for point, runs in by_point.items():
            statuses = sorted({r["status"] for _, r in runs})
            rows.append({"group": first["group"], "task": cell["task"], "model": cell["model"],
                         "method": cell["method"], "search": " × ".join(k.rsplit(".", 1)[-1] for k in axes),
                         "point": point_label(runs[0][1]["search"]["point"]), "grid_index": order.get(point),
                         "points": len(grid), "status": "completed" if point in scores else statuses[0],
                         "seeds": sum(r["status"] == "completed" for _, r in runs),
                         "eval_mean": scores.get(point), "metric": metric, "chosen": point == chosen})
        if chosen is None:
            kept += members
            continue
        for origin, record in by_point[chosen]:
            choice = {"points_completed": len(scores), "points": len(grid), "chosen_on": f"eval {metric}",
                      "label": point_label(record["search"]["point"])}
            kept.append((origin, {**record, "search": {**record["search"], "choice": choice}}))
    points = pd.DataFrame(rows, columns=list(POINT_COLUMNS))
    return kept, points, notes


def settings_source(record: dict[str, Any]) -> str:
    """``searched`` (a search point), ``official script`` (``search.settings_from``), or ``defaults``
    (the method's, the preset's or the command line's settings)."""
    if record.get("search"):
        return "searched"
    settings_from = (record.get("config") or {}).get("search", {}) or {}
    return "official script" if settings_from.get("settings_from") else "defaults"
