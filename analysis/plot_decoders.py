"""plot_decoders.py - what kind each decoder of a log is, for the plots: which
decoders one line may join (a family: the same decoder at different depths K),
and a legend label that tells decoders apart.

The report's rows carry only the decoder name, K and the drafting, so a
draft-vocabulary variant of "exact K=1", or the adaptive decoder (chained
drafting, K up to 5), looked like the plain decoder of that K. The request
records carry the rest (spec/log-format.md): mode, draft_vocab, wiring, tree,
adaptive_rule and adaptive_threshold.
"""
import collections
import re
import sys

import read_log

Decoder = collections.namedtuple(
    "Decoder", "name depth mode drafting draft_vocab wiring tree rule threshold")


def decoder_of(rec):
    """The Decoder a request record describes."""
    wiring = rec.get("wiring")
    return Decoder(rec["decoder"], rec["depth"], rec["mode"], rec["drafting"],
                   rec.get("draft_vocab", 0), tuple(sorted(wiring.items())) if wiring else (),
                   rec.get("tree"), rec.get("adaptive_rule"), rec.get("adaptive_threshold"))


def request_records(logs):
    """Every request record of LOGS; a damaged log stops with a note (the C report says more)."""
    for path in logs:
        try:
            for _, rec in read_log.read_log(path):
                if isinstance(rec, dict) and rec.get("type") == "request":
                    yield rec
        except ValueError as e:
            print("plots: %s (records after it ignored)" % e, file=sys.stderr)


def decoders_of_logs(logs):
    """{decoder name: Decoder} from the first request of each decoder in LOGS."""
    out = {}
    for rec in request_records(logs):
        if rec["decoder"] not in out:
            out[rec["decoder"]] = decoder_of(rec)
    return out


def name_stem(d):
    """The name without its depth part ("mtp-exact-k2-v1024" -> "mtp-exact-v1024"). A name
    without "-k<K>" (one the spec chose) is its own stem, so its decoder joins no other."""
    return re.sub(r"-k%d(?=-|$)" % d.depth, "", d.name, count=1)


def family(d):
    """Decoders with equal families differ only in depth: one line may join them. Trees and
    the adaptive decoder are never joined to anything (their K is a maximum, not a depth)."""
    if d.mode != "mtp" or d.tree:
        return ("single", d.name)
    return (name_stem(d), d.mode, d.drafting, d.draft_vocab, d.wiring)


def usual_wiring(decoders):
    """{field: the value most MTP decoders use}: a label names only the fields that differ."""
    votes = collections.defaultdict(collections.Counter)
    for d in decoders:
        for field, value in d.wiring:
            votes[field][value] += 1
    return {f: c.most_common(1)[0][0] for f, c in votes.items()}


def chain_module(d):
    """The module a chain repeats when it is not module 1, from the spec's default name
    ("mtp-chain-k3-m2"): the records do not carry it. None otherwise."""
    m = re.match(r"mtp-chain-k%d-m(\d+)(?=-|$)" % d.depth, d.name)
    return m.group(1) if d.drafting == "chain" and m and m.group(1) != "1" else None


def describe(d, usual, with_depth=True):
    """A short label: drafting, K, and what sets D apart (draft vocabulary, wiring, tree)."""
    if d.mode == "baseline":
        return "baseline"
    if d.mode == "adaptive":
        text = "adaptive %s %g, K<=%d" % (d.rule or "?", d.threshold or 0, d.depth)
    else:
        text = d.drafting + (" K=%d" % d.depth if with_depth else "")
        module = chain_module(d)
        if module:
            text += ", module %s" % module
    if d.tree:
        text += ", tree %s" % d.tree
    if d.draft_vocab:
        text += ", draft vocab %d" % d.draft_vocab
    for field, value in d.wiring:
        if usual.get(field) != value:
            text += ", %s=%s" % (field, value)
    return text


def unique_labels(entries):
    """{key: label} from ENTRIES, (key, label, tag) triples, with TAG appended where two keys
    would share a label: one legend entry per line, each readable."""
    count = collections.Counter(label for _, label, _ in entries)
    return {key: label if count[label] == 1 else "%s [%s]" % (label, tag)
            for key, label, tag in entries}


def decoder_labels(decoders):
    """{name: label with K} for the decoders (Decoder values) of one plot."""
    usual = usual_wiring(decoders)
    return unique_labels([(d.name, describe(d, usual), d.name) for d in decoders])


def family_labels(decoders):
    """{family: label without K} for the families of DECODERS."""
    usual = usual_wiring(decoders)
    first = {}
    for d in sorted(decoders, key=lambda d: d.depth):
        first.setdefault(family(d), d)
    return unique_labels([(f, describe(d, usual, with_depth=f[0] == "single"), name_stem(d))
                          for f, d in first.items()])


def unknown_decoder(name, depth, drafting):
    """A Decoder for a report row whose decoder no log record describes: its own family."""
    return Decoder(name, depth or 0, "baseline" if drafting == "none" else "unknown",
                   drafting, 0, (), None, None, None)
