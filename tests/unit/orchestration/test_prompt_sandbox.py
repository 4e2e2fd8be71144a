"""The prompt sandbox: internals, imports and the bounds on work, time and size are refused; ordinary
templates render."""

from __future__ import annotations

import time

import pytest

from strata.orchestration.sandbox import SANDBOX, RenderError, UnsafeTemplate, render_bounded


def _render(source: str, **variables: object) -> str:
    return render_bounded([SANDBOX.compile_bounded(source)], variables)[0]


def test_ordinary_templates_render() -> None:
    source = (
        "Hello {{ name|title }} ({{ 'id-' ~ 123456789 }}): {% for x in items %}{{ loop.index }}={{ x }};{% endfor %}"
        "{{ '%s-%03d' % ('a', 7) }} {{ '{}:{:>3}'.format('b', 'c') }} {{ (2 ** 10) * 3 }} {{ 'ab' * 2 }}"
        "{% for k, v in data|dictsort %}{{ k }}{{ v }}{% endfor %}{{ 'a-b'|replace('-', '+') }}"
    )
    text = _render(source, name="ann lee", items=["x", "y"], data={"b": 2, "a": 1})
    assert text == "Hello Ann Lee (id-123456789): 1=x;2=y;a-007 b:  c 3072 ababa1b2a+b"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ namespace.__init__ }}",
        "{% set items = [1] %}{{ items.append(2) }}",
        "{{ {}.update(a=1) }}",
    ],
)
def test_internals_and_mutation_are_refused(source: str) -> None:
    with pytest.raises(UnsafeTemplate, match="unsafe"):
        _render(source)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{% import 'os' as os %}", "cannot import"),
        ("{% include 'other' %}", "cannot import"),
        ("{% extends 'base' %}", "cannot import"),
        ("{{ _strata_iter([1]) }}", "reserved"),
    ],
)
def test_imports_and_the_sandbox_helpers_are_refused_at_compile_time(source: str, reason: str) -> None:
    with pytest.raises(UnsafeTemplate, match=reason):
        SANDBOX.compile_bounded(source)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "loop iterations"),
        ("{% for a in xs %}{% for b in xs %}{% for c in xs %}{% endfor %}{% endfor %}{% endfor %}", "loop"),
        ("{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}", "time bound|calls"),
        ("{{ 'x' * 1000000000 }}", "repetition"),
        ("{{ [1, 2] * 100000000 }}", "repetition"),
        ("{{ 9 ** 999999 }}", "exponent"),
        ("{{ 'x'.ljust(1000000000) }}", "argument"),
        ("{{ '{:>999999999}'.format(1) }}", "format width"),
        ("{{ '%999999999s' % 1 }}", "format width"),
        ("{% set a = 'x' * 1000 %}" + "{% set a = a ~ a %}" * 12 + "{{ a }}", "longer than"),
        ("{% set a = 'x' * 1000 %}" + "{% set a = a + a %}" * 12 + "{{ a }}", "longer than"),
        ("{{ ('x' * 60000)|replace('x', 'yyyyyyy') }}", "replace"),
        ("{% for i in range(100000) %}xxxxxxxxxx{% endfor %}", "longer than"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursed|calls|time"),
    ],
)
def test_work_and_size_are_bounded(source: str, reason: str) -> None:
    started = time.perf_counter()
    with pytest.raises(UnsafeTemplate, match=reason):
        _render(source, xs=list(range(1000)))
    # Stopped by a bound, not by finishing: a generous ceiling (shared CI cores), far below the
    # minutes or gigabytes each template would otherwise take.
    assert time.perf_counter() - started < 5.0


def test_filters_that_only_expand_text_are_removed() -> None:
    for source in ("{{ 'x'|center(1000000000) }}", "{{ 'x'|indent(1000000000) }}", "{{ 'x'|format }}"):
        with pytest.raises(Exception, match="No filter named"):
            SANDBOX.compile_bounded(source)


def test_undefined_values_are_errors_not_blanks() -> None:
    with pytest.raises(RenderError, match="'missing' is undefined"):
        _render("Hello {{ missing }}")


def test_the_output_bound_spans_every_message_of_a_render() -> None:
    half = SANDBOX.compile_bounded("{{ 'x' * 600 }}")
    assert render_bounded([half], {}, max_output_chars=1000) == ["x" * 600]
    with pytest.raises(UnsafeTemplate, match="longer than 1000"):
        render_bounded([half, half], {}, max_output_chars=1000)


def test_a_template_cannot_render_outside_its_bounds() -> None:
    template = SANDBOX.compile_bounded("{% for x in [1] %}{{ x }}{% endfor %}")
    with pytest.raises(UnsafeTemplate, match="outside its bounds"):
        template.render()
