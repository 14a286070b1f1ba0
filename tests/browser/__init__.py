"""Browser tests: the dashboard in a real headless Chromium against a real API process."""
