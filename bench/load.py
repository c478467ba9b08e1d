"""Load generation with wrk: requests signed in advance, results read back as JSON.

Requests are written one per line (`id<TAB>timestamp<TAB>signature<TAB>body` for POSTs,
a path for GETs) and a Lua script hands each wrk thread its own stride of the lines,
so no two connections send the same event. The script counts every non-2xx answer
and every wrap-around (a run that outlasts its requests would resend ids), and prints
one JSON line with the latency percentiles at the end.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from .harness import HOST, ROOT, WORK

SECRET = "whsec_YmVuY2htYXJrLXNlY3JldC1ub3QtZm9yLXByb2R1Y3Rpb24="
VECTORS = ROOT / "tests" / "fixtures" / "imagekit" / "signature-vectors.json"

LUA = r"""
local threads, counter = {}, 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  local path, nthreads, mode = args[1], tonumber(args[2]), args[3]
  pause = tonumber(args[4] or "0")
  reqs, idx, wrapped, bad = {}, 0, 0, 0
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == tid then
      if mode == "post" then
        local id, ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
        reqs[#reqs + 1] = wrk.format("POST", "/webhook", {
          ["Content-Type"] = "application/json", ["webhook-id"] = id,
          ["webhook-timestamp"] = ts, ["webhook-signature"] = sig}, body)
      else
        reqs[#reqs + 1] = wrk.format("GET", line)
      end
    end
    i = i + 1
  end
end
function request()
  idx = idx + 1
  if idx > #reqs then idx, wrapped = 1, wrapped + 1 end
  return reqs[idx]
end
function response(status, headers, body)
  if status < 200 or status > 299 then bad = bad + 1 end
end
if tonumber(os.getenv("BENCH_PAUSE_MS") or "0") > 0 then
  function delay() return pause end
end
function done(summary, latency, requests)
  local w, b = 0, 0
  for _, t in ipairs(threads) do w = w + t:get("wrapped"); b = b + t:get("bad") end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"errors_connect":%d,"errors_read":%d,' ..
    '"errors_write":%d,"errors_timeout":%d,"non2xx":%d,"wrapped":%d,"mean_us":%.1f,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, b, w,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
"""


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature` as ImageKit computes it: the key is the whole secret's UTF-8 bytes."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    mac = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def check_signing() -> None:
    """Refuse to run if our signing disagrees with the reference vectors (every POST would 401)."""
    if not VECTORS.exists():
        return
    vectors = json.loads(VECTORS.read_text())
    for case in vectors["cases"]:
        if case["scheme"] == "standard-webhooks" and case["valid"]:
            h = case["headers"]
            got = sign(vectors["secret"], h["webhook-id"], int(h["webhook-timestamp"]),
                       case["body"].encode())
            if got not in h["webhook-signature"].split():
                raise AssertionError(f"signing disagrees with vector {case['name']!r}")
            return


def write_posts(path: Path, deliveries: Iterable, timestamp: int, secret: str = SECRET) -> int:
    """Sign every delivery at `timestamp` and write the request file; returns the count."""
    n = 0
    with open(path, "wb") as out:
        for d in deliveries:
            msg_id = f"msg_{d.id}"
            sig = sign(secret, msg_id, timestamp, d.body)
            out.write(f"{msg_id}\t{timestamp}\t{sig}\t".encode() + d.body + b"\n")
            n += 1
    return n


def write_gets(path: Path, paths: Iterable[str]) -> int:
    n = 0
    with open(path, "w") as out:
        for p in paths:
            out.write(p + "\n")
            n += 1
    return n


def ensure_wrk() -> str:
    """Path of wrk, installing Debian's package when it is missing (the harness runs as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=300)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, timeout=300)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return found


def wrk(
    port: int,
    requests_file: Path,
    *,
    mode: str,
    connections: int,
    seconds: float,
    threads: int = 1,
    pause_ms: int = 0,
    timeout_s: int = 5,
) -> dict:
    """Run wrk against 127.0.0.1:port for `seconds`; returns its counts and percentiles.

    `mode` is "post" or "get"; `pause_ms` > 0 paces each connection (wrk's delay()).
    """
    WORK.mkdir(parents=True, exist_ok=True)
    script = WORK / "load.lua"
    if not script.exists() or script.read_text() != LUA:
        script.write_text(LUA)
    threads = min(threads, connections)
    args = [
        ensure_wrk(), f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout_s}s", "-s", str(script), f"http://{HOST}:{port}/",
        "--", str(requests_file), str(threads), mode, str(pause_ms),
    ]
    env = {"BENCH_PAUSE_MS": str(pause_ms)}
    out = subprocess.run(
        args, capture_output=True, text=True, cwd=ROOT, timeout=seconds + 60,
        env={**__import__("os").environ, **env},
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-1500:]} {out.stderr[-1500:]}")
    result = json.loads(line.removeprefix("BENCHJSON "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["errors"] = sum(result[k] for k in ("errors_connect", "errors_read", "errors_write", "errors_timeout"))
    return result
