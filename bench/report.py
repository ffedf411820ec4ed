#!/usr/bin/env python3
"""Tables of ratios (ours ÷ each peer) from bench/run.sh results (one JSON object per line).

    python3 bench/report.py RESULTS.jsonl [--peer node]   # --peer: only that peer
    python3 bench/report.py --quick RESULTS.jsonl          # checks every run passed; no timings

One table per workload. For each metric: ours' median over the pairs, each peer's median, and
the median of the per-pair ratios ours ÷ peer (the per-pair ratios in parentheses). "better"
says which direction wins. Under each table: the 1-minute load average before and after the
runs (medians; a noisy run shows up there) and how long one run of the case took. Then the
idle-memory slope, the load generator's latency floor and the Redis ceilings.
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


def ms(row, path):
    v = get(row, path)
    return None if v is None else v / 1000


def total_cpu(r):
    return (r.get("server_cpu_s") or 0) + (r.get("redis_cpu_s") or 0)


def per(num, den):
    return None if num is None or not den else num / den


def best_step(r):
    """The dm-search step at the highest passing rate."""
    ok = [s for s in r.get("steps", []) if s.get("pass")]
    return ok[-1] if ok else None


P99_LIMIT = [50]  # dm-search's bound, from the results


# (metric name, extractor, better)
def metrics_for(label):
    lat = [
        ("p50 latency ms", lambda r: ms(r, "lat_us.p50"), "lower"),
        ("p99 latency ms", lambda r: ms(r, "lat_us.p99"), "lower"),
        ("p99.9 latency ms", lambda r: ms(r, "lat_us.p999"), "lower"),
    ]
    msg_cpu = [
        ("messages / server CPU-s", lambda r: per(r["acked_ok"], r["server_cpu_s"]), "higher"),
        ("server CPU µs/msg", lambda r: r["cpu_us_per_msg"], "lower"),
        ("server+Redis CPU µs/msg",
         lambda r: total_cpu(r) * 1e6 / max(r["acked_ok"], 1), "lower"),
    ]
    loss = [
        ("lost+unanswered", lambda r: r["lost"] + r["unanswered"], "lower"),
        ("duplicates", lambda r: r["dup"], "lower"),
    ]
    if label.startswith("dm@"):
        return lat + msg_cpu[1:] + loss
    if label.startswith("polling"):
        return msg_cpu + [
            ("messages / (server+Redis) CPU-s",
             lambda r: per(r["acked_ok"], total_cpu(r)), "higher")] + lat + loss
    if label.startswith("dm-search"):
        return [
            ("highest rate with p99 < %g ms" % P99_LIMIT[0], lambda r: r["best_rate"], "higher"),
            ("p99 ms at that rate", lambda r: ms(best_step(r), "lat_us.p99"), "lower"),
            ("server CPU µs/msg at that rate", lambda r: best_step(r)["cpu_us_per_msg"], "lower"),
            ("duplicates", lambda r: r["dup"], "lower"),
        ]
    if label.startswith("fanout"):
        return [
            ("deliveries / server CPU-s", lambda r: r["deliveries_per_cpu_s"], "higher"),
            ("deliveries / (server+Redis) CPU-s",
             lambda r: r["delivered"] / max(total_cpu(r), 1e-9), "higher"),
            ("node CPU µs/delivery",
             lambda r: r["server_cpu_s"] * 1e6 / max(r["delivered"], 1), "lower"),
            ("Redis CPU µs/delivery",
             lambda r: r["redis_cpu_s"] * 1e6 / max(r["delivered"], 1), "lower"),
            ("p50 latency ms", lambda r: ms(r, "lat_us.p50"), "lower"),
            ("p99 latency ms", lambda r: ms(r, "lat_us.p99"), "lower"),
            ("lost", lambda r: r["lost"], "lower"),
            ("duplicates", lambda r: r["dup"], "lower"),
        ]
    if label.startswith("connect"):
        return [
            ("handshakes / server CPU-s", lambda r: r["handshakes_per_cpu_s"], "higher"),
            ("handshakes / s", lambda r: r["handshakes_per_s"], "higher"),
            ("handshake p99 ms", lambda r: ms(r, "handshake_us.p99"), "lower"),
            ("failed", lambda r: r["failed"], "lower"),
        ]
    if label.startswith("slow"):
        return [
            ("server RSS growth MiB (peak − before)",
             lambda r: r["server_rss_growth_kb"] / 1024, "lower"),
            ("server RSS held MiB (after the hold − before)",
             lambda r: r["server_rss_held_kb"] / 1024, "lower"),
            ("silent member dropped after s", lambda r: r["silent_dropped_s"], "lower"),
            ("messages sent by then", lambda r: r["sent_when_dropped"], "lower"),
            ("reader p99 latency ms", lambda r: ms(r, "lat_us.p99"), "lower"),
            ("sender p99 ack latency ms", lambda r: ms(r, "ack_lat_us.p99"), "lower"),
            ("lost+unanswered", lambda r: r["lost"] + r["unanswered"], "lower"),
            ("missing from sync", lambda r: r["sync_expected"] - r["sync_messages"], "lower"),
        ]
    if label.startswith("idle"):
        return [
            ("server RSS MiB", lambda r: sum(r["server_rss_kb"]) / 1024, "lower"),
            ("server RSS growth bytes/conn", lambda r: r["bytes_per_conn"], "lower"),
            ("handshake p99 ms", lambda r: ms(r, "handshake_us.p99"), "lower"),
            ("failed+disconnects", lambda r: r["failed"] + r.get("disconnects", 0), "lower"),
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


def median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def safe(f, r):
    if r is None or r.get("error"):
        return None
    try:
        return f(r)
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def archive_error(r):
    """The archive peer: every acknowledged message in PostgreSQL, the queue drained."""
    if r.get("impl") != "archive":
        return None
    if r.get("archive_drain_s") is None:
        return "the archive queue did not drain"
    acked = r.get("acked_ok")
    if acked is not None and r.get("archive_rows") != acked:
        return f"{r.get('archive_rows')} messages archived of {acked} acknowledged"
    return None


def quick(rows):
    bad = [r for r in rows if r.get("error") or r.get("lost") or r.get("dup")
           or r.get("failed") or r.get("unanswered") or r.get("ack_err")
           or r.get("disconnects") or archive_error(r)]
    for r in rows:
        why = r.get("error") or archive_error(r) or r.get("error_sample")
        print(f"{r.get('impl', '?'):12} {r.get('label', '?'):22} "
              + ("FAIL " + str(why) if r in bad else "ok"))
    return 1 if bad or not rows else 0


def main():
    args = sys.argv[1:]
    only_peer = None
    if "--peer" in args:
        only_peer = args[args.index("--peer") + 1]
        args.remove("--peer")
        args.remove(only_peer)
    is_quick = "--quick" in args
    paths = [a for a in args if not a.startswith("--")]
    if not paths:
        print(__doc__)
        return 2
    rows = load(paths[0])
    if is_quick:
        return quick(rows)

    runs = [r for r in rows if r.get("impl") not in ("loadgen", "redis")]
    floors = [r for r in rows if r.get("impl") == "loadgen"]
    ceilings = [r for r in rows if r.get("impl") == "redis"]
    peers = []
    for r in runs:
        i = r.get("impl")
        if i and i != "ours" and i not in peers and (only_peer is None or i == only_peer):
            peers.append(i)
    for r in runs:
        if r.get("p99_limit_ms"):
            P99_LIMIT[0] = r["p99_limit_ms"]
    by = {}  # (label, impl, pair) -> row
    for r in runs:
        by[(r.get("label"), r.get("impl"), r.get("pair"))] = r
    labels = []
    for r in runs:
        if r.get("label") not in labels:
            labels.append(r.get("label"))
    pairs = sorted({r.get("pair") for r in runs if r.get("pair") is not None})

    out = []
    header = "| metric | ours |" + "".join(f" {p} | ours ÷ {p} |" for p in peers) + " better |"
    sep = "|---|---|" + "---|---|" * len(peers) + "---|"

    def row(name, ours_vals, peer_vals, better, min_den=0.0):
        """min_den: no ratio against a peer value closer to zero than this (noise)."""
        cells = [name, fmt(median(ours_vals))]
        for p in peers:
            pv = peer_vals.get(p, [])
            rs = [ratio(o, q) for o, q in zip(ours_vals, pv)
                  if q is None or abs(q) >= min_den]
            rs = [x for x in rs if x is not None]
            cells.append(fmt(median(pv)))
            if not rs and any(q is not None for q in pv):
                cells.append("n/a (≈ 0)")
            elif rs:
                cells.append(f"**{fmt(statistics.median(rs))}** ("
                             + ", ".join(f"{x:.2f}" for x in rs) + ")")
            else:
                cells.append("–")
        cells.append(better)
        out.append("| " + " | ".join(cells) + " |")

    def notes(label):
        parts = []
        for impl in ["ours"] + peers:
            rs = [by.get((label, impl, p)) for p in pairs]
            rs = [r for r in rs if r]
            if not rs:
                continue
            l0 = median([r.get("load1_before") for r in rs])
            l1 = median([r.get("load1_after") for r in rs])
            secs = median([r.get("case_s") for r in rs])
            lmax = max([r.get("load1_before") or 0 for r in rs] + [r.get("load1_after") or 0 for r in rs])
            parts.append(f"{impl}: load {fmt(l0)} → {fmt(l1)} (max {fmt(lmax)}), {fmt(secs)} s/run")
        return "Load average (1 min) before → after, medians; seconds per run: " + "; ".join(parts) + "."

    for label in labels:
        metrics = metrics_for(label or "")
        if not metrics:
            continue
        out += ["", f"### {label}", "", header, sep]
        for name, f, better in metrics:
            ov = [safe(f, by.get((label, "ours", p))) for p in pairs]
            pv = {q: [safe(f, by.get((label, q, p))) for p in pairs] for q in peers}
            if all(v is None for v in ov) and all(v is None for vs in pv.values() for v in vs):
                continue
            row(name, ov, pv, better)
        extra = []
        first = next((by.get((label, "ours", p)) for p in pairs
                      if by.get((label, "ours", p)) and not by[(label, "ours", p)].get("error")), None)
        if label.startswith("fanout") and first:
            r = first
            if r.get("placement") == "sender apart":
                where = (f"each group's sender on one of {r.get('nodes')} nodes, its other members "
                         f"on {r.get('member_nodes')} other node(s)")
            else:
                where = f"members spread over {r.get('nodes')} nodes"
            extra.append(f"{r.get('groups')} group(s) of {r.get('size')}, {where}; "
                         f"{fmt(r.get('rate'))} messages/s ({fmt(r.get('rate') * (r.get('size') - 1))} "
                         f"deliveries/s).")
        if label.startswith("dm-search"):
            capped = sorted({impl for (l, impl, _), r in by.items()
                             if l == label and not r.get("error") and r.get("failed_at") is None})
            if capped:
                extra.append(f"{', '.join(capped)} passed every rate tried (up to "
                             f"{fmt(max(first.get('rates') or [0]) if first else None)}/s): "
                             "the highest passing rate is a lower bound there.")
        if any(by.get((label, "ceiling", p), {}).get("polling_share") == 0 for p in pairs) \
                and label.startswith("idle"):
            extra.append("The ceiling peer's clients are all WebSocket (no long-polling).")
        out += ["", " ".join(extra + [notes(label)])]

    # Idle memory: slope between the smallest and the largest idle case, per pair.
    def size(l):
        n = l[4:]
        try:
            return float(n[:-1]) * 1000 if n.endswith("k") else float(n)
        except ValueError:
            return None

    idle = sorted([l for l in labels if l and l.startswith("idle") and size(l) is not None], key=size)
    if len(idle) >= 2:
        lo, hi = idle[0], idle[-1]
        out += ["", f"### idle memory slope {lo} → {hi}", "", header, sep]
        for name, key, min_den in (("server RSS bytes/conn (slope)", "server_rss_kb", 0.0),
                                   ("Redis RSS bytes/conn (slope)", "redis_rss_kb", 100.0)):
            vals = {}
            for impl in ["ours"] + peers:
                vs = []
                for p in pairs:
                    a, b = by.get((lo, impl, p)), by.get((hi, impl, p))
                    if not a or not b or a.get("error") or b.get("error"):
                        vs.append(None)
                        continue
                    ra, rb = a[key], b[key]
                    ra = sum(ra) if isinstance(ra, list) else ra
                    rb = sum(rb) if isinstance(rb, list) else rb
                    vs.append((rb - ra) * 1024 / max(b["connected"] - a["connected"], 1))
                vals[impl] = vs
            row(name, vals["ours"], {q: vals[q] for q in peers}, "lower", min_den)

    if floors:
        p50 = median([ms(r, "rtt_us.p50") for r in floors])
        p99 = median([ms(r, "rtt_us.p99") for r in floors])
        out += ["", f"Load generator latency floor (WebSocket echo on its own core, "
                    f"{fmt(floors[0].get('rate'))} msg/s, includes the 1 ms timer granularity of "
                    f"the open-loop schedule): round trip p50 {fmt(p50)} ms, p99 {fmt(p99)} ms "
                    f"(median of {len(floors)} runs)."]

    if ceilings:
        out += ["", "### Redis ceilings (redis-benchmark, Redis on the server core, 50 clients, "
                    "100-byte payload)", "", "| test | requests/s | p50 ms |", "|---|---|---|"]
        for r in ceilings:
            out.append(f"| {r.get('test')} | {fmt(r.get('rps'))} | {fmt(r.get('p50_ms'))} |")

    errors = [r for r in rows if r.get("error")]
    print("\n".join(out).lstrip("\n"))
    if errors:
        print(f"\n{len(errors)} runs errored:")
        for r in errors:
            print(f"- {r.get('impl')} {r.get('label')} pair {r.get('pair')}: {r.get('error')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
