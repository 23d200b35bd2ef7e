"""The files a command writes: checked before any work, published together or not at all.

A preview writes up to four files (video, camera path, poster, contact sheet). Each is written under
a hidden temporary name beside its target and renamed over it only once every one is complete, so a
failure at any point (a bad path, a full disk, Ctrl-C) leaves what the user had untouched and no
partial file behind. An OS error while writing ends as one line naming the file that failed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from splat_render.errors import PreviewInputError

# Temporary name → the output it stands for, while a publication is open. A writer handed such a
# name (the video of a preview, say) writes it directly, and its errors name the output.
_staged: dict[Path, Path] = {}


def temporary_name(path: Path) -> Path:
    """A hidden name beside ``path``, this process's own, ending in the same suffix (writers choose
    formats by it)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")


def check_writable(paths: Iterable[Path], folders_may_appear: bool = False) -> None:
    """Fail now, in one line, for an output that could not be written: two outputs naming one file,
    a folder in its place, a missing folder (unless ``folders_may_appear``: the run that will hold it
    is still being written), or a folder that refuses new files (read-only, no permission).
    """
    seen: dict[Path, Path] = {}
    for path in (Path(p) for p in paths if Path(p) not in _staged):  # staged ones were checked
        same = seen.setdefault(path.resolve(), path)
        if same is not path:
            raise PreviewInputError(f"{same} and {path} name the same file: give each output its own")
        if path.is_dir():
            raise PreviewInputError(f"cannot write {path}: it is a folder")
        if not path.parent.is_dir():
            if folders_may_appear:
                continue
            raise PreviewInputError(f"output folder does not exist: {path.parent}")
        probe = temporary_name(path)
        try:
            probe.open("wb").close()
        except OSError as exc:
            raise PreviewInputError(f"cannot write {path}: {reason(exc)}") from exc
        finally:
            discard([probe])


@contextlib.contextmanager
def published_together(paths: Sequence[Path]) -> Iterator[dict[Path, Path]]:
    """Yield the name to write each path under; when the block ends normally, rename every one over
    its path. On any failure, KeyboardInterrupt included, the temporary files are removed and no
    path is touched; an OS error becomes one line naming the output it concerns. A path that is
    itself a staged temporary name is written as it is: the publication that staged it publishes it.
    """
    outputs = [Path(path) for path in paths]
    own = {path: temporary_name(path) for path in outputs if path not in _staged}
    temps = {path: own.get(path, path) for path in outputs}
    _staged.update({temp: path for path, temp in own.items()})
    try:
        yield temps
        for path, temp in own.items():
            os.replace(temp, path)
    except OSError as exc:
        raise PreviewInputError(f"cannot write {concerned(exc, temps)}: {reason(exc)}") from exc
    finally:
        for temp in own.values():
            del _staged[temp]
        discard(own.values())


def discard(paths: Iterable[Path]) -> None:
    """Remove what exists of ``paths``; a failure here must not hide the error being handled."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def concerned(exc: OSError, temps: dict[Path, Path]) -> str:
    """The output an OS error is about: the one it names, the only one, else all of them."""
    named = [path for path, temp in temps.items() if exc.filename in (str(path), str(temp))]
    return ", ".join(str(_staged.get(path, path)) for path in (named[:1] or temps))


def reason(exc: OSError) -> str:
    """An OS error's own words (\"No space left on device\"), on one line."""
    return (exc.strerror or str(exc) or type(exc).__name__).splitlines()[0]
