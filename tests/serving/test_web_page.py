"""The page at ``/`` in a real headless Chromium against a live server on an artifact with real posters.

Screenshots of each step are written to the test's tmp dir and, when ``FUSIONREC_TEST_ARTIFACTS`` is set (CI),
to that directory as well.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from serving_helpers import NEW_MOVIE, LiveServer, copy_artifact, new_movie_content

from fusionrec.serving.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
API_KEY = "page-test-key"


class RequireBearer:
    """Answer 401 to API calls without ``Authorization: Bearer <key>`` (the page itself stays open)."""

    def __init__(self, app, key: str) -> None:
        self.app, self.key = app, key
        self.seen: list[tuple[str, str | None]] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            auth = dict(scope.get("headers", [])).get(b"authorization")
            self.seen.append((path, auth.decode() if auth else None))
            if path != "/" and not path.startswith("/web/static/") and auth != f"Bearer {self.key}".encode():
                body = b'{"detail":"missing or wrong API key"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


@contextmanager
def guarded_server(path: Path):
    guard = RequireBearer(create_app(path), API_KEY)
    with LiveServer(guard) as srv:
        yield srv, guard


@pytest.fixture
def browser():
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.fail(
            "headless browser tests need Debian's chromium and chromium-driver (apt-get install them)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="fusionrec-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1800",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Shots:
    def __init__(self, driver, tmp_path: Path) -> None:
        self.driver = driver
        self.dirs = [tmp_path / "screens"]
        if os.environ.get("FUSIONREC_TEST_ARTIFACTS"):
            self.dirs.append(Path(os.environ["FUSIONREC_TEST_ARTIFACTS"]) / "web-page")
        for d in self.dirs:
            d.mkdir(parents=True, exist_ok=True)
        self.taken: list[Path] = []

    def __call__(self, name: str) -> None:
        png = self.driver.get_screenshot_as_png()
        for d in self.dirs:
            (d / f"{name}.png").write_bytes(png)
        self.taken.append(self.dirs[0] / f"{name}.png")


def _wait(driver, css: str, timeout: float = 60):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))


def _images_loaded(driver, container: str, timeout: float = 60) -> list[int]:
    """naturalWidth of every <img> in ``container`` once all of them finished loading (or failed)."""
    from selenium.webdriver.support.ui import WebDriverWait

    script = (
        "const imgs=[...document.querySelectorAll(arguments[0]+' img')];"
        "return imgs.length && imgs.every(i=>i.complete && i.src) ? imgs.map(i=>i.naturalWidth) : null;"
    )
    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(script, container))


def _click(driver, css: str) -> None:
    from selenium.webdriver.common.by import By

    node = driver.find_element(By.CSS_SELECTOR, css)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", node)
    node.click()


def test_page_in_headless_chromium(browser, movies_vbpr_template, tmp_path, shared_data):
    from selenium.webdriver.common.by import By

    path = copy_artifact(movies_vbpr_template, tmp_path)
    with guarded_server(path) as (srv, guard):
        shots = Shots(browser, tmp_path)
        browser.get(srv.url + "/")
        # without the key the API refuses, and the page says so
        _wait(browser, "#status.error")
        assert "API key" in browser.find_element(By.ID, "status").text
        browser.find_element(By.ID, "api-key").send_keys(API_KEY)
        _click(browser, "#key-form button")
        _wait(browser, "#user-list[data-state=ready] button.user")
        assert browser.execute_script("return sessionStorage.getItem('fusionrec.apiKey')") == API_KEY

        # pick a user: history and recommendations with real posters, explanation bars per part
        browser.find_element(By.ID, "user-search").send_keys("1")
        _wait(browser, "#user-list button[data-user-id='1']")
        _click(browser, "#user-list button[data-user-id='1']")
        _wait(browser, "#history[data-state=ready] .card")
        _wait(browser, "#recs[data-state=ready] .card")
        history_widths = _images_loaded(browser, "#history")
        rec_widths = _images_loaded(browser, "#recs")
        assert len(history_widths) >= 10 and min(history_widths) > 0
        assert len(rec_widths) >= 10 and min(rec_widths) > 0
        parts = {b.get_attribute("data-part") for b in browser.find_elements(By.CSS_SELECTOR, "#recs .bar")}
        assert {"image", "text", "collaborative"} <= parts
        shots("1-user")

        # click a recommendation: similar items by the model and by each modality
        first = browser.find_element(By.CSS_SELECTOR, "#recs .card").get_attribute("data-item-id")
        _click(browser, "#recs .card")
        _wait(browser, "#similar[data-state=ready]")
        for row in ("all", "image", "text"):
            cards = browser.find_elements(By.CSS_SELECTOR, f"#similar-{row} .card")
            assert len(cards) >= 5, row
            assert first not in {c.get_attribute("data-item-id") for c in cards}
        assert min(_images_loaded(browser, "#similar-image")) > 0
        assert browser.find_element(By.ID, "item-title").text
        shots("2-similar")

        # fold-in: two history items into the basket, recommendations for that new user
        history_ids = [
            c.get_attribute("data-item-id") for c in browser.find_elements(By.CSS_SELECTOR, "#history .card")
        ]
        for item in history_ids[:2]:
            _click(browser, f"#history .card[data-item-id='{item}'] .plus")
        chips = [
            c.get_attribute("data-item-id")
            for c in browser.find_elements(By.CSS_SELECTOR, "#fold-basket .chip")
        ]
        assert chips == history_ids[:2]
        _click(browser, "#fold-go")
        _wait(browser, "#fold-recs[data-state=ready] .card")
        folded = {
            c.get_attribute("data-item-id")
            for c in browser.find_elements(By.CSS_SELECTOR, "#fold-recs .card")
        }
        assert folded and not folded & set(history_ids[:2])
        shots("3-fold-in")

        # a new item (poster + text): it is added, shown (as a text card: the upload is featurised, not kept)
        # and listed with the users it now reaches
        movie = new_movie_content(shared_data)
        poster = tmp_path / "upload.jpg"
        poster.write_bytes(movie["image"])
        browser.find_element(By.ID, "new-id").send_keys(NEW_MOVIE)
        browser.find_element(By.ID, "new-title").send_keys(movie["title"])
        browser.find_element(By.ID, "new-text").send_keys(movie["text"])
        browser.find_element(By.ID, "new-image").send_keys(str(poster))
        _click(browser, "#new-go")
        card = _wait(browser, f"#new-item-result[data-state=ready] .card[data-item-id='{NEW_MOVIE}']")
        assert card.find_elements(By.CSS_SELECTOR, ".placeholder")
        assert "Toy Story 3" in card.text
        assert "image + text" in card.text
        audience = browser.find_elements(By.CSS_SELECTOR, "#audience button.user")
        browser.execute_script("document.querySelector('#fold-panel').scrollIntoView();")
        shots("4-new-item")
        with srv.client(headers={"Authorization": f"Bearer {API_KEY}"}) as client:
            info = client.get(f"/items/{NEW_MOVIE}").json()
            assert info["added"] is True
            reach = client.get(f"/web/items/{NEW_MOVIE}/audience", params={"k": 12}).json()
        assert len(audience) == min(20, reach["reached"])
        if audience:  # a reached user's recommendations now hold the new item
            _click(browser, "#audience button.user")
            _wait(browser, f"#recs[data-state=ready] .card[data-item-id='{NEW_MOVIE}']")

    # every API call the page made carried the key once it was given
    first_keyed = next(j for j, (_, auth) in enumerate(guard.seen) if auth)
    after_key = guard.seen[first_keyed:]
    api_calls = [(p, a) for p, a in after_key if p != "/" and not p.startswith("/web/static/")]
    assert api_calls and all(a == f"Bearer {API_KEY}" for _, a in api_calls)
    assert any(p.endswith("/image") for p, _ in api_calls)
    assert all(p.stat().st_size > 10_000 for p in shots.taken)
