"""What the entry points share around their body: a user's mistake is one clear line and exit 2, Ctrl-C is one
line saying how to resume and exit 130, and a run that failed before writing anything leaves no run dir behind.

Kept free of heavy imports: entry points enter ``guard_run`` first, then import torch & co. inside it, so even
an interrupt during those imports ends with one line.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException, OverrideParseException, SearchPathException

from parallel_decoding.config import ConfigError

USER_ERROR_EXIT = 2
INTERRUPTED_EXIT = 130  # 128 + SIGINT, what shells report for Ctrl-C
# OS errors that mean "this machine or path does not allow it" (a user's setup), not a bug.
USER_OS_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR,
                            errno.EISDIR, errno.ENAMETOOLONG, errno.EADDRINUSE, errno.EADDRNOTAVAIL})
# What a run dir holds before any work is done; a failed run whose dir holds nothing else is removed.
BOOKKEEPING = frozenset({".hydra", "config_tree.log", "results.json", "splits.json", "csv", "tensorboard",
                         "run_settings.json", "manifest.json"})  # the run's settings and environment records


def find_user_error(err: BaseException | None) -> BaseException | None:
    """The configuration mistake behind ``err``, looking through the wrappers ``hydra.utils.instantiate`` adds."""
    while err is not None:
        if isinstance(err, (ConfigError, FileNotFoundError)):
            return err
        err = err.__cause__
    return None


@contextmanager
def exit_on_user_error(log: logging.Logger) -> Iterator[None]:
    """Entry points: a configuration mistake prints one clear line and exits 2; real bugs keep their traceback.
    (``guard_run`` without a run dir: also unwritable paths, and Ctrl-C as exit 130.) A ``with`` block, or a
    decorator on a ``main``: ``@exit_on_user_error(log)``."""
    with guard_run(log, task_name=""):
        yield


def say_error(log: logging.Logger, message: str) -> None:
    """The one line, through ``log`` where logging is set up (Hydra's, ``basicConfig``), else ``error: ...`` on
    stderr (as ``RunDirCheck`` prints it), never Python's bare last-resort line."""
    if log.hasHandlers():
        log.error("%s", message)
    else:
        print(f"error: {message}", file=sys.stderr, flush=True)


def user_error_message(err: BaseException | None) -> str | None:
    """The one line a user should see for ``err``, or None when it is a bug (which keeps its traceback).

    Looks through the wrappers ``hydra.utils.instantiate`` and re-raises add (``__cause__`` / ``__context__``).
    """
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        found = find_user_error(err)
        if found is not None:
            return str(found)
        if isinstance(err, OSError) and err.errno in USER_OS_ERRNOS:
            if err.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
                return f"{err.strerror or err}: choose another port (port=0 takes any free one)"
            where = f": {err.filename}" if err.filename else ""
            return f"{err.strerror or err}{where}"
        err = err.__cause__ or err.__context__
    return None


def run_hydra_app(main: Callable[[], Any]) -> None:
    """Start a ``@hydra.main`` app so that a mistake Hydra finds before the run (an unknown key, a config group
    option that does not exist, bad override syntax) is one line and exit 2 too; anything else is left as it is
    (a bug: its traceback, exit 1)."""
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra then raises its errors instead of printing them and exiting 1
    try:
        main()
    except (ConfigCompositionException, OverrideParseException, SearchPathException) as err:
        print(f"error: {hydra_error_line(err)}", file=sys.stderr, flush=True)
        sys.exit(USER_ERROR_EXIT)


def hydra_error_line(err: BaseException) -> str:
    """Hydra's message on one line: option lists joined by commas, the config search path and OmegaConf's
    ``full_key``/``object_type`` details left out."""
    lines = []
    for line in str(err).splitlines():
        if line.startswith("Config search path"):
            break
        if line.strip():
            lines.append(line.strip())
    if err.__cause__ is not None and str(err.__cause__).strip():
        lines.append(f"({str(err.__cause__).strip().splitlines()[0]})")
    text, listing = "", False
    for line in lines:
        if not text:
            text = line
        elif listing:
            text += (" " if text.endswith(":") else ", ") + line
        else:
            text += (" " if text[-1] in ".:;" or line.startswith("(") else "; ") + line
        listing = listing or line.endswith(":")
    return text


def run_dir_is_empty(run_dir: str | Path, task_name: str) -> bool:
    """True when ``run_dir`` holds only bookkeeping (Hydra's record, logs, a failure record) or empty files."""
    root = Path(run_dir)
    if not root.is_dir():
        return False
    for path in root.rglob("*"):
        if path.is_dir():
            continue
        top = path.relative_to(root).parts[0]
        if top == "results.json" and path.stat().st_size > 0 and _status(path) != "failed":
            return False  # a run's results (evaluate's have no status): never removed
        if top in BOOKKEEPING or top == f"{task_name}.log" or path.stat().st_size == 0:
            continue
        return False
    return True


def _status(results: Path) -> str | None:
    try:
        data = json.loads(results.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("status") if isinstance(data, dict) else None


def _hydra_mode() -> str | None:
    try:
        if not HydraConfig.initialized():
            return None
        mode = HydraConfig.get().mode
        return getattr(mode, "name", str(mode)) if mode is not None else None
    except Exception:  # noqa: BLE001 - outside Hydra
        return None


def in_multirun() -> bool:
    """A job of a Hydra sweep (``-m``), where one job's failure must not end the sweep."""
    return _hydra_mode() == "MULTIRUN"


def remove_if_empty(run_dir: str | Path | None, task_name: str) -> bool:
    """Remove a single run's dir that holds nothing but bookkeeping (never a sweep's job dir: its report lists
    failed jobs by their dirs)."""
    if run_dir is None or _hydra_mode() != "RUN" or not run_dir_is_empty(run_dir, task_name):
        return False
    if int(os.environ.get("LOCAL_RANK", "0") or 0) > 0 or int(os.environ.get("RANK", "0") or 0) > 0:
        return False  # a DDP child shares rank 0's run dir: rank 0 decides
    shutil.rmtree(run_dir, ignore_errors=True)
    return not Path(run_dir).exists()


@contextmanager
def guard_run(log: logging.Logger, *, task_name: str, run_dir: str | Path | None = None,
              resume_hint: str | None = None) -> Iterator[None]:
    """Around an entry point's body: one line + exit 2 for user errors, one line + exit 130 for Ctrl-C.

    ``resume_hint`` is the command-line tail that continues an interrupted run (e.g. ``resume=true
    hydra.run.dir=<dir>``). Lightning catches Ctrl-C itself and exits 1 after its own shutdown; the SIGINT
    handler installed here remembers the interrupt so that exit is reported as one too.
    """
    interrupted = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        def on_sigint(signum: int, frame: Any) -> None:
            interrupted.set()
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    except KeyboardInterrupt:
        _report_interrupt(log, task_name, run_dir, resume_hint)
    except SystemExit as exit_:
        if interrupted.is_set() and exit_.code not in (0, None):
            _report_interrupt(log, task_name, run_dir, resume_hint)
        raise
    except Exception as err:
        message = user_error_message(err)
        if message is None:
            raise
        say_error(log, message)
        remove_if_empty(run_dir, task_name)
        sys.exit(USER_ERROR_EXIT)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _report_interrupt(log: logging.Logger, task_name: str, run_dir: str | Path | None,
                      resume_hint: str | None) -> None:
    if remove_if_empty(run_dir, task_name):
        say_error(log, "interrupted before anything was written")
    elif resume_hint:
        say_error(log, f"interrupted; resume with {resume_hint}")
    else:
        say_error(log, "interrupted")
    sys.exit(INTERRUPTED_EXIT)


def check_writable_dir(directory: str | Path) -> str | None:
    """None when files can be created in ``directory`` (made if missing), else why not, in one line."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as err:
        return f"cannot write the run dir {path}: {err.strerror or err}; choose another with hydra.run.dir=<dir>"
    return None


try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - hydra is a dependency
    _HydraCallback = object  # type: ignore[assignment,misc]


class RunDirCheck(_HydraCallback):  # type: ignore[misc,valid-type]
    """Hydra callback: an unwritable run dir (read-only disk, no permission) is one line and exit 2, before
    Hydra's own ``mkdir`` would fail with a traceback."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config.hydra.run.dir)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config.hydra.sweep.dir)

    @staticmethod
    def _check(directory: str) -> None:
        problem = check_writable_dir(directory)
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr, flush=True)
            sys.exit(USER_ERROR_EXIT)


__all__ = ["INTERRUPTED_EXIT", "USER_ERROR_EXIT", "RunDirCheck", "check_writable_dir", "exit_on_user_error",
           "find_user_error", "guard_run", "hydra_error_line", "in_multirun", "remove_if_empty", "run_dir_is_empty",
           "run_hydra_app", "say_error", "user_error_message"]
