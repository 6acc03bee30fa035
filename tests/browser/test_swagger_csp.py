"""The API docs page under its Content-Security-Policy: Swagger UI still draws every operation,
and the browser reports no refused script or style (the policy allows our own files only)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import BrowserContext

from tests.fixtures.pipeline import Pipeline


def test_swagger_ui_works_under_its_policy(pipeline: Pipeline, browser: BrowserContext, artifacts: Path) -> None:
    page = browser.new_page()
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    response = page.goto(f"{pipeline.url}/schema/swagger")
    assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_selector(".opblock", state="attached")
    operations = page.locator(".opblock").count()
    page.screenshot(path=str(artifacts / "swagger.png"))
    assert operations >= 20, operations  # /track, /batch, /v1/*, /activities, /analytics/*, ...
    assert page.locator(".info .title").inner_text().startswith("StreamTrack")
    assert refused == [] and errors == []
    page.close()
