"""Loaders on damaged files (truncated, a bad byte, arbitrary bytes) and where SQuAD is read from (dataset.path,
the data dir, the hub). A damaged file is one line that names it, never its content and never a traceback."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parallel_decoding.utils.cli import user_error_message
from parallel_decoding.config import PROJECT_ROOT, ConfigError
from parallel_decoding.data.loading import load_groups
from parallel_decoding.data.sources import read_json_records
from parallel_decoding.data.squad import load_squad
from tests.data.test_squad import CONTEXT_A, SQUAD_FIXTURE, fake_datasets, hub_row
from tests.helpers import compose_config

SQUAD_BYTES = json.dumps(SQUAD_FIXTURE, indent=1).encode("ascii")  # ASCII: any byte >= 0x80 is invalid UTF-8
EXAMPLES = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def load(path: Path):
    return load_squad(path=str(path), context_count=None, min_questions=1, max_questions=None)


def assert_one_clear_line(message: str, path: Path) -> None:
    assert str(path) in message and "\n" not in message and len(message) < 400
    assert CONTEXT_A[:30] not in message  # the file's content is never part of the error


@EXAMPLES
@given(cut=st.integers(min_value=0, max_value=len(SQUAD_BYTES) - 2))
def test_a_truncated_file_is_one_line_naming_it(tmp_path, cut):
    path = tmp_path / "truncated.json"
    path.write_bytes(SQUAD_BYTES[:cut])
    with pytest.raises(ConfigError) as error:
        load(path)
    assert_one_clear_line(str(error.value), path)
    assert "is not valid JSON" in str(error.value)


@EXAMPLES
@given(offset=st.integers(min_value=0, max_value=len(SQUAD_BYTES)), byte=st.integers(min_value=0x80, max_value=0xFF))
def test_a_non_utf8_byte_is_named_with_its_offset(tmp_path, offset, byte):
    path = tmp_path / "bad-byte.json"
    path.write_bytes(SQUAD_BYTES[:offset] + bytes([byte]) + SQUAD_BYTES[offset:])
    with pytest.raises(ConfigError) as error:
        load(path)
    message = str(error.value)
    assert_one_clear_line(message, path)
    assert f"byte 0x{byte:02x} at byte offset {offset} " in message


@EXAMPLES
@given(data=st.binary(max_size=300) | st.text(max_size=200).map(lambda t: t.encode("utf-8")))
def test_arbitrary_bytes_load_or_fail_with_one_line(tmp_path, data):
    """read_json_records (every non-SQuAD loader) on anything: rows, or a ConfigError naming the file."""
    path = tmp_path / "rows.jsonl"
    path.write_bytes(data)
    try:
        read_json_records(str(path))
    except ConfigError as error:
        assert str(path) in str(error) and "\n" not in str(error) and len(str(error)) < 400


@EXAMPLES
@given(rows=st.lists(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
                     min_size=2, max_size=5), bad=st.integers(min_value=1, max_value=4))
def test_jsonl_names_the_bad_line(tmp_path, rows, bad):
    lines = [json.dumps(row) for row in rows]
    assert read_json_records_from(tmp_path, lines) == rows
    bad = min(bad, len(lines) - 1)
    lines[bad] = lines[bad][:-1]  # drop the closing brace
    with pytest.raises(ConfigError, match=f"is JSONL but line {bad + 1} is not valid JSON"):
        read_json_records_from(tmp_path, lines)


def read_json_records_from(tmp_path: Path, lines: list[str]):
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return read_json_records(str(path))


def test_through_hydra_the_user_sees_the_line_not_the_bytes(tmp_path):
    """``instantiate`` puts ``repr(error)`` in its own message: a UnicodeDecodeError's repr holds the whole file."""
    path = tmp_path / "bad.json"
    path.write_bytes(SQUAD_BYTES[:100] + b"\xff" + SQUAD_BYTES[100:])
    cfg = compose_config("evaluate", [f"dataset.path={path}"])
    with pytest.raises(Exception) as error:
        load_groups(cfg.dataset)
    message = user_error_message(error.value)
    assert message.startswith(f"data file {path} is not UTF-8 text: byte 0xff at byte offset 100 (line ")
    assert len(repr(error.value)) < 1000  # the raised error does not carry the file either


# -- where SQuAD comes from --------------------------------------------------------------------------------------
@pytest.fixture
def data_dir(tmp_path):
    (tmp_path / "data" / "squad").mkdir(parents=True)
    return tmp_path / "data"


def write_squad(path: Path, title: str) -> Path:
    document = json.loads(json.dumps(SQUAD_FIXTURE))
    document["data"][0]["title"] = title
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def titles(loaded) -> set[str]:
    return {g.metadata["title"] for g in loaded.groups}


def source_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("SQuAD: reading ")]


def test_order_path_then_data_dir_then_hub(data_dir, tmp_path, caplog, monkeypatch):
    half = write_squad(data_dir / "squad" / "dev-v1.1-half-a.json", "HalfA")
    common = dict(context_count=None, min_questions=1, max_questions=None)
    with caplog.at_level(logging.INFO):
        assert "HalfA" in titles(load_squad(data_dir=str(data_dir), **common))
        full = write_squad(data_dir / "squad" / "dev-v1.1.json", "Full")  # the official name wins over half A
        assert "Full" in titles(load_squad(data_dir=str(data_dir), **common))
        given = write_squad(tmp_path / "mine.json", "Given")
        assert "Given" in titles(load_squad(path=str(given), data_dir=str(data_dir), **common))
    assert source_lines(caplog) == [f"SQuAD: reading {half} (from the data dir {data_dir})",
                                    f"SQuAD: reading {full} (from the data dir {data_dir})",
                                    f"SQuAD: reading {given} (dataset.path)"]
    caplog.clear()
    fake_datasets(monkeypatch, lambda hub_id, split: [hub_row("1", CONTEXT_A, "Who?", "Vorlan Tess")])
    with caplog.at_level(logging.INFO):
        load_squad(data_dir=str(tmp_path / "empty"), **common)
    [line] = source_lines(caplog)
    assert line.startswith("SQuAD: reading rajpurkar/squad split validation from the Hugging Face hub (no "
                           f"dataset.path, and the data dir {tmp_path / 'empty'} holds none of squad/dev-v1.1.json")


def test_the_data_dir_comes_from_the_environment(data_dir, monkeypatch):
    write_squad(data_dir / "squad" / "dev-v1.1-half-a.json", "FromEnv")
    monkeypatch.setenv("PARALLEL_DECODING_DATA", str(data_dir))
    cfg = compose_config("evaluate", ["dataset.min_questions=1", "dataset.context_count=null"])
    assert cfg.dataset.loader.data_dir == str(data_dir) and cfg.dataset.path is None
    assert "FromEnv" in titles(load_groups(cfg.dataset))


def test_no_config_points_outside_the_checkout(monkeypatch):
    monkeypatch.delenv("PARALLEL_DECODING_DATA", raising=False)
    cfg = compose_config("evaluate")
    assert cfg.dataset.loader.data_dir == str(PROJECT_ROOT / "data")
    text = "\n".join(p.read_text() for p in (PROJECT_ROOT / "conf").rglob("*.yaml"))
    assert "${paths.data_dir}/squad" not in text and "data_dir: ${paths.root_dir}/.." not in text


def test_offline_hub_fails_at_once(monkeypatch):
    """No dataset.path, no data dir, hub offline: one line in seconds (the hub client's retries took 74 s)."""
    import datasets  # noqa: F401 - imported before timing: the import is not what is measured

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from parallel_decoding.utils import hub

    hub.hub_offline_reason.cache_clear()
    start = time.perf_counter()
    with pytest.raises(ConfigError) as error:
        load_squad(hub_id="parallel-decoding-tests/no-such-dataset", data_dir=None)
    assert time.perf_counter() - start < 10
    message = str(error.value)
    assert message.startswith("dataset parallel-decoding-tests/no-such-dataset split 'validation' is not available: "
                              "the hub cannot be reached (HF_HUB_OFFLINE=1)")
    assert "PARALLEL_DECODING_DATA" in message and "\n" not in message
