"""State the request workers of one `serve` share: small JSON records in one folder."""

from __future__ import annotations

import os

from receiver.runtime.children import read_json, write_json


class SharedRecord:
    """One small JSON record that every request worker of one `serve` reads and writes.

    Kept in the folder `serve` gives its workers (IKLEDGER_UI_STATE), replaced whole
    (`os.replace`), so a page answered by any worker shows what an action on another
    did; in memory when there is no such folder (one process: `get_app`, tests).
    """

    def __init__(self, name: str, folder: str | None = None):
        self.path = os.path.join(folder, name + ".json") if folder else None
        self._value: dict | None = None

    def get(self) -> dict | None:
        return self._value if self.path is None else read_json(self.path)

    def set(self, value: dict | None) -> None:
        if self.path is None:
            self._value = value
        else:
            write_json(self.path, value)
