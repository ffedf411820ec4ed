#!/usr/bin/env python3
"""Table of ratios (ours ÷ peer) from bench/run.sh results (one JSON object per line).

    python3 bench/report.py RESULTS.jsonl [--peer node]
    python3 bench/report.py --quick RESULTS.jsonl   # checks every run passed; no timings

For each metric: the median of each side over the pairs, the per-pair ratios ours ÷ peer, and
their median. "better" says which direction wins.
"""
import json
import statistics
import sys


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    rows.append({"error": "unparseable line: " + line[:200]})
    return rows


def get(row, path):
    v = row
    for k in path.split("."):
        if not isinstance(v, dict) or k not in v:
            return None
        v = v[k]
    return v


def total_cpu(r):
    return (r.get("server_cpu_s") or 0) + (r.get("redis_cpu_s") or 0)


# (label prefix, metric name, extractor, better)
def metrics_for(label):
    if label.startswith("dm@"):
        return [
            ("p50 latency ms", lambda r: get(r, "lat_us.p50") / 1000, "lower"),
            ("p99 latency ms", lambda r: get(r, "lat_us.p99") / 1000, "lower"),
            ("p99.9 latency ms", lambda r: get(r, "lat_us.p999") / 1000, "lower"),
            ("server CPU µs/msg", lambda r: r["cpu_us_per_msg"], "lower"),
            ("server+Redis CPU µs/msg",
             lambda r: total_cpu(r) * 1e6 / max(r["acked_ok"], 1), "lower"),
            ("lost+unanswered", lambda r: r["lost"] + r["unanswered"], "lower"),
        ]
    if label.startswith("fanout"):
        return [
            ("deliveries / server CPU-s", lambda r: r["deliveries_per_cpu_s"], "higher"),
            ("deliveries / (server+Redis) CPU-s",
             lambda r: r["delivered"] / max(total_cpu(r), 1e-9), "higher"),
            ("p99 latency ms", lambda r: get(r, "lat_us.p99") / 1000, "lower"),
            ("lost", lambda r: r["lost"], "lower"),
        ]
    if label.startswith("connect"):
        return [
            ("handshakes / server CPU-s", lambda r: r["handshakes_per_cpu_s"], "higher"),
            ("handshakes / s", lambda r: r["handshakes_per_s"], "higher"),
        ]
    return []


def fmt(x):
    if x is None:
        return "–"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def main():
    args = sys.argv[1:]
    quick = "--quick" in args
    peer = "node"
    if "--peer" in args:
        peer = args[args.index("--peer") + 1]
    paths = [a for a in args if not a.startswith("--") and a != peer]
    rows = load(paths[0])

    if quick:
        bad = [r for r in rows if r.get("error") or r.get("lost") or r.get("dup")
               or r.get("failed") or r.get("unanswered") or r.get("ack_err")]
        for r in rows:
            print(f"{r.get('impl', '?'):5} {r.get('label', '?'):14} "
                  + ("FAIL " + str(r.get("error") or r.get("error_sample")) if r in bad else "ok"))
        return 1 if bad or not rows else 0

    by = {}  # (label, impl, pair) -> row
    for r in rows:
        by[(r.get("label"), r.get("impl"), r.get("pair"))] = r
    labels = []
    for r in rows:
        if r.get("label") not in labels:
            labels.append(r.get("label"))
    pairs = sorted({r.get("pair") for r in rows})

    out = ["| workload | metric | ours (median) | " + peer + " (median) | ours ÷ " + peer
           + " per pair | median ratio | better |", "|---|---|---|---|---|---|---|"]

    def add(label, name, ours_vals, peer_vals, better):
        rs = [ratio(o, p) for o, p in zip(ours_vals, peer_vals)]
        rs = [x for x in rs if x is not None]
        om = statistics.median([v for v in ours_vals if v is not None]) if any(
            v is not None for v in ours_vals) else None
        pm = statistics.median([v for v in peer_vals if v is not None]) if any(
            v is not None for v in peer_vals) else None
        out.append(f"| {label} | {name} | {fmt(om)} | {fmt(pm)} | "
                   + ", ".join(f"{x:.2f}" for x in rs) + f" | **{fmt(statistics.median(rs)) if rs else '–'}** | {better} |")

    for label in labels:
        if label.startswith("idle"):
            continue
        for name, f, better in metrics_for(label):
            ov, pv = [], []
            for p in pairs:
                o, q = by.get((label, "ours", p)), by.get((label, peer, p))
                if o is None or q is None:
                    continue
                try:
                    ov.append(f(o) if not o.get("error") else None)
                    pv.append(f(q) if not q.get("error") else None)
                except (KeyError, TypeError):
                    ov.append(None)
                    pv.append(None)
            if ov:
                add(label, name, ov, pv, better)

    # Idle memory: slope between the two idle sizes, per pair.
    idle = sorted({l for l in labels if l and l.startswith("idle")},
                  key=lambda l: int(l[4:-1]) * (1000 if l.endswith("k") else 1))
    if len(idle) >= 2:
        lo, hi = idle[0], idle[-1]
        for name, key in (("server RSS bytes/conn (slope)", "server_rss_kb"),
                          ("Redis RSS bytes/conn (slope)", "redis_rss_kb")):
            ov, pv = [], []
            for p in pairs:
                vals = []
                for impl in ("ours", peer):
                    a, b = by.get((lo, impl, p)), by.get((hi, impl, p))
                    if not a or not b or a.get("error") or b.get("error"):
                        vals.append(None)
                        continue
                    ra, rb = a[key], b[key]
                    ra = sum(ra) if isinstance(ra, list) else ra
                    rb = sum(rb) if isinstance(rb, list) else rb
                    vals.append((rb - ra) * 1024 / max(b["connected"] - a["connected"], 1))
                ov.append(vals[0])
                pv.append(vals[1])
            add(f"{lo}→{hi}", name, ov, pv, "lower")
        for l in idle:
            ov = [sum(by[(l, "ours", p)]["server_rss_kb"]) / 1024 for p in pairs if (l, "ours", p) in by]
            pv = [sum(by[(l, peer, p)]["server_rss_kb"]) / 1024 for p in pairs if (l, peer, p) in by]
            add(l, "server RSS MiB", ov, pv, "lower")

    errors = [r for r in rows if r.get("error")]
    print("\n".join(out))
    if errors:
        print(f"\n{len(errors)} runs errored:")
        for r in errors:
            print(f"- {r.get('impl')} {r.get('label')} pair {r.get('pair')}: {r.get('error')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
