#!/usr/bin/env python3
"""test_read_log.py - analysis/read_log.py checks "batch" records as spec/log-format.md
("Validity of batch records") states: the fixture tests/fixtures/logs/v2-batch.msgpack passes,
and each hostile edit of one of its batch records (a member out of range or twice in a step,
more sequences than the batch size, too many verified tokens, a per-step array one short,
ragged experts rows) is an error naming the key.

    /usr/bin/python3 tests/test_read_log.py

Needs msgpack (Debian's python3-msgpack); no torch.
"""
import copy
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "analysis"))
import read_log  # noqa: E402

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "logs", "v2-batch.msgpack")


def main():
    failures = []
    recs = [r for _, r in read_log.read_log(FIXTURE)]
    batches = [r for r in recs if r.get("type") == "batch"]
    # One batch run per (sampling, decoder) at B = 2: 2 x 3 (tests/fixtures/logs/v2-batch.json).
    if len(batches) != 6:
        failures.append(f"{FIXTURE}: {len(batches)} batch records, expected 6")
    for i, r in enumerate(recs):
        errors = read_log.check_record(r, i, 0)[1]
        if errors:
            failures.append(f"{FIXTURE}: record {i}: {errors}")
    edits = [
        ("members", lambda b: b["members"].__setitem__(1, len(b["requests"]))),
        ("members", lambda b: b["members"].__setitem__(1, b["members"][0])),
        ("n_seqs", lambda b: b["n_seqs"].__setitem__(0, b["batch_size"] + 1)),
        ("tokens", lambda b: b["tokens"].__setitem__(0, b["n_seqs"][0] * (b["depth"] + 1) + 1)),
        ("verify_ns", lambda b: b["verify_ns"].pop()),
        ("experts_touched", lambda b: b["experts_touched"][1].append(1)),
    ]
    for key, edit in edits:
        b = copy.deepcopy(batches[-1])
        edit(b)
        errors = read_log.check_record(b, 5, 0)[1]
        if not any(f"'{key}'" in e for e in errors):
            failures.append(f"edit of '{key}': expected an error naming it, found {errors}")
    for f in failures:
        print("FAIL: " + f, file=sys.stderr)
    if failures:
        sys.exit(1)
    print("read_log: batch records checked; %d hostile edits refused" % len(edits))


if __name__ == "__main__":
    main()
