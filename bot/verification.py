"""Slack request signatures, checked as Bolt checks them, refused without logging the body.

Bolt's own check logs a refused request's body, and a slash command's body holds its
`response_url`, which lets whoever holds it post into the channel for 30 minutes. This check
logs why the request was refused and the names of its headers, never their values or the body.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.middleware.request_verification import RequestVerification

log = logging.getLogger("partner_kpi.verification")
MAX_AGE_SECONDS = 60 * 5  # Slack's rule: a request older (or newer) than this is a replay


class SignatureCheck(RequestVerification):
    """Bolt's request verification with a log line that holds no secret."""

    def process(
        self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        if self._can_skip(req.mode, req.body):
            return next()
        timestamp = req.headers.get("x-slack-request-timestamp", [""])[0]
        signature = req.headers.get("x-slack-signature", [""])[0]
        problem = refusal(self.verifier, req.raw_body, timestamp, signature)
        if problem is None:
            return next()
        log.warning("refused a request: %s (headers: %s)", problem, ", ".join(sorted(req.headers)))
        response: BoltResponse = self._build_error_response()
        return response


def refusal(verifier: Any, body: str, timestamp: str, signature: str) -> str | None:
    """Why a request's signature is refused, or None when it is valid."""
    if not signature:
        return "no X-Slack-Signature header"
    if not timestamp.isdigit():
        return "no X-Slack-Request-Timestamp header with a number"
    if abs(time.time() - int(timestamp)) > MAX_AGE_SECONDS:
        return "its timestamp is more than 5 minutes away from now"
    if not verifier.is_valid(body, timestamp, signature):
        return "the signature does not match the signing secret"
    return None


def check_signatures_quietly(app: App) -> None:
    """Puts SignatureCheck in place of the app's RequestVerification middleware."""
    for item in app._middleware_list:
        if type(item) is RequestVerification:
            item.__class__ = SignatureCheck  # its verifier and logger stay as Bolt made them
