"""Constraints written the way an engineer writes them: ``defect_rate <= 0.02``, ``temp - 2*pressure <= 100``.

A constraint compares two arithmetic expressions of column names and numbers with ``<=``, ``<``,
``>=`` or ``>`` (a chain such as ``0.2 <= feed <= 0.8`` is two constraints). Allowed: ``+ - * / **``,
brackets, and ``abs exp log sqrt min max``. Column names that are not plain words go in
backticks: ```Torque [Nm]` * 2 <= 100``. The text is parsed into a syntax tree and only
these pieces are accepted, so a constraint can never run code.

Each constraint becomes ``g(columns) <= 0`` (feasible), evaluated on torch tensors so that the
optimiser can follow its gradient. Whether it limits the settings themselves (known exactly) or
a measured output (predicted, with uncertainty) is decided by the optimiser from the names.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from shopfloor.errors import BadOption

Columns = Mapping[str, torch.Tensor]
_FUNCTIONS: dict[str, Callable] = {"abs": torch.abs, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt,
                                   "min": torch.minimum, "max": torch.maximum}
_BINARY = {ast.Add: torch.add, ast.Sub: torch.sub, ast.Mult: torch.mul, ast.Div: torch.div, ast.Pow: torch.pow}
_BACKTICKED = re.compile(r"`([^`]+)`")
_SYMBOLS = {ast.LtE: "<=", ast.Lt: "<", ast.GtE: ">=", ast.Gt: ">"}


@dataclass(frozen=True)
class Constraint:
    text: str
    g: Callable[[Columns], torch.Tensor]  # feasible where g <= 0
    names: frozenset[str]
    # (column, "<=" or ">=", bound) when the constraint reads 'column <= number': then its probability has a closed form
    bound: tuple[str, str, float] | None = None

    def __call__(self, columns: Columns) -> torch.Tensor:
        return self.g(columns)


def parse_constraint(text: str) -> list[Constraint]:
    """One constraint text -> one constraint per comparison in it."""
    names: dict[str, str] = {}

    def hide(match: re.Match) -> str:
        token = f"_col{len(names)}_"
        names[token] = match.group(1).strip()  # as the reader stores header names
        return token

    source = _BACKTICKED.sub(hide, text.strip())
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError as err:
        raise BadOption(f"constraint '{text}' is not a comparison shopfloor can read ({err.msg}); "
                        f"write e.g. 'defect_rate <= 0.02' or 'temp - 2*pressure <= 100'") from None
    if not isinstance(tree, ast.Compare):
        raise BadOption(f"constraint '{text}' compares nothing: it needs <=, <, >= or >, e.g. 'defect_rate <= 0.02'")
    sides = [tree.left, *tree.comparators]
    out = []
    for left, op, right in zip(sides, tree.ops, sides[1:], strict=False):
        if type(op) not in _SYMBOLS:
            raise BadOption(f"constraint '{text}' uses '{_op_text(op)}'; only <=, <, >= and > are allowed "
                            f"(fix a setting exactly with --fixed instead of ==)")
        lhs, rhs = _compile(left, text, names), _compile(right, text, names)
        used = frozenset(_names(left, names) | _names(right, names))
        if not used:
            raise BadOption(f"constraint '{text}' names no column")
        part = text if len(tree.ops) == 1 else f"{_show(left, names)} {_SYMBOLS[type(op)]} {_show(right, names)}"
        if isinstance(op, (ast.LtE, ast.Lt)):
            g = _difference(lhs, rhs)
        else:
            g = _difference(rhs, lhs)
        out.append(Constraint(part, g, used, _bound(left, op, right, names)))
    return out


def parse_constraints(texts: list[str]) -> list[Constraint]:
    return [c for text in texts for c in parse_constraint(text)]


def _difference(a: Callable, b: Callable) -> Callable[[Columns], torch.Tensor]:
    return lambda columns: a(columns) - b(columns)


def _compile(node: ast.AST, text: str, hidden: dict[str, str]) -> Callable[[Columns], torch.Tensor]:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        value = float(node.value)
        return lambda columns: torch.tensor(value, dtype=torch.float64)
    if isinstance(node, ast.Name):
        name = hidden.get(node.id, node.id)
        return lambda columns: columns[name]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _compile(node.operand, text, hidden)
        return (lambda columns: -inner(columns)) if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        fn, a, b = _BINARY[type(node.op)], _compile(node.left, text, hidden), _compile(node.right, text, hidden)
        return lambda columns: fn(a(columns), b(columns))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS and not node.keywords:
        fn = _FUNCTIONS[node.func.id]
        arity = 2 if node.func.id in ("min", "max") else 1
        if len(node.args) != arity:
            raise BadOption(f"constraint '{text}': {node.func.id}() takes {arity} argument{'s' if arity > 1 else ''}")
        args = [_compile(a, text, hidden) for a in node.args]
        return lambda columns: fn(*(a(columns) for a in args))
    raise BadOption(f"constraint '{text}': '{_show(node, hidden)}' is not allowed; use numbers, column names, + - * / **, "
                    f"brackets and {', '.join(_FUNCTIONS)} (column names with spaces go in `backticks`)")


def _names(node: ast.AST, hidden: dict[str, str]) -> set[str]:
    called = {id(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)}
    return {hidden.get(n.id, n.id) for n in ast.walk(node) if isinstance(n, ast.Name) and id(n) not in called}


def _number(node: ast.AST) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _number(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    return None


def _bound(left: ast.AST, op: ast.cmpop, right: ast.AST, hidden: dict[str, str]) -> tuple[str, str, float] | None:
    upper = isinstance(op, (ast.LtE, ast.Lt))
    if isinstance(left, ast.Name) and _number(right) is not None:
        return hidden.get(left.id, left.id), "<=" if upper else ">=", _number(right)
    if isinstance(right, ast.Name) and _number(left) is not None:
        return hidden.get(right.id, right.id), ">=" if upper else "<=", _number(left)
    return None


def _show(node: ast.AST, hidden: dict[str, str]) -> str:
    text = ast.unparse(node)
    for token, name in hidden.items():
        text = text.replace(token, f"`{name}`")
    return text


def _op_text(op: ast.cmpop) -> str:
    words = {ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}
    return words.get(type(op), "?")
