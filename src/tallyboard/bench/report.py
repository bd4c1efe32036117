"""Render bench results as the Markdown of docs/benchmarks.md: targets first, then detail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TOP_WINDOWS = ("all", "day", "week", "month", "year", "rolling:24h")

# (target, threshold, higher is better, how to close it if missed)
INGEST_FIXES = {
    "ingest_rows": "Row batches pay ~2 µs of Python per event to validate and regroup dicts "
                   "into columns; a compiled validator (msgspec/Rust) or clients sending "
                   "columns (`record_columns`, as the columns path shows) closes the gap.",
    "ingest_columns": "The column path is bound by SQLite's fsync'd write and numpy grouping; "
                      "a binary log record instead of JSON would close the rest.",
    "ingest_http": "HTTP is bound by JSON parsing and validation of dicts in one process; "
                   "more worker processes sharing a store (Redis/PostgreSQL, later issues) "
                   "would scale it with cores.",
}


def _f(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _ms(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:,.1f}"


def _check(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _target_rows(results: dict[str, Any]) -> tuple[list[str], list[str]]:
    rows, misses = [], []

    def add(what: str, where: str, value: float, target: float, unit: str, higher: bool,
            fix: str = "") -> None:
        ok = value >= target if higher else value <= target
        sign = "≥" if higher else "≤"
        rows.append(f"| {what} | {where} | {_f(value) if higher else _ms(value)} {unit} | "
                    f"{sign} {_f(target) if higher else _ms(target)} {unit} | {_check(ok)} |")
        if not ok:
            misses.append(f"- **{what}** ({where}): measured {_f(value)} {unit} against "
                          f"{sign} {_f(target)} {unit}. {fix}")

    for name, w in results["workloads"].items():
        for key, label in (("ingest_columns", "in-process durable batches (columns)"),
                           ("ingest_rows", "in-process durable batches (dict rows)")):
            add(label, name, w[key]["events_per_s"], 500_000, "ev/s", True, INGEST_FIXES[key])
        if "ingest_http" in w:
            add("HTTP batches of 1,000", name, w["ingest_http"]["events_per_s"], 100_000,
                "ev/s", True, INGEST_FIXES["ingest_http"])
        q = w["queries"]
        add("sum p99", name, q["sum"]["ours"]["p99_ms"], 1.0, "ms", False)
        worst = max(TOP_WINDOWS, key=lambda k: q[f"top10 {k}"]["ours"]["p99_ms"])
        add(f"top-10 p99, worst window ({worst})", name,
            q[f"top10 {worst}"]["ours"]["p99_ms"], 5.0, "ms", False)
        add("rank p99", name, q["rank all"]["ours"]["p99_ms"], 2.0, "ms", False)
    p = results.get("presence")
    if p:
        add("presence: top-10 today p99", f"{p['present']:,} present",
            p["queries"]["top10 day"]["p99_ms"], 10.0, "ms", False)
        add("presence: member today p99", f"{p['present']:,} present",
            p["queries"]["member today"]["p99_ms"], 5.0, "ms", False)
        add("presence: joins+leaves, one durable op per call", f"{p['present']:,} present",
            p["single_ops"]["ops_per_s"], 2_000, "ops/s", True,
            "Each call is one fsync'd commit; batching ops (the next row) amortises it.")
    d = results.get("discord")
    if d:
        add("discord: voice update overhead p99",
            f"{d['members']:,} in voice, {d['steady']['rate']:g} updates/s",
            d["steady"]["own"]["p99_ms"], 2.0, "ms", False, _discord_update_fix(d))
        add("discord: /top answered p99", f"{d['members']:,} in voice", d["top"]["p99_ms"],
            200.0, "ms", False, "The answer time is the query (next section) plus discord.py "
            "and the stand-in's round trip; see the /top rows of the discord section.")
    r = results.get("restart")
    if r:
        add("restart after kill -9: peak RSS / live RSS", f"{r['metrics']:,} small metrics",
            r["peak_vs_live"], 1.5, "×", False,
            "The replay should hold what the live process held; see the restart section.")
    lv = results.get("live")
    if lv:
        _live_targets(lv, add)
    tw = results.get("twitch")
    if tw:
        _twitch_targets(tw, add)
    qu = results.get("queue")
    if qu:
        _queue_targets(qu, add)
    h = results.get("hot")
    if h:
        seed = h["seed"]["ingest"]["events_per_s"]
        t = h["tallyboard"]
        for key, label in HOT_INGEST:
            add(f"hot store ingest: {label}", "psd, same Redis",
                t[key]["events_per_s"] / seed, 5.0, "× seed", True, HOT_FIX)
        add("hot store: range sum p99", "psd", t["sum"]["p99_ms"], 2.0, "ms", False)
        for window in ("all", "day"):
            add(f"hot store: top-10 p99 ({window})", "1M members",
                h["million"][f"top10 {window}"]["p99_ms"], 5.0, "ms", False)
    return rows, misses


LIVE_KINDS = ("top10 day", "top10 week", "top10 rolling:24h", "top10 all", "rank", "sum")
LIVE_READ_FIX = ("Boards are kept up by the writes, and waiting reads take the lock first "
                 "between a write's turns (docs/architecture.md), so a read pays neither "
                 "for the writes before it nor for a whole write's upkeep. What is left is "
                 "the GIL: in one process every request's Python (HTTP parsing, JSON, "
                 "validation, board moves at ~5 µs per changed member per board) takes "
                 "turns with the reads, and a read needs several turns. Reads served by a "
                 "second process following the log, or a compiled board, would close it.")
SNAPSHOT_FIX = ("A huge snapshot commits without the engine lock and is applied 1,000 "
                "members per turn with waiting reads let in between, its check against the "
                "room outside the lock (docs/architecture.md). What is left is the GIL and "
                "the cyclic GC: parsing and validating a 100,000-name body are C calls that "
                "keep the GIL for milliseconds, and the GC, scanning the ~2 new objects per "
                "member a snapshot makes, paused reads for 10-166 ms in a probe (GC off: "
                "p50 0.4 ms, p99 44 ms). Per-room state the GC does not track (flat arrays), "
                "and reads served by a second process, would close it.")
RESTART_FIX = ("A restart loads the newest checkpoint and replays the log after it with the "
               "cyclic GC paused, then freezes the loaded state out of the GC's scans "
               "(tallyboard/heap.py: 14.4 s became 8.7 s in the same run). After a kill -9 "
               "the tail is what came since the newest whole checkpoint: one is due every "
               "100,000 presence changes and its child takes seconds to write, so the tail "
               "grows with the write rate times that; a faster dump (fewer, flatter objects "
               "per session) would shorten it.")


def _cell(levels: list[dict[str, Any]], rate: int, readers: int) -> dict[str, Any]:
    return next(c for c in levels if c["rate"] == rate and c["readers"] == readers)


def _live_targets(lv: dict[str, Any], add: Callable[..., None]) -> None:
    """Issue 13's targets: HTTP reads under 10,000 events/s with 10 readers (absolute and
    against the same reads at rest), in-process reads under 100,000 events/s, presence."""
    levels = lv["http"]["levels"]
    busy, rest = _cell(levels, 10_000, 10), _cell(levels, 0, 10)
    where = f"HTTP, {busy['events_per_s']:,.0f} of 10,000 ev/s, 10 readers"
    kinds = busy["kinds"]
    worst = max(LIVE_KINDS, key=lambda k: kinds[k]["p99_ms"])
    add(f"live: read p99, worst kind ({worst})", where, kinds[worst]["p99_ms"], 5.0, "ms",
        False, LIVE_READ_FIX)

    def ratio(k: str) -> float:
        return float(kinds[k]["p99_ms"] / max(rest["kinds"][k]["p99_ms"], 1e-9))

    worst = max(LIVE_KINDS, key=ratio)
    add(f"live: read p99 under ingest / at rest ({worst})", where, ratio(worst), 2.0, "×",
        False, LIVE_READ_FIX)
    ip = lv["in_process"]["busy"]
    worst = max(LIVE_KINDS, key=lambda k: ip["kinds"][k]["p99_ms"])
    add(f"live: in-process read p99, worst kind ({worst})",
        f"{ip['events_per_s']:,.0f} of 100,000 ev/s", ip["kinds"][worst]["p99_ms"], 0.5, "ms",
        False, LIVE_READ_FIX)
    for key, label in (("snapshot_http", "HTTP"), ("snapshot_in_process", "in-process")):
        snap = lv[key]
        add(f"presence: snapshot applied, {label}, slowest", f"{snap['members']:,} members",
            max(snap["first_s"], snap["churned_s"]), 1.0, "s", False, SNAPSHOT_FIX)
    during = lv["snapshot_http"]["during"]
    worst = max(during, key=lambda k: during[k]["p99_ms"])
    add(f"presence: read p99 during snapshots ({worst})",
        f"HTTP, {lv['snapshot_http']['members']:,}-member snapshots",
        during[worst]["p99_ms"], 5.0, "ms", False, SNAPSHOT_FIX)
    ses = lv["sessions"]
    add("presence: RSS per open session", f"{ses['sessions']:,} open (target for 2,000,000)",
        ses["live"]["rss_per_session_bytes"] / 1024, 1.0, "KB", False,
        "Each open session is a few Python objects (dict entries, tuples, a board entry); "
        "compact arrays per room would hold it (issue 13 item 3).")
    for key, label in (("restart_after_kill", "kill -9"), ("restart_after_close", "a clean close")):
        add(f"presence: restart after {label}", f"{ses['changes']:,} presence changes",
            ses[key]["seconds"], 10.0, "s", False, RESTART_FIX)


def _p99s(kinds: dict[str, Any]) -> str:
    """Each kind's p99, or — for a kind no read of finished in time."""
    return " | ".join(_ms(kinds[k]["p99_ms"]) if kinds[k]["calls"] else "—"
                      for k in LIVE_KINDS)


def _load(rate: int) -> str:
    return "at rest" if rate == 0 else f"{rate:,} ev/s"


def _live_lines(lv: dict[str, Any]) -> list[str]:
    """Reads under live ingest (ours and the seed's), in-process, and presence at scale."""
    http, seed, ip = lv["http"], lv["seed"], lv["in_process"]
    kinds_head = " | ".join(f"{k} p99" for k in LIVE_KINDS)
    lines = [
        f"## live: reads under sustained ingest ({lv['members']:,} members), and presence "
        "at scale", "",
        f"`tallyboard serve` (embedded store) is loaded with {lv['history_events']:,} "
        f"events of the last 7 days (one metric, a `channel` dimension of "
        f"{lv['channels']} values), then takes live events (ts = now, "
        f"{lv['batch']:,} per `POST /v1/events`) from a paced writer process (2 "
        "connections) while readers in another process (a thread and keep-alive "
        "connection each, one read every 20 ms, back to back when late) ask in turn: "
        "top-10 of day, week, rolling:24h and all, a member's rank and a member's sum. "
        "**At rest** is the same server and data with no writer. Each row is "
        f"{lv['cell_seconds']:g} s of reads; *achieved* is the rate the writer reached "
        "during them. Latency is from the request sent to the answer read, in ms.", "",
        f"| ingest | achieved ev/s | readers | reads/s | refused | p50 ms | p99 ms | "
        f"{kinds_head} | seed p50 ms | seed p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(LIVE_KINDS) + "---:|---:|"]
    for c in http["levels"]:
        theirs = _cell(seed["levels"], c["rate"], c["readers"]) if seed else None
        extra = (f"{_ms(theirs['p50_ms'])} | {_ms(theirs['p99_ms'])}" if theirs
                 else "— | —")
        lines.append(f"| {_load(c['rate'])} | {_f(c['events_per_s'])} | {c['readers']} | "
                     f"{_f(c['reads_per_s'])} | {c['refused']:,} | {_ms(c['p50_ms'])} | "
                     f"{_ms(c['p99_ms'])} | {_p99s(c['kinds'])} | {extra} |")
    lines.append("")
    if seed is None:
        lines += ["**Seed design: not measured** (no `--redis` given).", ""]
    else:
        lines += [
            "**Seed design** on the machine's Redis, same events, same paced rates and "
            "readers: a ZINCRBY per event into each of the all, day, week and hour sorted "
            "sets (one pipelined round trip per 1,000 events; no per-channel sets, since no "
            "read filters by channel); top-10 by ZREVRANGE WITHSCORES, rolling:24h by a "
            "ZUNIONSTORE of the last 24 hour sets first (whole hours: up to an hour short "
            "of 24 h, as the seed approximated it), rank by ZREVRANK, sum by ZSCORE of the "
            "all-time set (a sorted set has no range sums). Its history's totals and top "
            "scores are checked against brute force first, as are tallyboard's.", "",
            f"| ingest | achieved ev/s | readers | reads/s | p50 ms | p99 ms | {kinds_head} |",
            "|---|---:|---:|---:|---:|---:|" + "---:|" * len(LIVE_KINDS)]
        for c in seed["levels"]:
            lines.append(f"| {_load(c['rate'])} | {_f(c['events_per_s'])} | "
                         f"{c['readers']} | {_f(c['reads_per_s'])} | {_ms(c['p50_ms'])} | "
                         f"{_ms(c['p99_ms'])} | {_p99s(c['kinds'])} |")
        lines.append("")
    lines += [
        f"**In-process**: one `Tallyboard` on the same history; one thread reads back to "
        f"back while another records {ip['rate']:,} events/s ({ip['batch']:,} per "
        f"`record_columns`); the GIL switch interval is "
        f"{lv['switch_interval_ms']:g} ms.", "",
        f"| ingest | achieved ev/s | reads | p50 ms | p99 ms | {kinds_head} |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(LIVE_KINDS)]
    for label, c, rate in (("at rest", ip["rest"], 0.0),
                           (f"{ip['rate']:,} ev/s", ip["busy"], ip["busy"]["events_per_s"])):
        lines.append(f"| {label} | {_f(rate) if rate else '—'} | {c['reads']:,} | "
                     f"{_ms(c['p50_ms'])} | {_ms(c['p99_ms'])} | {_p99s(c['kinds'])} |")
    sh, sp, ses = lv["snapshot_http"], lv["snapshot_in_process"], lv["sessions"]
    live, crash, clean = ses["live"], ses["restart_after_kill"], ses["restart_after_close"]
    lines += [
        "", f"**Presence**: snapshots of {sh['members']:,} members into one room (the first "
        f"into an empty room, then 3 with {sh['churn']:.0%} of the members replaced), "
        "over HTTP (a server of its own) and in-process; over HTTP a reader asks for "
        "today's top-10 of `presence_seconds` and `/v1/presence/rooms` in turn, back to "
        "back, and the reads overlapping a snapshot's request are *during*. Sessions: "
        f"{ses['sessions']:,} members joined into 1,000 rooms (1,000 ops per call) in a "
        "fresh process, its RSS growth with the presence board and room list built "
        "divided by the sessions (the target is for 2,000,000); then moves (a leave and "
        f"a join) up to {ses['changes']:,} presence changes, kill -9, and a restart in a "
        "fresh process until its first room list and presence board; then a clean close "
        "and a second restart.", "",
        "| measure | value |", "|---|---:|",
        f"| snapshot into an empty room, HTTP | {sh['first_s']:.3f} s |",
        f"| snapshot, {sh['churn']:.0%} churned, HTTP, slowest | {sh['churned_s']:.3f} s |",
        f"| snapshot into an empty room, in-process | {sp['first_s']:.3f} s |",
        f"| snapshot, {sp['churn']:.0%} churned, in-process, slowest | "
        f"{sp['churned_s']:.3f} s |"]
    for kind in sh["during"]:
        r, d = sh["rest"][kind], sh["during"][kind]
        lines.append(f"| HTTP `{kind}` p50 / p99 / max ms, at rest | {_ms(r['p50_ms'])} / "
                     f"{_ms(r['p99_ms'])} / {_ms(r['max_ms'])} ({r['calls']:,} reads) |")
        lines.append(f"| HTTP `{kind}` p50 / p99 / max ms, during snapshots | "
                     f"{_ms(d['p50_ms'])} / {_ms(d['p99_ms'])} / {_ms(d['max_ms'])} "
                     f"({d['calls']:,} reads) |")
    lines += [
        f"| joins, 1,000 per call | {_f(live['joins_per_s'])} ops/s |",
        f"| RSS per open session ({ses['sessions']:,} open) | "
        f"{live['rss_per_session_bytes']:,.0f} bytes |",
        f"| writer RSS / peak after {live['changes_made']:,} changes | "
        f"{live['rss_mb']:,.0f} / {live['peak_mb']:,.0f} MB |",
        f"| restart after kill -9 (open, then first reads) | {crash['seconds']:.2f} s, "
        f"RSS {crash['rss_mb']:,.0f} MB, peak {crash['peak_mb']:,.0f} MB |",
        f"| restart after a clean close | {clean['seconds']:.2f} s, RSS "
        f"{clean['rss_mb']:,.0f} MB, peak {clean['peak_mb']:,.0f} MB |",
        *(f"| {name}, after the restart | {clean[name]:,.1f} ms |" for name in QUERIES_AFTER
          if name in clean)]
    return lines


QUERIES_AFTER = ("concurrency all rooms, 24 hours", "concurrency one room, 24 hours",
                 "migrations, 24 hours", "migrations, 24 hours, top 10")


HOT_INGEST = (("ingest_rows", "dict rows, 1 thread"),
              ("ingest_rows_4_threads", "dict rows, 4 threads"),
              ("ingest_columns", "columns"))
HOT_FIX = ("Dict rows are bound by Python and the PostgreSQL commit, not by Redis (one FCALL "
           "per 1,000 events): ~5 µs per event to validate and apply, and ~4.8 ms per "
           "1,000-event request in PostgreSQL (index upkeep ~2.2 µs per row, then the "
           "commit). The seed design is handed pre-parsed tuples, like the columns path "
           "(met). Concurrent requests overlap the commits, and more server processes on "
           "the same store scale with cores.")


def _hot_lines(h: dict[str, Any]) -> list[str]:
    """The Redis hot store next to the seed design and the leaderboard package."""
    seed, t, m, pkg = h["seed"], h["tallyboard"], h["million"], h["package_million"]
    base = seed["ingest"]["events_per_s"]
    ceiling = h["ceiling"]
    lines = [
        f"## hot store: Redis + PostgreSQL, psd ({h['events']:,} events, "
        f"{h['members']:,} members) and one board of 1M members", "",
        "Same Redis, same run. **Seed design**: one HINCRBY per granularity (6) and filter "
        "value (all, activity) per event, pipelined per 1,000 events; sums and boards by "
        "Lua scripts over the bucket hashes; nothing durable. **leaderboard package** "
        "(PyPI, sorted sets) for boards. **tallyboard**: `--store redis://` over a "
        "PostgreSQL log (every batch committed in PostgreSQL, then one FCALL); queries "
        "asked of a second engine sharing the store (another server), each paying its "
        "catch-up round trip.", "",
        "| ingest | events | events/s | × seed |", "|---|---:|---:|---:|",
        f"| seed design (12 HINCRBY/event, pipelined) | {seed['ingest']['events']:,} | "
        f"{_f(base)} | 1.00 |"]
    for key, label in HOT_INGEST:
        r = t[key]
        lines.append(f"| tallyboard, {label} | {r['events']:,} | {_f(r['events_per_s'])} | "
                     f"{r['events_per_s'] / base:.1f} |")
    lines.append(f"| tallyboard, 1M distinct members, columns | {m['ingest']['events']:,} | "
                 f"{_f(m['ingest']['events_per_s'])} | "
                 f"{m['ingest']['events_per_s'] / base:.1f} |")
    lines += [
        "", f"Ceiling (`redis-benchmark`, 50 clients, pipeline 64): HINCRBY "
        f"{_f(ceiling['hincrby'])}/s, ZINCRBY {_f(ceiling['zincrby'])}/s. The seed design "
        f"uses {seed['ingest']['hincrby_per_s'] / ceiling['hincrby']:.0%} of the HINCRBY "
        "ceiling and gets 1/12 of it as events; tallyboard's columns path takes "
        f"{t['ingest_columns']['events_per_s'] / ceiling['hincrby']:.0%} of the HINCRBY "
        "ceiling *in events*, i.e. more events per second than Redis could take if each "
        "were a single HINCRBY. Redis memory: "
        f"{t['redis_bytes_per_event']:.0f} bytes per event held. A second server's first "
        f"look at the space read {t['second_server_load']['events']:,} events in "
        f"{t['second_server_load']['seconds']:.1f} s.", "",
        "| query | tallyboard p50 ms | p99 ms | seed p50 ms | seed p99 ms | × faster (p99) |",
        "|---|---:|---:|---:|---:|---:|"]
    for kind in ("sum", "top10 day", "top10 all", "top10 rolling:24h", "rank all"):
        ours, theirs = t[kind], seed.get(kind)
        extra = (f"{_ms(theirs['p50_ms'])} | {_ms(theirs['p99_ms'])} | "
                 f"{theirs['p99_ms'] / ours['p99_ms']:,.1f}" if theirs else "— | — | —")
        lines.append(f"| {kind} | {_ms(ours['p50_ms'])} | {_ms(ours['p99_ms'])} | {extra} |")
    lines += ["", "| 1M members | tallyboard p50 ms | p99 ms | package p50 ms | "
              "package p99 ms | × faster (p99) |", "|---|---:|---:|---:|---:|---:|"]
    for kind, theirs in (("top10 all", pkg["top10"]), ("top10 day", None),
                         ("rank all", pkg["rank"])):
        ours = m[kind]
        extra = (f"{_ms(theirs['p50_ms'])} | {_ms(theirs['p99_ms'])} | "
                 f"{theirs['p99_ms'] / ours['p99_ms']:,.1f}" if theirs else "— | — | —")
        lines.append(f"| {kind} | {_ms(ours['p50_ms'])} | {_ms(ours['p99_ms'])} | {extra} |")
    return lines


OVERLAP_FIX = ("An overlap reads the stream's own sessions, then its audience's other "
               "sessions by walking each member's chain; once the audience is over 1/16 of "
               "all members (the biggest streams) one vectorised pass over every session "
               "of the week is cheaper, and that pass, bound by memory bandwidth over "
               "millions of rows, is what the biggest streams pay. Sessions kept sorted by "
               "member, or the week's pairs counted as the moves arrive, would close it.")


TWITCH_MEMORY_FIX = ("Traced apart at 500,000 chatters after the same week (tracemalloc at "
                     "the point this is measured: 1.17 KB of live objects, 1.37 KB of RSS): "
                     "the watch-time series, one per chatter and one per chatter and stream "
                     "(each an object, its closed sessions one array) ~0.35 KB; each "
                     "mover's pairing state (its moves as tuples, the joins opening its "
                     "sessions, its migrations) ~0.40 KB; the session index for overlap and "
                     "sessions 0.14 KB; the maps of who is in each room since when and "
                     "last seen 0.09 KB; the migration index 0.07 KB; the login itself "
                     "0.07 KB; and ~0.2 KB of allocator overhead beyond live objects. "
                     "Pairing state in flat arrays (as the session index is) and watch-time "
                     "series read from the session index instead of kept per chatter and "
                     "stream would close it.")
TWITCH_APPLY_FIX = ("The same snapshot applies in about a third of this at rest (the live "
                    "section's in-process figure); in the cycle it shares the process with "
                    "the polls' JSON decoding on the event loop, which the tracker holds "
                    "back while a snapshot of 20,000 or more applies. Decoding pages in a "
                    "second process would close it.")


def _twitch_targets(tw: dict[str, Any], add: Callable[..., None]) -> None:
    where = f"{tw['streams']} streams, {tw['chatters']:,} chatters"
    moving = tw["cycles"][1:] or tw["cycles"]
    add("twitch: full poll cycle of every stream, slowest", where,
        max(c["seconds"] for c in moving), 60.0, "s", False)
    add("twitch: snapshot applied per 100k chatters, slowest", where,
        max(c["apply_s_per_100k_max"] for c in tw["cycles"]), 1.0, "s", False,
        TWITCH_APPLY_FIX)
    q = tw["queries"]
    add("twitch: overlap over 7 days, one stream, p99 (every stream)", where,
        q["overlap 7d, every stream"]["p99_ms"], 50.0, "ms", False, OVERLAP_FIX)
    add("twitch: overlap over 7 days, the biggest stream, p99",
        f"{tw['biggest'][0]:,} chatters in it", q["overlap 7d, biggest stream"]["p99_ms"],
        50.0, "ms", False, OVERLAP_FIX)
    add("twitch: memory per tracked chatter", f"{where}, {tw['sessions']:,} sessions",
        tw["kb_per_chatter"], 1.0, "KB", False, TWITCH_MEMORY_FIX)


def _twitch_lines(tw: dict[str, Any]) -> list[str]:
    h, base = tw["history"], tw["baseline"]
    lines = [
        f"## twitch: {tw['streams']} streams, {tw['chatters']:,} chatters", "",
        f"The real tracker (`Tracker` over the embedded engine) polls {tw['streams']} "
        f"streams of Zipf-like sizes (the biggest {', '.join(f'{n:,}' for n in tw['biggest'])}"
        ") from the Helix stand-in, which runs in a process of its own with a rate budget "
        "that covers a whole cycle. Before it, a week of history: everyone joins, then "
        f"every 6 hours 2% move to another stream ({h['ops']:,} presence ops, "
        f"{h['sessions']:,} sessions, {h['seconds']:.0f} s). The first live cycle "
        "continues the history (nobody moves); before each next one 5% of the chatters "
        "move. A cycle is one `step`: which streams are live, every page of every chatter "
        "list (8 polls at a time) and one snapshot per stream. The **baseline** is the "
        "stand-in alone: the same pages fetched by a bare httpx client with the same "
        "concurrency, nothing recorded. CPU is the tracker process's (the stand-in's is "
        "not counted); memory is its RSS growth from before the chatters' names were made.",
        "", "| cycle | seconds | × stand-in alone | CPU s per 1M chatters | snapshots | "
        "chatters | apply s | slowest apply per 100k | stale |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for i, c in enumerate(tw["cycles"]):
        lines.append(
            f"| {'continues the history' if i == 0 else 'after 5% moved'} | "
            f"{c['seconds']:.1f} | {c['seconds'] / base['seconds']:.1f} | "
            f"{c['cpu_s_per_million']:.1f} | {c['snapshots']} | {c['members']:,} | "
            f"{c['apply_s']:.1f} | {c['apply_s_per_100k_max']:.3f} s | {c['stale']} |")
    lines += ["", f"Stand-in alone: {base['seconds']:.1f} s for {base['pages']:,} pages. "
              f"Memory: {tw['rss_mb']:,.0f} MB RSS, {tw['kb_per_chatter']:.3f} KB per "
              "tracked chatter.", "", "| query | p50 ms | p99 ms | calls |",
              "|---|---:|---:|---:|"]
    for kind, t in tw["queries"].items():
        lines.append(f"| {kind} | {_ms(t['p50_ms'])} | {_ms(t['p99_ms'])} | {t['calls']:,} |")
    return lines


def _discord_update_fix(d: dict[str, Any]) -> str:
    """What a miss of the per-update time is made of, and the floor the machine's bare
    commit sets under the durable write that follows it."""
    own, write, bare = d["steady"]["own"], d["steady"]["write"], d["steady"]["bare_commit"]
    return (f"The bot's own time is everything but tallyboard's durable write (p50 "
            f"{_ms(own['p50_ms'])} ms): discord.py's dispatch to the handler, the diff "
            "against where the member was counted, the queue to the presence writer and "
            "the hand-off to a worker thread. Its tail is the event loop's: a slow "
            "neighbour on the loop (a /stats chart being drawn) delays it. The durable "
            f"write itself (p99 {_ms(write['p99_ms'])} ms) is bounded below by this "
            f"machine's bare SQLite commit (p99 {_ms(bare['p99_ms'])} ms).")


def _burst_writes(burst: dict[str, Any]) -> str:
    writes, updates = burst["writes"], burst["updates"]
    if writes >= updates:
        return f"In the burst every update still had a write of its own ({writes:,})."
    return (f"In the burst, updates that queued behind a write in flight went in the next one "
            f"({writes:,} writes for {updates:,} updates): their own time includes that wait.")


def _discord_lines(d: dict[str, Any]) -> list[str]:
    """The Discord bot against the stand-in: reconcile, voice updates, slash commands."""
    q = d["top_query"]
    ours, base = q["ours"], q["baseline"]
    lines = [
        f"## discord bot: {d['members']:,} members in voice", "",
        "The real bot (`StatsBot` on unmodified discord.py) over the embedded engine (SQLite, "
        "`synchronous=FULL`), against the Discord stand-in (gateway and REST on loopback), "
        "in one process: the bot on an event loop of its own in a thread, as "
        f"`tallyboard discord` runs it. {d['members']:,} members are in {d['channels']} "
        "voice channels when the bot connects.", "",
        "| measure | value |", "|---|---:|",
        f"| first reconcile of {d['members']:,} in voice (guild available → one snapshot "
        f"per channel durable) | {_ms(d['reconcile_seconds'] * 1e3)} ms |", "",
        "Voice-state updates: moves to another channel, leaves, and joins of those who "
        "left; each update of a different member. **Own time** (the target): the bot's "
        "`voice_update` histogram, every raw value — from its handler's start to the "
        "update being durable, less the durable write itself (tallyboard's commit). "
        "**Until durable**: the same without subtracting the write (`voice_durable`). "
        "**Durable write**: the engine's `presence` call alone. **Stand-in → durable**: "
        "from the stand-in sending VOICE_STATE_UPDATE to that write returning (gateway, "
        "discord.py, handler, write).", "",
        "| updates | count | own p50 ms | own p99 ms | own max ms | until durable p99 ms | "
        "durable write p99 ms | stand-in → durable p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for key, label in (("steady", "the target's load"), ("burst", "burst")):
        r = d[key]
        own = r["own"]
        lines.append(f"| {r['rate']:g}/s for {r['seconds']:.0f} s ({label}) | "
                     f"{r['updates']:,} | {_ms(own['p50_ms'])} | {_ms(own['p99_ms'])} | "
                     f"{_ms(own['max_ms'])} | {_ms(r['until_durable']['p99_ms'])} | "
                     f"{_ms(r['write']['p99_ms'])} | "
                     f"{_ms(r['end_to_end']['p99_ms'])} |")
    bare = d["steady"]["bare_commit"]
    lines += [
        "", f"Floor on this machine: a bare SQLite commit of one row (WAL, "
        f"`synchronous=FULL`), made by the bench halfway between the {d['steady']['rate']:g}/s "
        f"updates: p50 {_ms(bare['p50_ms'])} ms, p99 {_ms(bare['p99_ms'])} ms, max "
        f"{_ms(bare['max_ms'])} ms: no durable write is faster. No baseline for the time per "
        "update: there is no earlier bot's figure to set beside it. "
        f"{_burst_writes(d['burst'])}", "",
        "| slash command, through the stand-in | calls | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|"]
    for key, label in (("top", "`/top window:day n:10`"),
                       ("stats", "`/stats` (4 ranks, streak, 14 days, PNG chart)")):
        r = d[key]
        lines.append(f"| {label} | {r['count']:,} | {_ms(r['p50_ms'])} | {_ms(r['p99_ms'])} | "
                     f"{_ms(r['max_ms'])} |")
    lines += [
        "", "From the stand-in sending INTERACTION_CREATE to the bot's answer (the "
        "interaction callback) arriving at the stand-in, one command at a time, while "
        f"{d['members']:,} are in voice.", "",
        "| /top's query, in-process | p50 ms | p99 ms | baseline p50 ms | baseline p99 ms | "
        "× faster (p50) |", "|---|---:|---:|---:|---:|---:|",
        f"| today's top 10, {d['members']:,} in voice | {_ms(ours['p50_ms'])} | "
        f"{_ms(ours['p99_ms'])} | {_ms(base['p50_ms'])} | {_ms(base['p99_ms'])} | "
        f"{base['p50_ms'] / ours['p50_ms']:,.0f} |", "",
        "Baseline: a bot that keeps every member's sessions of today in memory (same "
        f"process) and on each /top scans all {d['members']:,} members' sessions, sums "
        "them and sorts; its board is checked equal to tallyboard's first."]
    return lines


def _ingest_table(w: dict[str, Any]) -> list[str]:
    base = w["baseline_ingest"]["events_per_s"]
    lines = ["| path | events | events/s | × baseline |", "|---|---:|---:|---:|"]
    for key, label in (("ingest_columns", "Python API, `record_columns`, 100k/batch"),
                       ("ingest_rows", "Python API, `record_many`, 1,000 dicts/batch"),
                       ("ingest_single", "Python API, `record`, one event per call"),
                       ("ingest_http", "HTTP `POST /v1/events`, 1,000/batch, 2 clients"),
                       ("baseline_ingest", "baseline: 6 bucket dicts, in memory, not durable")):
        if key in w:
            r = w[key]
            lines.append(f"| {label} | {r['events']:,} | {_f(r['events_per_s'])} | "
                         f"{r['events_per_s'] / base:.2f} |")
    return lines


def _query_table(q: dict[str, Any]) -> list[str]:
    lines = ["| query | p50 ms | p99 ms | baseline p50 ms | baseline p99 ms | "
             "× faster (p50) |", "|---|---:|---:|---:|---:|---:|"]
    for kind, r in q.items():
        ours, theirs = r["ours"], r.get("baseline")
        extra = (f"{_ms(theirs['p50_ms'])} | {_ms(theirs['p99_ms'])} | "
                 f"{theirs['p50_ms'] / ours['p50_ms']:,.0f}" if theirs else "— | — | —")
        lines.append(f"| {kind} | {_ms(ours['p50_ms'])} | {_ms(ours['p99_ms'])} | {extra} |")
    return lines


def _presence_lines(p: dict[str, Any]) -> list[str]:
    lines = [f"## presence: {p['present']:,} members present in {p['rooms']:,} rooms", "",
             "| measure | value |", "|---|---:|",
             f"| bulk joins, batches of 1,000 | {_f(p['bulk_joins']['ops_per_s'])} ops/s |",
             f"| moves (leave+join), one durable op per call | "
             f"{_f(p['single_ops']['ops_per_s'])} ops/s |",
             f"| moves, batches of {p['batched_ops']['batch']} | "
             f"{_f(p['batched_ops']['ops_per_s'])} ops/s |",
             f"| first today board after the joins | {p['first_board_seconds']:.2f} s |",
             f"| memory per open session (RSS) | {p['rss_per_open_session_kb']:.2f} KB |",
             f"| rebuild from the log | {p['rebuild_seconds']:.2f} s |", "",
             "| query | p50 ms | p99 ms | calls |", "|---|---:|---:|---:|"]
    for kind, r in p["queries"].items():
        lines.append(f"| {kind} | {_ms(r['p50_ms'])} | {_ms(r['p99_ms'])} | {r['calls']:,} |")
    return lines


def _commit_lines(c: dict[str, Any]) -> list[str]:
    lines = ["## Group commit: single-event durable requests", "",
             f"{c['requests']:,} requests of one event each, from 1 thread (every request "
             "commits alone: the baseline) and from 16 threads (concurrent requests share "
             "commits), in the same run.", "",
             "| log | 1 thread req/s | 16 threads req/s | × 1 thread | requests per commit "
             "(16 threads) |", "|---|---:|---:|---:|---:|"]
    for key, label in (("sqlite", "SQLite (WAL, synchronous=FULL)"),
                       ("postgresql", "PostgreSQL (local)")):
        if key in c:
            one, many = c[key]["1"], c[key]["16"]
            lines.append(f"| {label} | {one['per_s']:,.0f} | {many['per_s']:,.0f} | "
                         f"{many['per_s'] / one['per_s']:.1f} | {many['per_commit']:.1f} |")
    return lines


def _restart_lines(r: dict[str, Any]) -> list[str]:
    live, again = r["live"], r["restart"]
    return [f"## restart: {r['metrics']:,} small metrics ({r['events']:,} events), kill -9", "",
            "The live process ingests batches of 1,000 rows and is killed with SIGKILL; a "
            "fresh one reopens the data directory (replaying the whole log).", "",
            "| | seconds | RSS MB | peak RSS MB |", "|---|---:|---:|---:|",
            f"| live ingest | {live['seconds']:.2f} | {live['rss_mb']:.0f} | "
            f"{live['peak_mb']:.0f} |",
            f"| restart (replay) | {again['seconds']:.2f} | {again['rss_mb']:.0f} | "
            f"{again['peak_mb']:.0f} |", "",
            f"First leaderboard of a small metric after the restart (its hot board built on "
            f"first use): {_ms(again['first_board_ms'])} ms."]


def format_markdown(results: dict[str, Any]) -> str:
    """The whole benchmark page."""
    m = results["machine"]
    rows, misses = _target_rows(results)
    lines = [
        "# Benchmarks", "",
        "Produced by this command (the whole page is its output; nothing is edited by hand):",
        "", "```", results["command"] + " --markdown docs/benchmarks.md", "```", "",
        f"Machine: {m['cpus']} CPUs, Python {m['python']}, {m['platform']}, {m['date']}. "
        f"Scale {results['scale']:g}, {results['queries']:,} timed calls per query kind. "
        "All ingest is durable (SQLite WAL, `synchronous=FULL`) before it returns; queries "
        "are in-process with `at` = now over the full member set.", "",
        "The **baseline** runs in the same process on the same events and does what the "
        "seed systems did: every event written into one dict per granularity (year, month, "
        "day, hour, minute, second), range sums by reading the coarsest buckets that fit, "
        "leaderboards and ranks by computing and sorting every member's total on request. "
        "It keeps nothing on disk. Before timing, 50 sums and every leaderboard window are "
        "checked equal between tallyboard and the baseline. Baseline leaderboards and ranks "
        "are timed over fewer calls (they take seconds each).", "",
        "## Targets", "", "| target | workload | measured | target | status |",
        "|---|---|---:|---:|---|", *rows, ""]
    if misses:
        lines += ["### Missed targets and what would close them", "", *misses, ""]
    for name, w in results["workloads"].items():
        lines += [f"## {name}: {w['events']:,} events, {w['members']:,} members", "",
                  *_ingest_table(w), "", *_query_table(w["queries"]), "",
                  f"Memory: {w['rss_per_million_mb']:.0f} MB RSS per million events held. "
                  f"Rebuild from the log: {w['rebuild']['seconds_per_million']:.2f} s per "
                  "million events.", ""]
    if "presence" in results:
        lines += [*_presence_lines(results["presence"]), ""]
    if "commits" in results:
        lines += [*_commit_lines(results["commits"]), ""]
    if "hot" in results:
        lines += [*_hot_lines(results["hot"]), ""]
    if "discord" in results:
        lines += [*_discord_lines(results["discord"]), ""]
    if "restart" in results:
        lines += [*_restart_lines(results["restart"]), ""]
    if "live" in results:
        lines += [*_live_lines(results["live"]), ""]
    if "twitch" in results:
        lines += [*_twitch_lines(results["twitch"]), ""]
    if "queue" in results:
        lines += [*_queue_lines(results["queue"]), ""]
    return "\n".join(lines)


QUEUE_NAMES = {"nats": "NATS JetStream", "redis": "Redis Streams", "amqp": "RabbitMQ"}
QUEUE_FIX = ("One worker is one Python process: per message it pays the broker client's "
             "decoding and ack, JSON parsing and the engine's validation; a message of "
             "one event pays the first two for a single event. More workers on Redis + "
             "PostgreSQL share one stream (next table), and more cores would scale them.")


def _queue_targets(qu: dict[str, Any], add: Callable[..., None]) -> None:
    for broker in ("nats", "redis"):
        got = qu["brokers"].get(broker)
        if not got:
            continue
        name = QUEUE_NAMES[broker]
        for kind, label, target in (("batched", "1,000 events a message", 100_000),
                                    ("single", "one event a message", 20_000)):
            e = got["embedded"][kind]
            add(f"queue: one worker, {label}", f"{name}, embedded store",
                e["events_per_s"], target, "ev/s", True, QUEUE_FIX)
        lat = got["latency"]
        add("queue: publish → queryable p99", f"{name}, {lat['events_per_s']:,.0f} ev/s",
            lat["p99_ms"], 250.0, "ms", False,
            "A message waits for the batch in hand to be applied and acked before its own "
            "fetch.")


def _queue_lines(qu: dict[str, Any]) -> list[str]:
    lines = [f"## queue: {qu['batched_events']:,} events in 1,000-event messages, "
             f"{qu['single_events']:,} one-event messages", "",
             "Real `tallyboard worker` processes, each on a stream or queue of the run's "
             "own, consume a backlog published before they start; a rate runs from the "
             "first applied event to the last (worker start-up left out). **exact**: every "
             "member's total asked of the worker's API equals what was published (nothing "
             "lost, nothing counted twice). The **broker alone** row publishes the same "
             "messages and then fetches and acks them through the same client with "
             "nothing else done: how fast the broker itself moves them.", "",
             "| broker | messages | broker alone: publish ev/s | broker alone: consume ev/s "
             "| one worker, embedded: ev/s | × broker alone | exact |",
             "|---|---|---:|---:|---:|---:|---|"]
    for broker, got in qu["brokers"].items():
        for kind, label in (("batched", "1,000 events"), ("single", "1 event")):
            alone, e = got["alone"][kind], got["embedded"][kind]
            lines.append(f"| {QUEUE_NAMES[broker]} | {label} | "
                         f"{_f(alone['publish_events_per_s'])} | "
                         f"{_f(alone['consume_events_per_s'])} | {_f(e['events_per_s'])} | "
                         f"{e['events_per_s'] / alone['consume_events_per_s']:.2f} | "
                         f"{'yes' if e['exact'] else '**no**'} |")
    lines += ["", f"Workers sharing one stream on Redis + PostgreSQL "
              f"({qu['shared_events']:,} events in 1,000-event messages; this machine has "
              "2 cores, which the workers, Redis, PostgreSQL and the broker share):", "",
              "| broker | 1 worker ev/s | 2 workers ev/s | 4 workers ev/s | exact |",
              "|---|---:|---:|---:|---|"]
    for broker, got in qu["brokers"].items():
        sh = got["shared"]
        exact = all(sh[n]["exact"] for n in sh)
        lines.append(f"| {QUEUE_NAMES[broker]} | {_f(sh['1']['events_per_s'])} | "
                     f"{_f(sh['2']['events_per_s'])} | {_f(sh['4']['events_per_s'])} | "
                     f"{'yes' if exact else '**no**'} |")
    lines += ["", "Publish → queryable: one worker (embedded store); a publisher at half the "
              "worker's batched rate sends 1,000-event messages, each with one event of a "
              "probe metric for a member of its own; a reader asks the worker's API for the "
              "probe board's size every 5 ms (so a figure includes up to 5 ms of polling).",
              "", "| broker | ev/s | messages | seen | p50 ms | p99 ms |",
              "|---|---:|---:|---:|---:|---:|"]
    for broker, got in qu["brokers"].items():
        lat = got["latency"]
        lines.append(f"| {QUEUE_NAMES[broker]} | {_f(lat['events_per_s'])} | "
                     f"{lat['messages']:,} | {lat['seen']:,} | {_ms(lat['p50_ms'])} | "
                     f"{_ms(lat['p99_ms'])} |")
    return lines


