"""The agent's state file (``--state``), written off the agent's loop.

The loop that sets up subflows and judges queued segments also writes the state every
tick. A write and a rename on this machine's ext4 took 0.2 ms as a rule and up to 10 ms
when the filesystem's journal was busy: a stall that fell into connection set-ups and
held the segments waiting in the agent's queues. The loop now only encodes the state;
this thread writes it (the file's syscalls release the GIL) and renames it into place,
so a reader never sees half a file. Only the newest state matters: one written late is
replaced, not queued.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

LOG = logging.getLogger("agent")


class StateWriter:
    def __init__(self, path: str):
        self.path = Path(path)
        self.tmp = Path(path + ".tmp")
        self.pending: str | None = None
        self.stopping = False
        self.errors = 0  # writes that failed (disk full, folder gone); said in the log
        self.written = 0
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="state-writer", daemon=True)
        self.thread.start()

    def submit(self, text: str) -> None:
        """Write ``text`` soon, in place of any state not written yet."""
        with self.cond:
            self.pending = text
            self.cond.notify()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is pending, then end the thread."""
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self.cond:
                while self.pending is None and not self.stopping:
                    self.cond.wait()
                text, self.pending = self.pending, None
                if text is None:
                    return  # stopping, nothing left
            try:
                self.tmp.write_text(text)
                self.tmp.replace(self.path)
                self.written += 1
            except OSError as e:
                self.errors += 1
                if self.errors <= 10 or self.errors % 100 == 0:
                    LOG.warning("state file %s: %s (errors: %d)", self.path, e, self.errors)
