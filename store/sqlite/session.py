"""Whether the log's last users closed it cleanly: a marker file held while it is open.

`X.db-open` exists while some store has `X.db` open: each holds a shared `flock` on
it, and the last one to close cleanly removes it (only the last holder can take the
exclusive lock). So a store that finds the file there and gets the exclusive lock at
once knows that the last process to use the log ended without `close()` (a crash, a
kill): `last_close_clean()` is False and a start-up may run `quick_check`.

The marker errs only towards "not clean" (two stores opening at the same instant may
both see the file, one of them unlocked yet): the cost of an error is one needless
check. A folder where the marker cannot be made (read only) leaves the answer "clean",
as before markers existed. The OS drops the locks of a process however it ends.
"""

from __future__ import annotations

import fcntl
import os

from ..lazylog import lazy_logger

log = lazy_logger("ikledger.store")

SUFFIX = "-open"
_ATTEMPTS = 10  # opens retried only when a closing store removed the file under us


class OpenMarker:
    """This store's hold on the log's open marker; `clean` is the previous users' close."""

    def __init__(self, log_path: str):
        self.path = log_path + SUFFIX
        self.clean = True
        self._fd: int | None = None
        if not log_path or log_path == ":memory:" or log_path.startswith("file:"):
            return
        try:
            self._fd, self.clean = _hold(self.path)
        except OSError as exc:
            log.debug("no open marker for %s (%s): its last close is not known", log_path, exc)

    def release(self) -> None:
        """Give up the hold after a clean close; the last holder removes the marker."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # others still have the log open: the last of them removes it
        else:
            try:
                os.unlink(self.path)
            except OSError:
                pass
        finally:
            os.close(fd)

    def abandon(self) -> None:
        """Keep the marker as an unclean close leaves it (the lock goes with the descriptor)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _hold(path: str) -> tuple[int, bool]:
    """A shared lock on the marker at `path` and whether its last holders closed cleanly."""
    clean = True
    for _ in range(_ATTEMPTS):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            created = True
        except FileExistsError:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            created = False
        try:
            if not created:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    pass  # held by stores that are open now
                else:
                    clean = False  # there, and nobody holds it: left by a process that died
            fcntl.flock(fd, fcntl.LOCK_SH)
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd, clean
        except FileNotFoundError:
            pass  # removed by the last holder's clean close meanwhile: start again
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise OSError(f"the open marker {path} kept being replaced")
