"""Helpers of bench/run's `bulk` part (issue 14): the FHIR read request file for wrk, and the part's summary.

    python bench/bulk.py reads --fhir-base URL --token-file FILE --out FILE [--patients 20]
    python bench/bulk.py summary --out-dir bench/out --sizes "1000 10000" --largest 10000

`reads`: one `GET [base]/Patient/{id}` per line for bench/wrk/rotate.lua, with the clinician token's header (the
file is created 0600: it carries a token). `summary`: one JSON object from the files the part left in bench/out.
"""

import argparse
import json
import os
import re
import sys
from urllib.parse import urlsplit

import requests


def cmd_reads(args):
    with open(args.token_file) as f:
        token = json.load(f)["access_token"]
    auth = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    base = args.fhir_base.rstrip("/")
    r = requests.get(f"{base}/Patient", params={"_count": str(args.patients)}, headers=auth, timeout=60)
    r.raise_for_status()
    ids = [e["resource"]["id"] for e in r.json().get("entry", []) if e.get("resource", {}).get("resourceType") == "Patient"]
    if not ids:
        print(json.dumps({"error": "the sandbox listed no patients"}))
        return 1
    path = urlsplit(base).path
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        for i in ids:
            f.write(f"{path}/Patient/{i}\tAuthorization: Bearer {token}\n")
    print(json.dumps({"patients": len(ids), "file": args.out}))
    return 0


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except Exception as e:  # a step that failed leaves no file: the summary says so instead of failing
        return default if default is not None else {"error": f"{os.path.basename(path)}: {e}"}


def export_run(out, name):
    """One export: wall time and client peak RSS (GNU time), the CLI's own totals, the server's peak RSS."""
    run = {}
    try:
        wall, client_kb = open(f"{out}/{name}.time").read().split()
        run["wall_s"] = float(wall)
        run["client_peak_rss_kb"] = int(client_kb)
    except Exception as e:
        run["error"] = f"no timing ({e})"
    stdout = open(f"{out}/{name}.stdout").read() if os.path.exists(f"{out}/{name}.stdout") else ""
    m = re.search(r"Exported (\d+) resources in (\d+) files \((\d+) bytes\)", stdout)
    if m:
        run["resources"], run["files"], run["bytes"] = (int(g) for g in m.groups())
        if run.get("wall_s"):
            run["resources_per_s"] = round(run["resources"] / run["wall_s"])
    else:
        run["error"] = run.get("error") or f"the export printed no totals: {stdout[-300:]!r}"
    server = load(f"{out}/{name}.server.json", {})
    run.update({k: v for k, v in server.items()})
    return run


def latency(out, name):
    w = load(f"{out}/wrk-{name}.json", {})
    if not w.get("requests"):
        return {"error": f"no wrk result for {name}"}
    return {"requests": w["requests"], "errors": sum(w["errors"].values()),
            "p50_ms": w["latency_us"]["p50"] / 1000, "p99_ms": w["latency_us"]["p99"] / 1000,
            "requests_per_s": round(w["requests"] / max(1e-9, w.get("duration_us", 1) / 1e6))}


def cmd_summary(args):
    out = args.out_dir
    sizes = args.sizes.split()
    runs = {n: export_run(out, f"bulk-{n}") for n in sizes}
    for n in sizes:
        runs[n]["patients"] = int(n)
        runs[n]["start_with_generation_s"] = load(f"{out}/bulk-{n}.start.json", {}).get("seconds")
    largest = args.largest
    res = {
        "exports": runs,
        "reads_while_idle": latency(out, f"bulk-{largest}-idle"),
        "reads_during_export": latency(out, f"bulk-{largest}-during"),
        "export_under_read_load": export_run(out, f"bulk-{largest}-loaded"),
        "how": "smart-fhir sandbox --patients N on a fresh database per size; smart-fhir export (system level, every "
               "type, a backend-services client with an ES384 key from smart-fhir keygen) to bench/out/bulk-export-N, "
               "wall time and client peak RSS from /usr/bin/time %e %M; server peak RSS = VmHWM after "
               "`echo 5 > /proc/PID/clear_refs` at kick-off (so generation is not counted); reads: wrk -t2 -c4 over "
               "GET Patient/{id} (20 patients, a clinician token) for S s with the sandbox idle, then again starting "
               "1 s into a second export of the largest size",
    }
    print(json.dumps(res))
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(required=True)
    p = sub.add_parser("reads")
    p.add_argument("--fhir-base", required=True)
    p.add_argument("--token-file", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--patients", type=int, default=20)
    p.set_defaults(func=cmd_reads)
    p = sub.add_parser("summary")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--sizes", required=True)
    p.add_argument("--largest", required=True)
    p.set_defaults(func=cmd_summary)
    args = ap.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
