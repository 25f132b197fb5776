"""The Slack HTTP endpoint reads at most SLACK_MAX_REQUEST_BYTES of a request body (413 beyond)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import aiohttp
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.adapter import SLACK_MAX_REQUEST_BYTES, events_app
from tests.fakes.loopback import serve_on_loopback

SECRET = "test-signing-secret"


def signed(body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest}",
    }


async def test_an_oversized_request_is_refused_and_a_normal_one_served() -> None:
    offline = AsyncWebClient(token="xoxb-test", base_url="http://127.0.0.1:9/")  # never the real API
    app = AsyncApp(signing_secret=SECRET, client=offline)
    runner, port = await serve_on_loopback(events_app(app))
    url = f"http://127.0.0.1:{port}/slack/events"
    try:
        async with aiohttp.ClientSession() as http:
            challenge = json.dumps({"type": "url_verification", "challenge": "c-1"}).encode()
            async with http.post(url, data=challenge, headers=signed(challenge)) as response:
                assert response.status == 200 and "c-1" in await response.text()
            big = json.dumps({"type": "url_verification", "challenge": "c-2", "pad": "x" * 400_000}).encode()
            async with http.post(url, data=big, headers=signed(big)) as response:
                assert response.status == 200 and "c-2" in await response.text()  # larger than Slack sends
            huge = json.dumps({"type": "url_verification", "pad": "x" * SLACK_MAX_REQUEST_BYTES}).encode()
            assert len(huge) < 1024 * 1024  # aiohttp's default would have read it
            async with http.post(url, data=huge, headers=signed(huge)) as response:
                assert response.status == 413
    finally:
        await runner.cleanup()
