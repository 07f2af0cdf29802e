"""Documentation kept true: `.env.example` matches the settings, the README's table matches `.env.example`."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from pathlib import Path

from pydantic import AliasChoices, SecretStr
from pydantic_settings import BaseSettings

from backend.settings import Settings
from scripts.env_table import parse_env_example, readme_table, table_from_file

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _env_name(cls: type[BaseSettings], field_name: str) -> str:
    """The variable a settings field is read from (its first alias, else its name with the class prefix)."""
    alias = cls.model_fields[field_name].validation_alias
    if isinstance(alias, AliasChoices):
        alias = alias.choices[0]
    if isinstance(alias, str):
        return alias.upper()
    return (cls.model_config.get("env_prefix", "") + field_name).upper()


def settings_classes() -> list[type[BaseSettings]]:
    """The backend's Settings, plus the console's settings class(es) once `console/config.py` exists."""
    classes: list[type[BaseSettings]] = [Settings]
    if importlib.util.find_spec("console.config") is not None:
        module = importlib.import_module("console.config")
        classes += [
            value
            for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, BaseSettings) and value.__module__ == module.__name__
        ]
    return classes


def setting_env_names() -> set[str]:
    return {_env_name(cls, name) for cls in settings_classes() for name in cls.model_fields}


def env_example_names() -> set[str]:
    return {var.name for var in parse_env_example((ROOT / ".env.example").read_text())}


def test_env_example_lists_exactly_the_settings():
    documented = env_example_names()
    read = setting_env_names()
    assert not read - documented, f"settings missing from .env.example: {sorted(read - documented)}"
    assert not documented - read, f".env.example lists variables nothing reads: {sorted(documented - read)}"


def test_every_variable_in_env_example_has_a_comment():
    variables = parse_env_example((ROOT / ".env.example").read_text())
    names = [var.name for var in variables]
    assert len(names) == len(set(names)), "a variable is listed twice"
    assert [var.name for var in variables if not var.comment] == []


def _comparable(value):
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_env_example_values_are_the_defaults_in_the_code(monkeypatch):
    for name in setting_env_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("RENDER_EXTERNAL_URL", raising=False)
    monkeypatch.chdir(ROOT)  # the console's settings may read .env from the working directory
    for cls in settings_classes():
        defaults = cls(_env_file=None)
        documented = cls(_env_file=ROOT / ".env.example")
        for field in cls.model_fields:
            assert _comparable(getattr(documented, field)) == _comparable(getattr(defaults, field)), (
                f"{_env_name(cls, field)}: .env.example says {getattr(documented, field)!r}, "
                f"the code defaults to {getattr(defaults, field)!r}"
            )


def test_readme_configuration_table_is_generated_from_env_example():
    assert readme_table(README) == table_from_file(), "run: python scripts/env_table.py --write"


def test_readme_quick_start_names_the_two_commands_that_exist():
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    for script in ("scripts/run.sh", "scripts/test.sh"):
        assert script in quick_start
        assert os.access(ROOT / script, os.X_OK)


def test_readme_links_and_images_point_at_files_in_the_repository():
    targets = re.findall(r"\]\((?!https?://|#|mailto:)([^)\s]+)\)", README)
    assert "docs/console.png" in targets
    missing = [t for t in targets if not (ROOT / t.split("#", 1)[0]).exists()]
    assert missing == []
