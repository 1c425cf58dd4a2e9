"""How `python -m core` ends on Ctrl-C (SIGINT) or SIGTERM: one line on stderr saying what it was doing and
what is on disk, exit code 130 or 143, never a traceback.

core/__main__.py installs this before anything heavy is imported (importing torch takes seconds), so that a
signal during start-up is answered too. Only the standard library here, for the same reason.
"""
from __future__ import annotations

import signal
import sys


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised wherever the main thread is, as Ctrl-C raises KeyboardInterrupt: whatever cleans up
    after Ctrl-C (a checkpoint's temp file removed, its renames finished first) cleans up after it too."""


def _terminate(number, frame):
    raise Terminated()


def install() -> None:
    # SIGINT keeps Python's own handler (KeyboardInterrupt), or stays ignored where the shell handed it over
    # ignored (a background job), as it should.
    signal.signal(signal.SIGTERM, _terminate)


def _frames(error: BaseException) -> list:
    """The frames the exception passed through, outermost first."""
    frames, tb = [], error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    return frames


def _local(frames: list, function: str, name: str):
    """Local `name` of the innermost frame of `function`, or None."""
    for frame in reversed(frames):
        if frame.f_code.co_name == function:
            return frame.f_locals.get(name)
    return None


def _saved() -> list:
    checkpoint = sys.modules.get("core.checkpoint")  # (not imported here: it imports torch)
    return list(checkpoint.SAVED) if checkpoint is not None else []


def describe(error: KeyboardInterrupt, starting: bool = False) -> str:
    """The one line for an interrupt that ended the run: what it was doing, and what that left on disk."""
    how = "terminated (SIGTERM)" if isinstance(error, Terminated) else "interrupted"
    if starting:
        return f"{how} during start-up: nothing was read or written"
    frames, saved = _frames(error), _saved()
    names = {frame.f_code.co_name for frame in frames}
    folder = _local(frames, "save_checkpoint", "folder") or _local(frames, "write_json", "path")
    if folder is not None and saved and saved[-1] == folder:  # a signal held back until the save was complete
        what = f"{folder.name} was saved completely (to {folder}) just before it stopped"
        saved = saved[:-1]
    elif folder is not None:
        what = (f"it stopped while saving {folder.name}, before anything was replaced: {folder} holds its "
                "previous checkpoint, if it had one")
    elif "train_method" in names:
        method = _local(frames, "train_method", "method")
        name = getattr(method, "name", "the method being trained")
        what = f"{name} was being trained and was not saved (its previous checkpoint, if any, is unchanged)"
    elif names & {"load_fashion_mnist", "load_raw"}:
        what = "it stopped while loading the data, before anything was trained"
    else:
        what = "anything not reported as saved above was not saved"
    done = f"; saved before that in this run: {', '.join(str(p) for p in saved)}" if saved else ""
    return f"{how}: checkpoints already on disk are intact; {what}{done}"


def _close_progress_bars() -> None:
    """End tqdm's open bars now: each would otherwise redraw itself at exit, after (so below) our line."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        try:
            bar.close()  # (ends its line with a newline: ours starts on a fresh one)
        except Exception:
            pass


def ended_by_signal(error: KeyboardInterrupt, starting: bool = False):
    """Print describe()'s line on stderr and exit 130 (SIGINT) or 143 (SIGTERM). Further signals are ignored
    meanwhile: a second Ctrl-C must not turn the line into a traceback."""
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    line = describe(error, starting)
    _close_progress_bars()
    print(line, file=sys.stderr, flush=True)
    sys.exit(143 if isinstance(error, Terminated) else 130)
