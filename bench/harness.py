#!/usr/bin/env python3
"""Benchmark harness: drives complete SMART standalone launches over plain HTTP, like a browser.

It never hard-codes what the sandbox's pages contain: every page is parsed (forms, inputs,
selects, buttons, links) and the way forward is chosen from what is there — the approving
submit button rather than the denying one, pre-filled values kept, the N-th patient of the
picker for the N-th launch so that sessions spread over patients the same way for every app.

Sub-commands (all print JSON on stdout; diagnostics go to stderr):

  launch   --app URL -n N [--out FILE]      N launches through the app; times each and keeps
                                           the app's session cookies (FILE, mode 0600);
                                           --one-site URL (repeated): instances seen as one site
  check    --app URL --sessions FILE        GET / with every kept session; counts pages that
                                           are the authorized patient page
  burst    --app URL --sessions FILE        GET / once per session, all at once (one thread per
                                           session); latency of each, counted pages authorized
  requests --sessions FILE --out FILE       writes wrk's request file (path + Cookie) for them
  token    --fhir-base URL --client-id ID --redirect URI [--scope S]
                                           acts as a SMART client itself (PKCE S256) and writes
                                           an access token + patient id to --out (mode 0600)
  scale-requests --fhir-base URL --token-file F --out-prefix P
                                           wrk request files for the sandbox-at-scale queries
                                           (vitals of a patient, Patient?name=, $everything),
                                           rotating over patients the sandbox lists
  coldstart --url URL --pidfile F --log F -- CMD...
                                           starts CMD (left running), polls URL every 2 ms and
                                           reports the time from spawn to its first answer
                                           below 500, and the RSS then
  pkgsize  DIST...                         bytes installed by these distributions and all that
                                           they require (the seed demo's footprint)

Only loopback addresses are contacted (the URLs given); redirects are followed by hand, one hop
at a time, and never off 127.0.0.1/localhost.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import requests

APPROVE = re.compile(r"approve|allow|accept|authori[sz]e|continue|sign[ -]?in|log[ -]?in|"
                     r"select|choose|launch|grant|confirm|submit|next|ok\b|yes|start", re.I)
DENY = re.compile(r"deny|reject|cancel|decline|refuse|back\b|no\b|log ?out|sign ?out|reset", re.I)
START = re.compile(r"authori[sz]e|sign[ -]?in|log[ -]?in|launch|connect|start", re.I)
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
MAX_HOPS = 20
MAX_STEPS = 12


def log(*args):
    print("harness:", *args, file=sys.stderr)


class LaunchFailed(Exception):
    """A launch could not go on; the message says where and why."""


# ---------------------------------------------------------------------------------------------
# HTML: forms and links, read with the standard library's parser.

class Form:
    def __init__(self, action, method):
        self.action = action
        self.method = method.upper() if method else "GET"
        self.inputs = []  # dicts: name, type, value, checked
        self.selects = {}  # name -> list of (value, selected)
        self.buttons = []  # dicts: name, value, label
        self.textareas = {}

    def labels(self):
        return " ".join(b["label"] for b in self.buttons)


class PageParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms = []
        self.links = []  # (href, text)
        self.text = []
        self._form = None
        self._select = None
        self._option = None
        self._button = None
        self._link = None
        self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._form = Form(a.get("action", ""), a.get("method", "GET"))
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None:
            kind = a.get("type", "text").lower()
            if kind in ("submit", "image"):
                self._form.buttons.append({"name": a.get("name"), "value": a.get("value", ""),
                                           "label": a.get("value", "") or a.get("name", "")})
            elif kind not in ("button", "reset", "file") and a.get("name"):
                self._form.inputs.append({"name": a["name"], "type": kind, "value": a.get("value", ""),
                                          "checked": "checked" in a, "placeholder": a.get("placeholder", "")})
        elif tag == "select" and self._form is not None and a.get("name"):
            self._select = a["name"]
            self._form.selects[self._select] = []
        elif tag == "option" and self._select is not None:
            self._option = {"value": a.get("value"), "selected": "selected" in a, "text": ""}
            self._form.selects[self._select].append(self._option)
        elif tag == "button" and self._form is not None:
            kind = a.get("type", "submit").lower()
            if kind == "submit":
                self._button = {"name": a.get("name"), "value": a.get("value", ""), "label": ""}
                self._form.buttons.append(self._button)
        elif tag == "textarea" and self._form is not None and a.get("name"):
            self._textarea = a["name"]
            self._form.textareas[self._textarea] = ""
        elif tag == "a" and a.get("href"):
            self._link = [a["href"], ""]
            self.links.append(self._link)

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "option":
            if self._option is not None and self._option["value"] is None:
                self._option["value"] = self._option["text"].strip()
            self._option = None
        elif tag == "button":
            if self._button is not None:
                self._button["label"] = (self._button["label"].strip() or self._button["value"]
                                         or self._button["name"] or "")
            self._button = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "a":
            self._link = None

    def handle_data(self, data):
        self.text.append(data)
        if self._option is not None:
            self._option["text"] += data
        if self._button is not None:
            self._button["label"] += data
        if self._link is not None:
            self._link[1] += data
        if self._textarea is not None and self._form is not None:
            self._form.textareas[self._textarea] += data


def parse_page(html):
    p = PageParser()
    p.feed(html)
    p.close()
    for link in p.links:
        link[1] = " ".join(link[1].split())
    return p


def fill_form(form, pick, fills):
    """The fields a person would send: pre-filled values kept, `fills` for named fields,
    the `pick`-th choice of every radio group / select with several choices."""
    data = []
    radios = {}
    for inp in form.inputs:
        kind, name = inp["type"], inp["name"]
        if kind == "radio":
            radios.setdefault(name, []).append(inp)
        elif kind == "checkbox":
            if inp["checked"]:
                data.append((name, inp["value"] or "on"))
        else:
            value = fills.get(name, inp["value"])
            data.append((name, value))
    for name, group in radios.items():
        checked = [i for i in group if i["checked"]]
        choice = group[pick % len(group)] if len(group) > 1 else (checked or group)[0]
        data.append((name, choice["value"] or "on"))
    for name, options in form.selects.items():
        if not options:
            continue
        if name in fills:
            data.append((name, fills[name]))
            continue
        chosen = [o for o in options if o["selected"]]
        real = [o for o in options if o["value"]]
        if len(real) > 1:
            data.append((name, real[pick % len(real)]["value"]))
        else:
            data.append((name, (chosen or real or options)[0]["value"]))
    for name, value in form.textareas.items():
        data.append((name, fills.get(name, value)))
    approve = [b for b in form.buttons if APPROVE.search(b["label"] or "") and not DENY.search(b["label"] or "")]
    button = (approve or [b for b in form.buttons if not DENY.search(b["label"] or "")] or [None])[0]
    if button is not None and button.get("name"):
        data.append((button["name"], button["value"]))
    return data


def form_score(form):
    labels = form.labels()
    if form.buttons and all(DENY.search(b["label"] or "") for b in form.buttons):
        return -1
    score = 0
    if any(APPROVE.search(b["label"] or "") for b in form.buttons):
        score += 2
    if any(i["type"] == "password" for i in form.inputs):
        score += 1
    if not labels and not form.buttons:
        score -= 1
    return score


# ---------------------------------------------------------------------------------------------
# A small browser: one cookie jar per origin (apps and the sandbox share 127.0.0.1, and cookies
# do not tell ports apart), redirects followed by hand, time spent per origin recorded.

def origin(url):
    s = urlsplit(url)
    return f"{s.scheme}://{s.netloc}"


class Browser:
    def __init__(self, timeout=30.0, stop_prefix=None, one_site=()):
        self.sessions = {}
        # Origins that are one site behind a load balancer (instances of one app): the first one stands for all,
        # so they share a cookie jar, as a browser that reaches them through one host name would.
        self.site_of = {origin(u): origin(one_site[0]) for u in one_site}
        self.timeout = timeout
        self.stop_prefix = stop_prefix
        self.time_by_origin = {}
        self.requests = 0
        self.log = []  # (origin, method, path, seconds)
        self.callback_index = None  # index in `log` of the request that brought the authorization code back

    def origin(self, url):
        o = origin(url)
        return self.site_of.get(o, o)

    def session(self, url):
        o = self.origin(url)
        if o not in self.sessions:
            self.sessions[o] = requests.Session()
        return self.sessions[o]

    def request(self, method, url, data=None):
        host = urlsplit(url).hostname
        if host not in LOOPBACK:
            raise LaunchFailed(f"refusing to contact {host}: only loopback addresses are used")
        t0 = time.perf_counter()
        r = self.session(url).request(method, url, data=data, allow_redirects=False, timeout=self.timeout)
        dt = time.perf_counter() - t0
        o = self.origin(url)
        self.time_by_origin[o] = self.time_by_origin.get(o, 0.0) + dt
        self.requests += 1
        self.log.append((o, method, urlsplit(url).path, dt))
        nxt = r.headers.get("Location")
        if nxt and self.callback_index is None and "code=" in urlsplit(urljoin(url, nxt)).query:
            self.callback_index = len(self.log)  # the next request follows this redirect to the app
        return r

    def navigate(self, method, url, data=None):
        """Follows redirects; stops early (returning the Location) at `stop_prefix`."""
        for _ in range(MAX_HOPS):
            r = self.request(method, url, data)
            if r.status_code in (301, 302, 303, 307, 308) and "Location" in r.headers:
                nxt = urljoin(url, r.headers["Location"])
                if self.stop_prefix and nxt.startswith(self.stop_prefix):
                    return r, nxt
                if r.status_code in (307, 308):
                    url = nxt
                else:
                    method, url, data = "GET", nxt, None
                continue
            return r, url
        raise LaunchFailed(f"more than {MAX_HOPS} redirects from {url}")

    def cookie_header(self, url):
        jar = self.session(url).cookies
        return "; ".join(f"{c.name}={c.value}" for c in jar)


def snippet(text, n=300):
    return " ".join(text.split())[:n]


def next_action(page, url, pick, fills, on_app):
    """(method, url, data) for the way forward on this page, or None."""
    if on_app:
        for href, text in page.links:
            if "authorize" in href:
                return "GET", urljoin(url, href), None
        forms = [f for f in page.forms if START.search(f.labels() + " " + f.action)
                 and not DENY.search(f.labels())]
        if forms:
            f = forms[0]
            return f.method, urljoin(url, f.action), fill_form(f, pick, fills)
        for href, text in page.links:
            if START.search(text) and not DENY.search(text):
                return "GET", urljoin(url, href), None
        return None
    forms = sorted((f for f in page.forms if form_score(f) >= 0), key=form_score, reverse=True)
    if forms:
        f = forms[0]
        target = urljoin(url, f.action) if f.action else url
        data = fill_form(f, pick, fills)
        if f.method == "GET":
            sep = "&" if urlsplit(target).query else "?"
            return "GET", target.split("#")[0] + (sep + urlencode(data) if data else ""), None
        return "POST", target, data
    # A picker made of links: the pick-th link on this origin that is not a way out.
    links = [(h, t) for h, t in page.links
             if origin(urljoin(url, h)) == origin(url) and not DENY.search(t) and not h.startswith("#")]
    if links:
        h, _ = links[pick % len(links)]
        return "GET", urljoin(url, h), None
    return None


def is_done(r, url_origin, app_origin, marker, visited_auth):
    if url_origin != app_origin or r.status_code != 200 or not visited_auth:
        return False
    return re.search(marker, r.text, re.I) is not None


def one_launch(app, pick, fills, marker, timeout, one_site=()):
    app = app.rstrip("/")
    b = Browser(timeout=timeout, one_site=one_site)
    app_origin = b.origin(app)
    t0 = time.perf_counter()
    r, url = b.navigate("GET", app + "/")
    visited_auth = False
    trail = []
    for step in range(MAX_STEPS):
        if is_done(r, b.origin(url), app_origin, marker, visited_auth):
            total = time.perf_counter() - t0
            # Callback -> rendered page: the app's requests from the redirect back with the code to the page.
            cb = b.callback_index
            return {
                "seconds": total,
                "callback_to_page_seconds": (sum(e[3] for e in b.log[cb:] if e[0] == app_origin)
                                             if cb is not None else None),
                "ehr_requests_by_browser": sum(1 for e in b.log if e[0] != app_origin),
                "app_seconds": b.time_by_origin.get(app_origin, 0.0),
                "requests": b.requests,
                "cookie": b.cookie_header(app + "/"),
                "steps": trail,
                "log": [("app" if o == app_origin else "ehr", m, p, dt) for o, m, p, dt in b.log],
            }
        if b.origin(url) != app_origin:
            visited_auth = True
        if r.status_code >= 400:
            raise LaunchFailed(f"step {step}: {url} answered {r.status_code}: {snippet(r.text)}")
        page = parse_page(r.text)
        action = next_action(page, url, pick, fills, b.origin(url) == app_origin and not visited_auth)
        if action is None:
            raise LaunchFailed(f"step {step}: no way forward on {url} ({r.status_code}): {snippet(r.text)}")
        method, target, data = action
        trail.append(f"{method} {urlsplit(target).path}")
        r, url = b.navigate(method, target, data)
    raise LaunchFailed(f"no patient page after {MAX_STEPS} steps; last {url}: {snippet(r.text)}")


def parse_fills(items):
    fills = {}
    for item in items or []:
        k, _, v = item.partition("=")
        fills[k] = v
    return fills


def summarize(values):
    values = sorted(values)
    if not values:
        return {}
    def pct(p):
        k = max(0, min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1)))))
        return values[k]
    return {"n": len(values), "mean": statistics.fmean(values), "p50": pct(50), "p90": pct(90),
            "p99": pct(99), "min": values[0], "max": values[-1], "sum": sum(values)}


def mean_by_request(results):
    """Mean milliseconds of each request of a launch (the i-th request of every launch), labelled by where it went."""
    if not results:
        return []
    n = min(len(r["log"]) for r in results)
    out = []
    for i in range(n):
        where, method, path, _ = results[0]["log"][i]
        ms = statistics.fmean(r["log"][i][3] for r in results) * 1000
        out.append(f"{where} {method} {path}: {ms:.1f} ms")
    return out


def cmd_launch(args):
    fills = parse_fills(args.fill)
    results, failures = [], []
    # Warm-up launches (a patient after the counted ones), reported apart: the first launch of a fresh process pays
    # once for what later launches reuse (connections, discovery, JWKS, the EHR's first signing key).
    warmup = []
    for w in range(args.warmup):
        try:
            warmup.append(one_launch(args.app, args.n + w + args.pick_offset, fills, args.done_marker, args.timeout,
                                     args.one_site or ()))
        except (LaunchFailed, requests.RequestException) as e:
            failures.append(f"warm-up launch {w}: {e}")
            log(f"warm-up launch {w} failed: {e}")
    t0 = time.perf_counter()
    for i in range(args.n):
        try:
            results.append(one_launch(args.app, i + args.pick_offset, fills, args.done_marker, args.timeout,
                                      args.one_site or ()))
        except (LaunchFailed, requests.RequestException) as e:
            failures.append(f"launch {i}: {e}")
            log(f"launch {i} failed: {e}")
            if len(failures) >= args.max_failures:
                break
    wall = time.perf_counter() - t0
    if args.out:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"app": args.app, "sessions": [r["cookie"] for r in results]}, f)
    out = {
        "app": args.app,
        "launches_ok": len(results),
        "launches_failed": len(failures),
        "failures": failures[:5],
        "wall_seconds": wall,
        "warmup_seconds": [r["seconds"] for r in warmup],
        "launch_seconds": summarize([r["seconds"] for r in results]),
        "app_side_seconds": summarize([r["app_seconds"] for r in results]),
        "callback_to_page_seconds": summarize([r["callback_to_page_seconds"] for r in results
                                               if r["callback_to_page_seconds"] is not None]),
        "ehr_requests_by_browser": results[0]["ehr_requests_by_browser"] if results else None,
        "requests_per_launch": results[0]["requests"] if results else None,
        "mean_ms_by_request": mean_by_request(results),
        "steps": results[0]["steps"] if results else None,
    }
    print(json.dumps(out, indent=2))
    return 0 if results and not failures else 1


def load_sessions(path):
    with open(path) as f:
        return json.load(f)["sessions"]


def cmd_check(args):
    ok, bad, sizes = 0, [], []
    for i, cookie in enumerate(load_sessions(args.sessions)):
        r = requests.get(args.app.rstrip("/") + "/", headers={"Cookie": cookie},
                         allow_redirects=False, timeout=args.timeout)
        if r.status_code == 200 and re.search(args.done_marker, r.text, re.I):
            ok += 1
            sizes.append(len(r.content))
        else:
            bad.append(f"session {i}: {r.status_code} {snippet(r.text, 120)}")
    print(json.dumps({"app": args.app, "ok": ok, "bad": len(bad), "examples": bad[:3],
                      "page_bytes": summarize(sizes)}, indent=2))
    return 0 if not bad else 1


def cmd_burst(args):
    from concurrent.futures import ThreadPoolExecutor
    import threading
    sessions = load_sessions(args.sessions)
    gate = threading.Barrier(len(sessions))

    def one(cookie):
        with requests.Session() as s:
            gate.wait(timeout=30)
            t0 = time.perf_counter()
            r = s.get(args.app.rstrip("/") + "/", headers={"Cookie": cookie}, allow_redirects=False,
                      timeout=args.timeout)
            dt = time.perf_counter() - t0
            return dt, r.status_code == 200 and re.search(args.done_marker, r.text, re.I) is not None

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(sessions)) as pool:
        results = list(pool.map(one, sessions))
    wall = time.perf_counter() - t0
    ok = [dt for dt, good in results if good]
    print(json.dumps({"app": args.app, "sessions": len(sessions), "ok": len(ok), "wall_seconds": wall,
                      "latency_seconds": summarize([dt for dt, _ in results])}, indent=2))
    return 0 if len(ok) == len(sessions) else 1


def cmd_scale_requests(args):
    with open(args.token_file) as f:
        token = json.load(f)["access_token"]
    auth = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    base = args.fhir_base.rstrip("/")
    r = requests.get(f"{base}/Patient", params={"_count": str(args.patients)}, headers=auth,
                     timeout=args.timeout, allow_redirects=False)
    if r.status_code != 200:
        raise LaunchFailed(f"Patient search answered {r.status_code}: {snippet(r.text)}")
    bundle = r.json()
    patients = [e["resource"] for e in bundle.get("entry", []) if e.get("resource", {}).get("resourceType") == "Patient"]
    if not patients:
        raise LaunchFailed("the sandbox listed no patients")
    path = urlsplit(base).path
    files = {}
    kinds = {
        "vitals": lambda p: f"{path}/Observation?patient={p['id']}&category=vital-signs",
        "name": lambda p: f"{path}/Patient?name={((p.get('name') or [{}])[0].get('family') or p['id'])}",
        "everything": lambda p: f"{path}/Patient/{p['id']}/$everything",
    }
    for kind, make in kinds.items():
        name = f"{args.out_prefix}-{kind}.txt"
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            for p in patients:
                f.write(f"{make(p)}\tAuthorization: Bearer {token}\n")
        files[kind] = name
    print(json.dumps({"patients": len(patients), "total": bundle.get("total"), "files": files}))
    return 0


def cmd_requests(args):
    sessions = load_sessions(args.sessions)
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        for cookie in sessions:
            f.write(f"{args.path}\tCookie: {cookie}\n")
    print(json.dumps({"requests": len(sessions), "file": args.out}))
    return 0


def discover(base, timeout):
    r = requests.get(base.rstrip("/") + "/.well-known/smart-configuration", timeout=timeout,
                     headers={"Accept": "application/json"}, allow_redirects=False)
    if r.status_code == 200:
        j = r.json()
        return j["authorization_endpoint"], j["token_endpoint"]
    raise LaunchFailed(f"discovery at {base}/.well-known/smart-configuration answered {r.status_code}")


def cmd_token(args):
    fills = parse_fills(args.fill)
    authorize, token = discover(args.fhir_base, args.timeout)
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(24)
    url = authorize + "?" + urlencode({
        "response_type": "code", "client_id": args.client_id, "redirect_uri": args.redirect,
        "scope": args.scope, "state": state, "aud": args.fhir_base,
        "code_challenge": challenge, "code_challenge_method": "S256"})
    b = Browser(timeout=args.timeout, stop_prefix=args.redirect)
    r, where = b.navigate("GET", url)
    for step in range(MAX_STEPS):
        if where.startswith(args.redirect):
            break
        if r.status_code >= 400:
            raise LaunchFailed(f"step {step}: {where} answered {r.status_code}: {snippet(r.text)}")
        action = next_action(parse_page(r.text), where, args.pick, fills, False)
        if action is None:
            raise LaunchFailed(f"step {step}: no way forward on {where}: {snippet(r.text)}")
        r, where = b.navigate(*action)
    q = parse_qs(urlsplit(where).query)
    if q.get("state", [None])[0] != state or "code" not in q:
        raise LaunchFailed(f"the redirect carried no code for our state: {sorted(q)}")
    t = requests.post(token, data={"grant_type": "authorization_code", "code": q["code"][0],
                                   "redirect_uri": args.redirect, "client_id": args.client_id,
                                   "code_verifier": verifier}, timeout=args.timeout, allow_redirects=False)
    if t.status_code != 200:
        raise LaunchFailed(f"token endpoint answered {t.status_code}: {snippet(t.text)}")
    j = t.json()
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"access_token": j["access_token"], "patient": j.get("patient"),
                   "scope": j.get("scope")}, f)
    print(json.dumps({"patient": j.get("patient"), "scope": j.get("scope"), "file": args.out}))
    return 0


def rss_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cmd_coldstart(args):
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    logf = open(args.log, "ab")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    with open(args.pidfile, "w") as f:
        f.write(str(proc.pid))
    deadline = t0 + args.timeout
    status = None
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            log(f"{cmd[0]} exited with {proc.returncode} before answering; see {args.log}")
            print(json.dumps({"error": f"exited with {proc.returncode}", "log": args.log}))
            return 1
        try:
            r = requests.get(args.url, timeout=2, allow_redirects=False)
            status = r.status_code
            if status < 500:
                break
        except requests.RequestException:
            pass
        time.sleep(0.002)
    else:
        print(json.dumps({"error": f"no answer below 500 from {args.url} in {args.timeout} s (last {status})"}))
        return 1
    elapsed = time.perf_counter() - t0
    time.sleep(0.5)
    print(json.dumps({"pid": proc.pid, "first_response_s": elapsed, "status": status,
                      "rss_kb_after_first_response": rss_kb(proc.pid, "VmRSS")}))
    return 0


def cmd_pkgsize(args):
    from importlib import metadata
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pip carries its own copy
        from pip._vendor.packaging.requirements import Requirement
    seen, todo, total, files = set(), list(args.dists), 0, 0
    while todo:
        name = re.split(r"[ ;<>=!~\[(]", todo.pop())[0].lower().replace("_", "-")
        if not name or name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for f in dist.files or []:
            try:
                total += os.path.getsize(f.locate())
                files += 1
            except OSError:
                pass
        for req in dist.requires or []:
            r = Requirement(req)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(r.name)
    # The interpreter the packages need: its binary, libpython and the standard library (without tests).
    import sysconfig
    interp = os.path.getsize(os.path.realpath(sys.executable))
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    ldlib = sysconfig.get_config_var("LDLIBRARY") or ""
    if ldlib.endswith(".so") or ".so." in ldlib:
        try:
            interp += os.path.getsize(os.path.join(libdir, ldlib))
        except OSError:
            pass
    stdlib = sysconfig.get_paths()["stdlib"]
    for dirpath, dirnames, filenames in os.walk(stdlib):
        dirnames[:] = [d for d in dirnames if d not in ("site-packages", "test", "tests", "__pycache__", "idlelib", "ensurepip", "tkinter", "turtledemo")
                       and not d.startswith("config-")]
        for fn in filenames:
            try:
                interp += os.path.getsize(os.path.join(dirpath, fn))
            except OSError:
                pass
    print(json.dumps({"distributions": sorted(seen), "bytes": total, "files": files,
                      "interpreter_bytes": interp}))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--timeout", type=float, default=30.0)
    common.add_argument("--fill", action="append", help="NAME=VALUE for a form field left empty by the page")
    common.add_argument("--done-marker", default=r"logout",
                        help="regex that the authorized patient page matches (default: a logout link)")

    p = sub.add_parser("launch", parents=[common])
    p.add_argument("--app", required=True)
    p.add_argument("-n", type=int, default=1)
    p.add_argument("--pick-offset", type=int, default=0)
    p.add_argument("--warmup", type=int, default=1, help="launches before the counted ones, reported apart")
    p.add_argument("--max-failures", type=int, default=3)
    p.add_argument("--one-site", action="append", metavar="URL",
                   help="app instances behind one load balancer (repeat; the first stands for all): they share the "
                        "browser's cookie jar, so a launch may start on one and come back on another")
    p.add_argument("--out")
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser("check", parents=[common])
    p.add_argument("--app", required=True)
    p.add_argument("--sessions", required=True)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("scale-requests", parents=[common])
    p.add_argument("--fhir-base", required=True)
    p.add_argument("--token-file", required=True)
    p.add_argument("--out-prefix", required=True)
    p.add_argument("--patients", type=int, default=20)
    p.set_defaults(func=cmd_scale_requests)

    p = sub.add_parser("burst", parents=[common])
    p.add_argument("--app", required=True)
    p.add_argument("--sessions", required=True)
    p.set_defaults(func=cmd_burst)

    p = sub.add_parser("requests", parents=[common])
    p.add_argument("--sessions", required=True)
    p.add_argument("--path", default="/")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_requests)

    p = sub.add_parser("token", parents=[common])
    p.add_argument("--fhir-base", required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--redirect", required=True)
    p.add_argument("--scope", default="launch/patient patient/*.read")
    p.add_argument("--pick", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("coldstart", parents=[common])
    p.add_argument("--url", required=True)
    p.add_argument("--pidfile", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_coldstart)

    p = sub.add_parser("pkgsize", parents=[common])
    p.add_argument("dists", nargs="+")
    p.set_defaults(func=cmd_pkgsize)

    args = ap.parse_args()
    try:
        return args.func(args)
    except (LaunchFailed, requests.RequestException) as e:
        log(str(e))
        print(json.dumps({"error": str(e)}))
        return 1


if __name__ == "__main__":
    sys.exit(main())
