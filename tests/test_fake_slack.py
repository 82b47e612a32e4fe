"""The fake Slack answers the real slack_sdk (and slack_bolt) as Slack does, and the helpers
that play Slack's side of requests to the bot produce what Slack sends."""

from __future__ import annotations

import json
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from types import SimpleNamespace
from typing import Any
from urllib.error import HTTPError
from urllib.parse import parse_qs
from urllib.request import Request, urlopen
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import builtin_handlers
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from tests.fake_slack import (
    BLOCKS_JSON_MAX,
    RESPONSE_URL_OK,
    FakeSlack,
    block_action_body,
    event_callback_body,
    input_value,
    post_to_bot,
    sign,
    slash_command_body,
    validate_blocks,
    view_submission_body,
)

TOKEN = "xoxb-test"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TS = re.compile(r"^\d{10}\.\d{6}$")


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token=TOKEN, base_url=fake.api_url, timeout=5)


def tiny_png() -> bytes:
    """A valid 1x1 PNG, built here so the test needs no file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(text: str, action_id: str = "go") -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text},
        "value": "v",
    }


def slack_error(call: Callable[[], Any]) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value


# --- Web API --------------------------------------------------------------------------------


def test_chat_post_message_answers_like_slack(fake: FakeSlack, client: WebClient) -> None:
    first = client.chat_postMessage(channel="C1", text="hello", blocks=[section("*hi*")])
    second = client.chat_postMessage(channel="C1", text="again")

    assert first["ok"] is True
    assert first["channel"] == "C1"
    assert TS.match(first["ts"]) and TS.match(second["ts"])
    assert float(second["ts"]) > float(first["ts"])
    message = first["message"]
    assert message["ts"] == first["ts"]
    assert message["text"] == "hello"
    assert message["bot_id"] == fake.bot_id and message["user"] == fake.bot_user_id
    assert message["blocks"][0]["text"]["text"] == "*hi*"
    assert message["blocks"][0]["block_id"]  # Slack fills block_id in

    call = fake.calls_to("chat.postMessage")[0]
    assert call.headers["authorization"] == f"Bearer {TOKEN}"
    assert call.token == TOKEN
    assert call.body["blocks"] == [section("*hi*")]
    assert call.ok
    assert [m["text"] for m in fake.messages_in("C1")] == ["hello", "again"]


def test_auth_test_describes_the_bot(client: WebClient) -> None:
    answer = client.auth_test()
    assert answer["user_id"] == "UBOT"
    assert answer["team_id"] == "T1"
    assert answer["bot_id"] == "B1"


def test_bad_or_missing_token_is_refused(fake: FakeSlack) -> None:
    wrong = WebClient(token="xoxb-wrong", base_url=fake.api_url)
    assert slack_error(lambda: wrong.chat_postMessage(channel="C1", text="x")).response[
        "error"
    ] == ("invalid_auth")
    nobody = WebClient(base_url=fake.api_url)
    assert slack_error(nobody.auth_test).response["error"] == "not_authed"
    assert fake.messages_in("C1") == []


def test_unknown_method(client: WebClient) -> None:
    error = slack_error(lambda: client.api_call("partners.sing"))
    assert error.response["error"] == "unknown_method"


def test_429_then_success_with_the_rate_limit_retry_handler(
    fake: FakeSlack, client: WebClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []  # the handler sleeps Retry-After (+ jitter); note it, don't wait
    monkeypatch.setattr(builtin_handlers, "time", SimpleNamespace(sleep=slept.append))
    fake.fail_next("chat.postMessage", retry_after=2)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))

    answer = client.chat_postMessage(channel="C1", text="eventually")

    assert answer["ok"] is True
    assert len(slept) == 1 and 2 <= slept[0] < 3
    limited, delivered = fake.calls_to("chat.postMessage")
    assert limited.status == 429 and limited.response["error"] == "ratelimited"
    assert delivered.ok
    assert len(fake.messages_in("C1")) == 1


def test_429_carries_retry_after(fake: FakeSlack, client: WebClient) -> None:
    fake.fail_next("chat.postMessage", retry_after=7)
    error = slack_error(lambda: client.chat_postMessage(channel="C1", text="x"))
    assert error.response.status_code == 429
    assert error.response.headers["Retry-After"] == "7"
    assert error.response["error"] == "ratelimited"


def test_fail_next_any_error_then_recovers(fake: FakeSlack, client: WebClient) -> None:
    fake.add_user("U2", "bo")
    fake.fail_next("users.info", error="missing_scope", extra={"needed": "users:read"}, times=2)
    for _ in range(2):
        error = slack_error(lambda: client.users_info(user="U2"))
        assert error.response.status_code == 200
        assert error.response["error"] == "missing_scope"
        assert error.response["needed"] == "users:read"
    assert client.users_info(user="U2")["user"]["id"] == "U2"


def test_files_upload_v2_end_to_end(fake: FakeSlack, client: WebClient) -> None:
    fake.add_channel("C1", "partner-kpi")
    png = tiny_png()

    answer = client.files_upload_v2(
        channel="C1",
        file=png,
        filename="scorecard.png",
        title="Acme scorecard",
        initial_comment="Q3 for Acme",
    )

    assert answer["ok"] is True
    assert answer["file"]["name"] == "scorecard.png"
    assert answer["file"]["mimetype"] == "image/png"
    assert answer["file"]["channels"] == ["C1"]
    (uploaded,) = fake.files
    assert uploaded.data == png
    assert uploaded.length == len(png)
    assert uploaded.completed and uploaded.title == "Acme scorecard"
    assert uploaded.channels == ["C1"] and uploaded.initial_comment == "Q3 for Acme"
    assert [c.method for c in fake.calls] == [
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]
    shared = fake.messages_in("C1")[-1]
    assert shared["files"][0]["id"] == uploaded.id and shared["text"] == "Q3 for Acme"


def test_failed_upload_step_surfaces_in_files_upload_v2(fake: FakeSlack, client: WebClient) -> None:
    fake.fail_next("upload", error="upload_failed", status=500)
    # slack_sdk lets urllib's HTTPError through here, not a SlackApiError: callers must catch it.
    with pytest.raises(HTTPError, match="500"):
        client.files_upload_v2(channel="C1", content=b"a,b\n", filename="kpi.csv")
    assert fake.calls_to("files.completeUploadExternal") == []


def test_complete_upload_refuses_a_file_never_uploaded(client: WebClient) -> None:
    url = client.files_getUploadURLExternal(filename="a.csv", length=3)
    error = slack_error(
        lambda: client.files_completeUploadExternal(files=[{"id": url["file_id"]}], channel_id="C1")
    )
    assert error.response["error"] == "file_not_found"


def test_files_upload_v1_is_retired(client: WebClient) -> None:
    with pytest.warns(UserWarning):
        error = slack_error(lambda: client.files_upload(channels="C1", content="x"))
    assert error.response["error"] == "method_deprecated"


def test_users_lookup_by_email(fake: FakeSlack, client: WebClient) -> None:
    fake.add_user("U2", "bo", email="Bo@Example.com", real_name="Bo Diddley")

    found = client.users_lookupByEmail(email="bo@example.com")["user"]
    assert found["id"] == "U2"
    assert found["profile"]["email"] == "Bo@Example.com"
    assert found["real_name"] == "Bo Diddley"

    error = slack_error(lambda: client.users_lookupByEmail(email="nobody@example.com"))
    assert error.response["error"] == "users_not_found"


def test_users_info_shows_external_people(fake: FakeSlack, client: WebClient) -> None:
    fake.add_user("U3", "cy", email="cy@partner.example", team_id="T9", is_stranger=True)
    fake.add_user("U4", "di", is_restricted=True, is_ultra_restricted=True)

    stranger = client.users_info(user="U3")["user"]
    assert stranger["team_id"] == "T9" and stranger["is_stranger"] is True
    guest = client.users_info(user="U4")["user"]
    assert guest["is_restricted"] is True and guest["is_ultra_restricted"] is True
    assert "is_stranger" not in guest
    member = client.users_info(user="UBOT")["user"]
    assert member["is_bot"] is True

    assert slack_error(lambda: client.users_info(user="U404")).response["error"] == (
        "user_not_found"
    )


def test_usergroup_members(fake: FakeSlack, client: WebClient) -> None:
    fake.add_usergroup("S1", ["U1", "U2"])
    assert client.usergroups_users_list(usergroup="S1")["users"] == ["U1", "U2"]
    error = slack_error(lambda: client.usergroups_users_list(usergroup="S9"))
    assert error.response["error"] == "no_such_subteam"


def test_conversations_open_and_dm(fake: FakeSlack, client: WebClient) -> None:
    fake.add_user("U2", "bo")
    opened = client.conversations_open(users="U2")
    dm = opened["channel"]["id"]
    assert dm.startswith("D")
    again = client.conversations_open(users=["U2"])
    assert again["channel"]["id"] == dm and again["already_open"] is True

    posted = client.chat_postMessage(channel="U2", text="survey time")  # a user id means the DM
    assert posted["channel"] == dm
    assert fake.messages_in(dm)[0]["text"] == "survey time"

    error = slack_error(lambda: client.conversations_open(users="U404"))
    assert error.response["error"] == "user_not_found"


def test_update_delete_and_ephemeral(fake: FakeSlack, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="C1", text="v1")
    updated = client.chat_update(channel="C1", ts=posted["ts"], text="v2", blocks=[section("b")])
    assert updated["ts"] == posted["ts"] and updated["text"] == "v2"
    assert fake.messages_in("C1")[0]["blocks"][0]["text"]["text"] == "b"

    missing = slack_error(lambda: client.chat_update(channel="C1", ts="1.000000", text="x"))
    assert missing.response["error"] == "message_not_found"

    assert client.chat_delete(channel="C1", ts=posted["ts"])["ts"] == posted["ts"]
    assert fake.messages_in("C1") == []

    ephemeral = client.chat_postEphemeral(channel="C1", user="U1", text="just you")
    assert TS.match(ephemeral["message_ts"])
    assert fake.ephemerals[0]["user"] == "U1" and fake.ephemerals[0]["text"] == "just you"


def test_channel_errors_and_join(fake: FakeSlack, client: WebClient) -> None:
    fake.add_channel("C2", "kpi", is_member=False)
    fake.add_channel("C3", "old", is_archived=True)
    fake.add_channel("C4", "deals", members={"U1"})

    assert slack_error(lambda: client.chat_postMessage(channel="C2", text="x")).response[
        "error"
    ] == ("not_in_channel")
    assert client.conversations_join(channel="C2")["channel"]["is_member"] is True
    assert client.chat_postMessage(channel="C2", text="x")["ok"] is True
    assert slack_error(lambda: client.chat_postMessage(channel="C3", text="x")).response[
        "error"
    ] == ("is_archived")
    error = slack_error(lambda: client.chat_postEphemeral(channel="C4", user="U2", text="x"))
    assert error.response["error"] == "user_not_in_channel"
    assert slack_error(
        lambda: client.api_call("chat.postMessage", json={"channel": "C4"})
    ).response["error"] == ("no_text")

    fake.strict_channels = True
    error = slack_error(lambda: client.chat_postMessage(channel="C404", text="x"))
    assert error.response["error"] == "channel_not_found"


def test_views_open_update_and_limits(fake: FakeSlack, client: WebClient) -> None:
    modal = {
        "type": "modal",
        "callback_id": "survey",
        "private_metadata": "partner=acme",
        "title": {"type": "plain_text", "text": "Partner survey"},
        "submit": {"type": "plain_text", "text": "Send"},
        "blocks": [
            {
                "type": "input",
                "block_id": "score",
                "label": {"type": "plain_text", "text": "Score"},
                "element": {"type": "plain_text_input", "action_id": "value"},
            }
        ],
    }
    opened = client.views_open(trigger_id="1.2.abc", view=modal)["view"]
    assert opened["id"].startswith("V") and opened["callback_id"] == "survey"
    assert fake.views[0]["private_metadata"] == "partner=acme"

    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal)["view"]
    assert updated["id"] == opened["id"] and updated["hash"] != opened["hash"]
    stale = slack_error(
        lambda: client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal)
    )
    assert stale.response["error"] == "hash_conflict"

    too_long = {**modal, "title": {"type": "plain_text", "text": "x" * 25}}
    error = slack_error(lambda: client.views_open(trigger_id="1.2.abc", view=too_long))
    assert error.response["error"] == "invalid_arguments"
    assert "/view/title/text" in error.response["response_metadata"]["messages"][0]


def button_block(text: str) -> list[dict[str, Any]]:
    return [{"type": "actions", "elements": [button(text)]}]


def fields_block(fields: Iterable[str]) -> list[dict[str, Any]]:
    return [{"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]}]


def header_block(text: str) -> list[dict[str, Any]]:
    return [{"type": "header", "text": {"type": "plain_text", "text": text}}]


OVER_THE_LIMITS = {
    "51 blocks": ([{"type": "divider"}] * 51, "invalid_blocks", "no more than 50 items"),
    "section text 3001": ([section("x" * 3001)], "invalid_blocks", "less than 3001"),
    "header 151": (header_block("x" * 151), "invalid_blocks", "less than 151"),
    "button text 76": (button_block("x" * 76), "invalid_blocks", "less than 76"),
    "11 fields": (fields_block(["f"] * 11), "invalid_blocks", "no more than 10 items"),
    "field 2001": (fields_block(["x" * 2001]), "invalid_blocks", "less than 2001"),
    "empty section text": ([section("")], "invalid_blocks", "more than 0 characters"),
    "12k of JSON": ([section("x" * 2900)] * 5, "msg_blocks_too_long", None),
}


@pytest.mark.parametrize("case", OVER_THE_LIMITS, ids=list(OVER_THE_LIMITS))
@pytest.mark.parametrize("method", ["chat_postMessage", "chat_postEphemeral", "chat_update"])
def test_block_limits_are_refused(
    fake: FakeSlack, client: WebClient, case: str, method: str
) -> None:
    blocks, expected, message = OVER_THE_LIMITS[case]
    ts = client.chat_postMessage(channel="C1", text="original")["ts"]
    send = {
        "chat_postMessage": lambda: client.chat_postMessage(channel="C1", text="t", blocks=blocks),
        "chat_postEphemeral": lambda: client.chat_postEphemeral(
            channel="C1", user="U1", text="t", blocks=blocks
        ),
        "chat_update": lambda: client.chat_update(channel="C1", ts=ts, text="t", blocks=blocks),
    }[method]

    error = slack_error(send)

    assert error.response["error"] == expected
    if message is not None:
        assert message in " ".join(error.response["response_metadata"]["messages"])
    assert [m["text"] for m in fake.messages_in("C1")] == ["original"]


def test_blocks_at_the_limits_are_taken(client: WebClient) -> None:
    at_limits = [
        *header_block("h" * 150),
        section("s" * 3000),
        *fields_block(["f" * 200] * 10),
        *button_block("b" * 75),
        *([{"type": "divider"}] * 46),
    ]
    assert len(at_limits) == 50
    assert client.chat_postMessage(channel="C1", text="t", blocks=at_limits)["ok"] is True
    assert validate_blocks(at_limits) is None
    assert validate_blocks([section("x" * (BLOCKS_JSON_MAX))]) is not None


def test_duplicate_block_ids_are_refused() -> None:
    twice = [{**section("a"), "block_id": "b"}, {**section("b"), "block_id": "b"}]
    problem = validate_blocks(twice)
    assert problem is not None and problem.error == "invalid_blocks"


# --- response_url ---------------------------------------------------------------------------


def post_json(url: str, payload: Any) -> tuple[int, str]:
    request = Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except HTTPError as error:
        return error.code, error.read().decode()


def test_response_url_records_what_is_posted(fake: FakeSlack) -> None:
    url = fake.new_response_url()
    other = fake.new_response_url()
    assert url.startswith(f"{fake.base_url}/response/") and url != other
    payload = {
        "text": "Acme: 12 deals",
        "blocks": [section("*Acme*")],
        "response_type": "ephemeral",
        "replace_original": False,
    }

    assert post_json(url, payload) == (200, RESPONSE_URL_OK)  # {"ok":true}, as Slack answers
    assert WebhookClient(other).send(text="shared", response_type="in_channel").body == (
        RESPONSE_URL_OK
    )

    (post,) = fake.responses(url)
    assert post.body == payload and post.ok
    assert post.headers["content-type"] == "application/json"
    assert fake.responses(url.rsplit("/", 1)[-1]) == [post]
    assert [p.body["text"] for p in fake.responses()] == ["Acme: 12 deals", "shared"]


def test_response_url_refusals(fake: FakeSlack) -> None:
    url = fake.new_response_url()
    assert post_json(url, {"response_type": "ephemeral"}) == (400, "no_text")
    assert post_json(url, {"text": "t", "blocks": [section("x" * 3001)]}) == (
        400,
        "invalid_blocks",
    )
    assert post_json(f"{fake.base_url}/response/nope", {"text": "t"}) == (404, "no_service")
    for _ in range(5):
        assert post_json(url, {"text": "t"}) == (200, RESPONSE_URL_OK)
    assert post_json(url, {"text": "t"}) == (404, "used_url")
    fresh = fake.new_response_url()
    fake.expire_response_url(fresh)
    assert post_json(fresh, {"text": "t"}) == (404, "expired_url")
    fake.fail_next("response_url", error="internal_error")
    assert post_json(fake.new_response_url(), {"text": "t"}) == (500, "internal_error")
    assert not fake.responses(url)[0].ok


def test_wait_for_sees_what_arrives_later(fake: FakeSlack, client: WebClient) -> None:
    url = fake.new_response_url()

    def later() -> None:
        time.sleep(0.2)
        client.chat_postMessage(channel="C1", text="late")
        post_json(url, {"text": "later still"})

    threading.Thread(target=later).start()
    assert fake.wait_for_call("chat.postMessage").body["text"] == "late"
    assert fake.wait_for_response(url).body["text"] == "later still"
    with pytest.raises(TimeoutError, match=r"chat\.update"):
        fake.wait_for_call("chat.update", timeout=0.2)
    # The predicate runs without the fake's lock, so it may call the fake itself.
    assert fake.wait_for(lambda: client.auth_test()["ok"], timeout=2)


# --- requests to the bot --------------------------------------------------------------------


def test_signature_verified_by_slack_sdk() -> None:
    body = slash_command_body(text="scorecard acme")
    headers = sign(SECRET, body)

    assert SignatureVerifier(SECRET).is_valid_request(body, headers)
    assert not SignatureVerifier("another-secret").is_valid_request(body, headers)
    assert not SignatureVerifier(SECRET).is_valid_request(body + b"&x=1", headers)
    stale = sign(SECRET, body, timestamp=int(time.time()) - 600)
    assert not SignatureVerifier(SECRET).is_valid_request(body, stale)
    # The documented example: the signature is over "v0:{timestamp}:{body}".
    fixed = sign(SECRET, b"a=b", timestamp=1531420618)
    assert fixed["X-Slack-Request-Timestamp"] == "1531420618"
    assert fixed["X-Slack-Signature"] == SignatureVerifier(SECRET).generate_signature(
        timestamp="1531420618", body=b"a=b"
    )


def test_slash_command_body_is_what_slack_sends() -> None:
    body = slash_command_body(
        text="compare acme q3",
        user_id="U7",
        channel_id="C7",
        response_url="http://127.0.0.1:1/response/x",
        trigger_id="1.2.3",
    )
    assert body.startswith(b"token=") and b"command=%2Fpartner-kpi" in body
    assert b"text=compare+acme+q3" in body
    fields = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    assert list(fields) == [
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "is_enterprise_install",
        "response_url",
        "trigger_id",
    ]
    assert fields["user_id"] == "U7" and fields["trigger_id"] == "1.2.3"


def payload_of(body: bytes) -> dict[str, Any]:
    (raw,) = parse_qs(body.decode())["payload"]
    payload: dict[str, Any] = json.loads(raw)
    return payload


def test_block_action_body_shape() -> None:
    body = block_action_body(
        "scorecard_why", "acme|2024-Q3", user_id="U7", channel_id="C7", response_url="http://x/r"
    )
    payload = payload_of(body)
    assert payload["type"] == "block_actions"
    assert payload["user"] == {"id": "U7", "username": "ann", "name": "ann", "team_id": "T1"}
    assert payload["channel"]["id"] == "C7" and payload["team"]["id"] == "T1"
    assert payload["container"]["type"] == "message"
    assert payload["container"]["message_ts"] == payload["message"]["ts"]
    assert payload["response_url"] == "http://x/r" and payload["trigger_id"]
    (action,) = payload["actions"]
    assert action["action_id"] == "scorecard_why" and action["value"] == "acme|2024-Q3"
    assert action["type"] == "button" and TS.match(action["action_ts"])

    ephemeral = payload_of(block_action_body("scorecard_why", ephemeral=True))
    assert ephemeral["container"]["is_ephemeral"] is True and "message" not in ephemeral


def test_view_submission_of_an_opened_view(fake: FakeSlack, client: WebClient) -> None:
    modal = {
        "type": "modal",
        "callback_id": "survey",
        "private_metadata": "partner=acme",
        "title": {"type": "plain_text", "text": "Survey"},
        "blocks": [section("How was the quarter?")],
    }
    client.views_open(trigger_id="1.2.3", view=modal)
    values = {
        "score": {"value": input_value("4")},
        "mood": {"pick": input_value("good", "static_select")},
    }

    payload = payload_of(view_submission_body(values=values, user_id="U7", view=fake.views[0]))

    assert payload["type"] == "view_submission" and payload["user"]["id"] == "U7"
    view = payload["view"]
    assert view["id"] == fake.views[0]["id"] and view["callback_id"] == "survey"
    assert view["private_metadata"] == "partner=acme"
    assert view["state"]["values"]["score"]["value"] == {"type": "plain_text_input", "value": "4"}
    picked = view["state"]["values"]["mood"]["pick"]["selected_option"]["value"]
    assert picked == "good"


def test_event_callback_body_shape() -> None:
    event = {"type": "message", "channel_type": "im", "user": "U7", "text": "5", "ts": "1.2"}
    payload = json.loads(event_callback_body(event))
    assert payload["type"] == "event_callback" and payload["event"] == event
    assert payload["event_id"].startswith("Ev") and payload["authorizations"][0]["is_bot"]


class _Threads(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def bolt_bot(fake: FakeSlack) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A real slack_bolt app, talking to the fake, served on loopback: the shape of the bot's
    end-to-end tests. Yields its URL and the headers of each request it got."""
    app = App(
        token=TOKEN,
        signing_secret=SECRET,
        client=WebClient(token=TOKEN, base_url=fake.api_url),
        token_verification_enabled=False,
    )

    @app.command("/partner-kpi")
    def on_command(ack: Any, command: dict[str, Any], respond: Any) -> None:
        ack()
        respond(text=f"you asked: {command['text']}")

    @app.action("scorecard_why")
    def on_action(ack: Any, body: dict[str, Any], respond: Any, client: WebClient) -> None:
        ack()
        client.chat_postMessage(channel=body["channel"]["id"], text="why, in the channel")
        respond(text="why", replace_original=False)

    seen: list[dict[str, str]] = []
    slack = SlackRequestHandler(app)

    def wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        seen.append({k: str(v) for k, v in environ.items() if k.startswith("HTTP_")})
        return slack(environ, start_response)

    server = make_server("127.0.0.1", 0, wsgi, server_class=_Threads, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/slack/events", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_post_to_bot_drives_a_bolt_app_end_to_end(
    fake: FakeSlack, bolt_bot: tuple[str, list[dict[str, str]]]
) -> None:
    url, seen = bolt_bot
    response_url = fake.new_response_url()

    status, _, _ = post_to_bot(
        url, slash_command_body(text="scorecard acme", response_url=response_url), SECRET
    )
    assert status == 200
    assert fake.wait_for_response(response_url).body["text"] == "you asked: scorecard acme"

    click_url = fake.new_response_url()
    reply = post_to_bot(
        url,
        block_action_body("scorecard_why", "acme", response_url=click_url),
        SECRET,
        retry_num=1,
    )
    assert reply.status == 200
    assert fake.wait_for_response(click_url).body == {"text": "why", "replace_original": False}
    assert fake.wait_for_call("chat.postMessage").body["text"] == "why, in the channel"
    assert seen[-1]["HTTP_X_SLACK_RETRY_NUM"] == "1"
    assert seen[-1]["HTTP_X_SLACK_RETRY_REASON"] == "http_timeout"

    forged = post_to_bot(url, slash_command_body(text="x"), "not-the-secret")
    assert forged.status == 401


def test_post_to_bot_stays_on_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        post_to_bot("http://10.1.2.3/slack/events", b"x=1", SECRET)
