"""plot_bench_noise.py - was the bench behind a cost-model plot noisy? A stated
criterion on the cost file of `mtpbench bench --json` (bench/bench_json.c), so
that wide predicted intervals are flagged as the bench's, not the model's.

Criterion (any one makes the bench noisy):
  - spread: the median, over the cost curve's verify and draft cases, of the
    per-round ratio's p10..p90 spread relative to its median exceeds
    SPREAD_LIMIT; likewise the decode's own nanoseconds (drift over rounds);
  - load: the 1-minute load average when the bench started exceeded the CPUs
    the bench left free (cpus_online - threads), i.e. other work competed for
    its cores. Read only when the file records it (machine.load_average,
    machine.cpus_online); older files give no load verdict.
"""
import statistics

SPREAD_LIMIT = 0.10


def rel_spread(stats):
    """(p90 - p10) / median of a cost file's summary, or None."""
    try:
        med, lo, hi = stats["median"], stats["p10"], stats["p90"]
    except (KeyError, TypeError):
        return None
    return (hi - lo) / med if med else None


def curve_spread(doc):
    """Median relative spread of the verify/draft ratios, and of the decode's ns."""
    cases = doc.get("cases") or []
    ratios = [rel_spread(c.get("ratio")) for c in cases if c.get("kind") in ("verify", "draft")]
    ratios = [r for r in ratios if r is not None]
    decode = [rel_spread(c.get("ns")) for c in cases if c.get("name") == doc.get("reference")]
    return (statistics.median(ratios) if ratios else None,
            decode[0] if decode and decode[0] is not None else None)


def start_load(machine):
    """(1-minute load at the bench's start, CPUs online) when the file records both, else None."""
    load = (machine.get("load_average") or {}).get("start")
    cpus = machine.get("cpus_online")
    if not isinstance(load, list) or not load or not isinstance(cpus, int):
        return None
    return load[0], cpus


def bench_noise(doc):
    """{"noisy": bool, "facts": [str], "reasons": [str]} for a cost file DOC (parsed JSON)."""
    machine = doc.get("machine") or {}
    threads = machine.get("threads")
    facts, reasons = [], []
    if isinstance(threads, int):
        facts.append("%d thread%s" % (threads, "" if threads == 1 else "s"))
    ratio, decode = curve_spread(doc)
    if ratio is not None:
        facts.append("cost-ratio spread %.0f%%" % (100 * ratio))
        if ratio > SPREAD_LIMIT:
            reasons.append("verify/draft cost ratios: median p10-p90 spread %.0f%% > %.0f%%"
                           % (100 * ratio, 100 * SPREAD_LIMIT))
    if decode is not None and decode > SPREAD_LIMIT:
        reasons.append("decode time: p10-p90 spread %.0f%% > %.0f%%" %
                       (100 * decode, 100 * SPREAD_LIMIT))
    load = start_load(machine)
    if load is not None:
        facts.append("load %.2f on %d CPUs" % load)
        free = load[1] - threads if isinstance(threads, int) else None
        if free is not None and load[0] > free:
            reasons.append("load average %.2f at start > %d CPU%s left free (%d online, %d "
                           "thread%s)" % (load[0], free, "" if free == 1 else "s", load[1],
                                          threads, "" if threads == 1 else "s"))
    return {"noisy": bool(reasons), "facts": facts, "reasons": reasons}


def noise_caption(noise):
    """Lines for the figure: the bench's facts, then NOISY BENCH and one line per reason."""
    lines = ["bench: " + (", ".join(noise["facts"]) or "no spread or load recorded")]
    if noise["noisy"]:
        lines.append("NOISY BENCH: wide intervals are the bench's (criterion: spread > %.0f%% "
                     "or load > free CPUs)" % (100 * SPREAD_LIMIT))
        lines += noise["reasons"]
    return "\n".join(lines)
