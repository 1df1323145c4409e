"""Every text the console shows in English has a Chinese entry, so no page is half translated."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from jinja2 import nodes

from console.i18n import ZH, translator
from console.web import NAV, env

CONSOLE = Path(__file__).resolve().parents[2] / "console"


def _template_messages() -> Iterator[tuple[str, str]]:
    for file in sorted((CONSOLE / "templates").rglob("*.html")):
        tree = env.parse(file.read_text(encoding="utf-8"))
        for call in tree.find_all(nodes.Call):
            if isinstance(call.node, nodes.Name) and call.node.name == "t" and call.args:
                first = call.args[0]
                if isinstance(first, nodes.Const) and isinstance(first.value, str):
                    yield file.name, first.value


def _code_messages() -> Iterator[tuple[str, str]]:
    for file in sorted(CONSOLE.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "t"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                yield file.name, node.args[0].value


def test_every_message_has_a_chinese_entry() -> None:
    found = list(_template_messages()) + list(_code_messages())
    found += [("web.py NAV", item.label) for item in NAV]
    assert len(found) > 20  # the scan sees the templates
    missing = sorted({f"{where}: {text!r}" for where, text in found if text not in ZH})
    assert missing == []


def test_chinese_entries_keep_their_fields() -> None:
    for english, chinese in ZH.items():
        fields = {part.split("}")[0] for part in english.split("{")[1:]}
        assert fields == {part.split("}")[0] for part in chinese.split("{")[1:]}, english


def test_translator_falls_back_to_english() -> None:
    assert translator("zh")("Sign in") == "登录"
    assert translator("en")("Sign in") == "Sign in"
    assert translator("fr")("Signed in as {name}", name="Ada") == "Signed in as Ada"
    assert translator("zh")("no such message {x}", x=1) == "no such message 1"
