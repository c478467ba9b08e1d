"""The SQLite library ikledger runs on: sqlean.py's current build, not the interpreter's.

Debian's Python links SQLite 3.40 (2022). SQLite 3.45 rewrote the JSON functions the
read models extract every field with; on the benchmark log, parsing a chunk of 50,000
log positions costs 0.09–0.11 s of CPU on SQLite 3.50 against 0.29–0.33 s on 3.40, and
a rebuild of 1,000,000 events took 13 s against 18 s (docs/performance.md, the
rebuild). sqlean.py is CPython's own `sqlite3` module built against a current SQLite,
with wheels for Linux, macOS and Windows; its optional extensions stay off.

Everything in ikledger that opens a SQLite file imports `sqlite3` from here, tests
included: two SQLite libraries must never open the same file in one process (their
POSIX locks would not see each other: https://www.sqlite.org/howtocorrupt.html, 2.2.1).
sqlite-utils, used for migrations, only runs statements on connections made here.
"""

from sqlean import dbapi2 as sqlite3

__all__ = ["sqlite3"]
