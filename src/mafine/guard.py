"""The CLI's one error boundary: every failure becomes one plain line on stderr and an exit code.

A `MafineError` is shown as it is; an operating-system error names its file and the way on; a
Ctrl-C or SIGTERM says how to resume (the stage it cut short is recorded as interrupted); any
other exception is a one-line internal error. `mafine --debug` or `MAFINE_DEBUG=1` prints the
traceback first. Every line is scrubbed of secrets and printed as plain text (never rich
markup, so `pip install 'mafine[local]'` and `[/x]` in a path print as they are).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import sys
import traceback
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from mafine.errors import MafineError
from mafine.secrets import scrub

DEBUG_ENV = "MAFINE_DEBUG"
INTERRUPTED = 130
TERMINATED = 143
STDOUT_CLOSED = 141  # 128 + SIGPIPE, as a shell reports a writer whose reader went away
_MAX_LINE = 2000

_OS_FIXES = {
    errno.ENOENT: "no such file or directory",
    errno.EACCES: "permission denied; check the path's permissions or choose another",
    errno.EPERM: "operation not permitted; check the path's permissions or choose another",
    errno.ENOTDIR: "a part of this path is a file, not a directory; choose another path",
    errno.EISDIR: "this is a directory where a file is expected; give a file's path",
    errno.ENOSPC: "no space left on the device; free some and run the same command again "
    "(finished work is kept)",
    errno.EDQUOT: "disk quota exceeded; free some space and run the same command again",
    errno.EROFS: "read-only file system; choose a writable path",
    errno.ENAMETOOLONG: "file name too long; choose a shorter path",
    errno.EEXIST: "already exists",
    errno.EADDRINUSE: "address already in use; choose another port",
    errno.EMFILE: "too many open files; lower provider.max_concurrency",
}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every stage it cuts short records itself interrupted."""


debug_option = False  # `mafine --debug`, set by the CLI for each invocation


def debug_enabled() -> bool:
    return debug_option or os.environ.get(DEBUG_ENV, "").lower() not in {"", "0", "false", "no"}


def print_error(message: str) -> None:
    """One plain line on stderr: scrubbed, newlines folded, never read as markup."""
    line = " ".join(scrub(message).split())
    if len(line) > _MAX_LINE:
        line = line[: _MAX_LINE - 3] + "..."
    sys.stderr.write(f"error: {line}\n")
    sys.stderr.flush()


def fail(message: str, code: int = 1) -> NoReturn:
    print_error(message)
    raise typer.Exit(code)


def describe(exc: BaseException) -> str:
    """The one line shown for an exception."""
    if isinstance(exc, MafineError):
        return str(exc)
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    if isinstance(exc, UnicodeDecodeError):
        where = _file_being_read(exc) or "a file"
        return f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start}); re-save it as UTF-8"
    if isinstance(exc, RecursionError):
        return "input nested too deeply to read"
    if isinstance(exc, MemoryError):
        return "out of memory; lower provider.max_concurrency or the data sizes"
    known = _third_party(exc)
    if known:
        return known
    detail = str(exc).strip() or "no detail"
    return (
        f"internal error ({type(exc).__name__}: {detail}); run again with --debug "
        f"(or {DEBUG_ENV}=1) for the traceback and report it"
    )


def describe_os_error(exc: OSError) -> str:
    what = _OS_FIXES.get(exc.errno or 0) or (exc.strerror or str(exc))
    if exc.errno in (errno.EEXIST, errno.ENOENT) and isinstance(exc.filename, str):
        from pathlib import Path

        from mafine.readable import dangling_link

        link = dangling_link(Path(exc.filename))
        if link:  # "already exists" / "no such file" would both mislead
            return f"{link}; fix the link or choose another path"
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    if not paths:  # a failed write or fsync: name the file being written
        paths = [found] if (found := _file_being_read(exc)) else []
    return f"{' -> '.join(paths)}: {what}" if paths else what


def _third_party(exc: BaseException) -> str | None:
    """Errors of libraries that are not imported here (so the CLI stays fast): by name."""
    from mafine.registry import ERROR_HINTS

    name = f"{type(exc).__module__}.{type(exc).__name__}"
    for entry in ERROR_HINTS.entries():
        if name.startswith(entry.name):
            return entry.hint.replace("{error}", str(exc))
    if name.startswith("pydantic_core") and "ValidationError" in name:
        errors = exc.errors()  # type: ignore[attr-defined]
        first = errors[0] if errors else {"loc": (), "msg": str(exc)}
        loc = ".".join(str(p) for p in first["loc"])
        return (
            f"data of an unexpected shape ({getattr(exc, 'title', 'data')}"
            f"{': ' + loc if loc else ''}: {first['msg']}); if it came from the provider, "
            "its endpoint is not answering like the API (check the provider's base_url)"
        )
    return None


# Frames of the commands themselves hold the paths a user gave (the config, the inputs): an
# error deeper down with no file of its own is not theirs, so they are never blamed for it.
_COMMAND_MODULES = ("mafine.cli", "mafine.sweep", "mafine.check", "mafine.guard")


def _file_being_read(exc: BaseException) -> str | None:
    """The path or open file nearest the failure (read or written), from the traceback, below
    the command's own frames."""
    from pathlib import PurePath

    tb = exc.__traceback__
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        if frame.f_globals.get("__name__", "").startswith(_COMMAND_MODULES):
            continue
        for value in frame.f_locals.values():
            if isinstance(value, PurePath):
                return str(value)
            name = getattr(value, "name", None)
            if isinstance(value, io.IOBase) and isinstance(name, str):
                return name
    return None


def _end_at_once(*_: Any) -> None:
    """A second SIGTERM: say so in one line (a raw write, safe inside a signal handler), then
    die by the signal (exit 143); the stage stays `running`, as after SIGKILL, and resumes."""
    line = "error: terminated again, so stopped at once; run the same command again to resume\n"
    with contextlib.suppress(OSError):
        os.write(2, line.encode())
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM interrupts it the way Ctrl-C does."""

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, _end_at_once)  # a second SIGTERM ends it at once
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (a test runner's worker): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_async(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """`asyncio.run(main())`, where SIGTERM cancels the work as Ctrl-C does: every stage it
    cuts short unwinds (recording itself interrupted) before `Terminated` is raised."""
    import asyncio

    terminated = False

    async def cancellable() -> Any:
        nonlocal terminated
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_sigterm() -> None:
            nonlocal terminated
            if terminated:  # a second SIGTERM while unwinding: end at once
                _end_at_once()
            terminated = True
            if task is not None:
                task.cancel()

        previous = signal.getsignal(signal.SIGTERM)
        try:
            loop.add_signal_handler(signal.SIGTERM, on_sigterm)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            return await main()
        try:
            return await main()
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, previous)

    try:
        return asyncio.run(cancellable())
    except asyncio.CancelledError:
        if terminated:
            raise Terminated() from None
        raise


@contextmanager
def _quiet_libraries() -> Iterator[None]:
    """Libraries' log records and warnings stay off stderr (huggingface_hub logs every retry
    there), so a failure is our one line; `--debug` shows them."""
    if debug_enabled():
        yield
        return
    import logging
    import warnings

    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def guarded(body: Callable[[], Any]) -> Any:
    """Run a command body; any failure is one line on stderr and a non-zero exit."""
    from mafine.errors import StdoutClosed

    try:
        with _sigterm_as_interrupt(), _quiet_libraries():
            if sys.stdout is None:  # started with stdout closed (`>&-`)
                raise StdoutClosed()
            result = body()
            sys.stdout.flush()  # a closed stdout shows here, not as a warning at exit
            return result
    except (typer.Exit, typer.Abort):
        raise
    except Terminated:
        fail("terminated; run the same command again to resume", TERMINATED)
    except KeyboardInterrupt:
        fail("interrupted; run the same command again to resume", INTERRUPTED)
    except (StdoutClosed, BrokenPipeError):
        _stdout_closed()
    except SystemExit:
        raise
    except BaseException as exc:  # the boundary: nothing escapes as a traceback
        if debug_enabled():
            traceback.print_exc()
        fail(describe(exc), 1)


_STDOUT_CLOSED_LINE = (
    "standard output was closed (its reader exited), so the command stopped; finished "
    "work is kept: run it again to resume, with its output going where it can be read"
)


def _stdout_closed() -> NoReturn:
    _silence_stdout()
    fail(_STDOUT_CLOSED_LINE, STDOUT_CLOSED)


def _exit_for_a_closed_stdout(exc: SystemExit) -> bool:
    """Whether rich or click ended the process with exit 1 because stdout's reader went away
    (help or usage text written outside a command's guard): they exit while handling the
    broken pipe, so it is the exit's context."""
    context = exc.__context__
    return exc.code == 1 and isinstance(context, OSError) and context.errno == errno.EPIPE


def _silence_stdout() -> None:
    """Point file descriptor 1 at /dev/null once its reader went away, so no later write or
    the flush at exit fails again."""
    if sys.stdout is None:
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


def _replace_unencodable_output() -> None:
    """A terminal or pipe that is not UTF-8 (`LANG=C`, `PYTHONIOENCODING=ascii`) shows what it
    cannot encode as `?` instead of failing the command on a name or a table rule."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if reconfigure is not None and encoding != "utf8":
            with contextlib.suppress(ValueError, OSError):  # closed: nothing to print to
                reconfigure(errors="replace")


class OneLineUsageErrors(TyperGroup):
    """The command group, whose usage errors (an unknown option, a bad value for one, an
    unreadable argument) are one plain line too, instead of a framed panel."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        from typer._click.exceptions import ClickException, NoArgsIsHelpError

        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        _replace_unencodable_output()
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except NoArgsIsHelpError as exc:
            from typer import rich_utils

            rich_utils.rich_format_error(exc)
            sys.exit(exc.exit_code)
        except ClickException as exc:
            context = getattr(exc, "ctx", None)
            where = f"; see `{context.command_path} --help`" if context is not None else ""
            print_error(f"{exc.format_message().rstrip('.')}{where}")
            sys.exit(exc.exit_code)
        except typer.Abort:
            print_error("aborted")
            sys.exit(1)
        except SystemExit as exc:
            if _exit_for_a_closed_stdout(exc):
                print_error(_STDOUT_CLOSED_LINE)
                sys.exit(STDOUT_CLOSED)
            raise
        sys.exit(code if isinstance(code, int) else 0)
