from __future__ import annotations

from pathlib import Path

import pytest

from shared.policy import PolicyPackError, load_pack, load_packs
from shared.settings import REPO_ROOT

PACKS = REPO_ROOT / "policy-packs"


def test_the_shipped_packs_load_and_map_their_demo_branches() -> None:
    registry = load_packs(PACKS)
    found = registry.for_branch("hotel-demo")
    assert found is not None
    pack, branch = found
    assert pack.pack == "hotel"
    assert branch.timezone == "Asia/Shanghai"
    assert len(pack.version) == 16


def test_the_version_changes_with_the_content(tmp_path: Path) -> None:
    original = (PACKS / "hotel.yaml").read_text(encoding="utf-8")
    copy = tmp_path / "hotel.yaml"
    copy.write_text(original + "\n# edited\n", encoding="utf-8")
    assert load_pack(copy).version != load_pack(PACKS / "hotel.yaml").version


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = (PACKS / "hotel.yaml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "hotel.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_an_unknown_department_is_named_with_the_file(tmp_path: Path) -> None:
    path = _broken(tmp_path, "department: housekeeping\n    seed", "department: laundry\n    seed")
    with pytest.raises(PolicyPackError, match=r"hotel\.yaml.*unknown department 'laundry'"):
        load_pack(path)


def test_a_bad_field_is_named_by_its_path(tmp_path: Path) -> None:
    path = _broken(tmp_path, "target_hours: 24", "target_hours: -1")
    with pytest.raises(PolicyPackError, match=r"clocks\.0\.target_hours"):
        load_pack(path)


def test_an_unknown_time_zone_is_refused(tmp_path: Path) -> None:
    path = _broken(tmp_path, "timezone: Asia/Shanghai", "timezone: Mars/Olympus")
    with pytest.raises(PolicyPackError, match="unknown time zone"):
        load_pack(path)


def test_yaml_that_does_not_parse_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("pack: [unclosed", encoding="utf-8")
    with pytest.raises(PolicyPackError, match="not valid YAML"):
        load_pack(path)


def test_an_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyPackError, match="no policy packs"):
        load_packs(tmp_path)


def test_packs_reload_when_their_files_change_and_a_bad_edit_is_refused(
    tmp_path: Path,
) -> None:
    from shared.policy import LivePacks

    path = tmp_path / "hotel.yaml"
    original = (PACKS / "hotel.yaml").read_text(encoding="utf-8")
    path.write_text(original, encoding="utf-8")
    live = LivePacks(tmp_path)
    first = live.current.require("hotel").version
    assert live.reload_if_changed() is False

    path.write_text(original.replace("王敏", "王敏敏"), encoding="utf-8")
    assert live.reload_if_changed() is True
    assert live.current.require("hotel").version != first
    assert live.current.require("hotel").member("fo-supervisor").name == "王敏敏"

    in_use = live.current
    path.write_text(original.replace("target_hours: 24", "target_hours: -1"), encoding="utf-8")
    with pytest.raises(PolicyPackError, match="target_hours"):
        live.reload_if_changed()
    assert live.current is in_use


async def test_the_watcher_swaps_packs_in_while_running(tmp_path: Path) -> None:
    import asyncio
    import contextlib

    from shared.policy import LivePacks

    path = tmp_path / "hotel.yaml"
    original = (PACKS / "hotel.yaml").read_text(encoding="utf-8")
    path.write_text(original, encoding="utf-8")
    live = LivePacks(tmp_path)
    watcher = asyncio.create_task(live.watch(interval=0.05))
    try:
        path.write_text(original.replace("target_hours: 24", "target_hours: -1"), encoding="utf-8")
        await asyncio.sleep(0.3)
        assert live.current.require("hotel").clocks[0].target_hours == 24  # refused, kept
        path.write_text(original.replace("target_hours: 24", "target_hours: 12"), encoding="utf-8")
        await asyncio.sleep(0.3)
        assert live.current.require("hotel").clocks[0].target_hours == 12
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
