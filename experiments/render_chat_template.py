#!/usr/bin/env python3
"""render_chat_template.py - render one conversation through a Jinja chat template,
the way Hugging Face transformers' apply_chat_template renders it (its
transformers/utils/chat_template_utils.py, _compile_jinja_template and
render_jinja_template): an ImmutableSandboxedEnvironment with trim_blocks and
lstrip_blocks, the loopcontrols extension, a {% generation %} block, and the
helpers transformers provides (raise_exception, strftime_now, tojson with its
options, dict, namespace). The template sees messages, tools = None,
documents = None, add_generation_prompt and the tokenizer's special tokens
(bos_token, eos_token, ...), as transformers passes its special_tokens_map.

One difference, on purpose: printing an undefined variable is an error here
(transformers prints nothing), so a template that needs a variable this
harness does not pass fails loudly instead of rendering a different prompt.
Testing an undefined variable (`is defined`, `if x`) behaves as in Jinja.

Called by experiments/chat_template.c, once per turn. Input (stdin): one JSON
object {"template", "messages", "add_generation_prompt", "special_tokens"}.
Output (stdout): the rendered text, UTF-8, nothing added. On failure: exit 1
and one line on stderr naming the template line, e.g.
  "template line 3: TemplateError: Conversation roles must alternate".
Needs only jinja2 >= 3.1 (Debian: python3-jinja2).
"""
import json
import sys
import traceback
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.utils
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationBlock(jinja2.ext.Extension):
    """{% generation %}...{% endgeneration %}: transformers uses it to mark the
    assistant's tokens; for rendering it is its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


class PrintedUndefined(jinja2.Undefined):
    """An undefined value that fails when printed (see the module comment)."""

    __slots__ = ()

    def __str__(self):
        self._fail_with_undefined_error()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # transformers' override: no HTML escaping, and json.dumps' options exposed
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.now().strftime(fmt)


class TemplateDict:
    # dict() and dict.fromkeys() without attribute access to the dict type
    def __call__(self, *args, **kwargs):
        return dict(*args, **kwargs)

    def fromkeys(self, *args, **kwargs):
        return dict.fromkeys(*args, **kwargs)


class TemplateNamespace(jinja2.utils.Namespace):
    # namespace() refusing underscore-prefixed attributes, as transformers does
    def __init__(*args, **kwargs):
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name, value):
        TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check_name(name):
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(
                f"namespace attributes may not start with an underscore: {name!r}")


def compile_template(text):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                       extensions=[GenerationBlock, jinja2.ext.loopcontrols],
                                       undefined=PrintedUndefined)
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.globals["dict"] = TemplateDict()
    env.globals["namespace"] = TemplateNamespace
    return env.from_string(text)


def template_line(exc):
    """The template line the error happened on, from Jinja's rewritten traceback."""
    line = getattr(exc, "lineno", None)
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == "<template>":
            line = frame.lineno
    return line


def main():
    req = json.load(sys.stdin)
    try:
        tpl = compile_template(req["template"])
        text = tpl.render(messages=req["messages"], tools=None, documents=None,
                          add_generation_prompt=bool(req.get("add_generation_prompt", True)),
                          **req.get("special_tokens", {}))
    except Exception as exc:  # any failure is the template's: report it, one line
        line = template_line(exc)
        where = f"template line {line}: " if line else ""
        msg = " ".join(str(exc).split())
        sys.stderr.write(f"{where}{type(exc).__name__}: {msg}\n")
        return 1
    sys.stdout.buffer.write(text.encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
