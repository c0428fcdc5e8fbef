"""python_deps.py - import the third-party modules of the analysis scripts, or
say which one is missing and which interpreter has them.

The scripts are meant for Debian's /usr/bin/python3 with python3-matplotlib and
python3-msgpack (scripts/install-deps.sh). Another python3 first on PATH (a
pyenv or a virtual environment) usually lacks them, and a bare ImportError
traceback does not say that.
"""
import importlib
import os
import subprocess
import sys

DEBIAN_PYTHON = "/usr/bin/python3"
DEBIAN_PACKAGE = {"matplotlib": "python3-matplotlib", "msgpack": "python3-msgpack"}


def debian_python_has(modules):
    """True when /usr/bin/python3 (another interpreter than this one) imports MODULES."""
    if not os.path.exists(DEBIAN_PYTHON) or os.path.realpath(DEBIAN_PYTHON) == \
            os.path.realpath(sys.executable):
        return False
    code = "import " + ", ".join(modules)
    return subprocess.run([DEBIAN_PYTHON, "-c", code], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def missing_message(script, missing, modules):
    """The message for MISSING (module names) out of MODULES, run as SCRIPT."""
    packages = " ".join(DEBIAN_PACKAGE.get(m, "python3-" + m) for m in missing)
    lines = ["%s: no module%s %s in %s (Python %d.%d)" %
             (script, "s" if len(missing) > 1 else "", ", ".join("'%s'" % m for m in missing),
              sys.executable, sys.version_info[0], sys.version_info[1])]
    path = sys.argv[0] if os.path.basename(sys.argv[0]) == script else script
    if debian_python_has(modules):
        lines.append("  %s has them: run  %s %s ..." % (DEBIAN_PYTHON, DEBIAN_PYTHON, path))
    else:
        lines.append("  install Debian's: apt-get install %s (scripts/install-deps.sh), then "
                     "run it with %s" % (packages, DEBIAN_PYTHON))
    lines.append("  or add them to this interpreter: %s -m pip install %s" %
                 (sys.executable, " ".join(missing)))
    return "\n".join(lines)


def require(script, modules):
    """Import MODULES (names) and return them; exit 1 with a message if any is missing."""
    found, missing = [], []
    for name in modules:
        try:
            found.append(importlib.import_module(name))
        except ImportError:
            missing.append(name)
    if missing:
        print(missing_message(script, missing, modules), file=sys.stderr)
        sys.exit(1)
    return found
