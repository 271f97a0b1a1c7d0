"""Sandbox simulators of the upstream APIs (ContraForce v2, D3 SOAR), for local runs and tests.

`contraforce.create_app` / `d3.create_app` build Starlette apps over in-memory state; `faults`
holds the shared fault plan; `admin` the `/_sandbox/...` routes; `local.server.serve_in_thread`
serves any of them on a loopback port.

`python -m local.sandbox` (`make sandbox`) serves both simulators and an Azurite in a process
of their own, on the fixed ports below; `python -m local` with `LOCAL_SANDBOX=apart`
(`make run LOCAL_SANDBOX=apart`) points the host at them (`apart_settings`), so the host can be
killed and restarted while the storage and the upstreams' state stay.
"""

from __future__ import annotations

from collections.abc import Sequence

APART_HOST = "127.0.0.1"
CONTRAFORCE_PORT = 7072
D3_PORT = 7073
AZURITE_PORTS = (10000, 10001, 10002)  # Azurite's own defaults: blob, queue, table


def apart_settings(
    host: str = APART_HOST,
    *,
    contraforce_port: int = CONTRAFORCE_PORT,
    d3_port: int = D3_PORT,
    azurite_ports: Sequence[int] = AZURITE_PORTS,
) -> dict[str, str]:
    """The app settings for a host whose sandbox runs apart (`python -m local.sandbox`)."""
    from local.azurite import connection_string  # noqa: PLC0415 - nothing loaded at import
    from local.sandbox.d3 import D3Simulator  # noqa: PLC0415
    from local.sandbox.settings import contraforce_settings, d3_settings  # noqa: PLC0415

    return {
        **contraforce_settings(f"http://{host}:{contraforce_port}"),
        **d3_settings(f"http://{host}:{d3_port}", D3Simulator()),
        "AzureWebJobsStorage": connection_string(host, azurite_ports),
    }
