"""Privacy modes in the browser: aggregate_only (no grid; hidden below k faces), off, and an
analyst's history view without per-student data."""

from __future__ import annotations

from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from contract import FrameMessage, Probs
from tests.browser.conftest import (
    Admin,
    ApiProcess,
    Publisher,
    frame_message,
    probs_from,
    screenshot,
)
from tests.browser.test_dashboard_live import SEATS, login, setup_classroom, text_of, wait

pytestmark = pytest.mark.browser

BORED = probs_from({"boredom": 0.6})


def test_aggregate_only_hides_students_and_small_groups_and_off_says_so(
    api_process: ApiProcess, admin: Admin, browser: Any, redis_url: str
) -> None:
    driver = browser
    room, camera = setup_classroom(admin, "aggregate_only")
    sess = admin.call("POST", "/sessions", json={"classroom_id": room, "title": "Quiet study"})
    teacher, password = admin.user("teacher", room)
    login(driver, api_process, teacher, password)
    Select(driver.find_element(By.ID, "pick-classroom")).select_by_value(str(room))
    wait(driver, "running session listed", lambda d: "Quiet study" in text_of(d, "pick-session"))
    driver.find_element(By.ID, "open-live").click()
    wait(driver, "live", lambda d: text_of(d, "live-connection") == "Live")

    faces = {"n": 6}

    def make(seq: int) -> FrameMessage:
        seen: dict[str | None, Probs] = {code: BORED for code in SEATS[: faces["n"]]}
        return frame_message(camera, seq, seen)

    with Publisher(redis_url, make, period_s=0.5):
        wait(driver, "class figure", lambda d: "boredom 60%" in text_of(d, "class-now"))
        assert not driver.find_element(By.ID, "seat-section").is_displayed()
        assert driver.find_element(By.ID, "privacy-aggregate").is_displayed()
        assert text_of(driver, "face-count") == "6"
        assert not driver.find_elements(By.CSS_SELECTOR, "[data-student]")
        screenshot(driver, "live-aggregate-only")
        faces["n"] = 2  # below k = 5: the class figure is hidden
        wait(
            driver,
            "hidden notice",
            lambda d: d.find_element(By.ID, "privacy-hidden").is_displayed(),
        )
        assert "hidden (too few faces)" in text_of(driver, "class-now")
        assert "%" not in text_of(driver, "class-now")
        screenshot(driver, "live-aggregate-below-k")

    # Stop from the page (two steps), then an `off` session says inference is off.
    stop = driver.find_element(By.ID, "live-stop")
    stop.click()
    wait(driver, "confirm", lambda d: "Confirm" in text_of(d, "live-stop"))
    stop.click()
    wait(driver, "stopped", lambda d: "Session stopped." in text_of(d, "live-message"))
    off = admin.call(
        "POST", "/sessions", json={"classroom_id": room, "title": "Exam", "privacy_mode": "off"}
    )
    driver.get(f"{api_process.base}/dashboard/#/live/{off['id']}")
    wait(driver, "off notice", lambda d: d.find_element(By.ID, "privacy-off").is_displayed())
    assert "Emotion inference is off" in text_of(driver, "privacy-off")
    assert not driver.find_element(By.ID, "class-section").is_displayed()
    assert not driver.find_element(By.ID, "seat-section").is_displayed()
    screenshot(driver, "live-off")

    # An analyst sees the history of the first session as aggregates only.
    driver.find_element(By.ID, "logout").click()
    analyst, password = admin.user("analyst", None)
    login(driver, api_process, analyst, password)
    assert not driver.find_element(By.ID, "start-box").is_displayed()
    assert not driver.find_element(By.ID, "open-live").is_displayed()
    driver.get(f"{api_process.base}/dashboard/#/history/{room}/{sess['id']}")
    wait(
        driver,
        "history",
        lambda d: d.find_element(By.ID, "history-root").get_attribute("data-loaded") == sess["id"],
    )
    assert "Class only" in text_of(driver, "share-note")
    rows = driver.find_elements(By.CSS_SELECTOR, "#share-table tr")
    assert [r.text.split()[0] for r in rows] == ["class"]
    # Boredom dominated every stored second that had >= k faces.
    assert rows[0].text.endswith("0% 0% 0% 100% 0% 0% boredom")
    screenshot(driver, "history-analyst-aggregate")
