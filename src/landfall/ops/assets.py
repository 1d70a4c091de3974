"""The Asset graph as the REST API describes it: a working `airflow assets list` for Airflow 3.3.2.

Upstream bug: `airflow assets list` (every output format) fails validating its own response when an asset
has a watcher (pydantic: `AssetResponse watchers.0.created_date Field required`). The REST API's
`GET /api/v2/assets` answers correctly, so `landfall assets` reads that.
"""

from __future__ import annotations

from typing import Any


def asset_graph(api: Any) -> list[dict[str, Any]]:
    """Each asset with its producing tasks, consuming DAGs, watchers and newest event time."""
    graph = []
    for asset in api.get("assets", limit=1000)["assets"]:
        graph.append(
            {
                "name": asset["name"],
                "uri": asset["uri"],
                "group": asset.get("group"),
                "producers": sorted(
                    {f"{t['dag_id']}.{t['task_id']}" for t in asset.get("producing_tasks", [])}
                ),
                "consumers": sorted({d["dag_id"] for d in asset.get("scheduled_dags", [])}),
                "watchers": [w.get("name") for w in asset.get("watchers", [])],
                "last_event": (asset.get("last_asset_event") or {}).get("timestamp"),
            }
        )
    return sorted(graph, key=lambda a: a["name"])


def format_graph(graph: list[dict[str, Any]]) -> str:
    lines = []
    for asset in graph:
        source = ", ".join(asset["producers"]) or (
            "watcher " + ", ".join(asset["watchers"]) if asset["watchers"] else "-"
        )
        lines.append(f"{asset['name']:<26} {asset['uri']}")
        lines.append(
            f"  produced by {source}; consumed by {', '.join(asset['consumers']) or '-'}; "
            f"last event {asset['last_event'] or 'never'}"
        )
    return "\n".join(lines)
