"""A run's heartbeat: while a Dagster run's process lives, a thread refreshes the run's row in
run_heartbeats (store/heartbeats.py) every GLUE_HEARTBEAT_SECONDS; the row goes when the run's
resources are torn down. A process killed outright (SIGKILL, OOM, a lost machine) stops beating,
and run monitoring (launcher.py) fails its run once the beat is older than its timeout."""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime

from glue_pipeline.settings import heartbeat_seconds_from_env
from glue_pipeline.store import heartbeats
from glue_pipeline.store.engine import Engine
from glue_pipeline.store.writer import utcnow

log = logging.getLogger(__name__)

class Heartbeat:
    """Beats for one run from a daemon thread, from `start` until `stop`."""

    def __init__(self, engine: Engine, run_id: str, job_name: str, interval: float | None = None) -> None:
        self.engine = engine
        self.run_id = run_id
        self.job_name = job_name
        self.interval = interval or heartbeat_seconds_from_env()
        self.started_at: datetime = utcnow()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"glue-heartbeat-{run_id[:8]}", daemon=True)

    def start(self) -> Heartbeat:
        self._beat()  # the row exists before the run does any work
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=self.interval + 5)
        try:
            heartbeats.end(self.engine, self.run_id)
        except Exception:  # the store gone at the end: monitoring treats a stale row as a dead run
            log.warning("run %s: its heartbeat row could not be removed", self.run_id, exc_info=True)

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self._beat()
            except Exception:  # a store briefly away: the next beat tries again
                log.warning("run %s: heartbeat not recorded", self.run_id, exc_info=True)

    def _beat(self) -> None:
        heartbeats.beat(self.engine, self.run_id, self.job_name, socket.gethostname(), os.getpid(),
                        self.started_at)
