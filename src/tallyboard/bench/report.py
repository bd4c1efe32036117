"""Render bench results as the Markdown of docs/benchmarks.md: targets first, then detail."""

from __future__ import annotations

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
    return "\n".join(lines)


