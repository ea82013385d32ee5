"""utils/cli.py: which errors are a user's (one line, exit 2), Ctrl-C (one line, exit 130, how to resume), and which
run dirs a failed run removes."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import sys

import pytest
from hydra.errors import InstantiationException

from parallel_decoding.utils.cli import (INTERRUPTED_EXIT, USER_ERROR_EXIT, RunDirCheck, check_writable_dir,
                                         exit_on_user_error, guard_run, run_dir_is_empty, user_error_message)
from parallel_decoding.config import ConfigError

log = logging.getLogger("tests.cli")


def wrapped(inner: BaseException) -> BaseException:
    """As ``hydra.utils.instantiate`` raises it: the real error is the cause."""
    try:
        try:
            raise inner
        except BaseException as err:
            raise InstantiationException("Error in call to target 'x':\n" + repr(err)) from err
    except InstantiationException as outer:
        return outer


@pytest.mark.parametrize("error,expected", [
    (ConfigError("dataset.context_count must be an integer, got 'abc'"), "dataset.context_count must be an integer"),
    (OSError(errno.EROFS, "Read-only file system", "/ro/run/predictions.jsonl"),
     "Read-only file system: /ro/run/predictions.jsonl"),
    (PermissionError(errno.EACCES, "Permission denied", "/x/results.json"), "Permission denied: /x/results.json"),
    (OSError(errno.ENOSPC, "No space left on device", "/x/a"), "No space left on device: /x/a"),
    (OSError(errno.EADDRINUSE, "Address already in use"), "Address already in use: choose another port"),
])
def test_user_errors_are_found_through_instantiate_wrappers(error, expected):
    assert user_error_message(error).startswith(expected)
    assert user_error_message(wrapped(error)).startswith(expected)


@pytest.mark.parametrize("error", [TypeError("'>' not supported"), KeyError("x"), OSError(errno.EIO, "I/O error")])
def test_bugs_are_not_user_errors(error):
    assert user_error_message(error) is None and user_error_message(wrapped(error)) is None


def test_guard_turns_a_user_error_into_one_line_and_exit_2(caplog):
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit_:
        with guard_run(log, task_name="evaluate"):
            raise wrapped(ConfigError("unknown strategy 'indepndent'"))
    assert exit_.value.code == USER_ERROR_EXIT
    assert [r.getMessage() for r in caplog.records] == ["unknown strategy 'indepndent'"]


def test_without_logging_set_up_the_line_still_says_error(capsys):
    """A plain ``python -m`` tool configures no logging: the line is printed as ``RunDirCheck`` prints it."""
    unconfigured = logging.getLogger("tests.cli.unconfigured")
    unconfigured.propagate = False
    with pytest.raises(SystemExit) as exit_:
        with exit_on_user_error(unconfigured):
            raise FileNotFoundError("data file 'x.json' not found")
    assert exit_.value.code == USER_ERROR_EXIT
    assert capsys.readouterr().err == "error: data file 'x.json' not found\n"


def test_exit_on_user_error_decorates_a_main():
    @exit_on_user_error(log)
    def main(argv: list[str]) -> int:
        if not argv:
            raise ConfigError("give a run dir")
        return 0

    assert main(["x"]) == 0
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == USER_ERROR_EXIT


def test_guard_lets_bugs_keep_their_traceback():
    with pytest.raises(ZeroDivisionError):
        with guard_run(log, task_name="evaluate"):
            1 / 0  # noqa: B018


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_is_one_line_with_the_resume_command_and_exit_130(tmp_path, caplog):
    (tmp_path / "groups.jsonl").write_text('{"done": 1}\n')  # some work exists: resumable
    before = signal.getsignal(signal.SIGINT)  # the default, or SIG_IGN where the suite runs in the background
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit_:
        with guard_run(log, task_name="evaluate", run_dir=tmp_path, resume_hint=f"resume=true hydra.run.dir={tmp_path}"):
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends
            pytest.fail("SIGINT did not interrupt")
    assert exit_.value.code == INTERRUPTED_EXIT
    assert [r.getMessage() for r in caplog.records] == [f"interrupted; resume with resume=true hydra.run.dir={tmp_path}"]
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back


def test_ctrl_c_swallowed_by_lightning_still_reports_an_interrupt(tmp_path, caplog):
    """Lightning catches KeyboardInterrupt, shuts down and calls ``exit(1)``: that is reported as the interrupt."""
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"PK")
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit_:
        with guard_run(log, task_name="train", run_dir=tmp_path, resume_hint="ckpt_path=last hydra.run.dir=D"):
            try:
                os.kill(os.getpid(), signal.SIGINT)
            except KeyboardInterrupt:
                sys.exit(1)  # Lightning's _call_and_handle_interrupt
    assert exit_.value.code == INTERRUPTED_EXIT
    assert caplog.records[-1].getMessage() == "interrupted; resume with ckpt_path=last hydra.run.dir=D"


def test_an_ordinary_exit_1_is_left_alone():
    with pytest.raises(SystemExit) as exit_:
        with guard_run(log, task_name="train"):
            sys.exit(1)
    assert exit_.value.code == 1


def test_which_run_dirs_count_as_empty(tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("a: 1")
    (run / "evaluate.log").write_text("[ERROR] - bad\n")
    (run / "predictions.jsonl").write_text("")  # created, nothing written yet
    (run / "results.json").write_text(json.dumps({"status": "failed", "error": "x"}))
    assert run_dir_is_empty(run, "evaluate")
    (run / "results.json").write_text(json.dumps({"status": "ok"}))
    assert not run_dir_is_empty(run, "evaluate")  # a finished run's results are work
    (run / "results.json").unlink()
    (run / "groups.jsonl").write_text('{"group": 1}\n')
    assert not run_dir_is_empty(run, "evaluate")
    assert not run_dir_is_empty(tmp_path / "absent", "evaluate")


def test_run_dir_check_names_an_unwritable_dir(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert check_writable_dir(tmp_path / "fine") is None
    problem = check_writable_dir(blocker / "run")  # a file where a directory must go
    assert problem.startswith(f"cannot write the run dir {blocker / 'run'}: ") and "hydra.run.dir=" in problem
    with pytest.raises(SystemExit) as exit_:
        RunDirCheck()._check(str(blocker / "run"))
    assert exit_.value.code == USER_ERROR_EXIT
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {problem}"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_run_dir_check_on_a_read_only_dir(tmp_path):
    tmp_path.chmod(0o555)
    try:
        assert "Permission denied" in check_writable_dir(tmp_path / "run")
    finally:
        tmp_path.chmod(0o755)
