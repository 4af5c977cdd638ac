#!/usr/bin/env python3
"""Helper of bench/noisy_neighbour.sh (stdlib only).

  noisy_neighbour.py sample  --out FILE --seconds N --roots PID[,PID...] --pooler PID --postmaster PID
                             [--exclude PID,...]
      every second, append a JSON line: machine CPU jiffies (busy, total) from /proc/stat and the
      CPU jiffies of the pooler, of the postmaster's tree and of everything else descending from
      --roots but not from --exclude (pgbench). Stops after --seconds (a bounded loop) or when SIGTERM arrives.

  noisy_neighbour.py analyse --dir PHASE_DIR --target T --phase A|B --launch EPOCH --ramp S
                             --duration S --samples FILE --out RESULTS.jsonl
      reads the per-transaction logs of the phase's pgbench processes (q-*.log.PID: quiet tenants,
      n-*.log.PID: the noisy tenant) and their stdout/stderr (*.out), picks the window in which
      every pgbench process was running, and appends one JSON line of figures to RESULTS.jsonl.

  noisy_neighbour.py report  --results RESULTS.jsonl
      prints the markdown tables.
"""
import argparse
import glob
import json
import os
import re
import signal
import sys
import time

TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ sampling
def proc_table():
    """pid -> (ppid, utime+stime jiffies) for every process."""
    table = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                s = f.read().decode("latin-1")
        except OSError:
            continue
        rest = s[s.rfind(")") + 2:].split()
        # rest[0] = state, rest[1] = ppid, rest[11] = utime, rest[12] = stime
        table[int(d)] = (int(rest[1]), int(rest[11]) + int(rest[12]))
    return table


def tree_cpu(table, roots, exclude=()):
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    seen, stack, total = set(), [r for r in roots if r in table], 0
    while stack:
        p = stack.pop()
        if p in seen or p in exclude:
            continue
        seen.add(p)
        total += table[p][1]
        stack.extend(children.get(p, []))
    return total


def machine_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    total = sum(v[:8])  # user nice system idle iowait irq softirq steal
    return total - idle, total, v[5] + v[6]


def cmd_sample(a):
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("now", True))
    roots = [int(x) for x in a.roots.split(",") if x]
    me = os.getpid()
    excl = {int(x) for x in a.exclude.split(",") if x}
    end = time.time() + a.seconds
    with open(a.out, "a") as out:
        while not stop["now"] and time.time() < end:
            t = time.time()
            busy, total, irq = machine_cpu()
            tab = proc_table()
            pooler = tree_cpu(tab, [a.pooler])
            pg = tree_cpu(tab, [a.postmaster])
            # pgbench: everything under the script's tree except the pooler, postgres and this sampler
            ours_other = tree_cpu(tab, roots, exclude={a.pooler, a.postmaster, me} | excl)
            out.write(json.dumps({"t": t, "busy": busy, "total": total, "irq": irq, "pooler": pooler,
                                  "pg": pg, "clients": ours_other}) + "\n")
            out.flush()
            time.sleep(max(0.0, 1.0 - (time.time() - t)))


# ------------------------------------------------------------------ analysis
def read_log(path):
    """[(end_epoch_seconds, latency_us)] from a pgbench per-transaction log."""
    rows = []
    with open(path) as f:
        for line in f:
            p = line.split()
            # client_id transaction_no time script_no time_epoch time_us [schedule_lag]
            if len(p) < 6 or not p[2].isdigit():
                continue  # "failed"/"skipped" transactions carry no latency
            rows.append((int(p[4]) + int(p[5]) / 1e6, int(p[2])))
    return rows


def pct(sorted_vals, q):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(q * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


def count_errors(out_path):
    """failed transactions + aborted clients + connection errors reported by one pgbench."""
    failed = aborted = conn = 0
    rc = None
    try:
        text = open(out_path, errors="replace").read()
    except OSError:
        return {"failed": 0, "aborted": 0, "conn": 0, "rc": None, "missing": 1}
    for m in re.finditer(r"number of failed transactions: (\d+)", text):
        failed += int(m.group(1))
    aborted = len(re.findall(r"client \d+ (?:script \d+ )?aborted", text))
    conn = len(re.findall(r"connection to server .* failed|could not connect", text))
    m = re.search(r"^exit status (\d+)$", text, re.M)
    if m:
        rc = int(m.group(1))
    return {"failed": failed, "aborted": aborted, "conn": conn, "rc": rc, "missing": 0}


def cpu_in_window(samples_path, w0, w1):
    try:
        s = [json.loads(l) for l in open(samples_path) if l.strip()]
    except OSError:
        return {}
    inside = [x for x in s if w0 - 0.5 <= x["t"] <= w1 + 0.5]
    if len(inside) < 2:
        return {}
    a, b = inside[0], inside[-1]
    dt = b["t"] - a["t"]
    dtot = b["total"] - a["total"]
    if dt <= 0 or dtot <= 0:
        return {}
    ncpu = os.cpu_count() or 1
    core = lambda k: 100.0 * (b[k] - a[k]) / TCK / dt  # 100 = one full core
    machine = 100.0 * (b["busy"] - a["busy"]) / dtot * ncpu  # in cores x 100
    irq = 100.0 * (b["irq"] - a["irq"]) / dtot * ncpu
    pooler, pg, clients = core("pooler"), core("pg"), core("clients")
    return {"machine_core_pct": machine, "pooler_core_pct": pooler, "pg_core_pct": pg,
            "pgbench_core_pct": clients, "irq_core_pct": irq,
            "foreign_core_pct": max(0.0, machine - pooler - pg - clients - irq)}


def cmd_analyse(a):
    quiet_files = sorted(glob.glob(os.path.join(a.dir, "q-*.log.*")))
    noisy_files = sorted(glob.glob(os.path.join(a.dir, "n-*.log.*")))
    logs = {p: read_log(p) for p in quiet_files + noisy_files}
    nonempty = [r for r in logs.values() if r]
    res = {"rep": a.rep, "target": a.target, "phase": a.phase, "quiet_processes": len(quiet_files),
           "noisy_processes": len(noisy_files)}
    # The window: from RAMP seconds after launch (and at least 1 s after the last pgbench process
    # finished its first transaction, i.e. had all its clients connected) for DURATION seconds,
    # cut short if any process stopped early.
    if nonempty:
        first = max(min(t for t, _ in r) for r in nonempty)
        last = min(max(t for t, _ in r) for r in nonempty)
        w0 = max(a.launch + a.ramp, first + 1.0)
        w1 = min(w0 + a.duration, last)
    else:
        w0 = w1 = a.launch
    res["window_s"] = round(max(0.0, w1 - w0), 2)
    res["window_start"] = w0
    per_tenant_p99 = []
    quiet = []
    for p in quiet_files:
        lat = sorted(l for t, l in logs[p] if w0 <= t < w1)
        quiet.extend(lat)
        if lat:
            per_tenant_p99.append(pct(lat, 0.99))
    quiet.sort()
    noisy = [l for p in noisy_files for t, l in logs[p] if w0 <= t < w1]
    span = max(1e-9, w1 - w0)
    ms = lambda us: None if us is None else round(us / 1000.0, 2)
    res.update({
        "quiet_txns": len(quiet), "quiet_tps": round(len(quiet) / span, 1),
        "quiet_p50_ms": ms(pct(quiet, 0.50)), "quiet_p99_ms": ms(pct(quiet, 0.99)),
        "quiet_p999_ms": ms(pct(quiet, 0.999)), "quiet_max_ms": ms(quiet[-1] if quiet else None),
        "worst_tenant_p99_ms": ms(max(per_tenant_p99) if per_tenant_p99 else None),
        "quiet_tenants_served": len(per_tenant_p99),
        "noisy_txns": len(noisy), "noisy_tps": round(len(noisy) / span, 1) if noisy_files else None,
        "noisy_p50_ms": ms(pct(sorted(noisy), 0.50)) if noisy else None,
    })
    errs = {"failed": 0, "aborted": 0, "conn": 0, "nonzero_exit": 0, "missing": 0}
    for p in glob.glob(os.path.join(a.dir, "*.out")):
        e = count_errors(p)
        errs["failed"] += e["failed"]
        errs["aborted"] += e["aborted"]
        errs["conn"] += e["conn"]
        errs["missing"] += e["missing"]
        errs["nonzero_exit"] += 1 if (e["rc"] not in (0, None)) else 0
    res["errors"] = errs["failed"] + errs["aborted"] + errs["conn"]
    res["error_detail"] = errs
    res.update({k: round(v, 1) for k, v in cpu_in_window(a.samples, w0, w1).items()})
    with open(a.out, "a") as f:
        f.write(json.dumps(res) + "\n")
    print(json.dumps(res))


# ------------------------------------------------------------------ report
def fmt(v, nd=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}"


def cmd_report(a):
    rows = [json.loads(l) for l in open(a.results) if l.strip()]
    print("| run | target | phase | quiet tps | quiet p50 ms | quiet p99 ms | quiet p99.9 ms | "
          "worst tenant p99 ms | noisy tps | noisy p50 ms | errors | window s | CPU, % of a core: machine / "
          "pooler / postgres / pgbench / irq+softirq / other |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cpu = " / ".join(fmt(r.get(k), 0) for k in ("machine_core_pct", "pooler_core_pct",
                                                    "pg_core_pct", "pgbench_core_pct",
                                                    "irq_core_pct", "foreign_core_pct"))
        phase = "A quiet only" if r["phase"] == "A" else "B noisy + quiet"
        ex = r.get("error_detail", {}).get("nonzero_exit", 0)
        err = f"{r['errors']}" + (f" ({ex} pgbench exit ≠ 0)" if ex else "")
        print(f"| {r.get('rep', 1)} | {r['target']} | {phase} | {fmt(r['quiet_tps'], 0)} | "
              f"{fmt(r['quiet_p50_ms'], 2)} | {fmt(r['quiet_p99_ms'], 2)} | "
              f"{fmt(r['quiet_p999_ms'], 2)} | {fmt(r['worst_tenant_p99_ms'], 2)} | "
              f"{fmt(r['noisy_tps'], 0)} | {fmt(r.get('noisy_p50_ms'), 0)} | {err} | {fmt(r['window_s'], 1)} | {cpu} |")
    print()
    print("| run | target | quiet p99 A ms | quiet p99 B ms | p99(B) / p99(A) | within 2x | "
          "quiet tps B / A |")
    print("|---|---|---|---|---|---|---|")
    by = {}
    for r in rows:
        by.setdefault((r.get("rep", 1), r["target"]), {})[r["phase"]] = r
    for (rep, t), ph in by.items():
        A, B = ph.get("A"), ph.get("B")
        if not (A and B and A["quiet_p99_ms"] and B["quiet_p99_ms"]):
            print(f"| {rep} | {t} | – | – | – | incomplete | – |")
            continue
        ratio = B["quiet_p99_ms"] / A["quiet_p99_ms"]
        tps = B["quiet_tps"] / A["quiet_tps"] if A["quiet_tps"] else None
        print(f"| {rep} | {t} | {fmt(A['quiet_p99_ms'], 2)} | {fmt(B['quiet_p99_ms'], 2)} | "
              f"**{ratio:.2f}** | {'yes' if ratio <= 2.0 else 'no'} | {fmt(tps, 2)} |")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--out", required=True)
    s.add_argument("--seconds", type=float, required=True)
    s.add_argument("--roots", required=True)
    s.add_argument("--pooler", type=int, required=True)
    s.add_argument("--postmaster", type=int, required=True)
    s.add_argument("--exclude", default="")
    s = sub.add_parser("analyse")
    s.add_argument("--dir", required=True)
    s.add_argument("--target", required=True)
    s.add_argument("--phase", required=True)
    s.add_argument("--launch", type=float, required=True)
    s.add_argument("--ramp", type=float, required=True)
    s.add_argument("--duration", type=float, required=True)
    s.add_argument("--samples", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--rep", type=int, default=1)
    s = sub.add_parser("report")
    s.add_argument("--results", required=True)
    a = ap.parse_args()
    if a.cmd == "sample":
        cmd_sample(a)
    elif a.cmd == "analyse":
        cmd_analyse(a)
    else:
        cmd_report(a)


if __name__ == "__main__":
    sys.exit(main())
