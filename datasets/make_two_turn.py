"""make_two_turn.py - datasets/two-turn.jsonl: two-turn conversations built from the
shipped single-turn categories, to exercise multi-turn runs (issue 29) on the base
models.

Each line pairs two held-out prompts of one category: turn 1 is prompt 2k of
the category file, turn 2 is prompt 2k+1 (another document of the same kind),
so the second turn is read with the first turn and the model's own answer to
it in the context, as Spec-Bench's MT-bench turns are. The first PAIRS pairs of
each category are taken, in file order; question_id is the first prompt's id.
Deterministic; needs only the standard library.

    python3 datasets/make_two_turn.py        # writes datasets/two-turn.jsonl
"""
import json
import pathlib

CATEGORIES = ["code", "prose", "quotes", "technical"]
PAIRS = 4

def main():
    here = pathlib.Path(__file__).resolve().parent
    lines = []
    for cat in CATEGORIES:
        rows = [json.loads(l) for l in open(here / f"{cat}.jsonl", encoding="utf-8") if l.strip()]
        for k in range(PAIRS):
            a, b = rows[2 * k], rows[2 * k + 1]
            lines.append({"question_id": a["question_id"], "category": cat,
                          "turns": [a["turns"][0], b["turns"][0]]})
    out = here / "two-turn.jsonl"
    with open(out, "w", encoding="utf-8") as f:
        for row in lines:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{out}: {len(lines)} two-turn prompts")

if __name__ == "__main__":
    main()
