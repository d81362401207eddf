"""SIGINT/SIGTERM: finish the current step, save a checkpoint, exit.

:class:`StopRequest` is a context manager that replaces the SIGINT and SIGTERM handlers with
one that only records the signal; the training loop polls :attr:`StopRequest.signum` after
every optimiser step, writes ``stageN_last.pt`` (at that exact step, so ``--resume``
continues mid-epoch) and exits with ``128 + signum``. A second Ctrl-C aborts at once.
Handlers can only be installed from the main thread; elsewhere the object is inert.
"""
from __future__ import annotations

import signal
import sys

from edgepose.interrupts import SignalHandlers


class StopRequest(SignalHandlers):
    def _handle(self, signum, frame) -> None:  # noqa: ARG002 - signal API
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name} received: saving a checkpoint after this step "
              "(Ctrl-C again to abort without saving)", file=sys.stderr, flush=True)

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum or 0)


class Interrupted(Exception):
    """Raised by the trainer after it saved the checkpoint of a requested stop."""

    def __init__(self, signum: int, checkpoint: str):
        self.signum = signum
        self.checkpoint = checkpoint
        super().__init__(f"stopped by {signal.Signals(signum).name}; state saved to {checkpoint}")
