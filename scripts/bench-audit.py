#!/usr/bin/env python3
"""What the background audit costs the server: CPU time and extra RSS for N DaemonSets.

Serves N DaemonSets (copies of the five a real kube-apiserver v1.36.2 stored, from
../shared/fixtures/apiserver-api/01-list-all.json, renamed into 50 namespaces) from a stand-in API
server on 127.0.0.1 that pages with limit/continue like the real one, then starts the release
server twice, without and with --audit, and compares their CPU time (utime+stime) and resident
set once the audit has evaluated every DaemonSet (daemonset_guard_audit_daemonsets == N). Then it
swaps the policy file and measures the re-evaluation of all N on a policy reload.

  cargo build --release --bin daemonset-guard && python3 scripts/bench-audit.py [N]
"""
import copy, json, os, re, subprocess, sys, tempfile, threading, time, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("DSG_BIN") or os.path.join(ROOT, "target/release/daemonset-guard")
FIXTURE = os.path.join(ROOT, "../shared/fixtures/apiserver-api/01-list-all.json")
N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
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


def metric(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def serve(args, env, policy):
    p = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                          "--log-format", "json", "--config", policy, "--reload-interval", "250ms"] + args,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in p.stdout:
        v = json.loads(line)
        if v.get("message") == "listening":
            port = int(v["metrics"].rsplit(":", 1)[1])
            threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
            return p, port
    raise SystemExit("server did not start")


def wait(cond, what):
    deadline = time.time() + 120
    while not cond():
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def main():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    tmp = tempfile.mkdtemp()
    kc = os.path.join(tmp, "kubeconfig")
    open(kc, "w").write(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: b\n  cluster:\n    server: http://127.0.0.1:%d\n"
        "users:\n- name: b\n  user:\n    token: t\ncontexts:\n- name: b\n  context:\n    cluster: b\n    user: b\n"
        "current-context: b\n" % httpd.server_address[1])
    policy = os.path.join(tmp, "policy.yaml")
    open(policy, "w").write(subprocess.check_output([BIN, "policy", "default"], text=True))
    env = dict(os.environ, KUBECONFIG=kc, RUST_LOG="info")

    base_p, base_port = serve([], env, policy)
    time.sleep(2)
    base_cpu, base_rss, base_hwm = proc(base_p.pid)

    p, port = serve(["--audit"], env, policy)
    t0 = time.time()
    wait(lambda: metric(port, "daemonset_guard_audit_daemonsets") == N, f"{N} DaemonSets audited")
    wait(lambda: (metric(port, "daemonset_guard_audit_last_full_pass_timestamp_seconds") or 0) > 0, "the full pass")
    wall = time.time() - t0
    time.sleep(1)
    cpu, rss, hwm = proc(p.pid)
    violations = sum(1 for l in urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode().splitlines()
                     if l.startswith("daemonset_guard_audit_violations{"))

    # A policy reload re-evaluates every DaemonSet in memory.
    first = metric(port, "daemonset_guard_audit_last_full_pass_timestamp_seconds")
    time.sleep(1.1)
    before, _, _ = proc(p.pid)
    text = open(policy).read()
    open(policy, "w").write(text.replace("\nrules: {}\n", "\nrules: {resources-requests-missing: warn}\n", 1))
    wait(lambda: metric(port, "daemonset_guard_audit_last_full_pass_timestamp_seconds") > first, "the reload pass")
    time.sleep(0.5)
    after, rss2, hwm2 = proc(p.pid)

    print(f"DaemonSets:                  {N} ({violations} violation series)")
    print(f"list + evaluate, wall:       {wall:.2f} s (including the stand-in API server's paging)")
    print(f"server CPU, no audit:        {base_cpu:.2f} s   RSS {base_rss:.1f} MiB (peak {base_hwm:.1f})")
    print(f"server CPU, with audit:      {cpu:.2f} s   RSS {rss:.1f} MiB (peak {hwm:.1f})")
    print(f"audit cost:                  {cpu - base_cpu:.2f} s CPU, {rss - base_rss:+.1f} MiB RSS (peak {hwm - base_hwm:+.1f})")
    print(f"policy reload re-evaluation: {after - before:.2f} s CPU, RSS {rss2:.1f} MiB (peak {hwm2:.1f})")
    for proc_ in (base_p, p):
        proc_.terminate()
        proc_.wait(10)


main()
