#!/usr/bin/env python3
"""bench/safety.py — the abuse of issue 12 against a running sandbox, for bench/run's `safety` part.

Each subcommand prints one JSON object. Everything talks to 127.0.0.1 only and every loop is bounded.

  halfopen  --host H --port P -n 1500 --hold 15 --probe URL   half-sent requests held open, a normal request meanwhile
  bundle    --fhir-base B --token-file F --entries 2000         a batch Bundle of `GET Observation?_count=1000`
  patch     --fhir-base B --token-file F --ops 35               JSON Patch copying an array into itself op after op
  rows      --db FILE                                           rows per table of a SQLite file
  integrity --db FILE...                                        PRAGMA integrity_check of each file
"""
import argparse
import json
import socket
import sqlite3
import time

import requests


def token(path):
    with open(path) as f:
        return json.load(f)


def cmd_halfopen(args):
    socks, refused = [], 0
    for _ in range(args.n):
        try:
            s = socket.create_connection((args.host, args.port), timeout=5)
            s.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append(s)
        except OSError:
            refused += 1
    try:
        r = requests.get(args.probe, timeout=30)
        probe = {"status": r.status_code, "seconds": r.elapsed.total_seconds()}
    except requests.RequestException as e:
        probe = {"error": str(e)[:200]}
    time.sleep(args.hold)
    closed = 0
    for s in socks:
        s.setblocking(False)
        try:
            data = s.recv(4096)
            if data == b"" or data.startswith(b"HTTP/1.1 408") or data.startswith(b"HTTP/1.1 4"):
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        s.close()
    print(json.dumps({"opened": len(socks), "refused": refused, "probe_while_open": probe,
                      "held_s": args.hold, "closed_by_server_after_hold": closed}))
    return 0


def send(method, url, token_file, body, content_type, **report):
    """One authorized request; prints what was sent and what came back."""
    t = token(token_file)
    r = requests.request(method, url, data=body, timeout=120,
                         headers={"Authorization": f"Bearer {t['access_token']}", "Content-Type": content_type,
                                  "Accept": "application/fhir+json"})
    print(json.dumps({**report, "request_bytes": len(body), "status": r.status_code, "answer_bytes": len(r.content),
                      "seconds": r.elapsed.total_seconds()}))
    return 0


def cmd_bundle(args):
    entries = [{"request": {"method": "GET", "url": "Observation?_count=1000"}} for _ in range(args.entries)]
    body = json.dumps({"resourceType": "Bundle", "type": "batch", "entry": entries})
    return send("POST", args.fhir_base.rstrip("/"), args.token_file, body, "application/fhir+json",
                entries=args.entries)


def cmd_patch(args):
    # Each op copies the name array into itself: the resource doubles per op unless the server bounds it.
    ops = [{"op": "copy", "from": "/name", "path": "/name/-"} for _ in range(args.ops)]
    pid = token(args.token_file).get("patient")
    return send("PATCH", f"{args.fhir_base.rstrip('/')}/Patient/{pid}", args.token_file, json.dumps(ops),
                "application/json-patch+json", ops=args.ops)


def cmd_rows(args):
    con = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True, timeout=30)
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
    counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    print(json.dumps(counts))
    return 0


def cmd_integrity(args):
    out = {}
    for db in args.db:
        con = sqlite3.connect(db, timeout=30)
        out[db.rsplit("/", 1)[-1]] = [r[0] for r in con.execute("PRAGMA integrity_check")][:5]
        con.close()
    print(json.dumps(out))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(required=True)
    p = sub.add_parser("halfopen")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("-n", type=int, default=1500)
    p.add_argument("--hold", type=float, default=15)
    p.add_argument("--probe", required=True)
    p.set_defaults(func=cmd_halfopen)
    for name, func, n_name, n_default in (("bundle", cmd_bundle, "--entries", 2000),
                                          ("patch", cmd_patch, "--ops", 35)):
        p = sub.add_parser(name)
        p.add_argument("--fhir-base", required=True)
        p.add_argument("--token-file", required=True)
        p.add_argument(n_name, type=int, default=n_default)
        p.set_defaults(func=func)
    p = sub.add_parser("rows")
    p.add_argument("--db", required=True)
    p.set_defaults(func=cmd_rows)
    p = sub.add_parser("integrity")
    p.add_argument("--db", nargs="+", required=True)
    p.set_defaults(func=cmd_integrity)
    args = ap.parse_args()
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
