"""Turns the raw figures of one scripts/bench run into medians, ratios to the spawn floor and
the issue #7 targets: prints one table, writes summary.json and table.md beside raw.jsonl.

Usage: report.py RESULTS_DIR
"""
import json
import statistics
import sys
from pathlib import Path


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def cpu_per_request(fig, requests):
    """Milliseconds of CPU per request for nginx, workers and children between two snapshots."""
    before, after = fig["cpu_before"], fig["cpu_after"]
    if not requests:
        return {k: None for k in before}
    return {k: (after[k] - before[k]) / requests for k in before}


def summarise_floor(rows):
    figs = [r["figures"] for r in rows]
    keys = ["wall_ms_p50", "wall_ms_mean", "wall_ms_p99", "spawns_per_s", "parent_cpu_ms",
            "child_cpu_ms"]
    out = {k: median([f[k] for f in figs]) for k in keys}
    out["runs"] = len(figs)
    out["failures"] = sum(f["failures"] for f in figs)
    return out


def summarise_nonstream(rows):
    out = {}
    for c in sorted({r["concurrency"] for r in rows}):
        runs = [r["figures"] for r in rows if r["concurrency"] == c]
        cpus = [cpu_per_request(f, f["wrk"]["requests"]) for f in runs]
        out[c] = {
            "runs": len(runs),
            "rps": median([f["wrk"]["rps"] for f in runs]),
            "p50_ms": median([f["wrk"]["p50_ms"] for f in runs]),
            "p99_ms": median([f["wrk"]["p99_ms"] for f in runs]),
            "errors": sum(sum(f["wrk"]["errors"].values()) for f in runs),
            "cpu_ms_per_req": {k: median([c_[k] for c_ in cpus]) for k in cpus[0]},
        }
    return out


def summarise_stream(rows):
    out = {}
    for c in sorted({r["concurrency"] for r in rows}):
        runs = [r for r in rows if r["concurrency"] == c]
        figs = [r["figures"] for r in runs]
        cpus = [cpu_per_request(r, r["figures"]["completed"]) for r in runs]
        out[c] = {
            "runs": len(runs),
            "rps": median([f["rps"] for f in figs]),
            "errors": sum(f["errors"] for f in figs),
            "cpu_ms_per_req": {k: median([c_[k] for c_ in cpus]) for k in cpus[0]},
        }
        for k in ["first_byte", "first_delta", "done"]:
            for p in ["p50", "p99"]:
                out[c][f"{k}_{p}_ms"] = median([f[f"{k}_{p}_ms"] for f in figs])
    return out


def summarise_held(rows):
    out = {}
    for r in rows:
        n, f = r["streams"], r["figures"]
        out[n] = {
            "all_first_delta_ms": f["all_first_delta_ms"],
            "delivered": f["delivered"],
            "errors": f["errors"] + (n - f["delivered"]),
            "statuses": f["statuses"],
            "children_when_held": r["children_when_held"],
            "rss_idle_kib": r["rss_idle_kib"],
            "rss_held_kib": r["rss_held_kib"],
            "rss_kib_per_stream": (r["rss_held_kib"] - r["rss_idle_kib"]) / n,
            "fds_idle": r.get("fds_idle"),
            "fds_held": r.get("fds_held"),
            "threads_per_worker": r["threads_per_worker"],
            "workers": r["workers"],
        }
    return out


def summarise_soak(rows):
    rows = sorted(rows, key=lambda r: r["minute"])
    return [{"minute": r["minute"], "rps": r["figures"]["wrk"]["rps"],
             "errors": sum(r["figures"]["wrk"]["errors"].values()),
             "cpu_ms_per_req": cpu_per_request(r["figures"], r["figures"]["wrk"]["requests"]),
             "rss_workers_kib": r["rss_workers_kib"], "rss_nginx_kib": r["rss_nginx_kib"]}
            for r in rows]


def target(name, figure, limit, met):
    return {"target": name, "figure": figure, "limit": limit,
            "met": None if met is None else bool(met)}


def evaluate(s, cores):
    floor = s.get("floor")
    t = []
    ns = s.get("nonstream", {}).get(8)
    if floor and ns:
        need = 0.6 * floor["spawns_per_s"] * cores
        t.append(target("non-stream req/s at c=8 >= 0.6 x floor spawns/s x cores",
                        f"{ns['rps']:.1f} req/s (need {need:.1f})", f"{need:.1f}",
                        ns["rps"] >= need))
        w = ns["cpu_ms_per_req"]["workers"]
        t.append(target("worker CPU per request (c=8) <= 0.15 ms", f"{w:.3f} ms", "0.15 ms",
                        w <= 0.15))
    st = s.get("stream", {}).get(32)
    if floor and st:
        over = st["first_byte_p50_ms"] - floor["wall_ms_p50"]
        t.append(target("stream TTFB p50 at c=32 <= floor + 5 ms",
                        f"{st['first_byte_p50_ms']:.2f} ms ({over:+.2f} ms over floor "
                        f"{floor['wall_ms_p50']:.2f})", "floor + 5 ms", over <= 5))
    held = s.get("held")
    if held:
        n = max(held)
        h = held[n]
        t.append(target(f">= 5000 held streams, all first deltas within 3 s, 0 errors",
                        f"{n} streams: {h['all_first_delta_ms'] / 1000:.2f} s, "
                        f"{h['errors']} errors", "3 s, 0",
                        n >= 5000 and h["all_first_delta_ms"] <= 3000 and h["errors"] == 0))
        t.append(target("worker RSS per open stream <= 16 KiB",
                        f"{h['rss_kib_per_stream']:.1f} KiB at {n}", "16 KiB",
                        h["rss_kib_per_stream"] <= 16))
    b = s.get("burst")
    if b:
        ok = b["over_admissions"] == 0 and b["answered_200_or_429"] == b["attempts"]
        t.append(target("burst: 0 over-admissions, every attempt 200 or 429",
                        f"max open {b['max_open']} / {b['limit']}, "
                        f"{b['answered_200_or_429']}/{b['attempts']} answered", "0", ok))
    soak = s.get("soak")
    if soak:
        first, last = soak[0], soak[-1]
        # With one minute (BENCH_QUICK) the first is the last: there is nothing to compare.
        once = len(soak) < 2
        ratio = last["rps"] / first["rps"] if first["rps"] else 0
        growth = (last["rss_workers_kib"] - first["rss_workers_kib"]) / first["rss_workers_kib"]
        t.append(target("soak: last minute req/s >= 95 % of first", f"{ratio * 100:.1f} %",
                        "95 %", None if once else ratio >= 0.95))
        t.append(target("soak: worker RSS growth <= 5 %", f"{growth * 100:+.1f} %", "5 %",
                        None if once else growth <= 0.05))
    return t


def verdict(met):
    return "n/a" if met is None else "met" if met else "missed"


def fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def table(s, machine, wall):
    lines = ["| Figure | Value |", "| --- | --- |"]
    add = lambda k, v: lines.append(f"| {k} | {v} |")
    f = s.get("floor")
    if f:
        add("spawn floor, app-server (wall p50 / mean / p99)",
            f"{fmt(f['wall_ms_p50'])} / {fmt(f['wall_ms_mean'])} / {fmt(f['wall_ms_p99'])} ms")
        add("spawn floor spawns/s (one at a time) x cores",
            f"{fmt(f['spawns_per_s'], '.1f')} x {machine['cores']} = "
            f"{fmt(f['spawns_per_s'] * machine['cores'], '.1f')}")
        add("spawn floor CPU per spawn (harness / child)",
            f"{fmt(f['parent_cpu_ms'], '.3f')} / {fmt(f['child_cpu_ms'], '.3f')} ms")
    fp = s.get("floor_proto")
    if fp:
        add("spawn floor, proto (wall p50, child CPU)",
            f"{fmt(fp['wall_ms_p50'])} ms, {fmt(fp['child_cpu_ms'], '.3f')} ms")
    for key, pool in [("nonstream", ""), ("nonstream_16_threads", ", 16 threads per worker")]:
        for c, n in s.get(key, {}).items():
            cpu = n["cpu_ms_per_req"]
            add(f"non-stream c={c}{pool}: req/s, p50 / p99, errors",
                f"{fmt(n['rps'], '.1f')}, {fmt(n['p50_ms'])} / {fmt(n['p99_ms'])} ms, "
                f"{n['errors']}")
            add(f"non-stream c={c}{pool}: CPU per request nginx / workers / children",
                f"{fmt(cpu['nginx'], '.3f')} / {fmt(cpu['workers'], '.3f')} / "
                f"{fmt(cpu['children'], '.3f')} ms")
    for c, st in s.get("stream", {}).items():
        add(f"stream c={c}: req/s, errors", f"{fmt(st['rps'], '.1f')}, {st['errors']}")
        add(f"stream c={c}: first byte / first delta / [DONE] p50",
            f"{fmt(st['first_byte_p50_ms'])} / {fmt(st['first_delta_p50_ms'])} / "
            f"{fmt(st['done_p50_ms'])} ms")
        add(f"stream c={c}: worker CPU per request",
            f"{fmt(st['cpu_ms_per_req']['workers'], '.3f')} ms")
    for n, h in s.get("held", {}).items():
        add(f"held {n}: all first deltas after, errors",
            f"{fmt(h['all_first_delta_ms'] / 1000)} s, {h['errors']}")
        add(f"held {n}: worker RSS idle -> held, per stream",
            f"{h['rss_idle_kib'] / 1024:.1f} -> {h['rss_held_kib'] / 1024:.1f} MiB, "
            f"{fmt(h['rss_kib_per_stream'], '.1f')} KiB")
        if h["fds_held"] is not None:
            add(f"held {n}: {h['workers']} workers x {h['threads_per_worker']} threads, "
                f"descriptors idle -> held",
                f"{h['fds_idle']} -> {h['fds_held']}")
    b = s.get("burst")
    if b:
        add("burst: max open (limit), statuses",
            f"{b['max_open']} ({b['limit']}), {json.dumps(b['statuses'])}, "
            f"{b['samples']} samples")
    soak = s.get("soak")
    if soak:
        add("soak req/s per minute", " ".join(fmt(m["rps"], ".0f") for m in soak))
        # nginx does the same work for every request whatever the gateway does, so its CPU per
        # request tells a machine that slowed down from a gateway that did.
        add("soak CPU per request per minute, workers / nginx (ms)",
            " ".join(f"{fmt(m['cpu_ms_per_req']['workers'])}/{fmt(m['cpu_ms_per_req']['nginx'], '.3f')}"
                     for m in soak))
        add("soak worker RSS per minute (MiB)",
            " ".join(f"{m['rss_workers_kib'] / 1024:.1f}" for m in soak))
    add("wall time of the whole run", f"{wall} s")
    return "\n".join(lines)


def main():
    out = Path(sys.argv[1])
    rows = [json.loads(l) for l in (out / "raw.jsonl").read_text().splitlines() if l.strip()]
    machine = json.loads((out / "machine.json").read_text())
    wall = json.loads((out / "wall.json").read_text())["wall_s"]
    by = lambda name: [r for r in rows if r["section"] == name]
    summarisers = {
        "floor": summarise_floor,
        "floor_proto": summarise_floor,
        "nonstream": summarise_nonstream,
        "nonstream_16_threads": summarise_nonstream,
        "stream": summarise_stream,
        "held": summarise_held,
        "burst": lambda rows: rows[0]["figures"],
        "soak": summarise_soak,
    }
    s = {name: summarise(by(name)) for name, summarise in summarisers.items() if by(name)}
    targets = evaluate(s, machine["cores"])
    text = table(s, machine, wall)
    text += "\n\n| Target | Figure | Met |\n| --- | --- | --- |\n"
    text += "\n".join(f"| {t['target']} | {t['figure']} | "
                      f"{verdict(t['met'])} |" for t in targets)
    (out / "summary.json").write_text(json.dumps(
        {"machine": machine, "wall_s": wall, "summary": s, "targets": targets}, indent=1))
    (out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
