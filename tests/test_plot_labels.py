#!/usr/bin/env python3
"""test_plot_labels.py - read the labels and lines of analysis/plots.py's figures
(the Figure objects its fig_* functions return) and fail on:
  - a legend label used twice in one legend, or by two lines of one axes;
  - a decoder of the report without a legend entry of its own (acceptance);
  - a line that joins decoders of different kinds (each data line's gid lists
    the decoders of its points; the kind comes from this test, not plots.py);
  - a cost-model figure that does not flag a noisy bench, or flags a quiet one;
  - a batch-size figure (batch view rows) without one speedup and one experts-ratio line
    per MTP decoder over every batch size, or drawn for logs of one batch size;
  - plots.py under a python3 without matplotlib ending in a traceback instead of
    naming the missing module and the interpreter to use.

    /usr/bin/python3 tests/test_plot_labels.py
        synthetic rows: draft-vocabulary and wiring variants of exact K = 1, the
        adaptive decoder at K = 5 beside chain K = 5, a decoder named by the spec
    /usr/bin/python3 tests/test_plot_labels.py --log LOG --mtpbench B [--costs BENCH.json]
        the figures of a real log (tests/test_quick_plots.sh), kinds from its records

Needs matplotlib and msgpack (Debian's python3-matplotlib, python3-msgpack); no torch.
"""
import argparse
import collections
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "analysis"))
import plots  # noqa: E402
import plot_bench_noise  # noqa: E402
import plot_decoders  # noqa: E402

FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    print("FAIL: " + msg, file=sys.stderr)


def legend_texts(fig):
    """[(where, [labels])] for every legend of FIG."""
    out = [("figure legend", [t.get_text() for t in lg.get_texts()]) for lg in fig.legends]
    for i, ax in enumerate(fig.axes):
        if ax.get_legend():
            out.append(("axes %d legend" % i, [t.get_text() for t in ax.get_legend().get_texts()]))
    return out


def check_figure(fig, kind_of, what):
    """Duplicate labels and lines across kinds in FIG; KIND_OF maps a decoder to its kind."""
    for where, labels in legend_texts(fig):
        dup = [l for l, n in collections.Counter(labels).items() if n > 1]
        if dup:
            fail("%s: %s: duplicate legend labels %s" % (what, where, dup))
    for i, ax in enumerate(fig.axes):
        labels = [l for l in ax.get_legend_handles_labels()[1] if not l.startswith("_")]
        dup = [l for l, n in collections.Counter(labels).items() if n > 1]
        if dup:
            fail("%s: axes %d: two lines labelled %s" % (what, i, dup))
        label = {c.lines[0]: c.get_label() for c in ax.containers if hasattr(c, "lines")}
        for line in ax.get_lines():
            if not line.get_gid():
                continue
            names = json.loads(line.get_gid())
            kinds = {kind_of(n) for n in names}
            if len(names) > 1 and line.get_linestyle() not in ("None", "none", "") and len(kinds) > 1:
                fail("%s: axes %d: line '%s' joins decoders of different kinds %s" %
                     (what, i, label.get(line, line.get_label()), sorted("%s (%s)" % (n, kind_of(n)) for n in names)))


def check_acceptance_entries(fig, rows, what):
    """One legend entry per decoder drafting at least one token."""
    names = {r["decoder"] for r in rows if plots.val(r.get("depth"))[0]}
    entries = sum((labels for _, labels in legend_texts(fig)), [])
    if len(entries) != len(names):
        fail("%s: %d legend entries for %d decoders: %s" % (what, len(entries), len(names), entries))


# ---- synthetic rows ---------------------------------------------------------

WIRED = (("draft_hidden", "after_shared_head_norm"), ("module_hidden", "previous_module"),
         ("position0_embedding", "kept"))
MIMO = (("draft_hidden", "before_shared_head_norm"),) + WIRED[1:]

# name: (kind for this test, Decoder as the log records would give it)
SYNTH = {
    "baseline": ("baseline", ("baseline", "none", 0, (), None, None, None)),
    "mtp-exact-k1": ("exact", ("mtp", "exact", 0, WIRED, None, None, None)),
    "mtp-exact-k2": ("exact", ("mtp", "exact", 0, WIRED, None, None, None)),
    "mtp-exact-k3": ("exact", ("mtp", "exact", 0, WIRED, None, None, None)),
    "mtp-exact-k1-v1024": ("exact v1024", ("mtp", "exact", 1024, WIRED, None, None, None)),
    "mtp-exact-k2-v1024": ("exact v1024", ("mtp", "exact", 1024, WIRED, None, None, None)),
    "mtp-exact-k1-before_shared_head_norm": ("exact mimo", ("mtp", "exact", 0, MIMO, None, None, None)),
    "mtp-exact-k2-before_shared_head_norm": ("exact mimo", ("mtp", "exact", 0, MIMO, None, None, None)),
    "mtp-chain-k1": ("chain", ("mtp", "chain", 0, WIRED, None, None, None)),
    "mtp-chain-k3": ("chain", ("mtp", "chain", 0, WIRED, None, None, None)),
    "mtp-chain-k5": ("chain", ("mtp", "chain", 0, WIRED, None, None, None)),
    "mtp-chain-k3-m2": ("chain m2", ("mtp", "chain", 0, WIRED, None, None, None)),
    "mtp-chain-k5-m2": ("chain m2", ("mtp", "chain", 0, WIRED, None, None, None)),
    "adaptive-cum0.3-k5-m1": ("adaptive", ("adaptive", "chain", 0, WIRED, None, "cumulative", 0.3)),
    "my-exact": ("mine", ("mtp", "exact", 0, WIRED, None, None, None)),
}
DEPTH = {"baseline": 0, "my-exact": 2, "adaptive-cum0.3-k5-m1": 5}


def synth_decoders():
    out = {}
    for name, (_, fields) in SYNTH.items():
        k = DEPTH[name] if name in DEPTH else int(name.split("-k")[1][0])
        out[name] = plot_decoders.Decoder(name, k, *fields)
    return out


def cell(v):
    return {"value": v, "lo": v * 0.9, "hi": v * 1.1}


def synth_row(d, t, category=None):
    k = d.depth
    r = {"decoder": d.name, "depth": k, "drafting": d.drafting, "temperature": t,
         "tau": cell(1 + 0.7 * k), "speedup": cell(1.0 if not k else 0.9 - 0.05 * k)}
    for j in range(1, 6):
        r["alpha_%d" % j] = cell(0.8) if j <= k else {"value": None}
        r["beta_%d" % j] = cell(0.8 ** j) if j <= k else {"value": None}
    if category:
        r["category"] = category
    return r


def synth_costs(ratio_spread, load):
    """A cost file: verify/draft ratios with the given relative p10-p90 spread, and a load."""
    cases = [{"name": "decode", "kind": "decode",
              "ns": {"median": 1e6, "p10": 0.99e6, "p90": 1.01e6},
              "ratio": {"median": 1, "p10": 1, "p90": 1}}]
    for n in range(1, 9):
        m = 1 + 0.1 * n
        cases.append({"name": "verify/n=%d" % n, "kind": "verify", "n": n, "ns": {},
                      "ratio": {"median": m, "p10": m * (1 - ratio_spread / 2),
                                "p90": m * (1 + ratio_spread / 2)}})
    machine = {"threads": 1, "cpus_online": 4,
               "load_average": {"start": [load, load, load], "end": [load, load, load]}}
    return {"reference": "decode", "machine": machine, "cases": cases}


def check_synthetic():
    ds = synth_decoders()
    kind_of = lambda n: SYNTH[n][0]  # noqa: E731
    rows_all = [synth_row(d, t) for t in (0.0, 1.0) for d in ds.values()]
    rows_cat = [synth_row(d, t, c) for c in ("code", "prose") for t in (0.0, 1.0)
                for d in ds.values()]
    fig = plots.fig_acceptance(rows_all, ds)
    check_figure(fig, kind_of, "acceptance (synthetic)")
    check_acceptance_entries(fig, rows_all, "acceptance (synthetic)")
    check_figure(plots.fig_depth(rows_all, rows_cat, ds), kind_of, "depth (synthetic)")
    check_batch(ds, kind_of)
    cost_doc = {"tables": {"cost-model": {"rows": [
        dict(r, category="all", speedup_pred=r["speedup"], speedup_meas=r["speedup"])
        for r in rows_all]}}}
    cases = {"noisy spread": (synth_costs(0.5, 0.2), True),
             "noisy load": (synth_costs(0.02, 3.5), True),
             "quiet": (synth_costs(0.02, 0.2), False)}
    for what, (bench, noisy) in cases.items():
        fig = plots.fig_cost_model(cost_doc, rows_all, ds, plot_bench_noise.bench_noise(bench))
        check_figure(fig, kind_of, "cost model (synthetic, %s)" % what)
        flagged = any("NOISY" in t.get_text() for t in fig.findobj(plots.matplotlib.text.Text))
        if flagged != noisy:
            fail("cost model (synthetic, %s): noisy bench %s in the title" %
                 (what, "flagged" if flagged else "not flagged"))


def check_batch(ds, kind_of):
    """batch_size.png from synthetic `--table batch` rows at B = 1, 4, 16."""
    sizes = (1, 4, 16)
    rows = [dict(synth_row(d, t), batch_size=b, experts_ratio=1 + 0.1 * d.depth / b)
            for b in sizes for t in (0.0, 1.0) for d in ds.values()]
    if plots.fig_batch([r for r in rows if r["batch_size"] == 4], ds) is not None:
        fail("batch (synthetic): a figure for logs of one batch size")
    fig = plots.fig_batch(rows, ds)
    if fig is None:
        fail("batch (synthetic): no figure for three batch sizes")
        return
    check_figure(fig, kind_of, "batch (synthetic)")
    mtp = sorted(n for n, d in ds.items() if d.depth)
    for i, ax in enumerate(fig.axes):
        lines = [l for l in ax.get_lines() if l.get_gid()]
        got = sorted(json.loads(l.get_gid())[0] for l in lines)
        if got != mtp:
            fail("batch (synthetic): axes %d: lines of %s, expected one per MTP decoder %s" %
                 (i, got, mtp))
        for l in lines:
            if list(l.get_xdata()) != list(sizes):
                fail("batch (synthetic): axes %d: a line over B = %s, expected %s" %
                     (i, list(l.get_xdata()), list(sizes)))


def check_real(args):
    """The figures of a real log; a decoder's kind is what its records say besides depth."""
    recs = {}
    for rec in plot_decoders.request_records([args.log]):
        recs.setdefault(rec["decoder"], (rec["mode"], rec["drafting"], rec.get("draft_vocab", 0),
                                         json.dumps(rec.get("wiring"), sort_keys=True),
                                         rec.get("tree"), rec.get("adaptive_rule"),
                                         rec.get("adaptive_threshold")))
    kind_of = lambda n: recs.get(n, ("?", n))  # noqa: E731
    ds = plot_decoders.decoders_of_logs([args.log])
    rows_all = plots.report_json(args.mtpbench, [args.log], "decoder,temperature", 20)
    rows_cat = plots.report_json(args.mtpbench, [args.log], "decoder,temperature,category", 20)
    fig = plots.fig_acceptance(rows_all, ds)
    check_figure(fig, kind_of, "acceptance")
    check_acceptance_entries(fig, rows_all, "acceptance")
    check_figure(plots.fig_depth(rows_all, rows_cat, ds), kind_of, "depth")
    if args.costs:
        ns = argparse.Namespace(mtpbench=args.mtpbench, costs=args.costs, bootstrap=20)
        check_figure(plots.cost_figure(ns, [args.log], rows_all, ds), kind_of, "cost model")


def check_missing_module_message():
    """plots.py under an interpreter without matplotlib (python3 -S: no site packages) must
    name what is missing and the interpreter to use, not end in a traceback."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "analysis", "plots.py")
    out = subprocess.run([sys.executable, "-S", script, "x.msgpack"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True)
    err = out.stderr
    if out.returncode != 1 or "Traceback" in err or "'matplotlib'" not in err or \
            "/usr/bin/python3" not in err:
        fail("plots.py without matplotlib: expected exit 1 naming 'matplotlib' and "
             "/usr/bin/python3, found exit %d and: %s" % (out.returncode, err.strip()[-300:]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--log", help="a real log (else: synthetic rows)")
    ap.add_argument("--mtpbench", default="build/mtpbench")
    ap.add_argument("--costs", help="a `bench --json` file for cost_model")
    args = ap.parse_args()
    if args.log:
        check_real(args)
    else:
        check_synthetic()
        check_missing_module_message()
    if FAILURES:
        print("%d failure(s)" % len(FAILURES), file=sys.stderr)
        return 1
    print("plot labels: every legend label unique, no line across decoder kinds%s" %
          ("" if args.log else ", noisy bench flagged"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
