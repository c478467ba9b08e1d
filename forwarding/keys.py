"""The ordering key of an event: what its deliveries to one destination are ordered by."""

from __future__ import annotations

import orjson

from projections.video_timeline import PREFIX, asset_key
from store import Event


def ordering_key(event: Event) -> str:
    """The key whose events reach a destination in log order.

    Video events: the timeline's asset key (`http`/`https` forms are one asset). Other
    events: the file they concern (`data.fileId`, else `data.filePath`/`data.path`),
    else the folder (`data.folderPath`), else the event's own id (no order to keep).
    A body that is not a JSON object is keyed by its id.
    """
    try:
        document = orjson.loads(event.body)
    except orjson.JSONDecodeError:
        document = None
    data = document.get("data") if isinstance(document, dict) else None
    if isinstance(data, dict):
        if event.type.startswith(PREFIX):
            asset = data.get("asset")
            url = asset.get("url") if isinstance(asset, dict) else None
            if isinstance(url, str) and url:
                return "asset:" + asset_key(url)
        for field, kind in (
            ("fileId", "file-id"),
            ("filePath", "file"),
            ("path", "file"),
            ("folderPath", "folder"),
        ):
            value = data.get(field)
            if isinstance(value, str) and value:
                return f"{kind}:{value}"
    return "event:" + event.id
