"""``facevox serve`` end to end in headless Chromium (Debian ``chromium`` + ``chromium-driver``,
driven by Selenium): add two people, upload faces and voices, write the script, watch the progress,
and play the result; then a script naming someone with no references shows the error."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from curate_fixtures import have_espeak
from pipeline_fixtures import make_inputs
from serve_fixtures import running_server

webdriver = pytest.importorskip("selenium.webdriver")
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [
    pytest.mark.skipif(not have_espeak(), reason="needs espeak-ng"),
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian chromium + chromium-driver"),
]


def _browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(a)
    return webdriver.Chrome(options=opts, service=Service(executable_path=DRIVER))


def test_page_generates_and_plays_a_two_person_clip(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    inputs = make_inputs(tmp_path / "inputs")
    with running_server(tmp_path) as (url, runner):
        driver = _browser()
        try:
            driver.get(url + "/")
            driver.find_element(By.ID, "add-person").click()
            rows = driver.find_elements(By.CSS_SELECTOR, "#people .person")
            assert len(rows) == 2
            for row, name, faces in (
                (rows[0], "alice", [inputs["alice.png"], inputs["bob.png"]]),
                (rows[1], "bob", [inputs["bob.png"]]),
            ):
                row.find_element(By.CLASS_NAME, "name").send_keys(name)
                row.find_element(By.CLASS_NAME, "faces").send_keys("\n".join(str(f) for f in faces))
                row.find_element(By.CLASS_NAME, "voice").send_keys(str(inputs[f"{name}.wav"]))
            driver.find_element(By.ID, "script").send_keys("[alice] Hello there. [bob] Hi!")
            steps = driver.find_element(By.ID, "steps")
            steps.clear()
            steps.send_keys("3")
            driver.find_element(By.ID, "generate").click()

            seen: set[str] = set()  # the status texts the page went through

            def finished(d) -> bool:
                text = d.find_element(By.ID, "status").text
                seen.add(text)
                return text == "done" or text.startswith("error")

            WebDriverWait(driver, 180, poll_frequency=0.1).until(finished)
            assert driver.find_element(By.ID, "status").text == "done", seen
            assert any(t.startswith("running (step") for t in seen) or "queued" in seen, seen
            assert driver.find_element(By.ID, "progress").get_attribute("value") == "3"
            video = driver.find_element(By.ID, "video")
            src = video.get_attribute("src")
            assert src.startswith(url + "/jobs/") and src.endswith("/clip.mp4")
            # the browser loads the mp4 (metadata: the clip's duration; 1 s at 10 fps -> 9 frames)
            duration = WebDriverWait(driver, 30).until(
                lambda d: d.execute_script(
                    "const v = document.getElementById('video');"
                    "return v.readyState >= 1 ? v.duration : (v.error ? -v.error.code : null);"
                )
            )
            assert duration == pytest.approx(0.9, abs=0.25), duration
            side = json.loads(
                urllib.request.urlopen(driver.find_element(By.ID, "sidecar").get_attribute("href")).read()
            )
            assert [p["name"] for p in side["people"]] == ["alice", "bob"]
            assert [len(p["faces"]) for p in side["people"]] == [2, 1]
            assert side["config"]["steps"] == 3

            # a speaker with no person: the page shows the pipeline's error, nothing is queued
            jobs = len(runner.jobs)
            script = driver.find_element(By.ID, "script")
            script.clear()
            script.send_keys("[carol] Who am I?")
            driver.find_element(By.ID, "generate").click()
            WebDriverWait(driver, 30).until(
                lambda d: d.find_element(By.ID, "status").text.startswith("error")
            )
            assert "carol" in driver.find_element(By.ID, "status").text
            assert len(runner.jobs) == jobs
        finally:
            driver.quit()
