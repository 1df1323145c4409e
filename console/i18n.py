"""The console's words in English and Chinese. Templates call ``t("English text", **fields)``:
the English text is the message id; ``locales/zh/*.json`` (one file per area of the console)
map it to Chinese. A test checks that every ``t("...")`` in the templates and routes has a
Chinese entry, so no page is half translated."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Translate = Callable[..., str]

LOCALES = Path(__file__).resolve().parent / "locales"


def _catalogue(language: str) -> dict[str, str]:
    """All ``locales/<language>/*.json`` files merged (one file per area of the console)."""
    merged: dict[str, str] = {}
    for file in sorted((LOCALES / language).glob("*.json")):
        merged.update(json.loads(file.read_text(encoding="utf-8")))
    return merged


ZH = _catalogue("zh")

MESSAGES: dict[str, dict[str, str]] = {"en": {}, "zh": ZH}


def translator(language: str) -> Translate:
    """``t(message, **fields)`` in ``language`` (English for an unknown message or language)."""
    catalogue = MESSAGES.get(language, {})

    def t(message: str, /, **fields: Any) -> str:
        text = catalogue.get(message, message)
        return text.format(**fields) if fields else text

    return t
