"""A loopback stand-in for Slack, for end-to-end tests of the bot.

Two halves:

* `FakeSlack` plays Slack's side of the Web API: a threaded HTTP server on 127.0.0.1 that
  answers `WebClient(base_url=fake.api_url)` with the JSON shapes Slack sends, validates Block
  Kit the way Slack does, can be scripted to fail (429 with Retry-After, or any error), hands out
  `response_url`s and records everything that reached it so a test can assert on it.
* `sign`, `slash_command_body`, `block_action_body`, `view_submission_body`,
  `event_callback_body` and `post_to_bot` play Slack's side of requests *to* the bot: bodies
  encoded exactly as Slack sends them, signed with the app's signing secret.

Typical use::

    with FakeSlack() as fake:
        fake.add_user("U1", "ann", email="ann@example.com")
        response_url = fake.new_response_url()
        body = slash_command_body(text="scorecard Acme", response_url=response_url)
        status, _, _ = post_to_bot(bot_url, body, SIGNING_SECRET)
        assert status == 200
        post = fake.wait_for_response(response_url)   # the bot answers after its ack
        assert post.body["response_type"] == "ephemeral"

Everything stays on the loopback interface: `post_to_bot` refuses any other host, and the
default response_url in the body helpers points at a closed loopback port, never at Slack.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import ipaddress
import itertools
import json
import mimetypes
import secrets
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple, Self, TypeVar, cast
from urllib.error import HTTPError
from urllib.parse import parse_qs, urlencode, urlsplit
from urllib.request import Request, urlopen
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

T = TypeVar("T")

# --- Slack's documented limits (Block Kit reference, chat.postMessage, views) ---------------
MESSAGE_MAX_BLOCKS = 50
VIEW_MAX_BLOCKS = 100
SECTION_TEXT_MAX = 3000
SECTION_FIELDS_MAX = 10
FIELD_TEXT_MAX = 2000
HEADER_TEXT_MAX = 150
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
URL_MAX = 3000
BLOCK_ID_MAX = 255
ACTION_ID_MAX = 255
ACTIONS_ELEMENTS_MAX = 25
CONTEXT_ELEMENTS_MAX = 10
OPTION_TEXT_MAX = 75
OPTION_VALUE_MAX = 150
OPTIONS_MAX = 100
PLACEHOLDER_MAX = 150
MARKDOWN_BLOCK_MAX = 12_000
LABEL_MAX = 2000
VIEW_TITLE_MAX = 24
PRIVATE_METADATA_MAX = 3000
MESSAGE_TEXT_MAX = 40_000
ATTACHMENTS_MAX = 100
# Slack answers msg_blocks_too_long well below its documented per-block limits once the blocks
# add up to roughly 12-13k characters of JSON (slackapi/bolt-js#2509); 12,000 is the safe line.
BLOCKS_JSON_MAX = 12_000

KNOWN_BLOCK_TYPES = frozenset(
    {
        "actions",
        "call",
        "context",
        "context_actions",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)

FIRST_TS_SECONDS = 1_700_000_000
DEFAULT_TOKEN = "xoxb-test"
DEFAULT_APP_TOKEN = "xapp-1-A1-1-test"  # an app-level token (Socket Mode), see fake_socket_mode
DEFAULT_VERIFICATION_TOKEN = "fake-verification-token"
# A closed port on loopback: a bot that answers a body built without a real response_url fails
# fast and locally instead of reaching for hooks.slack.com.
UNSET_RESPONSE_URL = "http://127.0.0.1:9/response/unset"

JSON_FIELDS = ("blocks", "attachments", "view", "files", "metadata", "user_auth_blocks")


# --- Records -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One Web API request that reached the fake, whatever the answer was.

    `body` holds the parameters whether they came form-encoded, as JSON or in the query string;
    JSON-in-a-string fields (`blocks`, `attachments`, `view`, `files`, `metadata`) are decoded
    so `call.body["blocks"]` is a list either way. `headers` has lower-case names.
    """

    method: str
    body: dict[str, Any]
    headers: dict[str, str]
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)
    raw: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response.get("ok"))

    @property
    def token(self) -> str | None:
        return _token_from(self.headers, self.body)


@dataclass(frozen=True)
class ResponsePost:
    """One POST to a response_url handed out by `FakeSlack.new_response_url`."""

    url_id: str
    url: str
    body: dict[str, Any]
    headers: dict[str, str]
    status: int = 200
    reply: str = "ok"

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class FakeUser:
    """A workspace member as users.info describes one.

    External people look like this in Slack: Slack Connect members carry another `team_id`
    (and `is_stranger` when the app's workspace shares no channel with them), multi-channel
    guests `is_restricted`, single-channel guests `is_ultra_restricted` as well.
    """

    id: str
    name: str = ""
    email: str | None = None
    real_name: str = ""
    display_name: str = ""
    team_id: str = ""
    is_bot: bool = False
    is_admin: bool = False
    is_owner: bool = False
    is_restricted: bool = False
    is_ultra_restricted: bool = False
    is_stranger: bool = False
    deleted: bool = False
    tz: str = "America/New_York"
    bot_id: str | None = None
    app_id: str | None = None

    def to_api(self) -> dict[str, Any]:
        name = self.name or self.id.lower()
        real_name = self.real_name or name.replace(".", " ").title()
        first, _, last = real_name.partition(" ")
        profile: dict[str, Any] = {
            "title": "",
            "phone": "",
            "skype": "",
            "real_name": real_name,
            "real_name_normalized": real_name,
            "display_name": self.display_name,
            "display_name_normalized": self.display_name,
            "fields": None,
            "status_text": "",
            "status_emoji": "",
            "status_expiration": 0,
            "avatar_hash": "g" + hashlib.sha1(self.id.encode()).hexdigest()[:11],
            "first_name": first,
            "last_name": last,
            "team": self.team_id,
        }
        if self.email is not None:
            profile["email"] = self.email
        for size in (24, 32, 48, 72, 192, 512):
            profile[f"image_{size}"] = f"https://secure.gravatar.com/avatar/{self.id}.jpg?s={size}"
        if self.is_bot:
            profile.update(
                {"bot_id": self.bot_id, "api_app_id": self.app_id, "always_active": True}
            )
        offset, label = _tz_facts(self.tz)
        user: dict[str, Any] = {
            "id": self.id,
            "team_id": self.team_id,
            "name": name,
            "deleted": self.deleted,
            "color": "9f69e7",
            "real_name": real_name,
            "tz": self.tz,
            "tz_label": label,
            "tz_offset": offset,
            "profile": profile,
            "is_admin": self.is_admin,
            "is_owner": self.is_owner,
            "is_primary_owner": False,
            "is_restricted": self.is_restricted,
            "is_ultra_restricted": self.is_ultra_restricted,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "updated": FIRST_TS_SECONDS,
            "is_email_confirmed": self.email is not None,
            "who_can_share_contact_card": "EVERYONE",
        }
        if self.is_stranger:  # Slack only sends the flag for strangers
            user["is_stranger"] = True
        return user


@dataclass
class FakeChannel:
    """A conversation. `is_member` is whether the bot is in it (not_in_channel otherwise);
    `members`, when set, is who may see ephemeral messages there (user_not_in_channel)."""

    id: str
    name: str = ""
    is_private: bool = False
    is_im: bool = False
    is_mpim: bool = False
    is_archived: bool = False
    is_member: bool = True
    members: set[str] | None = None
    user: str | None = None  # the other person, for an IM
    team_id: str = ""
    # Slack Connect: the other organisations' team ids, shared or with a share pending.
    # `org_shared` is a share across one Enterprise Grid org's workspaces (not external).
    connected_teams: list[str] = field(default_factory=list)
    pending_teams: list[str] = field(default_factory=list)
    org_shared: bool = False

    def to_api(self) -> dict[str, Any]:
        if self.is_im:
            return {
                "id": self.id,
                "created": FIRST_TS_SECONDS,
                "is_archived": False,
                "is_im": True,
                "is_org_shared": False,
                "context_team_id": self.team_id,
                "updated": FIRST_TS_SECONDS * 1000,
                "user": self.user,
                "is_user_deleted": False,
                "priority": 0,
            }
        name = self.name or self.id.lower()
        return {
            "id": self.id,
            "name": name,
            "is_channel": not self.is_private and not self.is_mpim,
            "is_group": self.is_private and not self.is_mpim,
            "is_im": False,
            "is_mpim": self.is_mpim,
            "is_private": self.is_private or self.is_mpim,
            "created": FIRST_TS_SECONDS,
            "is_archived": self.is_archived,
            "is_general": False,
            "unlinked": 0,
            "name_normalized": name,
            "is_shared": bool(self.connected_teams) or self.org_shared,
            "is_org_shared": self.org_shared,
            "is_pending_ext_shared": bool(self.pending_teams),
            "pending_shared": list(self.pending_teams),
            "context_team_id": self.team_id,
            "updated": FIRST_TS_SECONDS * 1000,
            "parent_conversation": None,
            "creator": "U0CREATOR",
            "is_ext_shared": bool(self.connected_teams),
            "shared_team_ids": [self.team_id, *self.connected_teams],
            "pending_connected_team_ids": list(self.pending_teams),
            "is_member": self.is_member,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
            "previous_names": [],
        }


@dataclass
class UploadedFile:
    """A file going through files.getUploadURLExternal → upload POST →
    files.completeUploadExternal."""

    id: str
    filename: str
    length: int
    upload_key: str
    alt_txt: str | None = None
    snippet_type: str | None = None
    data: bytes | None = None  # None until the upload POST arrives
    title: str | None = None
    completed: bool = False
    channels: list[str] = field(default_factory=list)
    initial_comment: str | None = None
    thread_ts: str | None = None


@dataclass
class _Failure:
    method: str
    error: str
    status: int
    retry_after: int | None
    remaining: int
    extra: dict[str, Any]


class ApiError(Exception):
    """A Slack error answer, raised inside a method handler."""

    def __init__(self, error: str, messages: list[str] | None = None, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.messages = messages or []
        self.extra = extra

    def to_response(self) -> dict[str, Any]:
        response: dict[str, Any] = {"ok": False, "error": self.error, **self.extra}
        if self.messages:
            response["response_metadata"] = {"messages": self.messages}
        return response


# --- Block Kit validation ----------------------------------------------------------------------


def _same_option(first: Any, second: Any) -> bool:
    if not isinstance(first, dict) or not isinstance(second, dict):
        return False
    text_of = lambda option: (option.get("text") or {}).get("text")  # noqa: E731
    return bool(first.get("value") == second.get("value") and text_of(first) == text_of(second))


class BlockProblem(NamedTuple):
    """Why Slack would refuse some blocks: the `error` code and its response_metadata messages."""

    error: str
    messages: list[str]


class _Checker:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def fail(self, message: str, pointer: str) -> None:
        self.messages.append(f"[ERROR] {message} [json-pointer:{pointer}]")

    def length(self, value: Any, pointer: str, maximum: int, *, required: bool = False) -> None:
        if value is None:
            if required:
                self.fail("missing required field", pointer)
            return
        if not isinstance(value, str):
            self.fail("must be a string", pointer)
        elif required and not value:
            self.fail("must be more than 0 characters", pointer)
        elif len(value) > maximum:
            self.fail(f"must be less than {maximum + 1} characters", pointer)

    def text(
        self,
        obj: Any,
        pointer: str,
        maximum: int,
        *,
        plain_only: bool = False,
        required: bool = True,
    ) -> None:
        if obj is None:
            if required:
                self.fail("missing required field: text", pointer.rsplit("/", 1)[0] or "/")
            return
        if not isinstance(obj, dict):
            self.fail("must be an object", pointer)
            return
        kind = obj.get("type")
        allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
        if kind not in allowed:
            self.fail(f"must be a valid enum value ({', '.join(allowed)})", f"{pointer}/type")
        self.length(obj.get("text"), f"{pointer}/text", maximum, required=True)

    def element(self, element: Any, pointer: str) -> None:
        if not isinstance(element, dict):
            self.fail("must be an object", pointer)
            return
        kind = element.get("type")
        if not isinstance(kind, str):
            self.fail("missing required field: type", pointer)
            return
        self.length(element.get("action_id"), f"{pointer}/action_id", ACTION_ID_MAX)
        if kind == "button":
            self.text(element.get("text"), f"{pointer}/text", BUTTON_TEXT_MAX, plain_only=True)
            self.length(element.get("value"), f"{pointer}/value", BUTTON_VALUE_MAX)
            self.length(element.get("url"), f"{pointer}/url", URL_MAX)
            style = element.get("style")
            if style is not None and style not in ("primary", "danger"):
                self.fail("must be a valid enum value (primary, danger)", f"{pointer}/style")
        if "placeholder" in element:
            self.text(
                element["placeholder"], f"{pointer}/placeholder", PLACEHOLDER_MAX, plain_only=True
            )
        options = element.get("options")
        if options is not None:
            if not isinstance(options, list):
                self.fail("must be an array", f"{pointer}/options")
            else:
                if len(options) > OPTIONS_MAX:
                    self.fail(f"no more than {OPTIONS_MAX} items allowed", f"{pointer}/options")
                for j, option in enumerate(options):
                    self.option(option, f"{pointer}/options/{j}")
                self.initial_option(element, pointer)

    def initial_option(self, element: dict[str, Any], pointer: str) -> None:
        """A select's initial_option must be one of its options (text and value alike)."""
        initial, options = element.get("initial_option"), element.get("options")
        if initial is None or not isinstance(options, list):
            return
        self.option(initial, f"{pointer}/initial_option")
        if not any(_same_option(initial, option) for option in options):
            self.fail("must match one of the options", f"{pointer}/initial_option")

    def option(self, option: Any, pointer: str) -> None:
        if not isinstance(option, dict):
            self.fail("must be an object", pointer)
            return
        self.text(option.get("text"), f"{pointer}/text", OPTION_TEXT_MAX)
        self.length(option.get("value"), f"{pointer}/value", OPTION_VALUE_MAX)

    def block(self, block: Any, pointer: str, seen_block_ids: set[str]) -> None:
        if not isinstance(block, dict):
            self.fail("must be an object", pointer)
            return
        kind = block.get("type")
        if not isinstance(kind, str):
            self.fail("missing required field: type", pointer)
            return
        if kind not in KNOWN_BLOCK_TYPES:
            self.fail(f"unsupported type: {kind}", f"{pointer}/type")
            return
        block_id = block.get("block_id")
        if block_id is not None:
            self.length(block_id, f"{pointer}/block_id", BLOCK_ID_MAX)
            if isinstance(block_id, str):
                if block_id in seen_block_ids:
                    self.fail(f"duplicate block_id: {block_id}", f"{pointer}/block_id")
                seen_block_ids.add(block_id)
        check = getattr(self, f"block_{kind}", None)
        if check is not None:
            check(block, pointer)

    def block_section(self, block: dict[str, Any], pointer: str) -> None:
        text, fields = block.get("text"), block.get("fields")
        if text is None and fields is None:
            self.fail("must provide either text or fields", pointer)
        if text is not None:
            self.text(text, f"{pointer}/text", SECTION_TEXT_MAX)
        if fields is not None:
            if not isinstance(fields, list):
                self.fail("must be an array", f"{pointer}/fields")
            else:
                if len(fields) > SECTION_FIELDS_MAX:
                    self.fail(
                        f"no more than {SECTION_FIELDS_MAX} items allowed", f"{pointer}/fields"
                    )
                for j, item in enumerate(fields):
                    self.text(item, f"{pointer}/fields/{j}", FIELD_TEXT_MAX)
        if "accessory" in block:
            self.element(block["accessory"], f"{pointer}/accessory")

    def block_header(self, block: dict[str, Any], pointer: str) -> None:
        self.text(block.get("text"), f"{pointer}/text", HEADER_TEXT_MAX, plain_only=True)

    def block_actions(self, block: dict[str, Any], pointer: str) -> None:
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            self.fail("must provide at least 1 item", f"{pointer}/elements")
            return
        if len(elements) > ACTIONS_ELEMENTS_MAX:
            self.fail(f"no more than {ACTIONS_ELEMENTS_MAX} items allowed", f"{pointer}/elements")
        action_ids: set[str] = set()
        for j, element in enumerate(elements):
            self.element(element, f"{pointer}/elements/{j}")
            action_id = element.get("action_id") if isinstance(element, dict) else None
            if isinstance(action_id, str):
                if action_id in action_ids:
                    self.fail(
                        f"duplicate action_id: {action_id}", f"{pointer}/elements/{j}/action_id"
                    )
                action_ids.add(action_id)

    def block_context(self, block: dict[str, Any], pointer: str) -> None:
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            self.fail("must provide at least 1 item", f"{pointer}/elements")
            return
        if len(elements) > CONTEXT_ELEMENTS_MAX:
            self.fail(f"no more than {CONTEXT_ELEMENTS_MAX} items allowed", f"{pointer}/elements")
        for j, element in enumerate(elements):
            if isinstance(element, dict) and element.get("type") == "image":
                continue
            self.text(element, f"{pointer}/elements/{j}", SECTION_TEXT_MAX)

    def block_image(self, block: dict[str, Any], pointer: str) -> None:
        if "image_url" not in block and "slack_file" not in block:
            self.fail("must provide either image_url or slack_file", pointer)
        self.length(block.get("image_url"), f"{pointer}/image_url", URL_MAX)
        self.length(block.get("alt_text"), f"{pointer}/alt_text", LABEL_MAX, required=True)
        if "title" in block:
            self.text(block["title"], f"{pointer}/title", LABEL_MAX, plain_only=True)

    def block_input(self, block: dict[str, Any], pointer: str) -> None:
        self.text(block.get("label"), f"{pointer}/label", LABEL_MAX, plain_only=True)
        if "element" not in block:
            self.fail("missing required field: element", pointer)
        else:
            self.element(block["element"], f"{pointer}/element")
        if "hint" in block:
            self.text(block["hint"], f"{pointer}/hint", LABEL_MAX, plain_only=True)

    def block_markdown(self, block: dict[str, Any], pointer: str) -> None:
        self.length(block.get("text"), f"{pointer}/text", MARKDOWN_BLOCK_MAX, required=True)


def validate_blocks(
    blocks: Any,
    *,
    surface: str = "message",
    json_limit: int | None = BLOCKS_JSON_MAX,
    pointer: str = "/blocks",
) -> BlockProblem | None:
    """What Slack would say about `blocks`, or None when it would take them.

    `surface` is "message" (50 blocks, and msg_blocks_too_long past `json_limit` characters of
    compact JSON) or "modal"/"home" (100 blocks). Usable on its own in unit tests of a block
    builder, without a server.
    """
    if isinstance(blocks, str):
        return BlockProblem("invalid_blocks_format", ["[ERROR] must be a JSON array"])
    if not isinstance(blocks, list):
        return BlockProblem("invalid_blocks_format", [f"[ERROR] must be an array [{pointer}]"])
    checker = _Checker()
    maximum = MESSAGE_MAX_BLOCKS if surface == "message" else VIEW_MAX_BLOCKS
    if len(blocks) > maximum:
        checker.fail(f"no more than {maximum} items allowed", pointer)
    seen: set[str] = set()
    for i, block in enumerate(blocks):
        checker.block(block, f"{pointer}/{i}", seen)
    if checker.messages:
        return BlockProblem("invalid_blocks", checker.messages)
    if surface == "message" and json_limit is not None:
        size = len(json.dumps(blocks, ensure_ascii=False, separators=(",", ":")))
        if size > json_limit:
            return BlockProblem("msg_blocks_too_long", [])
    return None


def validate_view(view: Any) -> list[str]:
    """Slack's complaints about a modal or Home tab view (views.open/update/push/publish)."""
    checker = _Checker()
    if not isinstance(view, dict):
        checker.fail("must be an object", "/view")
        return checker.messages
    kind = view.get("type")
    if kind not in ("modal", "home"):
        checker.fail("must be a valid enum value (modal, home)", "/view/type")
    if kind == "modal":
        checker.text(view.get("title"), "/view/title", VIEW_TITLE_MAX, plain_only=True)
        for part in ("submit", "close"):
            if view.get(part) is not None:
                checker.text(view[part], f"/view/{part}", VIEW_TITLE_MAX, plain_only=True)
    checker.length(view.get("private_metadata"), "/view/private_metadata", PRIVATE_METADATA_MAX)
    checker.length(view.get("callback_id"), "/view/callback_id", BLOCK_ID_MAX)
    blocks = view.get("blocks")
    if blocks is None:
        checker.fail("missing required field: blocks", "/view")
    else:
        problem = validate_blocks(blocks, surface="modal", json_limit=None, pointer="/view/blocks")
        if problem is not None:
            checker.messages.extend(problem.messages)
        if (
            kind == "modal"
            and isinstance(blocks, list)
            and view.get("submit") is None
            and any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
        ):
            checker.fail("submit is required when an input block is present", "/view/submit")
    return checker.messages


# --- The server ------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], fake: FakeSlack) -> None:
        self.fake = fake
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up waiting (a stalled answer, a client timeout) is expected here;
        anything else is still printed."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        cast(_Server, self.server).fake._serve(self)

    def do_GET(self) -> None:
        cast(_Server, self.server).fake._serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


Reply = tuple[int, dict[str, str], bytes]
MethodHandler = Callable[[dict[str, Any]], dict[str, Any]]


#: What Slack's response_url answers to a post it accepted (see FakeSlack).
RESPONSE_URL_OK = '{"ok":true}'
RESPONSE_URL_OK_PLAIN = "ok"


class Served:
    """`with Fake() as fake:` for a loopback fake: `start` on entry, `stop` on exit."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class FakeSlack(Served):
    """Slack's Web API, response_urls and file uploads on 127.0.0.1, with a record of calls.

    Channels are lenient by default: posting to a channel nobody configured works, as if the
    bot were a member. `add_channel` makes one behave otherwise (archived, bot not a member,
    private), and `strict_channels=True` makes unknown channels channel_not_found. Users are
    strict: users.info, users.lookupByEmail and conversations.open know only the users added
    with `add_user` (and the bot itself).

    Missing tokens answer not_authed and unknown ones invalid_auth, as Slack does. App-level
    tokens (`app_tokens`, xapp-…) are good only for apps.connections.open, and bot tokens are not
    good there: either way Slack answers not_allowed_token_type.
    """

    def __init__(
        self,
        *,
        tokens: Iterable[str] = (DEFAULT_TOKEN,),
        app_tokens: Iterable[str] = (DEFAULT_APP_TOKEN,),
        team_id: str = "T1",
        team_name: str = "Fake Workspace",
        team_domain: str = "fake-workspace",
        bot_user_id: str = "UBOT",
        bot_id: str = "B1",
        app_id: str = "A1",
        bot_name: str = "partner-kpi",
        strict_channels: bool = False,
        blocks_json_limit: int = BLOCKS_JSON_MAX,
        response_url_max_uses: int = 5,
        response_url_accepts_with: str = RESPONSE_URL_OK,
        wall_clock_ts: bool = False,
    ) -> None:
        self.tokens: set[str] = set(tokens)
        self.app_tokens: set[str] = set(app_tokens)
        # Where apps.connections.open sends the app: set by FakeSocketMode (None: Socket Mode is
        # off for the app, and Slack answers an error).
        self.socket_url: Callable[[], str] | None = None
        self.team_id = team_id
        self.team_name = team_name
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.bot_name = bot_name
        self.strict_channels = strict_channels
        self.blocks_json_limit = blocks_json_limit
        self.response_url_max_uses = response_url_max_uses
        # The body of an accepted response_url post: Slack answers `{"ok":true}` (JSON) today,
        # plain `ok` in older answers; a client must take any 2xx as success either way.
        self.response_url_accepts_with = response_url_accepts_with
        # Message ts from the wall clock (as Slack's are), for code that reads history with
        # `oldest`; by default they count up from FIRST_TS_SECONDS.
        self.wall_clock_ts = wall_clock_ts
        self._last_ts_micros = 0

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._version = 0  # bumped on every request, so wait_for never misses one
        self._ids = itertools.count(1)
        self._ts = itertools.count(1)
        self._calls: list[Call] = []
        self._responses: list[ResponsePost] = []
        self._response_urls: dict[str, dict[str, Any]] = {}
        self._failures: list[_Failure] = []
        self._stalls: dict[str, list[float]] = {}
        self._users: dict[str, FakeUser] = {}
        self._channels: dict[str, FakeChannel] = {}
        self._messages: dict[tuple[str, str], dict[str, Any]] = {}
        self._ephemerals: list[dict[str, Any]] = []
        self._views: dict[str, dict[str, Any]] = {}
        self._home_views: dict[str, dict[str, Any]] = {}  # user id -> that user's Home view
        self._files: dict[str, UploadedFile] = {}
        self._usergroups: dict[str, list[str]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

        self.add_user(bot_user_id, bot_name, is_bot=True, bot_id=bot_id, app_id=app_id)
        self._methods: dict[str, MethodHandler] = {
            "api.test": self._api_test,
            "apps.connections.open": self._apps_connections_open,
            "auth.test": self._auth_test,
            "chat.delete": self._chat_delete,
            "chat.getPermalink": self._chat_get_permalink,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "conversations.history": self._conversations_history,
            "conversations.info": self._conversations_info,
            "conversations.join": self._conversations_join,
            "conversations.list": self._conversations_list,
            "conversations.open": self._conversations_open,
            "files.completeUploadExternal": self._files_complete_upload_external,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.upload": self._files_upload_retired,
            "usergroups.users.list": self._usergroups_users_list,
            "users.info": self._users_info,
            "users.list": self._users_list,
            "users.lookupByEmail": self._users_lookup_by_email,
            "views.open": self._views_open,
            "views.publish": self._views_publish,
            "views.push": self._views_push,
            "views.update": self._views_update,
        }

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        """Binds a free port on 127.0.0.1 and serves in a daemon thread."""
        if self._server is not None:
            return self
        self._server = _Server(("127.0.0.1", 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"fake-slack-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeSlack is not started; use it as a context manager or start()")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """What `WebClient(base_url=...)` takes: slack_sdk appends the method name to it."""
        return f"{self.base_url}/api/"

    # -- configuration --------------------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        name: str = "",
        *,
        email: str | None = None,
        team_id: str | None = None,
        **flags: Any,
    ) -> FakeUser:
        """Adds (or replaces) a member; `flags` are `FakeUser` fields such as is_restricted,
        is_ultra_restricted, is_stranger, is_bot, deleted, real_name, tz."""
        user = FakeUser(user_id, name, email, team_id=team_id or self.team_id, **flags)
        with self._lock:
            self._users[user_id] = user
        return user

    def add_channel(
        self,
        channel_id: str,
        name: str = "",
        *,
        is_private: bool = False,
        is_archived: bool = False,
        is_member: bool = True,
        members: Iterable[str] | None = None,
        connected_teams: Iterable[str] = (),
        pending_teams: Iterable[str] = (),
        org_shared: bool = False,
    ) -> FakeChannel:
        """A channel; `connected_teams` shares it with other organisations (Slack Connect),
        `pending_teams` invites them, `org_shared` shares it inside an Enterprise Grid org."""
        channel = FakeChannel(
            channel_id,
            name or channel_id.lower(),
            is_private=is_private,
            is_archived=is_archived,
            is_member=is_member,
            members=set(members) if members is not None else None,
            team_id=self.team_id,
            connected_teams=list(connected_teams),
            pending_teams=list(pending_teams),
            org_shared=org_shared,
        )
        with self._lock:
            self._channels[channel_id] = channel
        return channel

    def add_usergroup(self, usergroup_id: str, users: Iterable[str]) -> None:
        with self._lock:
            self._usergroups[usergroup_id] = list(users)

    def fail_next(
        self,
        method: str,
        error: str = "ratelimited",
        status: int | None = None,
        retry_after: int | None = 1,
        times: int = 1,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Makes the next `times` requests to `method` fail.

        `method` is a Web API method ("chat.postMessage"), "*" for any Web API method,
        "response_url" for posts to response_urls or "upload" for file upload POSTs.
        `status` defaults to 429 for "ratelimited" (with a Retry-After header of `retry_after`
        seconds, which slack_sdk's RateLimitErrorRetryHandler sleeps for), to 200 for other Web
        API errors (Slack's usual {"ok": false, "error": ...}), and to 500 for the others.
        `extra` is merged into the JSON error answer (e.g. {"needed": "chat:write"}).
        """
        if status is None:
            if error == "ratelimited":
                status = 429
            elif method in ("response_url", "upload"):
                status = 500
            else:
                status = 200
        with self._lock:
            self._failures.append(
                _Failure(method, error, status, retry_after, times, dict(extra or {}))
            )

    def stall_next(self, method: str, seconds: float, times: int = 1) -> None:
        """Makes the next `times` requests to `method` wait `seconds` before answering, as a
        Slack that accepted the connection but is slow or stuck would (for client timeouts)."""
        with self._lock:
            self._stalls.setdefault(method, []).extend([seconds] * times)

    def new_response_url(self) -> str:
        """A fresh response_url on this server; posts to it are kept for `responses()`."""
        url_id = secrets.token_hex(8)
        with self._lock:
            self._response_urls[url_id] = {"uses": 0, "expired": False}
        return f"{self.base_url}/response/{url_id}"

    def expire_response_url(self, url: str) -> None:
        """Slack honours a response_url for 30 minutes; this ages one out now."""
        with self._lock:
            self._response_urls[_url_id(url)]["expired"] = True

    # -- records --------------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """Every Web API request so far, oldest first (a copy)."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [call for call in self._calls if call.method == method]

    def responses(self, url: str | None = None) -> list[ResponsePost]:
        """Posts to one response_url (its full URL or its id), or to all of them."""
        with self._lock:
            if url is None:
                return list(self._responses)
            url_id = _url_id(url)
            return [post for post in self._responses if post.url_id == url_id]

    def messages_in(self, channel: str) -> list[dict[str, Any]]:
        """The messages standing in a channel (posted and not deleted), oldest first."""
        with self._lock:
            found = [m for (c, _), m in self._messages.items() if c == channel]
        return sorted(found, key=lambda m: float(m["ts"]))

    @property
    def ephemerals(self) -> list[dict[str, Any]]:
        """chat.postEphemeral messages: each with channel, user, ts, text and blocks."""
        with self._lock:
            return list(self._ephemerals)

    @property
    def views(self) -> list[dict[str, Any]]:
        """Views opened, pushed or published, in their latest version, oldest first."""
        with self._lock:
            return [dict(v) for v in self._views.values()]

    @property
    def files(self) -> list[UploadedFile]:
        with self._lock:
            return list(self._files.values())

    def channel(self, channel_id: str) -> FakeChannel | None:
        with self._lock:
            return self._channels.get(channel_id)

    def clear(self) -> None:
        """Forgets calls and response posts (not users, channels or scripted failures)."""
        with self._lock:
            self._calls.clear()
            self._responses.clear()

    def wait_for(
        self, predicate: Callable[[], T], timeout: float = 5.0, description: str = ""
    ) -> T:
        """Calls `predicate` until it returns something truthy, and returns that.

        The bot answers after it acks, from another thread; this waits for it, calling
        `predicate` again whenever a request reaches the fake (and every 0.1 s). `predicate`
        runs without the fake's lock held, so it may even call the fake over HTTP. Raises
        TimeoutError, listing the requests seen so far.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                version = self._version
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                with self._lock:
                    seen = [c.method for c in self._calls]
                    seen += [f"response_url:{p.url_id}" for p in self._responses]
                what = description or getattr(predicate, "__name__", "condition")
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}; seen: {seen}")
            with self._changed:
                if self._version == version:
                    self._changed.wait(min(remaining, 0.1))

    def wait_for_call(
        self,
        method: str,
        where: Callable[[Call], bool] | None = None,
        timeout: float = 5.0,
    ) -> Call:
        """The first call to `method` (matching `where`, if given), waiting for it."""

        def find() -> Call | None:
            return next((c for c in self.calls_to(method) if where is None or where(c)), None)

        found = self.wait_for(find, timeout, description=f"a call to {method}")
        assert found is not None
        return found

    def wait_for_response(self, url: str | None = None, timeout: float = 5.0) -> ResponsePost:
        """The first post to `url` (or to any response_url), waiting for it."""

        def find() -> ResponsePost | None:
            posts = self.responses(url)
            return posts[0] if posts else None

        found = self.wait_for(find, timeout, description=f"a post to {url or 'a response_url'}")
        assert found is not None
        return found

    # -- HTTP plumbing --------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in handler.headers.items()}
        try:
            if split.path.startswith("/api/"):
                status, extra, payload = self._api(split.path[5:], raw, headers, split.query)
            elif split.path.startswith("/upload/v1/"):
                status, extra, payload = self._upload(split.path[11:], raw, headers)
            elif split.path.startswith("/response/"):
                status, extra, payload = self._response_post(split.path[10:], raw, headers)
            else:
                status, extra, payload = 404, _TEXT, b"not found"
        except Exception:  # a bug in the fake: say so loudly instead of hanging the client
            status, extra, payload = 500, _TEXT, traceback.format_exc().encode()
        handler.send_response(status)
        for name, value in extra.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _notify(self) -> None:
        """Called with the lock held, after recording a request."""
        self._version += 1
        self._changed.notify_all()

    def _take_failure(self, method: str) -> _Failure | None:
        web_api = method not in ("response_url", "upload")
        for failure in self._failures:
            if failure.method == method or (web_api and failure.method == "*"):
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _api(self, method: str, raw: bytes, headers: dict[str, str], query: str) -> Reply:
        extra: dict[str, str] = {}
        with self._lock:
            stalls = self._stalls.get(method)
            stall = stalls.pop(0) if stalls else 0.0
        if stall:
            time.sleep(stall)  # outside the lock: other requests are answered meanwhile
        try:
            body = _parse_params(raw, headers.get("content-type", ""), query)
        except ValueError:
            body, response = {}, {"ok": False, "error": "invalid_json"}
            status = 200
        else:
            with self._lock:
                status, extra, response = self._dispatch(method, body, headers)
        with self._lock:
            self._calls.append(Call(method, body, headers, status, response, raw))
            self._notify()
        return status, {**_JSON, **extra}, json.dumps(response).encode()

    def _dispatch(
        self, method: str, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        handler = self._methods.get(method)
        if handler is None:
            return 200, {}, {"ok": False, "error": "unknown_method", "req_method": method}
        failure = self._take_failure(method)
        if failure is not None:
            extra: dict[str, str] = {}
            if failure.status == 429 and failure.retry_after is not None:
                extra["Retry-After"] = str(failure.retry_after)
            return failure.status, extra, {"ok": False, "error": failure.error, **failure.extra}
        token = _token_from(headers, body)
        if not token:
            return 200, {}, {"ok": False, "error": "not_authed"}
        app_level = method == "apps.connections.open"
        if token in (self.tokens if app_level else self.app_tokens):
            return 200, {}, {"ok": False, "error": "not_allowed_token_type"}
        if token not in (self.app_tokens if app_level else self.tokens):
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        try:
            return 200, {}, handler(body)
        except ApiError as error:
            return 200, {}, error.to_response()

    # -- ids --------------------------------------------------------------------------------------

    def _next_ts(self) -> str:
        """Unique, increasing, shaped like Slack's: "1700000000.000100", "1700000000.000200"…
        (or the wall clock's time in microseconds, with `wall_clock_ts`)."""
        if self.wall_clock_ts:
            micros = max(time.time_ns() // 1000, self._last_ts_micros + 1)
            self._last_ts_micros = micros
            return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"
        micros = next(self._ts) * 100
        return f"{FIRST_TS_SECONDS + micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08X}"

    # -- channels and messages --------------------------------------------------------------

    def _find_channel(self, ref: Any) -> FakeChannel:
        """The channel `ref` names (an id, #name, or a user id meaning their DM with the bot)."""
        if not isinstance(ref, str) or not ref:
            raise ApiError("channel_not_found")
        if ref in self._users and ref[0] in "UW":
            return self._open_im(ref)[0]
        if ref.startswith("#"):
            named = next((c for c in self._channels.values() if c.name == ref[1:]), None)
            if named is not None:
                return named
            if self.strict_channels:
                raise ApiError("channel_not_found")
            return self.add_channel(self._next_id("C"), ref[1:])
        channel = self._channels.get(ref)
        if channel is None:
            if self.strict_channels or ref[0] not in "CGD":
                raise ApiError("channel_not_found")
            channel = self.add_channel(ref)
        return channel

    def _writable_channel(self, ref: Any) -> FakeChannel:
        channel = self._find_channel(ref)
        if channel.is_archived:
            raise ApiError("is_archived")
        if not channel.is_member:
            raise ApiError("not_in_channel")
        return channel

    def _open_im(self, user_id: str) -> tuple[FakeChannel, bool]:
        for channel in self._channels.values():
            if channel.is_im and channel.user == user_id:
                return channel, True
        channel = FakeChannel(self._next_id("D"), is_im=True, user=user_id, team_id=self.team_id)
        self._channels[channel.id] = channel
        return channel, False

    def _check_message_content(self, body: dict[str, Any], *, require: bool = True) -> None:
        text, blocks, attachments = body.get("text"), body.get("blocks"), body.get("attachments")
        if require and not text and not blocks and not attachments:
            raise ApiError("no_text")
        if isinstance(text, str) and len(text) > MESSAGE_TEXT_MAX:
            raise ApiError("msg_too_long")
        if blocks is not None and blocks != []:
            problem = validate_blocks(blocks, json_limit=self.blocks_json_limit)
            if problem is not None:
                raise ApiError(problem.error, problem.messages)
        if isinstance(attachments, str):
            raise ApiError("invalid_attachments")
        if isinstance(attachments, list) and len(attachments) > ATTACHMENTS_MAX:
            raise ApiError("too_many_attachments")

    def _message(self, body: dict[str, Any], ts: str) -> dict[str, Any]:
        """The message object Slack echoes back: the bot's identity, and block_ids filled in."""
        message: dict[str, Any] = {
            "user": self.bot_user_id,
            "type": "message",
            "ts": ts,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "text": body.get("text") or "",
            "team": self.team_id,
            "bot_profile": {
                "id": self.bot_id,
                "app_id": self.app_id,
                "name": self.bot_name,
                "icons": {},
                "deleted": False,
                "updated": FIRST_TS_SECONDS,
                "team_id": self.team_id,
            },
        }
        blocks = body.get("blocks")
        if isinstance(blocks, list) and blocks:
            message["blocks"] = [
                {"block_id": secrets.token_urlsafe(4), **b} if isinstance(b, dict) else b
                for b in blocks
            ]
        if isinstance(body.get("attachments"), list):
            message["attachments"] = body["attachments"]
        if body.get("thread_ts"):
            message["thread_ts"] = str(body["thread_ts"])
        if isinstance(body.get("metadata"), dict):
            message["metadata"] = body["metadata"]
        return message

    # -- Web API methods ------------------------------------------------------------------------

    def _api_test(self, body: dict[str, Any]) -> dict[str, Any]:
        args = {k: v for k, v in body.items() if k != "token"}
        if "error" in args:
            raise ApiError(str(args["error"]), args=args)
        return {"ok": True, "args": args}

    def _apps_connections_open(self, body: dict[str, Any]) -> dict[str, Any]:
        """A one-use websocket URL. With Socket Mode off for the app there is no documented code:
        the fake answers `socket_mode_disabled`, which the bot must report like any other."""
        if self.socket_url is None:
            raise ApiError("socket_mode_disabled")
        return {"ok": True, "url": self.socket_url()}

    def _auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._writable_channel(body.get("channel"))
        self._check_message_content(body)
        _check_metadata(body)
        ts = self._next_ts()
        message = self._message(body, ts)
        self._messages[(channel.id, ts)] = message
        return {"ok": True, "channel": channel.id, "ts": ts, "message": message}

    def _chat_post_ephemeral(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._writable_channel(body.get("channel"))
        user = body.get("user")
        if not user:
            raise ApiError("user_not_found")
        if channel.is_im and channel.user != user:
            raise ApiError("user_not_in_channel")
        if channel.members is not None and user not in channel.members:
            raise ApiError("user_not_in_channel")
        self._check_message_content(body)
        ts = self._next_ts()
        self._ephemerals.append(
            {
                "channel": channel.id,
                "user": user,
                "ts": ts,
                "text": body.get("text") or "",
                "blocks": body.get("blocks") or [],
                "thread_ts": body.get("thread_ts"),
            }
        )
        return {"ok": True, "message_ts": ts}

    def _chat_update(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._find_channel(body.get("channel"))
        ts = str(body.get("ts") or "")
        old = self._messages.get((channel.id, ts))
        if old is None:
            raise ApiError("message_not_found")
        self._check_message_content(body, require=False)
        updated = self._message({**old, **{k: v for k, v in body.items() if v is not None}}, ts)
        updated["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        self._messages[(channel.id, ts)] = updated
        return {
            "ok": True,
            "channel": channel.id,
            "ts": ts,
            "text": updated["text"],
            "message": updated,
        }

    def _chat_delete(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._find_channel(body.get("channel"))
        ts = str(body.get("ts") or "")
        if self._messages.pop((channel.id, ts), None) is None:
            raise ApiError("message_not_found")
        return {"ok": True, "channel": channel.id, "ts": ts}

    def _chat_get_permalink(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._find_channel(body.get("channel"))
        ts = str(body.get("message_ts") or "")
        if (channel.id, ts) not in self._messages:
            raise ApiError("message_not_found")
        link = f"https://{self.team_domain}.slack.com/archives/{channel.id}/p{ts.replace('.', '')}"
        return {"ok": True, "channel": channel.id, "permalink": link}

    def _user(self, user_id: Any) -> FakeUser:
        user = self._users.get(user_id) if isinstance(user_id, str) else None
        if user is None:
            raise ApiError("user_not_found")
        return user

    def _users_info(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "user": self._user(body.get("user")).to_api()}

    def _users_list(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "members": [u.to_api() for u in self._users.values()],
            "cache_ts": FIRST_TS_SECONDS,
            "response_metadata": {"next_cursor": ""},
        }

    def _users_lookup_by_email(self, body: dict[str, Any]) -> dict[str, Any]:
        email = body.get("email")
        if not email:
            raise ApiError("invalid_arguments", ["[ERROR] missing required field: email"])
        wanted = str(email).strip().lower()
        for user in self._users.values():
            if user.email is not None and user.email.lower() == wanted and not user.deleted:
                return {"ok": True, "user": user.to_api()}
        raise ApiError("users_not_found")

    def _usergroups_users_list(self, body: dict[str, Any]) -> dict[str, Any]:
        users = self._usergroups.get(str(body.get("usergroup") or ""))
        if users is None:
            raise ApiError("no_such_subteam")
        return {"ok": True, "users": list(users)}

    def _conversations_open(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("channel"):
            channel = self._find_channel(body["channel"])
            return {"ok": True, "channel": {"id": channel.id}, "no_op": True, "already_open": True}
        raw_users = body.get("users")
        if isinstance(raw_users, list):
            user_ids = [str(u) for u in raw_users]
        else:
            user_ids = [u.strip() for u in str(raw_users or "").split(",") if u.strip()]
        if not user_ids:
            raise ApiError("users_list_not_supplied")
        if len(user_ids) > 8:
            raise ApiError("too_many_users")
        for user_id in user_ids:
            user = self._user(user_id)
            if user.deleted:
                raise ApiError("user_disabled")
            if user.is_bot and user.id != self.bot_user_id:
                raise ApiError("cannot_dm_bot")
        if len(user_ids) == 1:
            channel, already = self._open_im(user_ids[0])
        else:
            channel = FakeChannel(
                self._next_id("G"),
                "mpdm-" + "--".join(user_ids) + "-1",
                is_mpim=True,
                members={self.bot_user_id, *user_ids},
                team_id=self.team_id,
            )
            self._channels[channel.id] = channel
            already = False
        answer: dict[str, Any] = {"ok": True, "channel": {"id": channel.id}}
        if already:
            answer.update({"no_op": True, "already_open": True})
        if _truthy(body.get("return_im")):
            answer["channel"] = channel.to_api()
        return answer

    def _conversations_history(self, body: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages, newest first, in (oldest, latest) (inclusive on request),
        paged by `limit` (default 100, at most 999) with an opaque next_cursor. Message
        metadata is returned whole with include_all_metadata, else its event_type only."""
        ref = body.get("channel")
        if isinstance(ref, str) and ref.startswith("#"):
            raise ApiError("channel_not_found")  # history wants the channel's ID, not its name
        channel = self._find_channel(ref)
        if not channel.is_member and not channel.is_im:
            raise ApiError("not_in_channel")
        inclusive = _truthy(body.get("inclusive"))
        bounds: dict[str, float] = {}
        for name in ("oldest", "latest"):
            raw = body.get(name)
            if raw in (None, ""):
                continue
            try:
                bounds[name] = float(raw)
            except (TypeError, ValueError):
                raise ApiError(f"invalid_ts_{name}") from None
        try:
            limit = int(body.get("limit") or 100)
        except (TypeError, ValueError):
            raise ApiError("invalid_limit") from None
        limit = min(max(limit, 1), 999)
        before: float | None = None
        cursor = body.get("cursor")
        if cursor:
            try:
                decoded = base64.b64decode(str(cursor), validate=True).decode()
                if not decoded.startswith("next_ts:"):
                    raise ValueError(decoded)
                before = float(decoded[len("next_ts:") :])
            except (ValueError, UnicodeDecodeError):
                raise ApiError("invalid_cursor") from None

        def wanted(message: dict[str, Any]) -> bool:
            ts = float(message["ts"])
            if message.get("thread_ts") not in (None, message["ts"]):
                return False  # a reply lives in its thread (conversations.replies)
            oldest, latest = bounds.get("oldest"), bounds.get("latest")
            if oldest is not None and (ts < oldest or (ts == oldest and not inclusive)):
                return False
            if latest is not None and (ts > latest or (ts == latest and not inclusive)):
                return False
            return before is None or ts < before

        found = sorted(
            (m for (c, _), m in self._messages.items() if c == channel.id and wanted(m)),
            key=lambda m: float(m["ts"]),
            reverse=True,
        )
        page, more = found[:limit], len(found) > limit
        full = _truthy(body.get("include_all_metadata"))
        messages = []
        for message in page:
            shown = dict(message)
            if "metadata" in shown and not full:
                shown["metadata"] = {"event_type": shown["metadata"].get("event_type")}
            messages.append(shown)
        answer: dict[str, Any] = {
            "ok": True,
            "messages": messages,
            "has_more": more,
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
        }
        if more:
            token = f"next_ts:{page[-1]['ts']}".encode()
            answer["response_metadata"] = {"next_cursor": base64.b64encode(token).decode()}
        return answer

    def _conversations_info(self, body: dict[str, Any]) -> dict[str, Any]:
        ref = body.get("channel")
        if not isinstance(ref, str) or ref.startswith("#"):  # Slack wants an id here
            raise ApiError("channel_not_found")
        channel = self._find_channel(ref)
        return {"ok": True, "channel": channel.to_api()}

    def _conversations_list(self, body: dict[str, Any]) -> dict[str, Any]:
        """Public channels by default; `types` as Slack takes it; paged by `limit`/`cursor`."""
        types = set(str(body.get("types") or "public_channel").split(","))
        exclude_archived = _truthy(body.get("exclude_archived"))

        def kind(channel: FakeChannel) -> str:
            if channel.is_im:
                return "im"
            if channel.is_mpim:
                return "mpim"
            return "private_channel" if channel.is_private else "public_channel"

        found = [
            c
            for c in self._channels.values()
            if kind(c) in types and not (exclude_archived and c.is_archived)
        ]
        limit = max(1, min(int(body.get("limit") or 100), 1000))
        start = int(base64.b64decode(body["cursor"]).decode()) if body.get("cursor") else 0
        page = found[start : start + limit]
        more = start + limit < len(found)
        cursor = base64.b64encode(str(start + limit).encode()).decode() if more else ""
        return {
            "ok": True,
            "channels": [c.to_api() for c in page],
            "response_metadata": {"next_cursor": cursor},
        }

    def _conversations_join(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._find_channel(body.get("channel"))
        if channel.is_im or channel.is_mpim or channel.is_private:
            raise ApiError("method_not_supported_for_channel_type")
        if channel.is_archived:
            raise ApiError("is_archived")
        answer: dict[str, Any] = {"ok": True}
        if channel.is_member:
            answer["warning"] = "already_in_channel"
            answer["response_metadata"] = {"warnings": ["already_in_channel"]}
        channel.is_member = True
        if channel.members is not None:
            channel.members.add(self.bot_user_id)
        answer["channel"] = channel.to_api()
        return answer

    def _view_record(self, view: dict[str, Any], view_id: str, root: str | None) -> dict[str, Any]:
        return {
            "id": view_id,
            "team_id": self.team_id,
            "type": view.get("type"),
            "blocks": [
                {"block_id": secrets.token_urlsafe(4), **b} if isinstance(b, dict) else b
                for b in view.get("blocks") or []
            ],
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "title": view.get("title"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": None,
            "root_view_id": root or view_id,
            "app_id": self.app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }

    def _view_param(self, body: dict[str, Any]) -> dict[str, Any]:
        view = body.get("view")
        if isinstance(view, str):
            raise ApiError(
                "invalid_arguments", ["[ERROR] failed to parse view [json-pointer:/view]"]
            )
        messages = validate_view(view)
        if messages:
            raise ApiError("invalid_arguments", messages)
        return cast(dict[str, Any], view)

    def _views_open(self, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("trigger_id") and not body.get("interactivity_pointer"):
            raise ApiError(
                "invalid_arguments", ["[ERROR] missing required field: trigger_id [json-pointer:/]"]
            )
        view = self._view_param(body)
        record = self._view_record(view, self._next_id("V"), None)
        self._views[record["id"]] = record
        return {"ok": True, "view": record}

    def _views_push(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._views_open(body)

    def _views_publish(self, body: dict[str, Any]) -> dict[str, Any]:
        """A user's Home tab: one view per user, its id kept across publishes; a `hash` that
        is not the current view's is hash_conflict, as Slack answers."""
        user = self._user(body.get("user_id"))
        view = self._view_param(body)
        if view.get("type") != "home":
            raise ApiError("invalid_arguments", ["[ERROR] must be home [json-pointer:/view/type]"])
        current = self._home_views.get(user.id)
        if body.get("hash") and (current is None or body["hash"] != current["hash"]):
            raise ApiError("hash_conflict")
        record = self._view_record(view, current["id"] if current else self._next_id("V"), None)
        self._views[record["id"]] = record
        self._home_views[user.id] = record
        return {"ok": True, "view": record}

    def home_view(self, user_id: str) -> dict[str, Any] | None:
        """The Home view last published for `user_id`, as Slack keeps it."""
        with self._lock:
            return self._home_views.get(user_id)

    def _views_update(self, body: dict[str, Any]) -> dict[str, Any]:
        view_id, external_id = body.get("view_id"), body.get("external_id")
        current: dict[str, Any] | None = None
        if view_id:
            current = self._views.get(str(view_id))
        elif external_id:
            current = next(
                (v for v in self._views.values() if v["external_id"] == external_id), None
            )
        if current is None:
            raise ApiError("not_found")
        if body.get("hash") and body["hash"] != current["hash"]:
            raise ApiError("hash_conflict")
        view = self._view_param(body)
        record = self._view_record(view, current["id"], current["root_view_id"])
        self._views[record["id"]] = record
        return {"ok": True, "view": record}

    def _files_get_upload_url_external(self, body: dict[str, Any]) -> dict[str, Any]:
        filename = body.get("filename")
        try:
            length = int(body.get("length") or 0)
        except (TypeError, ValueError):
            length = 0
        if not filename or length <= 0:
            raise ApiError("invalid_arguments", ["[ERROR] filename and length are required"])
        upload = UploadedFile(
            id=self._next_id("F"),
            filename=str(filename),
            length=length,
            upload_key=secrets.token_urlsafe(12),
            alt_txt=body.get("alt_txt"),
            snippet_type=body.get("snippet_type"),
        )
        self._files[upload.id] = upload
        return {
            "ok": True,
            "upload_url": f"{self.base_url}/upload/v1/{upload.upload_key}",
            "file_id": upload.id,
        }

    def _files_complete_upload_external(self, body: dict[str, Any]) -> dict[str, Any]:
        entries = body.get("files")
        if not isinstance(entries, list) or not entries:
            raise ApiError("invalid_arguments", ["[ERROR] files must be a JSON array"])
        channels: list[FakeChannel] = []
        if body.get("channel_id"):
            channels.append(self._writable_channel(body["channel_id"]))
        for ref in str(body.get("channels") or "").split(","):
            if ref.strip():
                channels.append(self._writable_channel(ref.strip()))
        uploads: list[UploadedFile] = []
        for entry in entries:
            upload = self._files.get(str(entry.get("id"))) if isinstance(entry, dict) else None
            if upload is None or upload.data is None:
                raise ApiError("file_not_found")
            upload.title = entry.get("title") or upload.filename
            upload.completed = True
            upload.channels = [c.id for c in channels]
            upload.initial_comment = body.get("initial_comment")
            upload.thread_ts = body.get("thread_ts")
            uploads.append(upload)
        file_objects = [self._file_object(u) for u in uploads]
        for channel in channels:
            ts = self._next_ts()
            message = self._message({"text": body.get("initial_comment") or ""}, ts)
            message.update({"subtype": None, "files": file_objects, "upload": True})
            self._messages[(channel.id, ts)] = message
        return {"ok": True, "files": file_objects}

    def _file_object(self, upload: UploadedFile) -> dict[str, Any]:
        mimetype = mimetypes.guess_type(upload.filename)[0] or "application/octet-stream"
        extension = upload.filename.rsplit(".", 1)[-1].lower() if "." in upload.filename else ""
        files_url = f"{self.base_url}/files-pri/{self.team_id}-{upload.id}"
        return {
            "id": upload.id,
            "created": FIRST_TS_SECONDS,
            "timestamp": FIRST_TS_SECONDS,
            "name": upload.filename,
            "title": upload.title,
            "mimetype": mimetype,
            "filetype": extension or "binary",
            "pretty_type": extension.upper() or "Binary",
            "user": self.bot_user_id,
            "user_team": self.team_id,
            "editable": False,
            "size": len(upload.data or b""),
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": False,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"{files_url}/{upload.filename}",
            "url_private_download": f"{files_url}/download/{upload.filename}",
            "permalink": f"https://{self.team_domain}.slack.com/files/{self.bot_user_id}/"
            f"{upload.id}/{upload.filename}",
            "alt_txt": upload.alt_txt,
            "channels": list(upload.channels),
            "groups": [],
            "ims": [],
            "comments_count": 0,
        }

    def _files_upload_retired(self, body: dict[str, Any]) -> dict[str, Any]:
        # files.upload was retired in favour of the getUploadURLExternal flow (files_upload_v2).
        raise ApiError("method_deprecated")

    # -- the upload step of files_upload_v2 -------------------------------------------------------

    def _upload(self, key: str, raw: bytes, headers: dict[str, str]) -> Reply:
        with self._lock:
            failure = self._take_failure("upload")
            upload = next((u for u in self._files.values() if u.upload_key == key), None)
            if failure is not None:
                status, reply = failure.status, failure.error
            elif upload is None:
                status, reply = 404, "not_found"
            else:
                content_type = headers.get("content-type", "")
                if content_type.startswith("multipart/form-data"):
                    _, files = _parse_multipart(raw, content_type)
                    data = next(iter(files.values()), b"")
                else:
                    data = raw
                upload.data = data
                status, reply = 200, f"OK - {len(data)}"
            self._notify()
        return status, _TEXT, reply.encode()

    # -- response_url -----------------------------------------------------------------------------

    def _response_post(self, url_id: str, raw: bytes, headers: dict[str, str]) -> Reply:
        """Answers like Slack's response_url: 200 with `{"ok":true}` (or the plain `ok` of
        `response_url_accepts_with`), or a 4xx with the error as plain text."""
        url = f"{self.base_url}/response/{url_id}"
        body: dict[str, Any]
        try:
            parsed = json.loads(raw or b"{}")
            body = parsed if isinstance(parsed, dict) else {"_": parsed}
        except ValueError:
            body = {}
            parsed = None
        with self._lock:
            state = self._response_urls.get(url_id)
            failure = self._take_failure("response_url")
            if failure is not None:
                status, reply = failure.status, failure.error
            elif state is None:
                status, reply = 404, "no_service"
            elif parsed is None or not isinstance(parsed, dict):
                status, reply = 400, "invalid_payload"
            elif state["expired"]:
                status, reply = 404, "expired_url"
            elif state["uses"] >= self.response_url_max_uses:
                status, reply = 404, "used_url"
            else:
                status, reply = self._check_response_body(body)
                if status == 200:
                    state["uses"] += 1
            self._responses.append(ResponsePost(url_id, url, body, headers, status, reply))
            self._notify()
        if status == 200:
            reply = self.response_url_accepts_with
        content_type = _JSON if reply.startswith("{") else _TEXT
        return status, content_type, reply.encode()

    def _check_response_body(self, body: dict[str, Any]) -> tuple[int, str]:
        if _truthy(body.get("delete_original")):
            return 200, "ok"
        if not body.get("text") and not body.get("blocks") and not body.get("attachments"):
            return 400, "no_text"
        response_type = body.get("response_type")
        if response_type is not None and response_type not in ("ephemeral", "in_channel"):
            return 400, "invalid_response_type"
        blocks = body.get("blocks")
        if blocks:
            problem = validate_blocks(blocks, json_limit=self.blocks_json_limit)
            if problem is not None:
                return 400, problem.error
        return 200, "ok"


_JSON = {"Content-Type": "application/json; charset=utf-8"}
_TEXT = {"Content-Type": "text/plain; charset=utf-8"}


def _url_id(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _check_metadata(body: Mapping[str, Any]) -> None:
    """Message metadata as chat.postMessage checks it: a JSON object (else
    invalid_metadata_format) with a string event_type and an object event_payload (else
    invalid_metadata_schema)."""
    if "metadata" not in body or body["metadata"] in (None, ""):
        return
    metadata = body["metadata"]
    if not isinstance(metadata, dict):
        raise ApiError("invalid_metadata_format")
    event_type, payload = metadata.get("event_type"), metadata.get("event_payload")
    if not isinstance(event_type, str) or not event_type.strip() or not isinstance(payload, dict):
        raise ApiError("invalid_metadata_schema")


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _token_from(headers: Mapping[str, str], body: Mapping[str, Any]) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    token = body.get("token")
    return str(token) if token else None


def _tz_facts(tz: str) -> tuple[int, str]:
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return 0, "Coordinated Universal Time"
    now = datetime.now(zone)
    offset = now.utcoffset()
    return (int(offset.total_seconds()) if offset else 0), now.tzname() or tz


def _parse_multipart(raw: bytes, content_type: str) -> tuple[dict[str, str], dict[str, bytes]]:
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
    )
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is not None:
            files[name] = data
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields, files


def _parse_params(raw: bytes, content_type: str, query: str) -> dict[str, Any]:
    """The parameters of a Web API call, however sent; raises ValueError on broken JSON."""
    params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    if "application/json" in content_type:
        data = json.loads(raw or b"{}")
        if isinstance(data, dict):
            params.update(data)
    elif content_type.startswith("multipart/form-data"):
        fields, _ = _parse_multipart(raw, content_type)
        params.update(fields)
    elif raw:
        text = raw.decode("utf-8", "replace")
        params.update({k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()})
    for name in JSON_FIELDS:
        value = params.get(name)
        if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
            # Broken JSON stays a string; the method answers invalid_*_format for it.
            with contextlib.suppress(ValueError):
                params[name] = json.loads(value)
    return params


# --- Requests from Slack to the bot -------------------------------------------------------------


def sign(signing_secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack signs a request with: v0=HMAC-SHA256(secret, "v0:{ts}:{body}")."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def new_trigger_id() -> str:
    return f"{secrets.randbelow(10**12)}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"


def slash_command_body(
    command: str = "/partner-kpi",
    text: str = "",
    user_id: str = "U1",
    user_name: str = "ann",
    channel_id: str = "C1",
    team_id: str = "T1",
    response_url: str = UNSET_RESPONSE_URL,
    trigger_id: str | None = None,
    *,
    channel_name: str = "general",
    team_domain: str = "fake-workspace",
    api_app_id: str = "A1",
    token: str = DEFAULT_VERIFICATION_TOKEN,
    enterprise_id: str | None = None,
    enterprise_name: str | None = None,
) -> bytes:
    """A slash command, form-encoded with the fields in the order Slack sends them."""
    fields: list[tuple[str, str]] = [
        ("token", token),
        ("team_id", team_id),
        ("team_domain", team_domain),
    ]
    if enterprise_id:
        fields += [("enterprise_id", enterprise_id), ("enterprise_name", enterprise_name or "")]
    fields += [
        ("channel_id", channel_id),
        ("channel_name", channel_name),
        ("user_id", user_id),
        ("user_name", user_name),
        ("command", command),
        ("text", text),
        ("api_app_id", api_app_id),
        ("is_enterprise_install", "false"),
        ("response_url", response_url),
        ("trigger_id", trigger_id or new_trigger_id()),
    ]
    return urlencode(fields).encode()


def _interaction_body(payload: dict[str, Any]) -> bytes:
    """Interactivity payloads arrive as one form field, payload=<JSON>."""
    return urlencode({"payload": json.dumps(payload)}).encode()


def block_action_body(
    action_id: str,
    value: str = "",
    user_id: str = "U1",
    channel_id: str = "C1",
    response_url: str = UNSET_RESPONSE_URL,
    message: Mapping[str, Any] | None = None,
    container: Mapping[str, Any] | None = None,
    *,
    block_id: str = "actions",
    button_text: str = "Button",
    action_type: str = "button",
    user_name: str = "ann",
    team_id: str = "T1",
    team_domain: str = "fake-workspace",
    channel_name: str = "general",
    api_app_id: str = "A1",
    token: str = DEFAULT_VERIFICATION_TOKEN,
    trigger_id: str | None = None,
    action_ts: str | None = None,
    ephemeral: bool = False,
    view: Mapping[str, Any] | None = None,
    state: Mapping[str, Any] | None = None,
    selected_option: Mapping[str, Any] | None = None,
) -> bytes:
    """A click on a button (block_actions), form-encoded as payload=<json>.

    With `selected_option` (an option of a static_select, as the view offered it) the action is
    a pick in a static_select, shaped as Slack sends one: `selected_option`, no text or value.

    `message` is the message the button sits on (a default bot message otherwise). With
    `ephemeral=True` the container says so and, as for Slack's ephemeral messages, no `message`
    is sent. With `view` (a view dict, e.g. from `FakeSlack.views`) the click comes from a modal:
    the container is the view, and there is no channel, message or response_url.
    """
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "text": {"type": "plain_text", "text": button_text, "emoji": True},
        "value": value,
        "type": action_type,
        "action_ts": action_ts or f"{time.time():.6f}",
    }
    if selected_option is not None:
        action = {
            "type": "static_select",
            "action_id": action_id,
            "block_id": block_id,
            "selected_option": dict(selected_option),
            "placeholder": {"type": "plain_text", "text": "Select", "emoji": True},
            "action_ts": action["action_ts"],
        }
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": token,
        "trigger_id": trigger_id or new_trigger_id(),
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "state": dict(state) if state is not None else {"values": {}},
        "actions": [action],
    }
    if view is not None:
        payload["container"] = dict(container or {"type": "view", "view_id": view.get("id")})
        payload["view"] = dict(view)
        return _interaction_body(payload)
    if message is None and not ephemeral:
        message = {
            "user": "UBOT",
            "type": "message",
            "ts": "1700000000.000100",
            "bot_id": "B1",
            "app_id": api_app_id,
            "text": "",
            "team": team_id,
            "blocks": [],
        }
    message_ts = str(message.get("ts")) if message else "1700000000.000100"
    payload["container"] = dict(
        container
        or {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": ephemeral,
        }
    )
    payload["channel"] = {"id": channel_id, "name": channel_name}
    if message is not None:
        payload["message"] = dict(message)
    payload["response_url"] = response_url
    return _interaction_body(payload)


def input_value(value: str, element_type: str = "plain_text_input") -> dict[str, Any]:
    """One entry of a view's state.values, shaped as Slack shapes it for `element_type`."""
    if element_type in ("static_select", "radio_buttons", "external_select"):
        option = {"text": {"type": "plain_text", "text": value, "emoji": True}, "value": value}
        return {"type": element_type, "selected_option": option}
    if element_type == "users_select":
        return {"type": element_type, "selected_user": value}
    if element_type == "conversations_select":
        return {"type": element_type, "selected_conversation": value}
    if element_type == "datepicker":
        return {"type": element_type, "selected_date": value}
    return {"type": element_type, "value": value}


def view_submission_body(
    callback_id: str = "",
    values: Mapping[str, Mapping[str, Any]] | None = None,
    user_id: str = "U1",
    *,
    view: Mapping[str, Any] | None = None,
    private_metadata: str | None = None,
    view_id: str | None = None,
    title: str = "Survey",
    user_name: str = "ann",
    team_id: str = "T1",
    team_domain: str = "fake-workspace",
    api_app_id: str = "A1",
    bot_id: str = "B1",
    token: str = DEFAULT_VERIFICATION_TOKEN,
    trigger_id: str | None = None,
    response_urls: list[dict[str, Any]] | None = None,
) -> bytes:
    """A modal submitted (view_submission), form-encoded as payload=<json>.

    `values` is state.values: {block_id: {action_id: input_value(...)}}. Pass `view` (e.g. the
    one the bot opened, from `FakeSlack.views`) to submit that view: its id, blocks,
    callback_id, private_metadata and hash are used unless overridden here.
    """
    base = dict(view or {})
    the_id = view_id or base.get("id") or "V00000001"
    submitted = {
        "id": the_id,
        "team_id": team_id,
        "type": "modal",
        "blocks": base.get("blocks", []),
        "private_metadata": (
            private_metadata if private_metadata is not None else base.get("private_metadata", "")
        ),
        "callback_id": callback_id or base.get("callback_id", ""),
        "state": {"values": {k: dict(v) for k, v in (values or {}).items()}},
        "hash": base.get("hash") or f"{int(time.time())}.{secrets.token_hex(4)}",
        "title": base.get("title") or {"type": "plain_text", "text": title, "emoji": True},
        "clear_on_close": base.get("clear_on_close", False),
        "notify_on_close": base.get("notify_on_close", False),
        "close": base.get("close"),
        "submit": base.get("submit") or {"type": "plain_text", "text": "Submit", "emoji": True},
        "previous_view_id": base.get("previous_view_id"),
        "root_view_id": base.get("root_view_id") or the_id,
        "app_id": api_app_id,
        "external_id": base.get("external_id", ""),
        "app_installed_team_id": team_id,
        "bot_id": bot_id,
    }
    payload = {
        "type": "view_submission",
        "team": {"id": team_id, "domain": team_domain},
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": token,
        "trigger_id": trigger_id or new_trigger_id(),
        "view": submitted,
        "response_urls": response_urls or [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return _interaction_body(payload)


def app_home_opened_event(
    user_id: str, view: Mapping[str, Any] | None = None, tab: str = "home"
) -> dict[str, Any]:
    """An app_home_opened event: `view` (the Home view last published for the user, e.g. from
    `FakeSlack.views`) is present once one has been published, as Slack sends it."""
    event: dict[str, Any] = {
        "type": "app_home_opened",
        "user": user_id,
        "channel": f"D{user_id[1:]}",
        "tab": tab,
        "event_ts": f"{time.time():.6f}",
    }
    if view is not None:
        event["view"] = dict(view)
    return event


def event_callback_body(
    event: Mapping[str, Any],
    *,
    team_id: str = "T1",
    api_app_id: str = "A1",
    bot_user_id: str = "UBOT",
    token: str = DEFAULT_VERIFICATION_TOKEN,
    event_id: str | None = None,
    event_time: int | None = None,
) -> bytes:
    """An Events API delivery (e.g. a message.im event for a DM), JSON as Slack sends it."""
    payload = {
        "token": token,
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": None,
        "api_app_id": api_app_id,
        "event": dict(event),
        "type": "event_callback",
        "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
        "event_time": event_time or int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-{secrets.token_urlsafe(24)}",
    }
    return json.dumps(payload).encode()


class BotReply(NamedTuple):
    """What the bot answered Slack: unpacks as (status, headers, body)."""

    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


def _require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"post_to_bot only sends to loopback addresses, not {host!r}")


def post_to_bot(
    url: str,
    body: bytes,
    signing_secret: str,
    headers: Mapping[str, str] | None = None,
    retry_num: int | None = None,
    retry_reason: str = "http_timeout",
    *,
    timestamp: int | None = None,
    timeout: float = 10.0,
) -> BotReply:
    """POSTs `body` to the bot as Slack would: signed, with Slack's content type (JSON for
    Events API bodies, form-encoded otherwise) and, for a redelivery, X-Slack-Retry-Num and
    X-Slack-Retry-Reason. `headers` are added last, so a test can spoil the signature.
    Returns the status, lower-cased headers and body text; never raises on 4xx/5xx."""
    _require_loopback(url)
    content_type = (
        "application/json" if body.lstrip()[:1] == b"{" else "application/x-www-form-urlencoded"
    )
    sent = {
        "Content-Type": content_type,
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        "Accept": "application/json,*/*",
        **sign(signing_secret, body, timestamp),
    }
    if retry_num is not None:
        sent["X-Slack-Retry-Num"] = str(retry_num)
        sent["X-Slack-Retry-Reason"] = retry_reason
    sent.update(headers or {})
    request = Request(url, data=body, headers=sent, method="POST")
    try:
        with urlopen(request, timeout=timeout) as response:  # loopback only, see above
            status, answer_headers, data = response.status, response.headers, response.read()
    except HTTPError as error:
        status, answer_headers, data = error.code, error.headers, error.read()
    return BotReply(
        status,
        {k.lower(): v for k, v in answer_headers.items()},
        data.decode("utf-8", "replace"),
    )
