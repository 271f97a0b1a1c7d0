"""Sandbox simulators of the upstream APIs (ContraForce v2, D3 SOAR), for local runs and tests.

`contraforce.create_app` / `d3.create_app` build Starlette apps over in-memory state; `faults`
holds the shared fault plan; `admin` the `/_sandbox/...` routes; `local.server.serve_in_thread`
serves any of them on a loopback port.
"""
