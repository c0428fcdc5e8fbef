#!/usr/bin/env python3
"""plots.py - figures from mtpbench experiment logs (PNG, written beside the first log).

    /usr/bin/python3 analysis/plots.py runs/default/default.msgpack [more logs or dirs]
        [--mtpbench build/mtpbench] [--out DIR] [--bootstrap N] [--costs BENCH.json]

Every number comes from `mtpbench report --format json` (the metric definitions and
bootstrap intervals of spec/metrics.md live in one place, the C report), except the
per-phase time split, which sums the logs' per-step phase times. What kind each decoder
is (draft vocabulary, wiring, adaptive, tree) comes from the logs' request records
(plot_decoders.py): one legend entry per line, and a line joins only decoders that
differ in depth alone.

Figures:
  acceptance_by_position.png  alpha_j (conditional) and beta_j (unconditional) against the
                              draft position j, one line per decoder, per temperature, with
                              95% bootstrap intervals
  depth_tau_speedup.png       tau and speedup against depth K, one line per decoder family
                              (exact, chain, each draft-vocabulary or wiring variant), per
                              category and overall, per temperature; the baseline (K = 0)
                              and the adaptive decoder (at its maximum K) are points of
                              their own; tree decoders are left to tree_ablation.png
  phase_latency.png           time per emitted token split into draft / verify / accept /
                              update, stacked, per decoder and temperature
  acceptance_by_context.png   (logs whose steps span several context bins) tau and alpha_1 against
                              the context length and the position in the generation
                              (`mtpbench report --table position`)
  tree_ablation.png           (logs with tree decoders) tau and speedup against the tokens
                              verified per step, chains vs static vs dynamic trees, per
                              temperature (`mtpbench report --table tree`)
  batch_size.png              (logs with more than one batch size) speedup against the
                              baseline at the same B, and distinct experts per verification
                              step over the baseline's, against the batch size B, one line
                              per decoder (K, drafting), per temperature
                              (`mtpbench report --table batch`)
  cost_model.png              (--costs) predicted vs measured speedup per family, and the
                              alpha_j the model uses; the title says when the bench was
                              noisy, and why (plot_bench_noise.py)

Needs matplotlib and msgpack: Debian's /usr/bin/python3 with python3-matplotlib and
python3-msgpack (scripts/install-deps.sh); another interpreter is told what it lacks.
Each fig_* function returns its Figure (tests/test_plot_labels.py reads their labels).
"""
import argparse
import json
import os
import subprocess
import sys

from python_deps import require

matplotlib, _ = require("plots.py", ["matplotlib", "msgpack"])
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

import plot_bench_noise  # noqa: E402
import plot_decoders as pd  # noqa: E402

PHASES = ("draft", "verify", "accept", "update")
# (linestyle, marker) per family, in family order (plain exact, plain chain, variants...).
LINE_STYLES = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "v"), (":", "P"), ("-.", "X"),
               ("--", "<"), (":", ">")]
POINT_MARKERS = ["D", "*", "h", "p", "d", "H"]  # decoders of their own (adaptive, baseline)
SINGLE_OFFSET = 0.12  # x offset of a point of its own, so it does not hide a line's point


def report_json(mtpbench, logs, by, bootstrap):
    """Run `mtpbench report --format json` and return its rows. Logs of several batch sizes
    give rows per B (the report adds the key): the depth and acceptance figures take the
    smallest B, and batch_size.png compares them."""
    cmd = [mtpbench, "report", *logs, "--format", "json", "--by", by,
           "--bootstrap", str(bootstrap)]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout
    return smallest_batch(json.loads(out)["rows"])


def smallest_batch(rows):
    """The rows of the smallest batch size (all rows when they carry none)."""
    sizes = {val(r.get("batch_size"))[0] for r in rows} - {None}
    return [r for r in rows if val(r.get("batch_size"))[0] in (None, min(sizes))] if sizes else rows


def val(cell):
    """(value, lo, hi) of a report cell; None where undefined."""
    if not isinstance(cell, dict):
        return cell, None, None
    return cell.get("value"), cell.get("lo"), cell.get("hi")


def errbar(ax, xs, cells, names, **kw):
    """Plot values with their interval as error bars; skips undefined points. The data
    line's gid is the JSON list of the decoders its points come from (NAMES)."""
    pts = [(x, n) + val(c) for x, c, n in zip(xs, cells, names) if val(c)[0] is not None]
    if not pts:
        return
    lo = [p[2] - p[3] if p[3] is not None else 0 for p in pts]
    hi = [p[4] - p[2] if p[4] is not None else 0 for p in pts]
    bars = ax.errorbar([p[0] for p in pts], [p[2] for p in pts], yerr=[lo, hi], capsize=2, **kw)
    bars.lines[0].set_gid(json.dumps(sorted({p[1] for p in pts})))


def temperatures(rows):
    return sorted({val(r["temperature"])[0] for r in rows
                   if val(r.get("temperature"))[0] is not None})


def decoder_of_row(row, decoders):
    """The Decoder of a report row (its own family when no log record names it)."""
    d = decoders.get(row["decoder"])
    return d or pd.unknown_decoder(row["decoder"], val(row.get("depth"))[0], row.get("drafting"))


def family_order(fam):
    """Plain families first (exact, then chain), then variants, then decoders of their own."""
    if fam[0] == "single":
        return (2, fam[1])
    _, mode, drafting, vocab, wiring = fam
    return (0 if not vocab and not wiring else 1, drafting != "exact", vocab, wiring, fam[0])


def family_styles(families):
    """{family: (linestyle, marker)}: a point of its own gets no line."""
    styles, lines, points = {}, 0, 0
    for fam in sorted(families, key=family_order):
        if fam[0] == "single":
            styles[fam] = ("none", POINT_MARKERS[points % len(POINT_MARKERS)])
            points += 1
        else:
            styles[fam] = LINE_STYLES[lines % len(LINE_STYLES)]
            lines += 1
    return styles


def fig_acceptance(rows, decoders):
    """acceptance_by_position.png: one line per decoder over its draft positions j."""
    temps = temperatures(rows)
    rows = [r for r in rows if val(r.get("depth"))[0]]
    ds = {r["decoder"]: decoder_of_row(r, decoders) for r in rows}
    labels = pd.decoder_labels(list(ds.values()))
    styles = family_styles({pd.family(d) for d in ds.values()})
    ks = sorted({d.depth for d in ds.values()})
    cmap = plt.get_cmap("viridis")
    colors = {k: cmap(i / max(1, len(ks) - 1) * 0.85) for i, k in enumerate(ks)}
    fig, axes = plt.subplots(2, len(temps), figsize=(5.5 * len(temps), 7.5), squeeze=False)
    for c, t in enumerate(temps):
        for r in [r for r in rows if val(r["temperature"])[0] == t]:
            d = ds[r["decoder"]]
            js = list(range(1, d.depth + 1))
            line, marker = styles[pd.family(d)]
            # The adaptive decoder's K is a maximum: it stands out from the K colours.
            color = "tab:red" if d.mode == "adaptive" else colors[d.depth]
            for row, name in ((0, "alpha"), (1, "beta")):
                errbar(axes[row][c], js, [r.get("%s_%d" % (name, j)) for j in js],
                       [d.name] * len(js), color=color,
                       linestyle=line if line != "none" else ":", marker=marker,
                       label=labels[d.name])
        axes[0][c].set_title("T = %g" % t)
        axes[0][c].set_ylabel("alpha_j (accepted | j-1 accepted)")
        axes[1][c].set_ylabel("beta_j (reached position j)")
        for row in (0, 1):
            axes[row][c].set_xlabel("draft position j")
            axes[row][c].xaxis.set_major_locator(MaxNLocator(integer=True))
            axes[row][c].set_ylim(0, 1.02)
            axes[row][c].grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle("Acceptance by draft position (colour: depth K, red: adaptive; line style: "
                 "decoder family)")
    fig.tight_layout()
    return fig


def plot_family(ax, rows, fam, key, label, style, color):
    """One family's KEY against K on AX: a line, or a point of its own."""
    sel = sorted(rows, key=lambda r: val(r["depth"])[0])
    ks = [val(r["depth"])[0] for r in sel]
    if fam[0] == "single":
        ks = [k + SINGLE_OFFSET if k else k for k in ks]
    errbar(ax, ks, [r.get(key) for r in sel], [r["decoder"] for r in sel], color=color,
           linestyle=style[0], marker=style[1], label=label)


def fig_depth(rows_all, rows_cat, decoders):
    """depth_tau_speedup.png: tau and speedup against K, one line per family and T."""
    temps = temperatures(rows_all)
    keep = lambda r: not decoder_of_row(r, decoders).tree  # noqa: E731
    rows_all = [r for r in rows_all if keep(r)]
    rows_cat = [r for r in rows_cat if keep(r)]
    cats = sorted({r["category"] for r in rows_cat})
    panels = [(c, [r for r in rows_cat if r["category"] == c]) for c in cats] + [("all", rows_all)]
    ds = [decoder_of_row(r, decoders) for r in rows_all + rows_cat]
    fam_label = pd.family_labels(ds)
    styles = family_styles(set(fam_label))
    tcolor = {t: plt.get_cmap("tab10")(i) for i, t in enumerate(temps)}
    fig, axes = plt.subplots(2, len(panels), figsize=(3.6 * len(panels), 6.5), squeeze=False)
    for c, (title, rows) in enumerate(panels):
        for t in temps:
            for fam in sorted(fam_label, key=family_order):
                sel = [r for r in rows if val(r["temperature"])[0] == t
                       and pd.family(decoder_of_row(r, decoders)) == fam]
                for row, key in ((0, "tau"), (1, "speedup")):
                    plot_family(axes[row][c], sel, fam, key, "%s, T=%g" % (fam_label[fam], t),
                                styles[fam], tcolor[t])
        axes[0][c].set_title(title)
        axes[0][c].set_ylabel("tau (tokens per main forward)")
        axes[1][c].set_ylabel("speedup vs baseline")
        axes[1][c].axhline(1.0, color="grey", lw=0.8)
        for row in (0, 1):
            axes[row][c].set_xlabel("depth K")
            axes[row][c].xaxis.set_major_locator(MaxNLocator(integer=True))
            axes[row][c].grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle("Depth ablation: one line per decoder family (exact: K trained modules, chain: "
                 "module 1 K times);\nbaseline at K = 0 and adaptive decoders at their maximum K "
                 "are points of their own")
    fig.tight_layout()
    return fig


def log_files(args):
    for a in args:
        if os.path.isdir(a):
            for n in sorted(os.listdir(a)):
                if n.endswith(".msgpack"):
                    yield os.path.join(a, n)
        else:
            yield a


def phase_sums(logs):
    """{(decoder, depth, drafting, temperature): [ns per phase..., emitted tokens]}."""
    sums = {}
    for rec in pd.request_records(logs):
        key = (rec["decoder"], rec["depth"], rec["drafting"], rec["temperature"])
        acc = sums.setdefault(key, [0, 0, 0, 0, 0])
        for i, ph in enumerate(PHASES):
            acc[i] += sum(rec[ph + "_ns"])
        acc[4] += max(0, len(rec["output_tokens"]) - 1)
    return sums


def fig_phases(sums):
    """phase_latency.png: stacked ms per emitted token by phase, per decoder and T."""
    order = {"none": 0, "exact": 1, "chain": 2}
    keys = sorted(sums, key=lambda k: (k[3], order.get(k[2], 3), k[1], k[0]))
    keys = [k for k in keys if sums[k][4] > 0]
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(keys) + 2), 4.8))
    bottom = [0.0] * len(keys)
    colors = plt.get_cmap("tab10")
    for i, ph in enumerate(PHASES):
        h = [sums[k][i] / sums[k][4] / 1e6 for k in keys]  # ms per emitted token
        ax.bar(range(len(keys)), h, bottom=bottom, color=colors(i), label=ph)
        bottom = [b + x for b, x in zip(bottom, h)]
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels(["%s\nT=%g" % (k[0], k[3]) for k in keys], rotation=60, fontsize=7,
                       ha="right")
    ax.set_ylabel("ms per emitted token (decode steps)")
    ax.set_title("Where decode time goes: per-phase time per emitted token")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def cost_rows(doc):
    """The cost-model table's overall rows, depth and temperature as plain numbers."""
    return [dict(r, temperature=val(r["temperature"])[0], depth=val(r["depth"])[0])
            for r in doc["tables"]["cost-model"]["rows"]
            if r.get("category") == "all" and val(r.get("depth"))[0]]


def cost_speedups(ax, rows, t, decoders):
    """Predicted and measured speedup against K, per family, at temperature T."""
    sel_t = [r for r in rows if r["temperature"] == t]
    fam_label = pd.family_labels([decoder_of_row(r, decoders) for r in rows])
    styles = family_styles(set(fam_label))
    for i, fam in enumerate(sorted(fam_label, key=family_order)):
        sel = sorted((r for r in sel_t if pd.family(decoder_of_row(r, decoders)) == fam),
                     key=lambda r: r["depth"])
        ks = [r["depth"] + (SINGLE_OFFSET if fam[0] == "single" else 0) for r in sel]
        names = [r["decoder"] for r in sel]
        line, marker = styles[fam]
        color = plt.get_cmap("tab10")(i % 10)  # predicted and measured alike; measured faded
        errbar(ax, [k - 0.06 for k in ks], [r["speedup_pred"] for r in sel], names, color=color,
               marker=marker, linestyle=line, label="%s predicted" % fam_label[fam])
        errbar(ax, [k + 0.06 for k in ks], [r["speedup_meas"] for r in sel], names, color=color,
               marker=marker, linestyle=line, alpha=0.45, label="%s measured" % fam_label[fam])


def cost_alphas(ax, rows_all, t, decoders):
    """alpha_j of each family's deepest decoder at temperature T: what the model uses."""
    deepest = {}
    for r in rows_all:
        d = decoder_of_row(r, decoders)
        if val(r.get("temperature"))[0] != t or not d.depth or pd.family(d)[0] == "single":
            continue
        if pd.family(d) not in deepest or d.depth > deepest[pd.family(d)][0].depth:
            deepest[pd.family(d)] = (d, r)
    fam_label = pd.family_labels([d for d, _ in deepest.values()])
    styles = family_styles(set(deepest))
    for fam in sorted(deepest, key=family_order):
        d, r = deepest[fam]
        js = list(range(1, d.depth + 1))
        errbar(ax, js, [r.get("alpha_%d" % j) for j in js], [d.name] * len(js),
               marker=styles[fam][1], linestyle=styles[fam][0],
               label="%s (%s)" % (fam_label[fam], d.name))


def fig_cost_model(doc, rows_all, decoders, noise):
    """cost_model.png: DOC is `report --table cost-model --format json`, ROWS_ALL the main
    report's rows, NOISE plot_bench_noise.bench_noise of the cost file."""
    rows = cost_rows(doc)
    temps = sorted({r["temperature"] for r in rows})
    fig, axes = plt.subplots(2, len(temps), figsize=(6 * len(temps), 8.6), squeeze=False)
    for ti, t in enumerate(temps):
        ax = axes[0][ti]
        cost_speedups(ax, rows, t, decoders)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_xlabel("depth K")
        ax.set_ylabel("speedup over baseline")
        ax.set_title("T = %g: cost model vs measurement%s" %
                     (t, " (PROJECTION)" if doc.get("projection") else ""))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
        ax = axes[1][ti]
        cost_alphas(ax, rows_all, t, decoders)
        ax.set_xlabel("draft position j")
        ax.set_ylabel("alpha_j (conditional acceptance)")
        ax.set_title("T = %g: the acceptance the model uses" % t)
        ax.set_ylim(0, 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    caption = plot_bench_noise.noise_caption(noise)
    fig.suptitle(caption, fontsize=9, color="firebrick" if noise["noisy"] else "black")
    fig.tight_layout()  # makes room for the caption's lines above the panels
    return fig


def tree_kind(shape):
    """'chain', 'static' or 'dynamic' from the tree view's shape column (None: baseline)."""
    if shape.startswith("chain:"):
        return "chain"
    if shape.startswith("dynamic:"):
        return "dynamic"
    return "static" if shape != "-" else None


def fig_tree(rows):
    """tree_ablation.png from `report --table tree` rows; None when no row is a tree."""
    if not any(tree_kind(r["shape"]) in ("static", "dynamic") for r in rows):
        return None
    temps = temperatures(rows)
    fig, axes = plt.subplots(2, len(temps), figsize=(5.5 * len(temps), 7), squeeze=False)
    colors = {"chain": "tab:blue", "static": "tab:orange", "dynamic": "tab:green"}
    markers = {"exact": "o", "chain": "s"}
    for col, t in enumerate(temps):
        for row, metric in enumerate(("tau", "speedup")):
            ax = axes[row][col]
            for r in rows:
                kind = tree_kind(r["shape"])
                if val(r["temperature"])[0] != t or kind is None:
                    continue
                x, y = val(r["verified"])[0], val(r[metric])[0]
                if x is None or y is None:
                    continue
                ax.scatter([x], [y], color=colors[kind], marker=markers.get(r["drafting"], "o"),
                           label="%s, %s" % (kind, r["drafting"]))
                ax.annotate(r["shape"], (x, y), fontsize=6, xytext=(3, 2), textcoords="offset points")
            ax.set_xlabel("tokens verified per step")
            ax.set_ylabel(metric)
            ax.set_title("%s, T = %g" % (metric, t))
            handles, labels = ax.get_legend_handles_labels()
            uniq = dict(zip(labels, handles))  # one entry per kind, not per point
            ax.legend(uniq.values(), uniq.keys(), fontsize=7)
    fig.tight_layout()
    return fig


def fig_batch(rows, decoders):
    """batch_size.png from `report --table batch` rows: speedup (with its interval) and the
    experts ratio against B, one line per MTP decoder and temperature; None with fewer than
    two batch sizes. The baseline is the line at 1 it is measured against."""
    sizes = {val(r.get("batch_size"))[0] for r in rows} - {None}
    if len(sizes) < 2:
        return None
    temps = temperatures(rows)
    rows = [r for r in rows if val(r.get("depth"))[0]]
    ds = {r["decoder"]: decoder_of_row(r, decoders) for r in rows}
    labels = pd.decoder_labels(list(ds.values()))
    styles = family_styles({pd.family(d) for d in ds.values()})
    names = sorted(ds, key=lambda n: (family_order(pd.family(ds[n])), ds[n].depth))
    ks = sorted({d.depth for d in ds.values()})
    cmap = plt.get_cmap("viridis")
    kcolor = {k: cmap(i / max(1, len(ks) - 1) * 0.85) for i, k in enumerate(ks)}
    fig, axes = plt.subplots(2, len(temps), figsize=(5 * len(temps), 7), squeeze=False)
    for col, t in enumerate(temps):
        for name in names:
            sel = sorted((r for r in rows if r["decoder"] == name
                          and val(r["temperature"])[0] == t),
                         key=lambda r: val(r["batch_size"])[0])
            bs = [val(r["batch_size"])[0] for r in sel]
            style = styles[pd.family(ds[name])]
            for row, key in ((0, "speedup"), (1, "experts_ratio")):
                errbar(axes[row][col], bs, [r.get(key) for r in sel], [name] * len(sel),
                       color=kcolor[ds[name].depth], linestyle=style[0] if len(sel) > 1 else "none",
                       marker=style[1], label=labels[name])
        for row, what in ((0, "speedup vs baseline at the same B"),
                          (1, "experts per verification / baseline's")):
            ax = axes[row][col]
            ax.axhline(1.0, color="grey", lw=0.8)
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(sizes))
            ax.set_xticklabels([str(b) for b in sorted(sizes)])
            ax.set_xlabel("batch size B")
            ax.set_ylabel(what)
            ax.set_title("T = %g" % t)
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle("Speculative decoding by batch size: one line per decoder (K, drafting)")
    fig.tight_layout()
    return fig


def fig_context(rows):
    """acceptance_by_context.png from `report --table position` rows: tau and alpha_1 against the
    context-length bin and the generation-position bin, one line per decoder and temperature (a
    line joins the bins of one decoder only). None when no decoder has steps in two context bins."""
    series = {}
    for r in rows:
        series.setdefault((r["decoder"], val(r["temperature"])[0]), []).append(r)
    if not any(len({r["bin"] for r in rs if r["axis"] == "context"}) > 1 for rs in series.values()):
        return None
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5), squeeze=False)
    for col, axis in enumerate(("context", "generation")):
        bins = []
        for r in rows:  # the view orders bins by their lower edge within each decoder
            if r["axis"] == axis and r["bin"] not in bins:
                bins.append(r["bin"])
        bins.sort(key=lambda b: int(b.lstrip(">=").split("-")[0]))
        for row, metric in enumerate(("tau", "alpha_1")):
            ax = axes[row][col]
            for (dec, t), rs in sorted(series.items()):
                pts = [r for r in rs if r["axis"] == axis]
                errbar(ax, [bins.index(r["bin"]) for r in pts], [r[metric] for r in pts],
                       [dec] * len(pts), marker="o", label="%s, T=%g" % (dec, t))
            ax.set_xticks(range(len(bins)))
            ax.set_xticklabels(bins, rotation=30, fontsize=7)
            ax.set_xlabel("%s (tokens)" % ("context: prompt + emitted" if axis == "context"
                                           else "position in the generation"))
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
    axes[0][1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle("Acceptance against context length and generation position (95% bootstrap intervals)")
    fig.tight_layout()
    return fig


def save(fig, path, dpi=110):
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def cost_figure(args, logs, rows_all, decoders):
    """cost_model.png's Figure from --costs."""
    cmd = [args.mtpbench, "report", *logs, "--table", "cost-model", "--costs", args.costs,
           "--format", "json", "--bootstrap", str(args.bootstrap)]
    doc = json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout)
    with open(args.costs) as f:
        noise = plot_bench_noise.bench_noise(json.load(f))
    return fig_cost_model(doc, rows_all, decoders, noise)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("logs", nargs="+", help="log files or directories of *.msgpack logs")
    ap.add_argument("--mtpbench", default="build/mtpbench", help="the mtpbench executable")
    ap.add_argument("--out", help="directory for the PNGs (default: the first log's)")
    ap.add_argument("--bootstrap", type=int, default=1000, help="resamples for intervals")
    ap.add_argument("--costs", help="`mtpbench bench --json` file: also cost_model.png")
    args = ap.parse_args()
    logs = list(log_files(args.logs))
    if not logs:
        sys.exit("plots: no logs")
    out = args.out or os.path.dirname(os.path.abspath(logs[0]))
    os.makedirs(out, exist_ok=True)
    decoders = pd.decoders_of_logs(logs)
    rows_all = report_json(args.mtpbench, logs, "decoder,temperature", args.bootstrap)
    rows_cat = report_json(args.mtpbench, logs, "decoder,temperature,category", args.bootstrap)
    written = [save(fig_acceptance(rows_all, decoders), os.path.join(out, "acceptance_by_position.png")),
               save(fig_depth(rows_all, rows_cat, decoders), os.path.join(out, "depth_tau_speedup.png")),
               save(fig_phases(phase_sums(logs)), os.path.join(out, "phase_latency.png"))]
    cmd = [args.mtpbench, "report", *logs, "--format", "json", "--table", "tree"]
    tree = fig_tree(json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout)["rows"])
    if tree is not None:
        written.append(save(tree, os.path.join(out, "tree_ablation.png"), dpi=120))
    cmd = [args.mtpbench, "report", *logs, "--format", "json", "--table", "position",
           "--bootstrap", str(args.bootstrap)]
    pos = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    context = fig_context(json.loads(pos.stdout)["rows"]) if pos.returncode == 0 else None
    if context is not None:
        written.append(save(context, os.path.join(out, "acceptance_by_context.png")))
    cmd = [args.mtpbench, "report", *logs, "--format", "json", "--table", "batch",
           "--bootstrap", str(args.bootstrap)]
    batch = fig_batch(json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout)
                      ["rows"], decoders)
    if batch is not None:
        written.append(save(batch, os.path.join(out, "batch_size.png")))
    if args.costs:
        written.append(save(cost_figure(args, logs, rows_all, decoders),
                            os.path.join(out, "cost_model.png")))
    for w in written:
        print("plots: wrote %s" % w)


if __name__ == "__main__":
    main()
