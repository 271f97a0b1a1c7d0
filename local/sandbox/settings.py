"""The app settings that point the app at the sandbox simulators, with their demo credentials.

One place for `make run`, the tests and the benchmarks.
"""

from __future__ import annotations

from local.sandbox import d3
from local.sandbox.contraforce_state import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from local.sandbox.d3_state import DEMO_SITE, DEMO_USERNAME


def contraforce_settings(server_base_url: str) -> dict[str, str]:
    """ContraForce: the simulator's API v2 base URL and its demo service account."""
    return {
        "CONTRAFORCE_BASE_URL": f"{server_base_url.rstrip('/')}/api/v2",
        "CONTRAFORCE_CLIENT_ID": DEMO_CLIENT_ID,
        "CONTRAFORCE_CLIENT_SECRET": DEMO_CLIENT_SECRET,
    }


def d3_settings(server_base_url: str, simulator: d3.D3Simulator) -> dict[str, str]:
    """D3: the simulator's command API base URL, its demo API key, user and site."""
    return {
        "D3_BASE_URL": f"{server_base_url.rstrip('/')}{simulator.api_path}",
        "D3_API_KEY_HEADER": d3.DEFAULT_API_KEY_HEADER,
        "D3_API_KEY": d3.DEFAULT_API_KEY,
        "D3_DEFAULT_USERNAME": DEMO_USERNAME,
        "D3_DEFAULT_SITE": DEMO_SITE,
    }


# Real retries with short waits, for tests: Retry-After is honored up to the cap.
FAST_RETRIES = {
    "RETRY_ATTEMPTS": "4",
    "RETRY_INITIAL_WAIT_SECONDS": "0.01",
    "RETRY_MAX_WAIT_SECONDS": "0.05",
    "RETRY_AFTER_CAP_SECONDS": "0.05",
}
