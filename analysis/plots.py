#!/usr/bin/env python3
"""plots.py - figures from mtpbench experiment logs (PNG, written beside the first log).

    .venv/bin/python analysis/plots.py runs/default/default.msgpack [more logs or dirs]
        [--mtpbench build/mtpbench] [--out DIR] [--bootstrap N]

Every number comes from `mtpbench report --format json` (the metric definitions and
bootstrap intervals of spec/metrics.md live in one place, the C report), except the
per-phase time split, which sums the logs' per-step phase times (read with `msgpack`).

Figures:
  acceptance_by_position.png  alpha_j (conditional) and beta_j (unconditional) against the
                              draft position j, one line per decoder (depth, drafting), per
                              temperature, with 95% bootstrap intervals
  depth_tau_speedup.png       tau and speedup against depth K, exact vs chained drafting,
                              per category and overall, per temperature
  phase_latency.png           time per emitted token split into draft / verify / accept /
                              update, stacked, per decoder and temperature
  tree_ablation.png           (logs with tree decoders) tau and speedup against the tokens
                              verified per step, chains vs static vs dynamic trees, per
                              temperature (`mtpbench report --table tree`)

Needs matplotlib (and msgpack for phase_latency.png; skipped with a note without it).
"""
import argparse
import json
import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

PHASES = ("draft", "verify", "accept", "update")
DRAFT_STYLE = {"exact": "-", "chain": "--"}
DRAFT_MARKER = {"exact": "o", "chain": "s"}


def report_json(mtpbench, logs, by, bootstrap):
    """Run `mtpbench report --format json` and return its rows."""
    cmd = [mtpbench, "report", *logs, "--format", "json", "--by", by,
           "--bootstrap", str(bootstrap)]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout
    return json.loads(out)["rows"]


def val(cell):
    """(value, lo, hi) of a report cell; None where undefined."""
    if not isinstance(cell, dict):
        return cell, None, None
    return cell.get("value"), cell.get("lo"), cell.get("hi")


def errbar(ax, xs, cells, **kw):
    """Plot values with their interval as error bars; skips undefined points."""
    pts = [(x,) + val(c) for x, c in zip(xs, cells) if val(c)[0] is not None]
    if not pts:
        return
    x = [p[0] for p in pts]
    y = [p[1] for p in pts]
    lo = [p[1] - p[2] if p[2] is not None else 0 for p in pts]
    hi = [p[3] - p[1] if p[3] is not None else 0 for p in pts]
    ax.errorbar(x, y, yerr=[lo, hi], capsize=2, **kw)


def temperatures(rows):
    return sorted({r["temperature"] for r in rows if r.get("temperature") is not None})


def depth_colors(rows):
    ks = sorted({r["depth"] for r in rows if r.get("depth")})
    cmap = plt.get_cmap("viridis")
    return {k: cmap(i / max(1, len(ks) - 1) * 0.85) for i, k in enumerate(ks)}


def plot_acceptance(rows, path):
    temps = temperatures(rows)
    colors = depth_colors(rows)
    fig, axes = plt.subplots(2, len(temps), figsize=(5.5 * len(temps), 7.5), squeeze=False)
    for c, t in enumerate(temps):
        for r in [r for r in rows if r["temperature"] == t and r.get("depth")]:
            k, dr = r["depth"], r["drafting"]
            js = list(range(1, k + 1))
            for row, name in ((0, "alpha"), (1, "beta")):
                errbar(axes[row][c], js, [r.get("%s_%d" % (name, j)) for j in js],
                       color=colors[k], linestyle=DRAFT_STYLE.get(dr, ":"),
                       marker=DRAFT_MARKER.get(dr, "x"), label="%s K=%d" % (dr, k))
        axes[0][c].set_title("T = %g" % t)
        axes[0][c].set_ylabel("alpha_j (accepted | j-1 accepted)")
        axes[1][c].set_ylabel("beta_j (reached position j)")
        for row in (0, 1):
            axes[row][c].set_xlabel("draft position j")
            axes[row][c].xaxis.set_major_locator(MaxNLocator(integer=True))
            axes[row][c].set_ylim(0, 1.02)
            axes[row][c].grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, ncol=2)
    fig.suptitle("Acceptance by draft position (solid: exact drafting, dashed: module 1 chained)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_depth(rows_all, rows_cat, path):
    temps = temperatures(rows_all)
    cats = sorted({r["category"] for r in rows_cat})
    panels = [(c, [r for r in rows_cat if r["category"] == c]) for c in cats] + [("all", rows_all)]
    fig, axes = plt.subplots(2, len(panels), figsize=(3.6 * len(panels), 6.5), squeeze=False)
    tcolor = {t: plt.get_cmap("tab10")(i) for i, t in enumerate(temps)}
    for c, (title, rows) in enumerate(panels):
        for t in temps:
            for dr in ("exact", "chain"):
                sel = sorted((r for r in rows if r["temperature"] == t and r["drafting"] == dr),
                             key=lambda r: r["depth"])
                base = [r for r in rows if r["temperature"] == t and r["drafting"] == "none"]
                sel = base + sel  # K = 0: the baseline (tau 1, speedup 1)
                ks = [r["depth"] for r in sel]
                for row, key in ((0, "tau"), (1, "speedup")):
                    errbar(axes[row][c], ks, [r.get(key) for r in sel], color=tcolor[t],
                           linestyle=DRAFT_STYLE[dr], marker=DRAFT_MARKER[dr],
                           label="%s, T=%g" % (dr, t))
        axes[0][c].set_title(title)
        axes[0][c].set_ylabel("tau (tokens per main forward)")
        axes[1][c].set_ylabel("speedup vs baseline")
        axes[1][c].axhline(1.0, color="grey", lw=0.8)
        for row in (0, 1):
            axes[row][c].set_xlabel("depth K")
            axes[row][c].xaxis.set_major_locator(MaxNLocator(integer=True))
            axes[row][c].grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.suptitle("Depth ablation: exact drafting (K trained modules) vs module 1 chained K times")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
    import msgpack

    sums = {}
    for path in logs:
        with open(path, "rb") as f:
            unpacker = msgpack.Unpacker(f, raw=False, strict_map_key=False)
            try:
                for rec in unpacker:
                    if not isinstance(rec, dict) or rec.get("type") != "request":
                        continue
                    key = (rec["decoder"], rec["depth"], rec["drafting"], rec["temperature"])
                    acc = sums.setdefault(key, [0, 0, 0, 0, 0])
                    for i, ph in enumerate(PHASES):
                        acc[i] += sum(rec[ph + "_ns"])
                    acc[4] += max(0, len(rec["output_tokens"]) - 1)
            except (msgpack.exceptions.ExtraData, ValueError):
                pass  # a cut-off last record: the C report warns about it
    return sums


def plot_phases(logs, path):
    sums = phase_sums(logs)
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
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cost_model(mtpbench, logs, costs, bootstrap, path):
    """Predicted vs measured speedup per depth K (with intervals), per drafting and
    temperature, and the alpha_j curves of the deepest decoder that feed the model."""
    cmd = [mtpbench, "report", *logs, "--table", "cost-model", "--costs", costs,
           "--format", "json", "--bootstrap", str(bootstrap)]
    doc = json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout)
    rows = [dict(r, temperature=val(r["temperature"])[0], depth=val(r["depth"])[0])
            for r in doc["tables"]["cost-model"]["rows"]
            if r.get("category") == "all" and r.get("drafting") in DRAFT_STYLE]
    temps = sorted({r["temperature"] for r in rows})
    fig, axes = plt.subplots(2, len(temps), figsize=(6 * len(temps), 8), squeeze=False)
    for ti, t in enumerate(temps):
        ax = axes[0][ti]
        for dr in DRAFT_STYLE:
            sel = sorted((r for r in rows if r["temperature"] == t and r["drafting"] == dr),
                         key=lambda r: r["depth"])
            ks = [r["depth"] for r in sel]
            errbar(ax, [k - 0.06 for k in ks], [r["speedup_pred"] for r in sel],
                   marker=DRAFT_MARKER[dr], linestyle=DRAFT_STYLE[dr], label="%s predicted" % dr)
            errbar(ax, [k + 0.06 for k in ks], [r["speedup_meas"] for r in sel],
                   marker=DRAFT_MARKER[dr], linestyle=DRAFT_STYLE[dr], alpha=0.5,
                   label="%s measured" % dr)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_xlabel("depth K")
        ax.set_ylabel("speedup over baseline")
        ax.set_title("T = %g: cost model vs measurement%s" %
                     (t, " (PROJECTION)" if doc.get("projection") else ""))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    rows_all = report_json(mtpbench, logs, "decoder,temperature", bootstrap)
    for ti, t in enumerate(temps):
        ax = axes[1][ti]
        for dr in DRAFT_STYLE:
            sel = [r for r in rows_all
                   if val(r.get("temperature"))[0] == t and r.get("drafting") == dr]
            if not sel:
                continue
            deep = max(sel, key=lambda r: r["depth"])
            js = list(range(1, deep["depth"] + 1))
            errbar(ax, js, [deep.get("alpha_%d" % j) for j in js], marker=DRAFT_MARKER[dr],
                   linestyle=DRAFT_STYLE[dr], label="%s (%s)" % (dr, deep["decoder"]))
        ax.set_xlabel("draft position j")
        ax.set_ylabel("alpha_j (conditional acceptance)")
        ax.set_title("T = %g: the acceptance the model uses" % t)
        ax.set_ylim(0, 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tree_kind(shape):
    """'chain', 'static' or 'dynamic' from the tree view's shape column (None: baseline)."""
    if shape.startswith("chain:"):
        return "chain"
    if shape.startswith("dynamic:"):
        return "dynamic"
    return "static" if shape != "-" else None


def plot_tree(mtpbench, logs, path):
    """tree_ablation.png; returns False (nothing written) when no log has tree decoders."""
    cmd = [mtpbench, "report", *logs, "--format", "json", "--table", "tree"]
    rows = json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout)["rows"]
    if not any(tree_kind(r["shape"]) in ("static", "dynamic") for r in rows):
        return False
    temps = temperatures(rows)
    fig, axes = plt.subplots(2, len(temps), figsize=(5.5 * len(temps), 7), squeeze=False)
    colors = {"chain": "tab:blue", "static": "tab:orange", "dynamic": "tab:green"}
    for col, t in enumerate(temps):
        for row, metric in enumerate(("tau", "speedup")):
            ax = axes[row][col]
            for r in rows:
                kind = tree_kind(r["shape"])
                if r["temperature"] != t or kind is None:
                    continue
                x, y = val(r["verified"])[0], val(r[metric])[0]
                if x is None or y is None:
                    continue
                ax.scatter([x], [y], color=colors[kind], marker=DRAFT_MARKER.get(r["drafting"], "o"),
                           label="%s, %s" % (kind, r["drafting"]))
                ax.annotate(r["shape"], (x, y), fontsize=6, xytext=(3, 2), textcoords="offset points")
            ax.set_xlabel("tokens verified per step")
            ax.set_ylabel(metric)
            ax.set_title("%s, T = %g" % (metric, t))
            handles, labels = ax.get_legend_handles_labels()
            uniq = dict(zip(labels, handles))
            ax.legend(uniq.values(), uniq.keys(), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


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
    rows_all = report_json(args.mtpbench, logs, "decoder,temperature", args.bootstrap)
    rows_cat = report_json(args.mtpbench, logs, "decoder,temperature,category", args.bootstrap)
    written = [os.path.join(out, "acceptance_by_position.png"),
               os.path.join(out, "depth_tau_speedup.png")]
    plot_acceptance(rows_all, written[0])
    plot_depth(rows_all, rows_cat, written[1])
    try:
        import msgpack  # noqa: F401
        written.append(os.path.join(out, "phase_latency.png"))
        plot_phases(logs, written[-1])
    except ImportError:
        print("plots: no msgpack module: phase_latency.png skipped", file=sys.stderr)
    if plot_tree(args.mtpbench, logs, os.path.join(out, "tree_ablation.png")):
        written.append(os.path.join(out, "tree_ablation.png"))
    if args.costs:
        written.append(os.path.join(out, "cost_model.png"))
        plot_cost_model(args.mtpbench, logs, args.costs, args.bootstrap, written[-1])
    for w in written:
        print("plots: wrote %s" % w)


if __name__ == "__main__":
    main()
