"""End to end in headless Chromium: log in, start a session, live tiles and chart fed by worker
messages on the Redis stream, alerts, camera status, reconnect after an API restart, history
and CSV download. Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from contract import FrameMessage, Probs
from tests.browser.conftest import (
    Admin,
    ApiProcess,
    Publisher,
    frame_message,
    probs_from,
    screenshot,
    set_camera_status,
)

pytestmark = pytest.mark.browser

FOCUSED = probs_from({"focus": 0.7})
DROWSY = probs_from({"drowsy": 0.8})
CONFUSED = probs_from({"confusion": 0.75})
SEATS = ["s01", "s02", "s03", "s04", "s05", "s06"]


def wait(driver: Any, what: str, check: Callable[[Any], Any], timeout: float = 20) -> Any:
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(check)
    except Exception as exc:
        screenshot(driver, f"failed-{what.replace(' ', '-')}", settle_s=0)
        logs = driver.get_log("browser") if hasattr(driver, "get_log") else []
        raise AssertionError(f"timed out waiting for {what}; browser log: {logs[-10:]}") from exc


def text_of(driver: Any, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def setup_classroom(admin: Admin, mode: str) -> tuple[int, str]:
    """Classroom, camera, six students (two rows of three seats), the teacher's grant."""
    room = admin.call(
        "POST", "/classrooms", json={"name": f"Room {admin.tag} {mode}", "privacy_mode": mode}
    )
    camera = f"cam-{admin.tag}-{mode[:3]}"
    admin.call(
        "POST",
        "/cameras",
        json={
            "id": camera,
            "classroom_id": room["id"],
            "name": "front",
            "source_url": "/videos/none.mp4",
        },
    )
    for code in SEATS:
        body = {"classroom_id": room["id"], "code": code}
        if code == "s01":
            body["display_name"] = "Ada"
        admin.call("POST", "/students", json=body)
    seats = []
    for i, code in enumerate(SEATS):
        x, y = 200.0 * (i % 3), 150.0 * (i // 3)
        seats.append(
            {"student": code, "polygon": [[x, y], [x + 180, y], [x + 180, y + 130], [x, y + 130]]}
        )
    admin.call("PUT", f"/cameras/{camera}/seatmap", json={"seats": seats})
    return room["id"], camera


def login(driver: Any, api: ApiProcess, username: str, password: str) -> None:
    driver.get(f"{api.base}/dashboard/")
    wait(driver, "login form", lambda d: d.find_element(By.ID, "login-user").is_displayed())
    driver.find_element(By.ID, "login-user").send_keys(username)
    driver.find_element(By.ID, "login-pass").send_keys(password, Keys.ENTER)
    wait(driver, "classroom picker", lambda d: d.find_element(By.ID, "view-pick").is_displayed())


def live_frame(camera: str) -> Callable[[int], FrameMessage]:
    """s02 drowsy, s03..s05 confused (class confusion 40 %), the rest focused."""

    def make(seq: int) -> FrameMessage:
        faces: dict[str | None, Probs] = {code: FOCUSED for code in SEATS}
        faces["s02"] = DROWSY
        faces["s03"] = faces["s04"] = faces["s05"] = CONFUSED
        return frame_message(camera, seq, faces)

    return make


def chart_points(driver: Any, canvas_id: str) -> int:
    return int(
        driver.execute_script(
            "const c = Chart.getChart(document.getElementById(arguments[0]));"
            "return c ? c.data.datasets[0].data.filter(p => p.y !== null).length : 0;",
            canvas_id,
        )
    )


def frames_seen(driver: Any) -> int:
    return int(driver.find_element(By.ID, "live-root").get_attribute("data-frames") or 0)


def test_live_session_alerts_restart_history_and_csv(
    api_process: ApiProcess, admin: Admin, browser: Any, redis_url: str
) -> None:
    driver = browser
    room, camera = setup_classroom(admin, "per_student")
    rules = {
        "rules": [
            {
                "id": "class-confusion",
                "kind": "class_share",
                "label": "confusion",
                "threshold": 0.3,
                "min_duration_s": 3,
            },
            {
                "id": "student-drowsy",
                "kind": "student_dominant",
                "label": "drowsy",
                "threshold": 0.0,
                "min_duration_s": 4,
            },
        ]
    }
    admin.call("PUT", f"/classrooms/{room}/alert-rules", json=rules)
    teacher, password = admin.user("teacher", room)
    login(driver, api_process, teacher, password)

    # Pick the classroom and start a session from the page (keyboard: the title field + Enter
    # on the focused button).
    Select(driver.find_element(By.ID, "pick-classroom")).select_by_value(str(room))
    wait(driver, "no running session", lambda d: "no running session" in text_of(d, "pick-session"))
    driver.find_element(By.ID, "start-title").send_keys("Maths 3B")
    driver.find_element(By.ID, "start-session").send_keys(Keys.ENTER)
    wait(driver, "live view", lambda d: d.current_url.split("#/live/")[-1] != d.current_url)
    session_id = driver.current_url.split("#/live/")[1]
    wait(driver, "websocket hello", lambda d: text_of(d, "live-connection") == "Live")
    set_camera_status(redis_url, camera, "running")

    with Publisher(redis_url, live_frame(camera), period_s=0.5) as pub:
        wait(
            driver,
            "tiles",
            lambda d: "focus" in d.find_element(By.CSS_SELECTOR, '[data-student="s01"]').text,
        )
        tile = driver.find_element(By.CSS_SELECTOR, '[data-student="s01"]')
        assert "Ada" in tile.text  # display name where set
        assert "70%" in tile.text  # dominant emotion with its confidence
        drowsy = driver.find_element(By.CSS_SELECTOR, '[data-student="s02"]')
        wait(driver, "drowsy tile", lambda d: drowsy.get_attribute("data-dominant") == "drowsy")
        # Seat grid laid out like the seat map: two rows of three.
        rows = {
            s: driver.find_element(By.CSS_SELECTOR, f'[data-student="{s}"]').location["y"]
            for s in SEATS
        }
        assert rows["s01"] == rows["s02"] == rows["s03"] < rows["s04"] == rows["s05"] == rows["s06"]
        wait(driver, "face count", lambda d: text_of(d, "face-count") == "6")
        wait(driver, "camera running", lambda d: "front: running" in text_of(d, "camera-status"))
        first = chart_points(driver, "class-chart")
        wait(driver, "chart grows", lambda d: chart_points(d, "class-chart") >= first + 2)
        wait(
            driver,
            "sparkline",
            lambda d: d.execute_script(
                # s03 is confused: the middle row of its sparkline holds vermillion pixels.
                "const c = document.querySelector('[data-student=\"s03\"] canvas');"
                "const y = Math.floor(c.height / 2);"
                "const px = c.getContext('2d').getImageData(0, y, c.width, 1).data;"
                "let n = 0; for (let i = 0; i < px.length; i += 4)"
                "  if (px[i] === 0xD5 && px[i + 1] === 0x5E && px[i + 2] === 0) n += 1;"
                "return n >= 3;"
            ),
        )
        # Alerts from the configured rules, evaluated on the stored scores.
        wait(
            driver,
            "class alert",
            lambda d: d.find_elements(
                By.CSS_SELECTOR, '#live-alerts [data-rule="class-confusion"][data-active="true"]'
            ),
            timeout=20,
        )
        wait(
            driver,
            "student alert",
            lambda d: d.find_elements(
                By.CSS_SELECTOR, '#live-alerts [data-rule="student-drowsy"][data-active="true"]'
            ),
            timeout=20,
        )
        assert "student s02: drowsy" in text_of(driver, "live-alerts")
        wait(driver, "alert badge", lambda d: text_of(d, "live-alert-badge") == "⚠ 2 active alerts")
        screenshot(driver, "live-per-student")
        # Keyboard: the live controls are reachable with Tab.
        focused = set()
        for _ in range(12):
            ActionChains(driver).send_keys(Keys.TAB).perform()
            focused.add(driver.execute_script("return document.activeElement.id"))
        assert {"live-window", "live-history", "live-stop"} <= focused, focused
        # Tablet and projector sizes.
        driver.set_window_size(1024, 768)
        screenshot(driver, "live-tablet-1024")
        driver.set_window_size(768, 1024)
        screenshot(driver, "live-tablet-portrait-768")
        driver.set_window_size(1920, 1080)
        screenshot(driver, "live-projector-1920")
        driver.set_window_size(1366, 900)

        # A camera the worker reports as reconnecting.
        set_camera_status(redis_url, camera, "reconnecting", reconnects=2)
        wait(
            driver,
            "camera reconnecting",
            lambda d: "front: reconnecting (2 reconnects)" in text_of(d, "camera-status"),
        )
        set_camera_status(redis_url, camera, "running", reconnects=2)

        # Service restart: the page notices, reconnects by itself and keeps updating.
        api_process.stop()
        wait(
            driver,
            "connection lost",
            lambda d: (
                d.find_element(By.ID, "live-connection").get_attribute("data-state")
                == "reconnecting"
            ),
        )
        screenshot(driver, "live-reconnecting")
        api_process.start()
        wait(driver, "reconnected", lambda d: text_of(d, "live-connection") == "Live", timeout=30)
        before = frames_seen(driver)
        wait(driver, "frames after restart", lambda d: frames_seen(d) >= before + 3)
        assert pub.sent > 10

    # History of the session: timeline, time shares, alerts, CSV export.
    driver.find_element(By.ID, "live-history").click()
    wait(
        driver,
        "history loaded",
        lambda d: d.find_element(By.ID, "history-root").get_attribute("data-loaded") == session_id,
    )
    assert chart_points(driver, "timeline-chart") >= 1
    shares = text_of(driver, "share-table")
    assert "class" in shares and "s02" in shares and "drowsy" in shares
    alerts = text_of(driver, "history-alerts")
    assert "confusion" in alerts and "student s02: drowsy" in alerts
    screenshot(driver, "history-session")

    driver.find_element(By.ID, "csv-timeline").click()
    csv_path = wait_for_download(driver, "timeline-")
    header, *csv_rows = csv_path.read_text().splitlines()
    assert header == "bucket_start,samples,face_count,joy,focus,thinking,boredom,confusion,drowsy"
    assert csv_rows, "timeline CSV has no rows"
    driver.find_element(By.ID, "csv-summary").click()
    summary = wait_for_download(driver, "summary-").read_text().splitlines()
    assert summary[0].startswith("subject,seconds,joy") and any(
        r.startswith("s02,") for r in summary
    )
    assert "Downloaded summary-" in text_of(driver, "history-status")


def wait_for_download(driver: Any, prefix: str, timeout: float = 15) -> Path:
    folder: Path = driver.downloads
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.glob(f"{prefix}*.csv") if p.stat().st_size > 0]
        if done:
            return done[0]
        time.sleep(0.2)
    raise AssertionError(f"no {prefix}*.csv in {folder}: {list(folder.iterdir())}")
