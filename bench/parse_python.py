#!/usr/bin/env python3
"""Times the seed's library parsing a FHIR Bundle: fhirclient 4.1.0's `Bundle(jsondict)`.

    parse_python.py BUNDLE.json [--budget SECONDS]

Two numbers, each the median over repeats (7, or at least 3 when one parse is long) of the per-parse time:
  bytes_to_model  json.loads(bytes) then Bundle(dict)  (what serde_json::from_slice::<Bundle> does)
  dict_to_model   Bundle(dict) on an already decoded dict (fhirclient's model step alone)
fhirclient's models are FHIR 4.0.0 and strict by default (unknown keys raise); if strict parsing
fails on this file, the error is recorded and strict=False is timed instead, and the output says so.
Prints one JSON object.
"""

import argparse
import json
import statistics
import sys
import time

from importlib.metadata import version

from fhirclient.models.bundle import Bundle
from fhirclient.models.fhirabstractbase import FHIRValidationError


def time_per_call(fn, budget):
    """Median seconds per call over repeats filling about `budget` seconds."""
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-6)
    # 7 repeats when calls are quick; at least 3 (one call each) when a single call is long.
    repeats = 7 if once * 7 <= budget else max(3, min(7, int(budget / once)))
    number = max(1, int(budget / repeats / once))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return {"median_s": statistics.median(samples), "min_s": min(samples), "calls_per_repeat": number,
            "repeats": repeats}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--budget", type=float, default=6.0, help="seconds per measurement (default 6)")
    args = ap.parse_args()

    with open(args.bundle, "rb") as f:
        raw = f.read()
    doc = json.loads(raw)
    entries = len(doc.get("entry") or [])

    strict = True
    strict_error = None
    try:
        Bundle(doc, strict=True)
    except FHIRValidationError as e:
        strict = False
        strict_error = str(e)[:500]
        Bundle(doc, strict=False)

    out = {
        "library": f"fhirclient {version('fhirclient')}",
        "python": sys.version.split()[0],
        "file": args.bundle,
        "bytes": len(raw),
        "entries": entries,
        "strict": strict,
        "strict_error": strict_error,
        "bytes_to_model": time_per_call(lambda: Bundle(json.loads(raw), strict=strict), args.budget / 2),
        "dict_to_model": time_per_call(lambda: Bundle(doc, strict=strict), args.budget / 2),
        "json_loads_only": time_per_call(lambda: json.loads(raw), min(1.0, args.budget / 4)),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
