#!/usr/bin/env python3
"""Assembles bench/out/parts/*.json (written by bench/run) into results.json, results.md and plot.svg,
and prints the summary table.  Usage: report.py OUT_DIR

No number is made up here: a part that did not run is reported with the reason bench/run gave.
"""

import glob
import json
import os
import sys


def load(out):
    parts = {}
    for f in sorted(glob.glob(os.path.join(out, "parts", "*.json"))):
        with open(f) as fh:
            parts[os.path.basename(f)[:-5]] = json.load(fh)
    env = {}
    if os.path.exists(os.path.join(out, "env.json")):
        with open(os.path.join(out, "env.json")) as fh:
            env = json.load(fh)
    return env, parts


def fmt(v, unit="", digits=1):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        if abs(v) >= 100:
            s = f"{v:,.0f}"
        elif abs(v) >= 10:
            s = f"{v:.{digits}f}"
        else:
            s = f"{v:.{max(digits, 2)}f}"
    else:
        s = f"{v:,}" if isinstance(v, int) else str(v)
    return f"{s} {unit}".strip()


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def mb(kb):
    return None if kb is None else kb / 1024


def goal(ok, text):
    if ok is None:
        return text
    return f"{text} — {'met' if ok else 'NOT met'}"


def rows(parts):
    """(section, measure, ours, seed, ratio, goal) rows of the summary table."""
    r = []
    p = parts.get("page", {})
    if "skipped" in p or not p:
        r.append(("page", "patient page under load", "skipped", p.get("skipped", "did not run"), "", ""))
    else:
        o, s = p["ours"], p["seed"]
        x = ratio(o["rps"], s["rps"])
        r.append(("page", f"requests/s ({p['connections']} sessions)", fmt(o["rps"]), fmt(s["rps"]),
                  fmt(x, "×"), goal(x >= 50 if x else None, "≥ 50×")))
        r.append(("page", "p50 latency", fmt(o["p50_ms"], "ms"), fmt(s["p50_ms"], "ms"),
                  fmt(ratio(s["p50_ms"], o["p50_ms"]), "× lower"), ""))
        r.append(("page", "p99 latency", fmt(o["p99_ms"], "ms"), fmt(s["p99_ms"], "ms"),
                  fmt(ratio(s["p99_ms"], o["p99_ms"]), "× lower"), goal(o["p99_ms"] < 25, "ours < 25 ms")))
        r.append(("page", "errors (connect/read/write/status/timeout)",
                  "/".join(str(v) for v in o["errors"].values()), "/".join(str(v) for v in s["errors"].values()),
                  "", "0"))
        r.append(("page", "sessions still authorized after", f"{o['sessions_authorized_after']}",
                  f"{s['sessions_authorized_after']}", "", "all"))
        r.append(("page", "peak RSS (VmHWM)", fmt(mb(o["peak_rss_kb"]), "MB"), fmt(mb(s["peak_rss_kb"]), "MB"),
                  fmt(ratio(s["peak_rss_kb"], o["peak_rss_kb"]), "× less"), ""))
        r.append(("page", "unloaded p50 (1 connection)", fmt(o["unloaded_p50_ms"], "ms"),
                  fmt(s["unloaded_p50_ms"], "ms"), fmt(ratio(s["unloaded_p50_ms"], o["unloaded_p50_ms"]), "× lower"),
                  ""))
        n = p.get("ours_nocache")
        if n:
            x = ratio(n["rps"], s["rps"])
            r.append(("page", "summary cache off: requests/s", fmt(n["rps"]), fmt(s["rps"]), fmt(x, "×"),
                      goal(x >= 50 if x else None, "≥ 50×")))
            r.append(("page", "summary cache off: p50 / p99", f"{fmt(n['p50_ms'], 'ms')} / {fmt(n['p99_ms'], 'ms')}",
                      f"{fmt(s['p50_ms'], 'ms')} / {fmt(s['p99_ms'], 'ms')}", fmt(ratio(s["p99_ms"], n["p99_ms"]), "× lower p99"),
                      goal(n["p99_ms"] < 25, "ours p99 < 25 ms")))
            r.append(("page", "summary cache off: errors, peak RSS",
                      "/".join(str(v) for v in n["errors"].values()) + f", {fmt(mb(n['peak_rss_kb']), 'MB')}",
                      "/".join(str(v) for v in s["errors"].values()) + f", {fmt(mb(s['peak_rss_kb']), 'MB')}", "", ""))
            r.append(("page", "summary cache off: unloaded p50 (1 connection)", fmt(n["unloaded_p50_ms"], "ms"),
                      fmt(s["unloaded_p50_ms"], "ms"), fmt(ratio(s["unloaded_p50_ms"], n["unloaded_p50_ms"]), "× lower"), ""))
    fv = parts.get("firstview", {})
    if fv and "skipped" not in fv:
        o, s = fv["ours"], fv["seed"]
        ol, sl = o.get("latency_seconds", {}), s.get("latency_seconds", {})
        if ol and sl:
            rounds = f", median of {fv['rounds']} rounds" if fv.get("rounds") else ""
            r.append(("page", f"uncached first view, {o['sessions']} at once{rounds}: p50", fmt(ol["p50"] * 1000, "ms"),
                      fmt(sl["p50"] * 1000, "ms"), fmt(ratio(sl["p50"], ol["p50"]), "× lower"), ""))
            r.append(("page", f"uncached first view, {o['sessions']} at once{rounds}: max", fmt(ol["max"] * 1000, "ms"),
                      fmt(sl["max"] * 1000, "ms"), fmt(ratio(sl["max"], ol["max"]), "× lower"),
                      f"authorized {o['ok']}/{o['sessions']} vs {s['ok']}/{s['sessions']}"))
    f = parts.get("floor", {})
    if f and "skipped" not in f:
        r.append(("floor", "sandbox reads of the page, p50 max / sum (1 conn)",
                  f"{fmt(f['max_p50_ms'], 'ms')} / {fmt(f['sum_p50_ms'], 'ms')}", "", "", "the floor"))
    l = parts.get("launch", {})
    if l and "skipped" not in l:
        o, s = l["ours"], l["seed"]
        om, sm = o["launch_seconds"]["mean"], s["launch_seconds"]["mean"]
        x = ratio(sm, om)
        r.append(("launch", "launches completed / failed", f"{o['launches_ok']} / {o['launches_failed']}",
                  f"{s['launches_ok']} / {s['launches_failed']}", "", "all complete"))
        r.append(("launch", "full launch, mean", fmt(om * 1000, "ms"),
                  fmt(sm * 1000, "ms"), fmt(x, "× faster"), goal(x >= 10 if x else None, "≤ 1/10 of the seed")))
        op, sp = o["launch_seconds"]["p50"], s["launch_seconds"]["p50"]
        r.append(("launch", "full launch, p50", fmt(op * 1000, "ms"), fmt(sp * 1000, "ms"),
                  fmt(ratio(sp, op), "× faster"), ""))
        if o.get("warmup_seconds") and s.get("warmup_seconds"):
            ow, sw = o["warmup_seconds"][0], s["warmup_seconds"][0]
            r.append(("launch", "first launch after start (warm-up, not counted above)", fmt(ow * 1000, "ms"),
                      fmt(sw * 1000, "ms"), fmt(ratio(sw, ow), "× faster"), ""))
        r.append(("launch", "time inside the app per launch", fmt(o["app_side_seconds"]["mean"] * 1000, "ms"),
                  fmt(s["app_side_seconds"]["mean"] * 1000, "ms"),
                  fmt(ratio(s["app_side_seconds"]["mean"], o["app_side_seconds"]["mean"]), "× faster"), ""))
    elif l:
        r.append(("launch", "full launch", "skipped", l["skipped"], "", ""))
    la = parts.get("latency", {})
    if la and "skipped" not in la and "launch_seconds" in la.get("ours", {}) and "launch_seconds" in la.get("seed", {}):
        o, s, ms = la["ours"], la["seed"], la["latency_ms"]
        oc, sc_ = o.get("callback_to_page_seconds") or {}, s.get("callback_to_page_seconds") or {}
        if oc and sc_:
            x = ratio(sc_["p50"], oc["p50"])
            r.append(("latency", f"EHR {ms} ms away: callback -> rendered page, p50", fmt(oc["p50"] * 1000, "ms"),
                      fmt(sc_["p50"] * 1000, "ms"), fmt(x, "× faster"), "bound by round trips, not their sum"))
            r.append(("latency", "serial EHR round trips on that path (p50 / latency)",
                      fmt(o.get("serial_round_trips")), fmt(s.get("serial_round_trips")), "", ""))
        r.append(("latency", "EHR requests made by the app per launch", fmt(o.get("ehr_requests_by_app_per_launch")),
                  fmt(s.get("ehr_requests_by_app_per_launch")), "", ""))
        r.append(("latency", "full launch, p50 (browser's EHR pages delayed too)",
                  fmt(o["launch_seconds"]["p50"] * 1000, "ms"), fmt(s["launch_seconds"]["p50"] * 1000, "ms"),
                  fmt(ratio(s["launch_seconds"]["p50"], o["launch_seconds"]["p50"]), "× faster"),
                  f"completed {o['launches_ok']}/{s['launches_ok']}"))
    elif la:
        r.append(("latency", "launch with EHR latency", "skipped", la.get("skipped", "an app failed"), "", ""))
    pa = parts.get("parse", {})
    if pa and "skipped" not in pa:
        tv = pa.get("typed_vs_value")
        tp = pa.get("typed_vs_python")
        py = pa.get("python", {}).get("bytes_to_model", {})
        size = pa.get("python", {}).get("bytes")
        entries = pa.get("python", {}).get("entries")
        what = f"Bundle of {entries} entries, {fmt((size or 0) / 1024, 'KiB')}" if size else "Bundle"
        r.append(("parse", f"typed R4 parse, {what} (median)", fmt((pa.get("typed_ns") or 0) / 1e6, "ms"),
                  fmt(py.get("median_s", 0) * 1000, "ms") if py else "n/a", fmt(tp, "×"),
                  goal(tp >= 50 if tp else None, "≥ 50× Python")))
        r.append(("parse", "serde_json::Value on the same bytes", fmt((pa.get("value_ns") or 0) / 1e6, "ms"), "",
                  fmt(tv, "× (Value time / typed time)"), goal(tv >= 2.0 if tv else None, "≥ 2.0×")))
        if pa.get("rust", {}).get("bundle_ns"):
            r.append(("parse", "the typed Bundle alone (every entry typed, before sorting into a page)",
                      fmt(pa["rust"]["bundle_ns"] / 1e6, "ms"), "", "", ""))
        c = pa.get("ceiling") or {}
        pyms = py.get("median_s", 0) * 1000 if py else 0
        if c.get("lean_ms"):
            # Same file, same process; each way relative to its own Value run and to Python's median.
            for key, label in (("fhir_r4_ms", "ceiling probe: entries into fhir-r4's Observation"),
                               ("lean_ms", "ceiling probe: a lean model of Observation (plain serde)")):
                ms = c.get(key)
                if not ms:
                    continue
                r.append(("parse", label, fmt(ms, "ms"), fmt(pyms, "ms") if pyms else "n/a",
                          f"{fmt(pyms / ms if pyms else None, '×')}; Value {fmt(c['value_ms'], 'ms')}", ""))
    elif pa:
        r.append(("parse", "parse", "skipped", pa["skipped"], "", ""))
    pg = parts.get("paging", {})
    if pg and "skipped" not in pg:
        for run in pg["runs"]:
            ok = run["peak_rss_kb"] < 64 * 1024
            r.append(("paging", f"stream {run['resources']:,} of {run['limit']:,} resources",
                      f"{fmt(mb(run['peak_rss_kb']), 'MB')} peak RSS, {fmt(run['resources_per_s'], 'resources/s')}",
                      "", "", goal(ok, "flat, < 64 MB")))
    elif pg:
        r.append(("paging", "100k-resource search", "skipped", pg["skipped"], "", ""))
    fp = parts.get("footprint", {})
    if fp and "skipped" not in fp:
        o, s = fp["ours"], fp["seed"]
        seed_size = s["packages_bytes"] + s["interpreter_bytes"]
        r.append(("footprint", "size on disk", fmt(o["binary_bytes"] / 2**20, "MB (one binary)"),
                  fmt(seed_size / 2**20, "MB (Python + packages)"), fmt(ratio(seed_size, o["binary_bytes"]), "× smaller"), ""))
        if o.get("stripped_bytes"):
            r.append(("footprint", "size on disk, stripped (`strip`)", fmt(o["stripped_bytes"] / 2**20, "MB"),
                      fmt(seed_size / 2**20, "MB"), fmt(ratio(seed_size, o["stripped_bytes"]), "× smaller"), ""))
        r.append(("footprint", "cold start to first response", fmt(o["cold_start_s"] * 1000, "ms"),
                  fmt(s["cold_start_s"] * 1000, "ms"), fmt(ratio(s["cold_start_s"], o["cold_start_s"]), "× faster"), ""))
        r.append(("footprint", "idle RSS", fmt(mb(o["idle_rss_kb"]), "MB"), fmt(mb(s["idle_rss_kb"]), "MB"),
                  fmt(ratio(s["idle_rss_kb"], o["idle_rss_kb"]), "× less"), ""))
    elif fp:
        r.append(("footprint", "footprint", "skipped", fp["skipped"], "", ""))
    sc = parts.get("scale", {})
    if sc and "skipped" in sc:
        r.append(("scale", "sandbox at scale", "skipped", sc["skipped"], "", ""))
    elif sc:
        r.append(("scale", f"sandbox: {sc['patients']:,} patients, {fmt(sc['resources'])} resources",
                  f"start incl. generation {fmt(sc['start_with_generation_s'], 's')}, "
                  f"db {fmt(sc['db_bytes'] / 2**20, 'MB')}", "", "", "issue: 10,000 patients / ~1M"))
        for q, v in sc["queries"].items():
            r.append(("scale", f"`{q}` p50 / p99", f"{fmt(v['p50_ms'], 'ms')} / {fmt(v['p99_ms'], 'ms')}", "", "",
                      f"errors {v['errors']}"))
    bk = parts.get("bulk", {})
    if bk and "skipped" in bk:
        r.append(("bulk", "Bulk Data export", "skipped", bk["skipped"], "", ""))
    elif bk:
        for n, run in bk.get("exports", {}).items():
            if "resources" not in run:
                r.append(("bulk", f"export of {n} patients", "failed", run.get("error", ""), "", ""))
                continue
            r.append(("bulk", f"export of {int(n):,} patients: {run['resources']:,} resources",
                      f"{fmt(run['wall_s'], 's')}, {fmt(run['resources_per_s'], 'resources/s')}; peak RSS server "
                      f"{fmt(mb(run['server_peak_rss_kb']), 'MB')} (+{fmt(mb(run['server_peak_rss_kb'] - run['server_rss_before_kb']), 'MB')} "
                      f"over its RSS at kick-off), client {fmt(mb(run['client_peak_rss_kb']), 'MB')}",
                      "", "", "flat as the count grows"))
        idle, during = bk.get("reads_while_idle", {}), bk.get("reads_during_export", {})
        if "p50_ms" in idle and "p50_ms" in during:
            r.append(("bulk", "GET Patient/{id} p50 / p99, idle → during export",
                      f"{fmt(idle['p50_ms'], 'ms')} / {fmt(idle['p99_ms'], 'ms')} → "
                      f"{fmt(during['p50_ms'], 'ms')} / {fmt(during['p99_ms'], 'ms')}", "", "",
                      f"errors {idle['errors']} / {during['errors']}"))
    return r


def markdown(env, parts, table):
    lines = ["| part | measure | smart-fhir | seed demo | ratio | goal |", "|---|---|---|---|---|---|"]
    for row in table:
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in row) + " |")
    lines.append("")
    lines.append(f"Machine: {env.get('nproc')} cores ({env.get('cpu')}), {env.get('mem_total')} memory, "
                 f"load at start {' '.join(env.get('loadavg_at_start', []))}; {env.get('rustc')}; "
                 f"Python {env.get('python')} ({', '.join(env.get('pip_freeze', []))}); {env.get('wrk')}; "
                 f"git {env.get('git_rev')}.")
    f = parts.get("floor", {})
    if f and "skipped" not in f:
        lines += ["", "The sandbox's own latency for the reads the page makes (wrk, 1 connection, 3 s each):", "",
                  "| read | p50 | p99 | errors |", "|---|---|---|---|"]
        for rd in f["reads"]:
            lines.append(f"| `{rd['read']}` | {fmt(rd['p50_ms'], 'ms')} | {fmt(rd['p99_ms'], 'ms')} | {rd['errors']} |")
        m = f["mix_64"]
        lines.append(f"\nAll of them mixed, 64 connections, 10 s: {fmt(m['rps'])} requests/s, p50 {fmt(m['p50_ms'], 'ms')}, "
                     f"p99 {fmt(m['p99_ms'], 'ms')}.")
    pg = parts.get("paging", {})
    if pg and "skipped" not in pg:
        for run in pg["runs"]:
            cps = run.get("checkpoints") or []
            if cps:
                lines.append(f"\nPaging, peak RSS (VmHWM) inside the process while streaming {run['limit']:,}: " +
                             ", ".join(f"{c['resources'] // 1000}k: {fmt(mb(c['vmhwm_kb']), 'MB')}" for c in cps) + ".")
    for name, p in parts.items():
        if "how" in p:
            lines.append(f"\n- {name}: {p['how']}")
    return "\n".join(lines) + "\n"


def plot(parts, path):
    p = parts.get("page", {})
    if not p or "skipped" in p:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    o, s, n = p["ours"], p["seed"], p.get("ours_nocache")
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    runs = [("smart-fhir", o, "#b7410e", "#e17055")]
    if n:
        runs.append(("smart-fhir\n(summary cache off)", n, "#8e44ad", "#c39bd3"))
    runs.append(("seed demo\n(Flask + fhirclient)", s, "#4b6584", "#778ca3"))
    names = [r[0] for r in runs]
    bars = a.bar(names, [r[1]["rps"] for r in runs], color=[r[2] for r in runs])
    a.bar_label(bars, fmt="%.0f")
    a.set_title(f"Patient page throughput\n({p['connections']} connections over authorized sessions, {p['duration_s']} s)")
    a.set_ylabel("requests / s")
    x = list(range(len(runs)))
    w = 0.38
    b1 = b.bar([i - w / 2 for i in x], [r[1]["p50_ms"] for r in runs], w, label="p50", color=[r[3] for r in runs])
    b2 = b.bar([i + w / 2 for i in x], [r[1]["p99_ms"] for r in runs], w, label="p99", color=[r[2] for r in runs])
    b.bar_label(b1, fmt="%.1f")
    b.bar_label(b2, fmt="%.1f")
    b.set_xticks(x, names)
    b.set_yscale("log")
    b.set_ylim(bottom=0.1, top=max(r[1]["p99_ms"] for r in runs) * 3)
    b.set_ylabel("latency, ms (log scale)")
    b.set_title("Patient page latency (p50 light, p99 dark)")
    fig.tight_layout()
    fig.savefig(path, format="svg")
    return True


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "out")
    env, parts = load(out)
    table = rows(parts)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"env": env, "parts": parts, "summary": [list(r) for r in table]}, f, indent=2)
    md = markdown(env, parts, table)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(md)
    plotted = plot(parts, os.path.join(out, "plot.svg"))
    print(md)
    print(f"wrote {out}/results.json, {out}/results.md" + (f", {out}/plot.svg" if plotted else " (no plot: no page part)"))


if __name__ == "__main__":
    main()
