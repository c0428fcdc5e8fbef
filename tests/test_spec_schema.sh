#!/usr/bin/env bash
# test_spec_schema.sh - every shipped experiment spec (experiments/*.json) and the example of
# spec/experiment-spec.md validate against spec/experiment-spec.schema.json, the file their
# "$schema" names; and the schema still refuses what the parser refuses (an unknown decoder type,
# an adaptive decoder without its threshold), so a schema loosened to "anything goes" fails too.
# The validator is Debian's python3-jsonschema (scripts/install-deps.sh), run with Debian's
# interpreter, /usr/bin/python3: another python3 on PATH may lack the module.
# That the schema and spec/experiment-spec.md know every key, type and default of the parser is
# tests/test_spec_contract.c.
#
#   ctest --test-dir build -R spec_schema      (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=/usr/bin/python3
if ! "$PY" -c 'import jsonschema' 2>/dev/null; then
  echo "test_spec_schema: $PY cannot import jsonschema; expected Debian's python3-jsonschema" \
       "(scripts/install-deps.sh installs it)" >&2
  exit 1
fi

"$PY" - <<'EOF'
import copy, glob, json, re, sys
import jsonschema

SCHEMA = "spec/experiment-spec.schema.json"
schema = json.load(open(SCHEMA))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
failures = []

def check(what, spec, expect_valid=True):
    errors = sorted(validator.iter_errors(spec), key=lambda e: list(e.absolute_path))
    if expect_valid and errors:
        for e in errors[:3]:
            path = "/".join(str(p) for p in e.absolute_path) or "(top level)"
            failures.append(f"{what}: {path}: {e.message[:300]}")
    if not expect_valid and not errors:
        failures.append(f"{what}: valid against {SCHEMA}, expected it to be refused")

specs = sorted(glob.glob("experiments/*.json"))
if not specs:
    sys.exit("test_spec_schema: no experiments/*.json found (run from the repository root)")
for path in specs:
    spec = json.load(open(path))
    if spec.get("$schema") != "../spec/experiment-spec.schema.json":
        failures.append(f"{path}: \"$schema\" is {spec.get('$schema')!r}, expected "
                        "\"../spec/experiment-spec.schema.json\"")
    check(path, spec)

# The page's example is a spec too.
page = open("spec/experiment-spec.md").read()
examples = re.findall(r"```json\n(.*?)```", page, re.S)
if not examples:
    failures.append("spec/experiment-spec.md: no ```json example found")
for i, text in enumerate(examples):
    check(f"spec/experiment-spec.md example {i + 1}", json.loads(text))

# Negative controls: the schema must refuse what the parser refuses.
base = json.load(open("experiments/quick.json"))
bad = copy.deepcopy(base)
bad["decoders"].append({"type": "adaptiv", "depth": 2, "threshold": 0.5})
check("quick.json with decoder type \"adaptiv\"", bad, expect_valid=False)
bad = copy.deepcopy(base)
bad["decoders"].append({"type": "adaptive", "depth": 2})
check("quick.json with an adaptive decoder without threshold", bad, expect_valid=False)
bad = copy.deepcopy(base)
bad["max_prompt"] = 3
check("quick.json with unknown key max_prompt", bad, expect_valid=False)

for f in failures:
    print("test_spec_schema: " + f, file=sys.stderr)
if failures:
    sys.exit(1)
print(f"test_spec_schema: {len(specs)} shipped specs and {len(examples)} example(s) valid; "
      "3 bad specs refused")
EOF
