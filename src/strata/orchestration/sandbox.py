"""The Jinja2 sandbox prompt templates render in: no internals, no imports, bounded output and work.

``ImmutableSandboxedEnvironment`` already refuses underscore attributes (``''.__class__``), unsafe
callables and mutation of lists and dicts; there is no ``import`` statement in Jinja. What it leaves
open is cost: a template can loop, recurse or multiply strings far past any useful prompt. A Python
thread cannot be interrupted, so the time bound is enforced cooperatively, at every place a template
can spend unbounded time:

- every ``for`` loop's iterable is wrapped (an AST rewrite before compiling) in an iterator that counts
  its items against the render's step budget and checks its deadline;
- every call (macros, methods, ``range``) passes the sandbox's ``call`` hook, which does the same and
  refuses integer arguments larger than the output bound (``'x'.ljust(10**9)``);
- ``*``, ``**`` and ``+`` are intercepted and refuse results past the output bound, as does ``~``
  (string concatenation, rewritten into a checked call);
- filters that only expand text (``center``, ``indent``, ``wordwrap``, ``format``) or are random are
  removed; ``replace`` is checked;
- the output is streamed from ``Template.generate`` and cut off at ``max_output_chars``.

So the work between two checks is one bounded Python operation, and a render stops within one such
operation of its deadline. The deadline counts the thread's CPU time (``time.thread_time``), so a
render paused by a busy machine is not failed for time it did not use.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

MAX_OUTPUT_CHARS = 64_000  # one rendered template, all its messages together
MAX_STEPS = 100_000  # loop iterations and calls of one render
_CLOCK_EVERY = 0xFF  # the step count and the clock are checked every 256 steps
# CPU time of the rendering thread, not wall time: a busy machine that pauses the thread must not
# fail a template that did little work.
MAX_RENDER_MS = 50.0
MAX_EXPONENT = 64
_REMOVED_FILTERS = ("center", "indent", "wordwrap", "format", "random", "urlize", "filesizeformat")
_PRIVATE_PREFIX = "_strata"
# A width or precision in a %-format or str.format spec: '%999999999s', '{:>999999999}'.
_FORMAT_WIDTH = re.compile(r"[%:][^a-zA-Z%{}]*?(\d+)")


class RenderError(Exception):
    """A template that failed to render: undefined or wrong-typed values, or a bound it passed."""


class UnsafeTemplate(RenderError):
    """The template tried what the sandbox refuses (internals, a bound on work or size)."""


@dataclass(slots=True)
class _Budget:
    deadline: float
    steps: int
    max_chars: int

    def step(self) -> None:
        self.steps -= 1
        if self.steps & _CLOCK_EVERY == 0:  # reading a thread's CPU clock is a system call: not every step
            if self.steps < 0:
                raise UnsafeTemplate(f"the template did more than {MAX_STEPS} loop iterations and calls")
            if time.thread_time() > self.deadline:
                raise UnsafeTemplate("the template ran past its render time bound")

    def size(self, value: Any) -> Any:
        if isinstance(value, str | list | tuple) and len(value) > self.max_chars:
            raise UnsafeTemplate(f"the template built a value longer than {self.max_chars} characters")
        return value


_BUDGET: ContextVar[_Budget | None] = ContextVar("strata_template_budget", default=None)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:  # a compiled template is only ever rendered through render_bounded
        raise UnsafeTemplate("a template rendered outside its bounds")
    return budget


def _bounded_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    budget = _budget()
    for item in iterable:
        budget.step()
        yield item


def _bounded_concat(*parts: Any) -> str:
    budget = _budget()
    return budget.size("".join(str(part) for part in parts))  # type: ignore[no-any-return]


def _bounded_replace(value: Any, old: str, new: str, count: int | None = None) -> str:
    text = str(value)
    if old and len(new) > len(old) and (text.count(old) * (len(new) - len(old)) + len(text)) > _budget().max_chars:
        raise UnsafeTemplate("replace would build a value past the output bound")
    return text.replace(old, new) if count is None else text.replace(old, new, count)


def _check_widths(form: str, max_chars: int) -> None:
    if any(int(width) > max_chars for width in _FORMAT_WIDTH.findall(form)):
        raise UnsafeTemplate(f"a format width above {max_chars} is refused")


class _Bounded(NodeTransformer):
    """Routes loops and ``~`` through the budget (see the module docstring)."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Call(nodes.Name(f"{_PRIVATE_PREFIX}_iter", "load"), [node.iter], [], None, None)
        node.iter.set_lineno(node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        call = nodes.Call(nodes.Name(f"{_PRIVATE_PREFIX}_concat", "load"), list(node.nodes), [], None, None)
        call.set_lineno(node.lineno)
        return call


class PromptSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        super().__init__(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
        for name in _REMOVED_FILTERS:
            self.filters.pop(name, None)
        self.filters["replace"] = _bounded_replace
        self.globals.pop("lipsum", None)
        self.globals[f"{_PRIVATE_PREFIX}_iter"] = _bounded_iter
        self.globals[f"{_PRIVATE_PREFIX}_concat"] = _bounded_concat

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        budget.step()
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise UnsafeTemplate(f"exponents above {MAX_EXPONENT} are refused")
        if operator == "%" and isinstance(left, str):
            _check_widths(left, budget.max_chars)
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                repeats = isinstance(sequence, str | list | tuple) and isinstance(times, int)
                if repeats and len(sequence) * times > budget.max_chars:
                    raise UnsafeTemplate("repetition would build a value past the output bound")
        return budget.size(super().call_binop(context, operator, left, right))

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        if isinstance(getattr(__obj, "__self__", None), str | bytes):  # ljust, center, zfill, expandtabs...
            for value in (*args, *kwargs.values()):
                if isinstance(value, int) and not isinstance(value, bool) and abs(value) > budget.max_chars:
                    raise UnsafeTemplate(f"a string method's argument above {budget.max_chars} is refused")
        return budget.size(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:  # 'x'.format / format_map: its spec widths are checked before it runs
            _check_widths(value.__self__, _budget().max_chars)
        return wrapped

    def compile_bounded(self, source: str) -> jinja2.Template:
        """``source`` compiled with its loops and concatenations bounded; TemplateSyntaxError if it does
        not parse, UnsafeTemplate if it names the sandbox's own helpers."""
        tree = self.parse(source)
        if any(True for _ in tree.find_all((nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends))):
            raise UnsafeTemplate("a prompt template cannot import, include or extend other templates")
        for name in tree.find_all(nodes.Name):
            if name.name.startswith(_PRIVATE_PREFIX):
                raise UnsafeTemplate(f"names starting with '{_PRIVATE_PREFIX}' are reserved")
        bounded = _Bounded().visit(tree)
        code = self.compile(bounded)
        return self.template_class.from_code(self, code, self.make_globals(None), None)


SANDBOX = PromptSandbox()


def render_bounded(
    templates: list[jinja2.Template],
    variables: Mapping[str, Any],
    *,
    max_output_chars: int = MAX_OUTPUT_CHARS,
    max_render_ms: float = MAX_RENDER_MS,
) -> list[str]:
    """Each template rendered with ``variables``, all sharing one budget of steps, time and output."""
    budget = _Budget(time.thread_time() + max_render_ms / 1000, MAX_STEPS, max_output_chars)
    token = _BUDGET.set(budget)
    room, rendered = max_output_chars, []
    try:
        for template in templates:
            parts: list[str] = []
            for part in template.generate(variables):
                room -= len(part)
                if room < 0:
                    raise UnsafeTemplate(f"the rendered prompt is longer than {max_output_chars} characters")
                budget.step()
                parts.append(part)
            rendered.append("".join(parts))
    except jinja2.exceptions.SecurityError as error:
        raise UnsafeTemplate(f"the template tried an unsafe operation: {error}") from None
    except OverflowError as error:  # the sandbox's range() past its bound
        raise UnsafeTemplate(str(error)) from None
    except RecursionError:
        raise UnsafeTemplate("the template recursed too deeply") from None
    except jinja2.UndefinedError as error:
        raise RenderError(f"undefined value: {error.message}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as error:
        raise RenderError(f"{type(error).__name__}: {error}") from None
    finally:
        _BUDGET.reset(token)
    return rendered
