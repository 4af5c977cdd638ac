#!/usr/bin/env python3
"""Helper of bench/scale.sh (stdlib only).

  scale.py reload --pid PID --log FILE --config FILE --count N --tenant ID --label TEXT --out FILE
      N times, one second apart: toggle tenant ID's entry in the pgtenant config between
      `{ template: dedicated }` and `{ template: dedicated, max_server_connections: 3 }`, send
      SIGHUP, and wait for the next "reload: config applied" line in the log. Appends one JSON
      line per reload: milliseconds from the signal to that line's timestamp (ms_log) and to the
      moment this helper saw it (ms_seen).

  scale.py line --result TARGET.json --budget N
      one line of figures of a driver result.

  scale.py report --dir OUT_DIR --targets "pgtenant pgbouncer" --budget N --check-ms "A B C"
      prints the markdown tables from OUT_DIR/TARGET.json (scale_driver) and OUT_DIR/reload.jsonl.
"""
import argparse
import datetime
import json
import os
import re
import signal
import sys
import time

APPLIED = "reload: config applied"


def cmd_reload(a):
    os.kill(a.pid, 0)
    with open(a.config) as f:
        text = f.read()
    plain = f"  {a.tenant}: {{ template: dedicated }}\n"
    capped = f"  {a.tenant}: {{ template: dedicated, max_server_connections: 3 }}\n"
    if plain not in text and capped not in text:
        sys.exit(f"tenant {a.tenant} not found in {a.config}")
    out = open(a.out, "a")
    results = []
    for i in range(a.count):
        text = text.replace(plain, capped) if plain in text else text.replace(capped, plain)
        with open(a.config, "r+") as f:  # in place: keeps the owner (pgtenant runs as another user)
            f.write(text)
            f.truncate()
        offset = os.path.getsize(a.log)
        t0 = time.time()
        os.kill(a.pid, signal.SIGHUP)
        seen = None
        line = ""
        buf = ""
        deadline = t0 + 60
        while time.time() < deadline:
            with open(a.log, errors="replace") as f:
                f.seek(offset)
                chunk = f.read()
            offset += len(chunk.encode("utf-8", errors="replace"))
            buf += chunk
            m = [l for l in buf.splitlines() if APPLIED in l or "reload: the new config is invalid" in l]
            if m:
                seen = time.time()
                line = m[0]
                break
            buf = buf[-4096:]
            time.sleep(0.002)
        r = {"label": a.label, "i": i + 1, "tenant": a.tenant, "ms_seen": None, "ms_log": None, "ok": False}
        if seen is not None:
            r["ms_seen"] = round((seen - t0) * 1000, 1)
            r["ok"] = APPLIED in line
            ts = line.split()[0]
            try:
                t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()
                r["ms_log"] = round(max(0.0, (t - t0) * 1000), 1)
            except ValueError:
                pass
        results.append(r)
        out.write(json.dumps(r) + "\n")
        out.flush()
        print(f"[reload] {a.label} #{i + 1}: {r['ms_log']} ms (log timestamp), {r['ms_seen']} ms (seen)"
              f"{'' if r['ok'] else ' NOT APPLIED'}", file=sys.stderr)
        time.sleep(1.0)
    return 0 if all(r["ok"] for r in results) else 1


def fmt(v, nd=1):
    if v is None or (isinstance(v, (int, float)) and v < 0):
        return "–"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}"


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cmd_line(a):
    r = load(a.result)
    if not r:
        print("   no result")
        return
    print(f"   {r['target']}: tps {fmt(r['tps'], 0)}, p50 {fmt(r['p50_ms'], 2)} ms, p99 {fmt(r['p99_ms'], 2)} ms, "
          f"errors in window {r['errors_window']}, clients never served {r['clients_never_served']}/{r['clients']}, "
          f"tenants never served {r['tenants_never_served']}/{r['tenants_active']}, server conns max "
          f"{r['server_conns_max']} (budget {a.budget}), RSS max {fmt(r['pooler_rss_max_kb'])} kB")


def window_tps(r):
    ps = r.get("per_second") or []
    w0 = r.get("window_start_offset_s", -1)
    if w0 < 0:
        return None, None
    s0 = int(w0) + 1
    s1 = int(w0 + r["window_s"])
    inside = ps[s0:s1]
    if not inside:
        return None, None
    return min(inside), max(inside)


def cmd_report(a):
    targets = a.targets.split()
    res = {t: load(os.path.join(a.dir, f"{t}.json")) for t in targets}
    budget = a.budget
    print("| target | tps | p50 ms | p99 ms | p99.9 ms | max ms | errors in window | clients never served "
          "| tenants never served (of active) | server conns high-water (budget) | pooler RSS max / VmHWM | "
          "CPU % of a core: machine / pooler / postgres / driver / other |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for t in targets:
        r = res[t]
        if not r:
            print(f"| {t} | no result |||||||||||")
            continue
        cpu = r.get("cpu_core_pct", {})
        other = None
        if cpu and min(cpu.values()) >= 0:
            other = max(0.0, cpu["machine"] - cpu["pooler"] - cpu["postgres"] - cpu["driver"])
        cpus = " / ".join(fmt(x, 0) for x in (cpu.get("machine"), cpu.get("pooler"), cpu.get("postgres"),
                                               cpu.get("driver"), other))
        hw = r["server_conns_max"]
        over = " **over**" if hw > budget else ""
        print(f"| {t} | {fmt(r['tps'], 0)} | {fmt(r['p50_ms'], 2)} | {fmt(r['p99_ms'], 1)} | {fmt(r['p999_ms'], 1)} | "
              f"{fmt(r['max_ms'], 0)} | {r['errors_window']} | {r['clients_never_served']} of {r['clients']} "
              f"({100.0 * r['clients_never_served'] / max(1, r['clients']):.1f}%) | {r['tenants_never_served']} of "
              f"{r['tenants_active']} ({100.0 * r['tenants_never_served'] / max(1, r['tenants_active']):.1f}%) | "
              f"{hw} ({budget}){over} | {fmt(r['pooler_rss_max_kb'] / 1024.0, 1)} / "
              f"{fmt(r['pooler_vmhwm_kb'] / 1024.0, 1)} MiB | {cpus} |")
    print()
    print("Per side (shared: one RLS database, pool of SHARED_POOL; dedicated: a database per tenant):")
    print()
    print("| target | side | clients | tps | p50 ms | p99 ms | p99.9 ms | max ms | clients never connected | "
          "clients never served | active tenants | tenants never served |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for t in targets:
        r = res[t]
        if not r:
            continue
        for side in ("shared", "dedicated"):
            s = r[side]
            print(f"| {t} | {side} | {s['clients']} | {fmt(s['tps'], 0)} | {fmt(s['p50_ms'], 2)} | {fmt(s['p99_ms'], 1)} | "
                  f"{fmt(s['p999_ms'], 1)} | {fmt(s['max_ms'], 0)} | {s['clients_never_connected']} | "
                  f"{s['clients_never_served']} | {s['tenants_active']} | {s['tenants_never_served']} |")
    print()
    for t in targets:
        r = res[t]
        if not r:
            continue
        lo, hi = window_tps(r)
        print(f"**{t}**: all clients logged in after {fmt(r['ramp_s'], 1)} s "
              f"({r['clients_connected_at_window']} connected at the window's end); window {fmt(r['window_s'], 1)} s; "
              f"transactions per second within the window between {fmt(lo)} and {fmt(hi)}; "
              f"{r['inflight_at_window_end']} transactions in flight at the window's end, the oldest for "
              f"{fmt(r['oldest_inflight_at_window_end_s'], 2)} s; server connections high-water {r['server_conns_max']} "
              f"(in the window {r['server_conns_max_window']}; on `shared` {r['server_conns_shared_max']}); "
              f"new backend sessions (PostgreSQL logins) per second in the window: "
              f"{fmt(r.get('backend_sessions_per_s_window'), 0)}; disconnects {r['disconnects']}.")
        for name, title in (("errors_window_by_kind", "errors in the window"),
                            ("errors_all_by_kind", "errors over the whole run (ramp and tail too)"),
                            ("connect_errors_by_kind", "failed logins")):
            m = r.get(name) or {}
            if m:
                items = "; ".join(f"`{k.strip()}` × {v}" for k, v in sorted(m.items(), key=lambda kv: -kv[1])[:8])
                print(f"- {title}: {items}")
            else:
                print(f"- {title}: none")
        print()
    reloads = []
    try:
        reloads = [json.loads(l) for l in open(os.path.join(a.dir, "reload.jsonl")) if l.strip()]
    except OSError:
        pass
    if reloads or a.check_ms:
        print("pgtenant reload of the config (SIGHUP to its `reload: config applied` log line, one tenant's entry changed):")
        print()
        print("| when | reloads (ms, log timestamp) | seen by the helper (ms) | all applied |")
        print("|---|---|---|---|")
        for label in dict.fromkeys(r["label"] for r in reloads):
            rs = [r for r in reloads if r["label"] == label]
            print(f"| {label} | {', '.join(fmt(r['ms_log']) for r in rs)} | {', '.join(fmt(r['ms_seen']) for r in rs)} | "
                  f"{'yes' if all(r['ok'] for r in rs) else 'no'} |")
        if a.check_ms:
            print(f"| `pgtenant --check-config` of the same file (whole process) | {', '.join(a.check_ms.split())} | | |")
        print()
    print("Latency: per transaction, from sending its Query to its last result, every transaction that ended")
    print("in the window (HDR-style histogram, under 1.6% error). Never served: no transaction completed in")
    print("the window (a client that never logged in counts too). Server connections: pg_stat_activity client")
    print("backends every 200 ms (the sampler's own excluded). CPU: % of one core over the window (200 = both")
    print("cores); postgres includes backends that exited during the window; other = machine minus the rest.")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("reload")
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--log", required=True)
    s.add_argument("--config", required=True)
    s.add_argument("--count", type=int, default=3)
    s.add_argument("--tenant", required=True)
    s.add_argument("--label", default="")
    s.add_argument("--out", required=True)
    s = sub.add_parser("line")
    s.add_argument("--result", required=True)
    s.add_argument("--budget", type=int, required=True)
    s = sub.add_parser("report")
    s.add_argument("--dir", required=True)
    s.add_argument("--targets", required=True)
    s.add_argument("--budget", type=int, required=True)
    s.add_argument("--check-ms", default="")
    a = ap.parse_args()
    if a.cmd == "reload":
        return cmd_reload(a)
    if a.cmd == "line":
        return cmd_line(a)
    return cmd_report(a)


if __name__ == "__main__":
    sys.exit(main())
