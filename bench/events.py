"""A realistic, deterministic stream of ImageKit deliveries, and the log it fills.

Mix (by stored events): ~60% `video.transformation.*` over `assets` video assets
(each transformation is an `accepted` then a `ready` (85%) or an `error`), the rest
upload pre/post-transform, file, file-version and folder events. Transformations per
asset are heavy-tailed from 1 to 200, and a few probe assets have exact counts for the
query benchmark. Deliveries arrive in created_at order with jitter, so ~4% come out of
order (a `ready` can precede its `accepted`), and ~1% are redeliveries of an earlier
id with the same body, which the store recognises as duplicates.

Bodies are compact JSON, the way a JSON serializer on ImageKit's side sends them.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# Part of the cached logs' names: bump it when the generator or the store's file format
# changes, so no benchmark reuses a log the current store did not write (2: compact log).
GENERATOR_VERSION = 2
PROBE_COUNTS = (1, 2, 5, 10, 20, 50, 100, 200)  # transformations of the probe assets
MAX_TRANSFORMATIONS = 200
VIDEO_SHARE = 0.60
DUPLICATE_SHARE = 0.01
LATE_SHARE = 0.04
START = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
SPAN_S = 30 * 24 * 3600

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
FORMATS = (("mp4", "h264", "aac"), ("webm", "vp9", "opus"), ("mp4", "h265", "aac"))
ERRORS = ("encoding_failed", "download_failed", "internal_server_error")
OTHER_TYPES = (
    ("upload.pre-transform.success", 10),
    ("upload.pre-transform.error", 2),
    ("upload.post-transform.success", 8),
    ("upload.post-transform.error", 2),
    ("file.created", 8),
    ("file.updated", 4),
    ("file.deleted", 2),
    ("file-version.created", 2),
    ("file-version.deleted", 1),
    ("folder.created", 1),
    ("folder.updated", 0.5),
    ("folder.deleted", 0.5),
)

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def asset_url(n: int) -> str:
    return f"https://ik.imagekit.io/bench/videos/clip-{n:05d}.mp4"


def iso(ts: float) -> str:
    return (
        datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    type: str
    created_at: str
    body: bytes


class Generator:
    """Plans `events` stored events (plus duplicate deliveries) from a seed."""

    def __init__(self, events: int, *, assets: int | None = None, seed: int = 4):
        self.events = events
        self.assets = assets or max(len(PROBE_COUNTS) + 1, events // 50)
        self.seed = seed
        self.rng = random.Random(seed)
        self.counts = self._transformations_per_asset()

    def _transformations_per_asset(self) -> list[int]:
        """Heavy-tailed counts, 1..200, summing to the video budget; probes exact."""
        rng = self.rng
        budget = int(self.events * VIDEO_SHARE) // 2
        fixed = PROBE_COUNTS[: max(0, min(len(PROBE_COUNTS), self.assets - 1))]
        fixed = [c for c in fixed if c <= max(1, budget // 4)] or [1]
        free = self.assets - len(fixed)
        left = max(free, budget - sum(fixed))
        weights = [rng.lognormvariate(0, 1.1) for _ in range(free)]
        scale = left / sum(weights)
        counts = [max(1, min(MAX_TRANSFORMATIONS, round(w * scale))) for w in weights]
        diff = left - sum(counts)
        step = 1 if diff > 0 else -1
        guard = 0
        while diff and guard < 50 * free:
            i = rng.randrange(free)
            if 1 <= counts[i] + step <= MAX_TRANSFORMATIONS - 1:
                counts[i] += step
                diff -= step
            guard += 1
        return list(fixed) + counts

    def probes(self) -> dict[int, str]:
        """Asset URL of each probe asset, by its exact number of transformations."""
        return {c: asset_url(i) for i, c in enumerate(self.counts[: len(PROBE_COUNTS)])}

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _plan(self) -> list[tuple]:
        """(delivery time, kind, args) for every event, before duplicates."""
        rng = self.rng
        plan: list[tuple] = []
        for asset, count in enumerate(self.counts):
            for _ in range(count):
                start = START + rng.random() * SPAN_S
                fmt = rng.randrange(len(FORMATS))
                quality = rng.choice((10, 30, 50, 70, 90))
                rid = self._uuid()
                plan.append((start, "accepted", asset, fmt, quality, rid))
                took = rng.uniform(2, 600)
                if rng.random() < 0.85:
                    plan.append((start + took, "ready", asset, fmt, quality, rid))
                else:
                    plan.append((start + took, "error", asset, fmt, quality, rid))
        video = len(plan)
        others = max(0, self.events - video)
        names = [t for t, _ in OTHER_TYPES]
        weights = [w for _, w in OTHER_TYPES]
        for kind in rng.choices(names, weights, k=others):
            plan.append((START + rng.random() * SPAN_S, kind, rng.randrange(10 * self.assets)))
        del plan[self.events :]
        return plan

    def deliveries(self) -> Iterator[Delivery]:
        """Every delivery in arrival order: stored events plus ~1% redeliveries."""
        rng = self.rng
        plan = self._plan()
        arrivals = []
        for i, item in enumerate(plan):
            delay = rng.uniform(0.05, 2.0)
            if rng.random() < LATE_SHARE:
                delay += rng.uniform(60, 1800)  # a retry after a failed first attempt
            arrivals.append((item[0] + delay, i))
        arrivals.sort()
        recent: list[Delivery] = []
        for _, i in arrivals:
            delivery = self._render(plan[i])
            yield delivery
            recent.append(delivery)
            if len(recent) > 2000:
                del recent[:1000]
            if rng.random() < DUPLICATE_SHARE:
                yield rng.choice(recent)

    def _render(self, item: tuple) -> Delivery:
        ts, kind = item[0], item[1]
        created = iso(ts)
        event_id = self._uuid()
        if kind in ("accepted", "ready", "error"):
            _, _, asset, fmt, quality, rid = item
            doc = video_document(kind, event_id, created, asset_url(asset), fmt, quality, rid, self.rng)
        else:
            doc = other_document(kind, event_id, created, item[2], self.rng)
        return Delivery(event_id, doc["type"], created, _dumps(doc).encode())


def video_document(kind, event_id, created, url, fmt, quality, rid, rng) -> dict:
    ext, vcodec, acodec = FORMATS[fmt]
    tr = f"f-{ext},q-{quality}"
    options = {
        "video_codec": vcodec,
        "audio_codec": acodec,
        "auto_rotate": True,
        "quality": quality,
        "format": ext,
    }
    doc = {
        "type": f"video.transformation.{kind}",
        "id": event_id,
        "created_at": created,
        "request": {"x_request_id": rid, "url": f"{url}?tr={tr}", "user_agent": UA},
        "data": {"asset": {"url": url}, "transformation": {"type": "video-transformation", "options": options}},
    }
    if kind == "ready":
        doc["timings"] = {
            "download_duration": rng.randrange(200, 5000),
            "encoding_duration": rng.randrange(1000, 60000),
        }
        doc["data"]["transformation"]["output"] = {
            "url": f"{url}?tr={tr}",
            "video_metadata": {
                "duration": round(rng.uniform(3, 600), 3),
                "width": 1280,
                "height": 720,
                "bitrate": rng.randrange(100_000, 4_000_000),
            },
        }
    elif kind == "error":
        doc["data"]["transformation"]["error"] = {"reason": rng.choice(ERRORS)}
    return doc


def other_document(kind, event_id, created, n, rng) -> dict:
    name = f"image_{n:06d}.jpg"
    file_id = f"{n:024x}"
    url = f"https://ik.imagekit.io/bench/images/{name}"
    rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if kind.startswith("upload.pre-transform"):
        data = {"fileId": file_id, "name": name, "filePath": f"/images/{name}", "url": url}
        if kind.endswith("error"):
            data = {"name": name, "path": f"/images/{name}",
                    "transformation": {"error": {"reason": "encoding_failed"}}}
        else:
            data.update({"size": rng.randrange(10_000, 5_000_000), "fileType": "image",
                         "height": 3456, "width": 4608,
                         "versionInfo": {"id": file_id, "name": "Version 1"}})
        return {"type": kind, "id": event_id, "created_at": created,
                "request": {"x_request_id": rid, "transformation": "rt-90"}, "data": data}
    if kind.startswith("upload.post-transform"):
        data = {"fileId": file_id, "url": f"{url}?tr=rt-90", "name": name}
        if kind.endswith("error"):
            data.update({"path": f"/images/{name}",
                         "transformation": {"error": {"reason": "encoding_failed"}}})
        return {"type": kind, "id": event_id, "created_at": created,
                "request": {"x_request_id": rid,
                            "transformation": {"type": "transformation", "value": "rt-90"}},
                "data": data}
    if kind.startswith("folder."):
        return {"type": kind, "id": event_id, "created_at": created,
                "data": {"folderId": file_id, "name": f"folder-{n % 500}",
                         "folderPath": f"/folders/folder-{n % 500}"}}
    data = {"fileId": file_id, "name": name, "filePath": f"/images/{name}", "url": url,
            "fileType": "image", "size": rng.randrange(10_000, 5_000_000)}
    if kind.startswith("file-version."):
        data["versionInfo"] = {"id": f"{n + 1:024x}", "name": "Version 2"}
    return {"type": kind, "id": event_id, "created_at": created, "data": data}


# -- filling a log -------------------------------------------------------------


def fill(path: Path, events: int, *, assets: int | None = None, seed: int = 4, chunk: int = 5000) -> dict:
    """Append the generated stream to a new log at `path` with `append_many`.

    Returns what was written: deliveries, stored events, raw body bytes and seconds.
    """
    from store import NewEvent, SQLiteStore

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    gen = Generator(events, assets=assets, seed=seed)
    started = time.perf_counter()
    store = SQLiteStore(path)
    delivered = stored = body_bytes = 0
    batch: list = []
    try:
        for d in gen.deliveries():
            batch.append(NewEvent(d.id, d.type, d.created_at, d.body, "standard-webhooks"))
            if len(batch) >= chunk:
                delivered, stored, body_bytes = _flush(store, batch, delivered, stored, body_bytes)
        delivered, stored, body_bytes = _flush(store, batch, delivered, stored, body_bytes)
    finally:
        store.close()
    return {
        "events": stored,
        "deliveries": delivered,
        "duplicates": delivered - stored,
        "body_bytes": body_bytes,
        "assets": gen.assets,
        "probes": gen.probes(),
        "seconds": time.perf_counter() - started,
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
    }


def _flush(store, batch, delivered, stored, body_bytes):
    if batch:
        results = store.append_many(batch)
        for event, result in zip(batch, results, strict=True):
            if not result.duplicate:
                stored += 1
                body_bytes += len(event.body)
        delivered += len(batch)
        batch.clear()
    return delivered, stored, body_bytes


def cached_log(events: int, *, seed: int = 4) -> tuple[Path, dict]:
    """The generated log of `events` events under bench/work/, filled once and reused.

    A log is reused only when its manifest says the fill completed with this generator
    version and seed; otherwise it is rebuilt from scratch.
    """
    from .harness import WORK

    folder = WORK / "db"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"log-{events}-s{seed}-g{GENERATOR_VERSION}.db"
    manifest = Path(f"{path}.json")
    if path.exists() and manifest.exists():
        info = json.loads(manifest.read_text())
        if info.get("events") == events or info.get("target_events") == events:
            info["reused"] = True
            return path, info
    info = fill(path, events, seed=seed)
    info["target_events"] = events
    tmp = Path(f"{manifest}.tmp")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, manifest)
    info["reused"] = False
    return path, info


def distinct_deliveries(count: int, seed: int) -> list[Delivery]:
    """`count` deliveries with distinct event ids (the generator's redeliveries skipped)."""
    seen: set[str] = set()
    out: list[Delivery] = []
    for d in Generator(count + count // 50, seed=seed).deliveries():
        if d.id not in seen:
            seen.add(d.id)
            out.append(d)
        if len(out) >= count:
            break
    return out
