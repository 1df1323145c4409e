"""The console's colours meet WCAG AA: 4.5:1 for text on its background (console.css)."""

from __future__ import annotations

import re
from pathlib import Path

CSS = Path(__file__).resolve().parents[2] / "console" / "static" / "console.css"

# (text, background) pairs the stylesheet uses together.
PAIRS = [
    ("--ink", "--paper"),
    ("--ink", "--wash"),
    ("--muted", "--paper"),
    ("--muted", "--wash"),
    ("--brand", "--paper"),
    ("--brand-ink", "--brand"),
    ("--ok", "--paper"),
    ("--warn", "--paper"),
    ("--bad", "--paper"),
    ("--brand-ink", "--bad"),  # button.danger
]


def _colours() -> dict[str, str]:
    root = re.search(r":root\s*\{(.*?)\}", CSS.read_text(), re.S)
    assert root is not None
    return dict(re.findall(r"(--[\w-]+):\s*(#[0-9a-fA-F]{6})", root.group(1)))


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_known_ratios() -> None:
    assert round(contrast("#000000", "#ffffff"), 1) == 21.0
    assert round(contrast("#777777", "#ffffff"), 2) == 4.48  # the classic just-failing grey


def test_text_colours_meet_aa() -> None:
    colours = _colours()
    low = {
        f"{fg} on {bg}": round(contrast(colours[fg], colours[bg]), 2)
        for fg, bg in PAIRS
        if contrast(colours[fg], colours[bg]) < 4.5
    }
    assert low == {}
