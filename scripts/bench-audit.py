#!/usr/bin/env python3
"""What the background audit costs the server: CPU time and extra RSS for N DaemonSets.

Serves N DaemonSets (copies of the five a real kube-apiserver v1.36.2 stored, from
../shared/fixtures/apiserver-api/01-list-all.json, renamed into 50 namespaces) from a stand-in API
server on 127.0.0.1 that pages with limit/continue like the real one. Starts the release server
without --audit (the idle baseline), then RUNS times with --audit: waits for its log line saying
every DaemonSet was listed and evaluated (not by polling /metrics, whose every scrape renders all
the violation series and would be counted as the audit's CPU), and compares CPU time
(utime+stime from /proc) and resident set (settled, and peak: VmHWM) with the idle server. Then
measures one /metrics scrape, and the re-evaluation of all N on a policy reload. Prints the
median of the runs; CPU time is the figure to trust on a shared machine, wall time is not.

  cargo build --release --bin daemonset-guard && python3 scripts/bench-audit.py [N]
  RUNS=5 REPORTS=1 python3 scripts/bench-audit.py     # as the chart runs it (--audit-policy-reports)
"""
import copy, json, os, re, subprocess, sys, tempfile, threading, time, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("DSG_BIN") or os.path.join(ROOT, "target/release/daemonset-guard")
FIXTURE = os.path.join(ROOT, "../shared/fixtures/apiserver-api/01-list-all.json")
N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
RUNS = int(os.environ.get("RUNS", "3"))
SCRAPES = 5
# LEGACY=1: for a binary older than the "every DaemonSet listed and evaluated" log line.
LEGACY = os.environ.get("LEGACY") == "1"
# REPORTS=1: serve --audit --audit-policy-reports, as the chart's default (the stand-in API server
# does not serve the PolicyReport CRD, so nothing is written, but every violation's details are kept).
REPORTS = os.environ.get("REPORTS") == "1"
TICK = os.sysconf("SC_CLK_TCK")

base = json.load(open(FIXTURE))
items = []
for i in range(N):
    ds = copy.deepcopy(base["items"][i % len(base["items"])])
    ds["metadata"]["name"] = f"{ds['metadata']['name']}-{i}"
    ds["metadata"]["namespace"] = f"team-{i % 50}"
    ds["metadata"]["uid"] = f"00000000-0000-0000-0000-{i:012d}"
    items.append(ds)
items.sort(key=lambda d: (d["metadata"]["namespace"], d["metadata"]["name"]))
encoded = [json.dumps(d, separators=(",", ":")) for d in items]


class Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body, ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        if u.path != "/apis/apps/v1/daemonsets":
            return self.send(404, b"404 page not found\n", "text/plain; charset=utf-8")
        if q.get("watch") in ("true", "1"):
            time.sleep(3600)
            return
        start = int(q.get("continue", "0"))
        limit = int(q.get("limit", str(N)))
        page = encoded[start:start + limit]
        meta = {"resourceVersion": "1000"}
        if start + limit < N:
            meta["continue"] = str(start + limit)
        body = ('{"kind":"DaemonSetList","apiVersion":"apps/v1","metadata":%s,"items":[%s]}\n'
                % (json.dumps(meta), ",".join(page))).encode()
        self.send(200, body)


def proc(pid):
    stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / TICK
    status = open(f"/proc/{pid}/status").read()
    kib = lambda k: int(re.search(rf"^{k}:\s+(\d+) kB", status, re.M).group(1))
    return cpu, kib("VmRSS") / 1024, kib("VmHWM") / 1024


class Server:
    """A running server; its JSON log lines are collected, so waiting costs it nothing (polling
    /metrics would: each scrape renders every violation series)."""

    def __init__(self, args, env, policy):
        self.p = subprocess.Popen(
            [BIN, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
             "--log-format", "json", "--config", policy, "--reload-interval", "250ms"] + args,
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines, self.cv = [], threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.port = int(self.wait_log("listening")["metrics"].rsplit(":", 1)[1])

    def _read(self):
        for line in self.p.stdout:
            try:
                v = json.loads(line)
            except ValueError:
                continue
            with self.cv:
                self.lines.append(v)
                self.cv.notify_all()

    def wait_log(self, message, after=0):
        """The first log line at or after index `after` with this message."""
        deadline = time.time() + 300
        with self.cv:
            while True:
                for v in self.lines[after:]:
                    if v.get("message") == message:
                        return v
                if time.time() > deadline or self.p.poll() is not None:
                    raise SystemExit(f"no log line {message!r}")
                self.cv.wait(1)

    def stop(self):
        self.p.terminate()
        self.p.wait(10)


def scrape(port):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read()


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    tmp = tempfile.mkdtemp()
    kc = os.path.join(tmp, "kubeconfig")
    open(kc, "w").write(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: b\n  cluster:\n    server: http://127.0.0.1:%d\n"
        "users:\n- name: b\n  user:\n    token: t\ncontexts:\n- name: b\n  context:\n    cluster: b\n    user: b\n"
        "current-context: b\n" % httpd.server_address[1])
    default = subprocess.check_output([BIN, "policy", "default"], text=True)
    assert "\nrules: {}\n" in default, "the reload step edits `rules: {}` of the default policy"
    env = dict(os.environ, KUBECONFIG=kc, RUST_LOG="info")

    base = Server([], env, write_policy(tmp, default))
    time.sleep(3)
    base_cpu, base_rss, base_hwm = proc(base.p.pid)
    base.stop()

    runs = []
    for run in range(RUNS):
        policy = write_policy(tmp, default)
        s = Server(["--audit"] + (["--audit-policy-reports"] if REPORTS else []), env, policy)
        t0 = time.time()
        polls = 0
        if LEGACY:
            # A binary without the log line: poll /metrics once a second, and take the cost of
            # those scrapes off below.
            while not re.search(rf"^daemonset_guard_audit_daemonsets {N}$", scrape(s.port).decode(), re.M):
                polls += 1
                time.sleep(1)
            polls += 1
        else:
            done = s.wait_log("background audit: every DaemonSet listed and evaluated")
            if done.get("daemonsets") != N:
                raise SystemExit(f"the audit saw {done.get('daemonsets')} DaemonSets, not {N}")
        wall = time.time() - t0
        time.sleep(2)
        cpu, rss, hwm = proc(s.p.pid)

        # One scrape, as Prometheus makes every 15-60 s: its cost is apart from the audit's.
        body = scrape(s.port)
        series = sum(1 for l in body.decode().splitlines() if l.startswith("daemonset_guard_audit_violations{"))
        c0, _, _ = proc(s.p.pid)
        for _ in range(SCRAPES):
            scrape(s.port)
        scrape_cpu = (proc(s.p.pid)[0] - c0) / SCRAPES
        cpu -= polls * scrape_cpu

        # A policy reload lists every DaemonSet again and re-evaluates each.
        mark = len(s.lines)
        before, _, _ = proc(s.p.pid)
        text = open(policy).read()
        open(policy, "w").write(text.replace("\nrules: {}\n", "\nrules: {resources-requests-missing: warn}\n", 1))
        s.wait_log("background audit: policy changed, every DaemonSet re-evaluated", mark)
        time.sleep(2)
        after, rss2, hwm2 = proc(s.p.pid)
        s.stop()
        runs.append(dict(cpu=cpu - base_cpu, rss=rss - base_rss, hwm=hwm - base_hwm, wall=wall,
                         series=series, bytes=len(body), scrape=scrape_cpu, reload=after - before,
                         rss2=rss2 - base_rss, hwm2=hwm2 - base_hwm))
        r = runs[-1]
        print(f"run {run + 1}: audit {r['cpu']:.2f} s CPU, RSS {r['rss']:+.1f} MiB (peak {r['hwm']:+.1f}), "
              f"wall {r['wall']:.2f} s; scrape {r['scrape'] * 1000:.0f} ms CPU; reload {r['reload']:.2f} s CPU",
              file=sys.stderr)

    m = lambda k: median([r[k] for r in runs])
    print(f"binary:                      {BIN} (serve --audit{' --audit-policy-reports' if REPORTS else ''})")
    print(f"DaemonSets:                  {N} ({m('series')} violation series, /metrics {m('bytes') / 1048576:.1f} MiB)")
    print(f"idle server, no audit:       {base_cpu:.2f} s CPU, RSS {base_rss:.1f} MiB (peak {base_hwm:.1f})")
    print(f"full pass (median of {RUNS}):    list + evaluate {m('wall'):.2f} s wall "
          f"(with the stand-in API server's paging)")
    print(f"audit cost over idle:        {m('cpu'):.2f} s CPU (utime+stime), "
          f"RSS {m('rss'):+.1f} MiB settled, {m('hwm'):+.1f} MiB peak")
    print(f"one /metrics scrape:         {m('scrape') * 1000:.0f} ms CPU")
    print(f"policy reload, all again:    {m('reload'):.2f} s CPU, then RSS {m('rss2'):+.1f} MiB "
          f"(peak {m('hwm2'):+.1f})")
    print(f"target (issue 13):           < 1 s CPU, < 64 MiB extra RSS: "
          f"{'met' if m('cpu') < 1 and max(m('hwm'), m('hwm2')) < 64 else 'NOT met'}")


def write_policy(tmp, text):
    path = os.path.join(tmp, "policy.yaml")
    open(path, "w").write(text)
    return path


main()
