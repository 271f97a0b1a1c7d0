"""Health: are the settings valid, and which upstreams can be called. Names, never values."""

from __future__ import annotations

from typing import Any

from shared.config import Settings, get_settings
from shared.errors import NotConfigured
from shared.rendering import Rendered


def _check(name: str, settings: Settings) -> dict[str, Any]:
    try:
        if name == "contraforce":
            credential = type(settings.contraforce_credential()).__name__
        else:
            settings.d3_base()
            credential = type(settings.d3_credential()).__name__
    except NotConfigured as exc:
        return {"configured": False, "problem": exc.message, "settings": list(exc.settings)}
    return {"configured": True, "credential": credential.removesuffix("Settings")}


def health_answer() -> Rendered:
    """200 when settings load (each upstream says if it is usable); 503 naming bad settings."""
    try:
        settings = get_settings()
    except NotConfigured as exc:
        return Rendered(
            503,
            {"status": "unhealthy", "problem": "invalid settings", "settings": list(exc.settings)},
        )
    upstreams = {name: _check(name, settings) for name in ("contraforce", "d3")}
    return Rendered(200, {"status": "healthy", "upstreams": upstreams})
