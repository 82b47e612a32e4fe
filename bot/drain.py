"""At shutdown: let the Bolt app's listeners still answering (through `response_url`, after
their ack) finish, within a bound."""

from __future__ import annotations

import threading

from slack_bolt import App


def finish_listeners(app: App, seconds: float) -> bool:
    """Stops the app's listener pool and waits up to `seconds` for its running listeners.
    True when they all finished; False leaves them running in their (non-daemon) threads."""
    listeners = app.listener_runner.listener_executor
    finisher = threading.Thread(target=listeners.shutdown, name="listener-drain", daemon=True)
    finisher.start()
    finisher.join(max(0.0, seconds))
    return not finisher.is_alive()
