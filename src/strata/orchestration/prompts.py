"""A prompt template version, compiled once: its messages' Jinja sources checked and compiled, its
variables validated per request with errors that name the variable (``prompt.variables.NAME``).

Rendering makes the template's chat messages; the request's own messages follow them (see
``CompiledPrompt.messages``). Retrieval hands in ``context`` (the numbered sources, as text) and
``chunks`` (one mapping per source), which a template may place where it likes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import meta

from strata.errors import InvalidRequest
from strata.orchestration.sandbox import SANDBOX, RenderError, UnsafeTemplate, render_bounded
from strata.protocol.prompts import RESERVED_VARIABLES, PromptMessage, PromptVariable

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def type_problem(spec: PromptVariable, value: Any) -> str | None:
    """Why ``value`` is not of the variable's JSON type (a boolean is no number), else None."""
    if isinstance(value, bool) and spec.type != "boolean":
        return f"must be of type {spec.type}, got boolean"
    if not isinstance(value, _JSON_TYPES[spec.type]):
        return f"must be of type {spec.type}, got {_json_type(value)}"
    return None


def _json_type(value: Any) -> str:
    for name, types in (("null", (type(None),)), ("boolean", (bool,)), ("integer", (int,)), ("number", (float,)),
                        ("string", (str,)), ("array", (list,)), ("object", (dict,))):  # fmt: skip
        if isinstance(value, types):
            return name
    return type(value).__name__


@dataclass(frozen=True, slots=True)
class CompiledPrompt:
    prompt_id: str
    version: int
    roles: tuple[str, ...]
    templates: tuple[jinja2.Template, ...]
    variables: Mapping[str, PromptVariable]
    uses_context: bool  # the template places retrieved sources itself (names context or chunks)

    def bind(self, given: Mapping[str, Any], param: str = "prompt.variables") -> dict[str, Any]:
        """The variables a render gets: ``given`` checked against the declarations, defaults filled in.
        Unknown, missing and wrong-typed variables are InvalidRequests naming ``param.NAME``."""
        for name in given:
            if name not in self.variables:
                declared = ", ".join(sorted(self.variables)) or "none"
                raise InvalidRequest(
                    f"prompt '{self.prompt_id}' version {self.version} declares no variable '{name}' "
                    f"(declared: {declared})", param=f"{param}.{name}", code="unknown_parameter",
                )  # fmt: skip
        bound: dict[str, Any] = {}
        for name, spec in self.variables.items():
            if name in given:
                value = given[name]
                problem = None if value is None and not spec.is_required else type_problem(spec, value)
                if problem is not None:
                    raise InvalidRequest(f"variable '{name}' {problem}", param=f"{param}.{name}")
                bound[name] = value
            elif spec.default is not None:
                bound[name] = spec.default
            elif spec.is_required:
                raise InvalidRequest(
                    f"prompt '{self.prompt_id}' version {self.version} needs the variable '{name}' "
                    f"({spec.type})", param=f"{param}.{name}", code="missing_required_parameter",
                )  # fmt: skip
            else:
                bound[name] = None
        return bound

    def render(
        self, variables: Mapping[str, Any], *, context: str = "", chunks: Sequence[Mapping[str, Any]] = ()
    ) -> list[dict[str, str]]:
        """The template's messages, rendered with already-bound ``variables``: InvalidRequest (param
        ``prompt``) when the template fails or passes a sandbox bound."""
        try:
            texts = render_bounded(list(self.templates), {**variables, "context": context, "chunks": list(chunks)})
        except RenderError as error:
            kind = "refused by the sandbox" if isinstance(error, UnsafeTemplate) else "failed to render"
            raise InvalidRequest(
                f"prompt '{self.prompt_id}' version {self.version} {kind}: {error}", param="prompt",
                code="prompt_render_failed",
            ) from None  # fmt: skip
        return [{"role": role, "content": text} for role, text in zip(self.roles, texts, strict=True)]


def compile_prompt(
    prompt_id: str, version: int, messages: Sequence[PromptMessage], variables: Mapping[str, PromptVariable]
) -> CompiledPrompt:
    """Compile a version's messages; an InvalidRequest naming the message or variable that is wrong:
    a syntax error, an unsafe construct, a name that is not declared, a default of the wrong type."""
    for name, spec in variables.items():
        if name in RESERVED_VARIABLES:
            raise InvalidRequest(
                f"'{name}' is filled in by retrieval and cannot be declared", param=f"variables.{name}"
            )
        if spec.default is not None:
            problem = type_problem(spec, spec.default)
            if problem is not None:
                raise InvalidRequest(f"default {problem}", param=f"variables.{name}.default")
    templates, uses_context = [], False
    for index, message in enumerate(messages):
        param = f"messages[{index}].content"
        try:
            used = meta.find_undeclared_variables(SANDBOX.parse(message.content))
            templates.append(SANDBOX.compile_bounded(message.content))
        except jinja2.TemplateSyntaxError as error:
            raise InvalidRequest(f"template syntax error (line {error.lineno}): {error.message}", param=param) from None
        except jinja2.TemplateError as error:  # e.g. a filter the sandbox removed
            raise InvalidRequest(f"template error: {error}", param=param) from None
        except UnsafeTemplate as error:
            raise InvalidRequest(str(error), param=param) from None
        unknown = sorted(used - set(variables) - RESERVED_VARIABLES - set(SANDBOX.globals))
        if unknown:
            raise InvalidRequest(
                f"the template uses undeclared variables: {', '.join(unknown)} (declare them in 'variables')",
                param=param,
            )
        uses_context = uses_context or bool(used & RESERVED_VARIABLES)
    return CompiledPrompt(
        prompt_id, version, tuple(m.role for m in messages), tuple(templates), dict(variables), uses_context
    )
