"""The :class:`Sandbox`: the sandbox app under uvicorn in a background thread, loopback only.

    with Sandbox("data/sandbox", datafile="tests/fixtures/datafile.json") as sb:
        sb.events_url, sb.datafile_url, sb.results_url("50001"), sb.install_config(), sb.stats()

Port 0 picks a free port (the socket is bound before the thread starts, so ``url`` is known at
once). ``stop()`` asks uvicorn to finish in-flight requests, joins the thread and closes the store.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from ..datafile import Datafile, load_datafile, parse_datafile
from ..errors import UserInputError
from ..secrets import Secret
from .app import SandboxState, create_app, stats_from
from .body_timeout import DEFAULT_BODY_TIMEOUT
from .faults import FaultSpec, parse_faults
from .store import Store

__all__ = ["Sandbox", "DEFAULT_SDK_KEY", "SandboxError"]

log = logging.getLogger(__name__)

DEFAULT_SDK_KEY = "SandboxSdkKey"
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0


class SandboxError(UserInputError):
    """The sandbox cannot start as asked (non-loopback host, busy port, no datafile)."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _load_datafile(datafile: Datafile | str | os.PathLike[str] | dict | None, store: Store) -> Datafile:
    if isinstance(datafile, Datafile):
        return datafile
    if isinstance(datafile, dict):
        return parse_datafile(json.dumps(datafile), source="datafile (dict)")
    if datafile is None:
        stored = store.datafile()
        if stored is None:
            raise SandboxError(f"no datafile: pass datafile=PATH (or --datafile), none is stored in {store.data_dir}")
        return parse_datafile(stored.text, source=f"datafile stored in {store.path}")
    return load_datafile(datafile)


class Sandbox:
    """A local Optimizely stand-in (Event API, datafile CDN, Results API, CSV and E3 exports)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        datafile: Datafile | str | os.PathLike[str] | dict | None,
        sdk_key: str = DEFAULT_SDK_KEY,
        api_token: str | Secret | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultSpec | dict | str | None = None,
        lag_seconds: float = 0.0,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
    ) -> None:
        if not _is_loopback(host):
            raise SandboxError(f"host {host!r} is not a loopback address: the sandbox listens on 127.0.0.1 / ::1 only")
        if not sdk_key or any(c in sdk_key for c in "/?#% ") :
            raise SandboxError("sdk_key must be a non-empty string without '/', '?', '#', '%' or spaces")
        if lag_seconds < 0:
            raise SandboxError(f"lag_seconds must not be negative, got {lag_seconds}")
        if not body_timeout > 0:
            raise SandboxError(f"body_timeout must be a positive number of seconds, got {body_timeout}")
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = int(port)
        self.sdk_key = sdk_key
        self.api_token = Secret(api_token, source="sandbox api_token") if isinstance(api_token, str) else api_token
        self.lag_seconds = float(lag_seconds)
        self.body_timeout = float(body_timeout)
        self._faults = parse_faults(faults)
        self._datafile_arg = datafile
        self._state: SandboxState | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Sandbox:
        if self._thread is not None:
            return self
        import uvicorn

        store = Store(self.data_dir, background=True)
        try:
            df = _load_datafile(self._datafile_arg, store)
            state = SandboxState(store, datafile=df, sdk_key=self.sdk_key, api_token=self.api_token,
                                 lag_seconds=self.lag_seconds, faults=self._faults)
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, self.port))
            except OSError as exc:
                sock.close()
                raise SandboxError(f"cannot listen on {self.host}:{self.port} ({exc.strerror}); "
                                   "choose another --port or 0 for a free one") from None
        except BaseException:
            store.close()
            raise
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(create_app(state, body_timeout=self.body_timeout), log_config=None, log_level="warning", access_log=False,
                                http="h11", lifespan="off", ws="none", server_header=False,
                                timeout_graceful_shutdown=5)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                                  name=f"sandbox-{self.port}")
        self._state, self._server, self._thread, self._sock = state, server, thread, sock
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise SandboxError(f"the sandbox did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        log.info("sandbox listening on %s (data in %s)", self.url, self.data_dir)
        return self

    def stop(self) -> None:
        server, thread, state, sock = self._server, self._thread, self._state, self._sock
        self._server = self._thread = self._state = self._sock = None
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(_STOP_TIMEOUT)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(_STOP_TIMEOUT)
        if sock is not None:
            sock.close()
        if state is not None:
            state.store.close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ URLs

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def events_url(self) -> str:
        return f"{self.url}/v1/events"

    @property
    def datafile_url(self) -> str:
        return f"{self.url}/datafiles/{self.sdk_key}.json"

    def results_url(self, experiment_id: str) -> str:
        return f"{self.url}/v2/experiments/{experiment_id}/results"

    def results_csv_url(self, experiment_id: str) -> str:
        return f"{self.url}/v2/export/experiments/{experiment_id}/results/csv"

    # ------------------------------------------------------------------ state

    @property
    def datafile(self) -> Datafile:
        """The datafile in force (running), else the one given or stored."""
        if self._state is not None:
            return self._state.datafile
        store = Store(self.data_dir)
        try:
            return _load_datafile(self._datafile_arg, store)
        finally:
            store.close()

    def install_config(self) -> dict[str, Any]:
        """The Datafly install JSON (plus ``event_endpoint``) that points the toolkit at this sandbox."""
        df = self.datafile
        return {
            "name": "Optimizely",
            "variant": "default",
            "config": {
                "account_id": df.account_id,
                "project_id": df.project_id,
                "sdk_key": self.sdk_key,
                "datafile_url": self.datafile_url,
                "event_endpoint": self.events_url,
            },
            "delivery_mode": "server_side",
        }

    def stats(self) -> dict[str, Any]:
        if self._state is not None:
            return self._state.stats()
        store = Store(self.data_dir)
        try:
            return stats_from(store, self._faults, store.datafile())
        finally:
            store.close()

    def reset(self) -> None:
        """Forget every stored event and counter."""
        if self._state is not None:
            self._state.store.reset()
            return
        store = Store(self.data_dir)
        try:
            store.reset()
        finally:
            store.close()

    def set_faults(self, faults: FaultSpec | dict | str | None) -> FaultSpec:
        self._faults = parse_faults(faults)
        if self._state is not None:
            self._state.set_faults(self._faults)
        return self._faults

    def set_datafile(self, datafile: Datafile | str | os.PathLike[str] | dict) -> Datafile:
        """Replace the served datafile (new ETag; the revision is the new datafile's)."""
        self._datafile_arg = datafile
        if self._state is None:
            return self.datafile
        df = _load_datafile(datafile, self._state.store)
        self._state.set_datafile(df)
        return df

    def export_e3(self, out_dir: str | os.PathLike[str]) -> dict[str, Any]:
        from .e3 import export_e3

        if self._state is not None:
            return export_e3(self._state.store, out_dir)
        store = Store(self.data_dir)
        try:
            return export_e3(store, out_dir)
        finally:
            store.close()

    def __repr__(self) -> str:
        state = self.url if self.running else "stopped"
        return f"Sandbox({state}, data_dir={str(self.data_dir)!r})"
