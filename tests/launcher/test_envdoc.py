from launcher.envdoc import env_example, markdown_table, settings_of
from launcher.settings import REPO_ROOT
from service.settings import ServiceSettings
from worker.settings import WorkerSettings


def test_env_example_is_in_sync_with_every_settings_class() -> None:
    committed = (REPO_ROOT / ".env.example").read_text()
    assert committed == env_example(), "run `python -m launcher.envdoc --write`"


def test_every_setting_is_documented_in_table_and_example() -> None:
    table, example = markdown_table(), env_example()
    names = [s.env for cls in (ServiceSettings, WorkerSettings) for s in settings_of(cls)]
    assert "EMO_DATABASE_URL" in names and "EMO_WORKER_REDIS_URL" in names
    for name in names:
        assert f"`{name}`" in table
        assert f"{name}=" in example


def test_readme_settings_table_is_current() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    start = readme.index("<!-- settings-table:start -->\n") + len("<!-- settings-table:start -->\n")
    end = readme.index("<!-- settings-table:end -->")
    assert readme[start:end] == markdown_table(), "regenerate with launcher.envdoc --markdown"
