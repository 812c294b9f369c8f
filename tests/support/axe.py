"""axe-core, the accessibility engine, run on a page in the browser tests.

axe-core is the npm package, installed by `make test` (the Makefile's ``axe`` target: ``npm install
--prefix .venv/axe axe-core@<pinned>``, Node and npm from Debian when missing). Playwright evaluates
its source in the page through the DevTools protocol, which a page's Content-Security-Policy does
not govern, so the pages under test keep their own policy (``script-src 'self'``)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / ".venv" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
#: what must never be found: axe's two worst impact levels
BLOCKING = ("serious", "critical")


def require_axe() -> None:
    """Skip the calling test module when axe-core is not installed."""
    if not AXE.is_file():
        pytest.skip(f"{AXE} is not installed (make test installs it)", allow_module_level=True)


@functools.cache
def _source() -> str:
    return AXE.read_text(encoding="utf-8")


async def violations(page: Any, impacts: tuple[str, ...] = BLOCKING) -> list[dict[str, Any]]:
    """axe's violations of WCAG 2.x A and AA (and best practice) on the page as it is now, of the
    given impact levels: each ``{id, impact, help, targets}``."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(_source())
    found: list[dict[str, Any]] = await page.evaluate(
        """async () => {
            const result = await axe.run(document, {
                runOnly: {
                    type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"],
                },
                resultTypes: ["violations"],
            });
            return result.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => n.target.join(" ")),
            }));
        }"""
    )
    return [v for v in found if v["impact"] in impacts]


async def version(page: Any) -> str:
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(_source())
    return str(await page.evaluate("axe.version"))
