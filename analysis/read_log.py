#!/usr/bin/env python3
"""read_log.py - read an mtpbench MessagePack log (schema mtpbench-log/2, framed,
or the older unframed mtpbench-log/1), check every frame's length and CRC-32 and
every record's required keys and types (and the per-step rules of "request" and
"batch" records), and print record counts.

    /usr/bin/python3 analysis/read_log.py runs/x/log.msgpack [more logs...]

Exit status: 0 when every log is valid (a cut-off last record is only a
warning, as in the C reader; a damaged record is an error naming its byte
offset), 1 otherwise. The format is spec/log-format.md;
this script is also the worked example of reading a log from Python with the
`msgpack` package. The C tests (tests/test_log.c) are the gate for the log
format; tests/test_read_log.py checks this script's batch-record rules.
"""
import collections
import os
import struct
import sys
import zlib

from python_deps import require

(msgpack,) = require("read_log.py", ["msgpack"])

SCHEMAS = ("mtpbench-log/2", "mtpbench-log/1")
# A /2 frame header: a 3-entry map {"type": "frame", "len": uint32, "crc32": uint32}
# in a fixed 32-byte layout (spec/log-format.md, "Framing").
FRAME_A = b"\x83\xa4type\xa5frame\xa3len\xce"
FRAME_B = b"\xa5crc32\xce"
FRAME_HEADER = 32
FRAME_MAX_BODY = 1 << 30
INT = (int,)
NUM = (int, float)
STR = (str,)
NONE = (type(None),)

# type -> {key: allowed Python types}; lists are checked element-wise below.
REQUIRED = {
    "run": {
        "type": STR, "schema_version": STR, "spec": (dict,), "model": (dict,),
        "git_commit": STR + NONE, "host": STR, "cpu": STR, "gpu": STR + NONE,
        "backend": STR, "threads": INT, "start_time": STR, "start_unix_ns": INT,
    },
    "request": {
        "type": STR, "decoder": STR, "mode": STR, "depth": INT, "drafting": STR,
        "sampling_index": INT, "temperature": NUM, "top_p": NUM, "top_k": INT, "seed": INT,
        "dataset": STR, "category": STR, "prompt_id": STR, "repeat": INT,
        "prompt_tokens": INT, "output_tokens": (list,), "accepted": (list,),
        "draft_ns": (list,), "verify_ns": (list,), "accept_ns": (list,), "update_ns": (list,),
        "ttft_ns": INT, "total_ns": INT, "experts_touched": (list,) + NONE,
        "stop_reason": STR, "time_unix_ns": INT,
    },
    "batch": {
        "type": STR, "decoder": STR, "sampling_index": INT, "batch_size": INT, "depth": INT,
        "requests": (list,), "n_seqs": (list,), "tokens": (list,), "members": (list,),
        "experts_touched": (list,) + NONE, "prefill_ns": (list,), "draft_ns": (list,),
        "verify_ns": (list,), "accept_ns": (list,), "wall_ns": INT, "time_unix_ns": INT,
    },
    "resume": {"type": STR, "time": STR, "unix_ns": INT, "host": STR,
               "git_commit": STR + NONE, "requests_before": INT},
    "summary": {"type": STR, "requests": INT, "wall_ns": INT, "finished": (bool,),
                "end_time": STR, "end_unix_ns": INT},
}
MODEL_KEYS = {"dir": STR, "config_hash": STR, "num_layers": INT,
              "num_nextn_predict_layers": INT, "vocab_size": INT, "params": INT}
ENUMS = {"mode": {"baseline", "mtp", "adaptive"}, "drafting": {"none", "exact", "chain"},
         "stop_reason": {"eos", "max_tokens"}}
PER_STEP = ("draft_ns", "verify_ns", "accept_ns", "update_ns")


def check_keys(rec, spec, where):
    errors = []
    for key, types in spec.items():
        if key not in rec:
            errors.append(f"{where}: missing key '{key}'")
        elif isinstance(rec[key], bool) and bool not in types:
            errors.append(f"{where}: key '{key}': expected {types}, found bool")
        elif not isinstance(rec[key], types):
            errors.append(f"{where}: key '{key}': expected {[t.__name__ for t in types]}, "
                          f"found {type(rec[key]).__name__}")
    return errors


def check_request(rec, where):
    errors = []
    for key, allowed in ENUMS.items():
        if rec.get(key) not in allowed:
            errors.append(f"{where}: key '{key}': expected one of {sorted(allowed)}, found {rec.get(key)!r}")
    steps = len(rec["accepted"])
    for key in PER_STEP:
        if len(rec[key]) != steps:
            errors.append(f"{where}: key '{key}': {len(rec[key])} entries for {steps} steps")
    if rec["experts_touched"] is not None and len(rec["experts_touched"]) != steps:
        errors.append(f"{where}: key 'experts_touched': {len(rec['experts_touched'])} rows for {steps} steps")
    if steps and len(rec["output_tokens"]) - 1 > sum(a + 1 for a in rec["accepted"]):
        errors.append(f"{where}: more output tokens than the steps can emit")
    # Multi-turn keys (absent in older logs: turn 0, a fresh prefill).
    turn, cached = rec.get("turn", 0), rec.get("prompt_cached", 0)
    if not isinstance(turn, int) or isinstance(turn, bool) or turn < 0:
        errors.append(f"{where}: key 'turn': expected an integer >= 0, found {turn!r}")
    elif not isinstance(cached, int) or isinstance(cached, bool) or cached < 0 or \
            (cached > 0 and (turn == 0 or cached >= rec["prompt_tokens"])):
        errors.append(f"{where}: key 'prompt_cached': expected 0 <= prompt_cached < "
                      f"prompt_tokens, and 0 on turn 0, found {cached!r}")
    return errors


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_batch_steps(rec, where):
    """The per-step rules of a batch record (spec/log-format.md, "Validity of batch records")."""
    errors, b, k, off = [], rec["batch_size"], rec["depth"], 0
    members, n_req = rec["members"], len(rec["requests"])
    for s, n in enumerate(rec["n_seqs"]):
        if not is_int(n) or not 1 <= n <= b:
            return errors + [f"{where}: key 'n_seqs': step {s}: expected 1..{b}, found {n!r}"]
        t = rec["tokens"][s]
        if not is_int(t) or not n <= t <= n * (k + 1):
            errors.append(f"{where}: key 'tokens': step {s}: expected {n}..{n * (k + 1)}, found {t!r}")
        step = members[off:off + n]
        if any(not is_int(m) or not 0 <= m < n_req for m in step) or len(set(step)) != len(step):
            errors.append(f"{where}: key 'members': step {s}: expected {n} distinct indices "
                          f"0..{n_req - 1}, found {step!r}")
        off += n
    if off != len(members):
        errors.append(f"{where}: key 'members': expected sum(n_seqs) = {off} entries, "
                      f"found {len(members)}")
    return errors


def check_batch(rec, where):
    errors = []
    if not 1 <= rec["batch_size"] <= 256 or not 0 <= rec["depth"] <= 64:
        return [f"{where}: batch_size {rec['batch_size']} (1..256) or depth {rec['depth']} "
                "(0..64) out of range"]
    for i, q in enumerate(rec["requests"]):
        if not isinstance(q, dict) or not isinstance(q.get("dataset"), str) or \
                not isinstance(q.get("prompt_id"), str) or not is_int(q.get("repeat")) or \
                q["repeat"] < 0:
            errors.append(f"{where}: key 'requests': element {i}: expected dataset, prompt_id "
                          "and repeat >= 0")
    steps = len(rec["n_seqs"])
    for key in ("tokens", "prefill_ns", "draft_ns", "verify_ns", "accept_ns"):
        if len(rec[key]) != steps:
            errors.append(f"{where}: key '{key}': {len(rec[key])} entries for {steps} steps")
    ex = rec["experts_touched"]
    if ex is not None and (len(ex) != steps or any(
            not isinstance(row, list) or len(row) != len(ex[0]) for row in ex)):
        errors.append(f"{where}: key 'experts_touched': expected {steps} rows of equal length")
    return errors + (check_batch_steps(rec, where) if not errors else [])


def check_record(rec, index, offset):
    where = f"record {index} (byte {offset})"
    if not isinstance(rec, dict) or not isinstance(rec.get("type"), str):
        return None, [f"{where}: expected a map with a string 'type'"]
    kind = rec["type"]
    if index == 0 and kind != "run":
        return kind, [f"{where}: first record is '{kind}', expected 'run'"]
    if kind not in REQUIRED:
        return kind, []  # a newer writer's record type: readers skip it
    errors = check_keys(rec, REQUIRED[kind], where)
    if errors:
        return kind, errors
    if kind == "run":
        errors += check_keys(rec["model"], MODEL_KEYS, where + " model")
        if rec["schema_version"] not in SCHEMAS:
            errors.append(f"{where}: schema_version {rec['schema_version']!r}, expected one of {SCHEMAS}")
    elif kind == "request":
        errors += check_request(rec, where)
    elif kind == "batch":
        errors += check_batch(rec, where)
    return kind, errors


def frame_status(data, off):
    """'ok', 'cut' (a well-formed start the end of the file cuts off), 'header' or 'crc'."""
    head = data[off:off + FRAME_HEADER]
    if not FRAME_A.startswith(head[:17]) or not FRAME_B.startswith(head[21:28]):
        return "header", 0
    if len(head) < 21:
        return "cut", 0
    (n,) = struct.unpack(">I", head[17:21])
    if n == 0 or n > FRAME_MAX_BODY:
        return "header", 0
    if len(head) < FRAME_HEADER or len(data) - off - FRAME_HEADER < n:
        return "cut", n
    (crc,) = struct.unpack(">I", head[28:32])
    body = data[off + FRAME_HEADER:off + FRAME_HEADER + n]
    return ("ok" if zlib.crc32(body) == crc else "crc"), n


def resync(data, start):
    """Offset of the next frame at >= START that is intact or cut only by the end; None."""
    at = data.find(FRAME_A, start)
    while at >= 0:
        if frame_status(data, at)[0] in ("ok", "cut"):
            return at
        at = data.find(FRAME_A, at + 1)
    return None


def read_framed(path, data):
    """Yield (offset, record) of a /2 log; raise ValueError on damage; return the cut tail size."""
    off = 0
    while off < len(data):
        status, n = frame_status(data, off)
        later = resync(data, off + 1) if status != "ok" else None
        if status == "cut" and later is None:
            return len(data) - off
        if status == "ok":
            try:
                rec = msgpack.unpackb(data[off + FRAME_HEADER:off + FRAME_HEADER + n], raw=False,
                                      strict_map_key=False)
            except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError) as e:
                raise ValueError(f"{path}: damaged record at byte offset {off}: its body passes "
                                 f"the checksum but is not one MessagePack object ({e})")
            yield off, rec
            off += FRAME_HEADER + n
            continue
        what = {"cut": "its length runs past the records after it", "crc": "checksum mismatch",
                "header": "not a frame header"}[status]
        follow = f"; intact records follow at offset {later}" if later is not None else ""
        raise ValueError(f"{path}: damaged record at byte offset {off} ({what}){follow}: "
                         "not a cut-off tail")
    return 0


def read_bare(path, f, size):
    """Yield (offset, record) of a /1 log (bare maps); return the cut tail size."""
    unpacker = msgpack.Unpacker(f, raw=False, strict_map_key=False)
    offset = 0
    while True:
        try:
            rec = unpacker.unpack()
        except msgpack.OutOfData:
            return size - offset  # bytes of a cut-off last record (0 if none)
        except (msgpack.FormatError, msgpack.StackError, ValueError) as e:
            raise ValueError(f"{path}: bytes at offset {offset} are not MessagePack ({e})")
        yield offset, rec
        offset = unpacker.tell()


def read_log(path):
    """Yield (offset, record); raise ValueError on damage. Returns the partial tail size."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        data = f.read()
        if data and (FRAME_A.startswith(data[:17]) or FRAME_A in data):
            return (yield from read_framed(path, data))
        f.seek(0)
        return (yield from read_bare(path, f, size))


def summarize(path):
    counts = collections.Counter()
    per_decoder = collections.defaultdict(lambda: [0, 0, 0])  # requests, tokens, steps
    errors = []
    reader = read_log(path)
    index = 0
    partial = 0
    try:
        while True:
            offset, rec = next(reader)
            kind, errs = check_record(rec, index, offset)
            errors += errs
            counts[kind] += 1
            if kind == "request" and not errs:
                d = per_decoder[rec["decoder"]]
                d[0] += 1
                d[1] += max(len(rec["output_tokens"]) - 1, 0)
                d[2] += len(rec["accepted"])
            index += 1
    except StopIteration as stop:
        partial = stop.value or 0
    except ValueError as e:
        errors.append(str(e))
    print(f"{path}: {index} records: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=str)))
    for name, (n, tokens, steps) in sorted(per_decoder.items()):
        tau = tokens / steps if steps else float("nan")
        print(f"  {name}: {n} requests, {steps} steps, tau {tau:.3f}")
    if partial:
        print(f"  warning: the last record is cut off ({partial} bytes after the last whole record)")
    if counts["summary"] == 0:
        print("  note: no summary record (run unfinished or still running)")
    for e in errors:
        print(f"  ERROR {e}")
    return not errors


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 1
    ok = all([summarize(p) for p in argv[1:]])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
