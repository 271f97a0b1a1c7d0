"""`ila`: the operator's command for Incident Link Actions (Typer + rich).

Action commands call the app over HTTP through `incident_link_actions_client`; `replay-poison`
and `doctor --env` use the app's own settings from the environment. Exit status: 0 success,
2 partial success, 1 failure, 130 interrupted.
"""
