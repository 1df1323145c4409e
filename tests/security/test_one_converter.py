"""No Temporal client, environment or replayer is built without the encrypting converter."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = {".venv", "var", ".git", "node_modules"}
FACTORY = "workflows/client.py"  # connect(): the one place a client connects
CONVERTER = "security/codec.py"  # data_converter(): the one converter
SELF = "tests/security/test_one_converter.py"
OPT_OUT = "raw: no codec on purpose"  # a test proving a codec-less client sees only ciphertext
BUILDERS = {"Client", "Replayer", "start_local", "start_time_skipping"}


def _sources() -> list[Path]:
    return [p for p in ROOT.rglob("*.py") if not SKIP & set(p.relative_to(ROOT).parts)]


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr if func.attr != "connect" else f"{ast.unparse(func.value)}.connect"
    return func.id if isinstance(func, ast.Name) else ""


def test_every_client_replayer_and_environment_uses_the_encrypting_converter() -> None:
    problems: list[str] = []
    for path in _sources():
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        if "pydantic_data_converter" in text and rel not in (CONVERTER, SELF):
            problems.append(f"{rel}: uses pydantic_data_converter directly (use data_converter)")
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Call):
                continue
            name = _name(node.func)
            where = f"{rel}:{node.lineno}"
            if name == "Client.connect" and rel != FACTORY:
                problems.append(f"{where}: Client.connect outside {FACTORY}")
            if name in BUILDERS and rel != FACTORY:
                kw = {k.arg: ast.unparse(k.value) for k in node.keywords if k.arg}
                if OPT_OUT in lines[node.lineno - 1]:
                    continue
                if name == "Client" and not node.args and not kw:
                    continue  # not a Temporal client construction (e.g. another library)
                if "data_converter" not in kw:
                    problems.append(f"{where}: {name}(...) without data_converter=")
    assert problems == [], "\n".join(problems)


def test_the_guard_sees_a_violation() -> None:
    """The scan above would catch a plain connect (so it cannot pass by finding nothing)."""
    tree = ast.parse("client = await Client.connect('x')", mode="exec")
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert [_name(c.func) for c in calls] == ["Client.connect"]
    assert len(_sources()) > 100
