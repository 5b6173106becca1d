"""Update checks: a release feed read on request, compared, and its download page offered."""

from __future__ import annotations

import json
import ssl

import pytest

from app import updates
from app.settings import DEFAULTS, Settings, SettingsError
from app.updates import UpdateCheckError, check, parse_feed
from tests.app.feed_server import FeedServer

DOWNLOAD = "https://example.org/gemma-desk/download"


def test_a_newer_version_in_the_feed_is_offered_with_its_download_page(feed_server):
    feed_server.serve({"version": "0.3.0", "download_url": DOWNLOAD, "notes": "Faster."})
    result = check(feed_server.url, "0.2.1")
    assert result.available
    assert (result.latest, result.download_url, result.notes) == ("0.3.0", DOWNLOAD, "Faster.")
    assert feed_server.requests == ["/feed.json"]


@pytest.mark.parametrize("latest", ["0.2.1", "0.2.0", "0.2.1rc1"])
def test_the_same_or_an_older_version_is_not_offered(latest):
    feed = json.dumps({"version": latest, "download_url": DOWNLOAD}).encode()
    assert not parse_feed(feed, "0.2.1").available


def test_versions_compare_as_versions_not_text():
    feed = json.dumps({"version": "0.10.0", "download_url": DOWNLOAD}).encode()
    assert parse_feed(feed, "0.9.0").available


@pytest.mark.parametrize(
    "download_url",
    ["javascript:alert(1)", "file:///Applications/Calculator.app", "http://example.org/get", ""],
)
def test_a_download_page_that_is_not_https_is_refused(download_url):
    feed = json.dumps({"version": "9.0", "download_url": download_url}).encode()
    with pytest.raises(UpdateCheckError, match="https"):
        parse_feed(feed, "0.1.0")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"<html>not json</html>", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({"download_url": DOWNLOAD}).encode(), 'no "version"'),
        (json.dumps({"version": "soon", "download_url": DOWNLOAD}).encode(), "not valid"),
    ],
)
def test_a_malformed_feed_gives_a_clear_error(raw, message):
    with pytest.raises(UpdateCheckError, match=message):
        parse_feed(raw, "0.1.0")


def test_an_http_error_is_reported_with_its_status(feed_server):
    feed_server.serve(raw=b"missing", status=404)
    with pytest.raises(UpdateCheckError, match="404"):
        check(feed_server.url, "0.1.0")


def test_a_redirect_to_plain_http_elsewhere_is_not_followed(feed_server):
    feed_server.redirects["/feed.json"] = "http://updates.example.org/feed.json"
    with pytest.raises(UpdateCheckError, match="redirected"):
        check(feed_server.url, "0.1.0")


def test_a_redirect_to_another_allowed_address_is_followed(feed_server):
    feed_server.serve({"version": "1.0", "download_url": DOWNLOAD})
    feed_server.redirects["/old-feed.json"] = feed_server.url
    assert check(f"{feed_server.base}/old-feed.json", "0.1.0").latest == "1.0"
    assert feed_server.requests == ["/old-feed.json", "/feed.json"]


@pytest.fixture
def https_feed(tmp_path):
    server = FeedServer()
    server.use_tls(tmp_path)
    server.serve({"version": "9.0", "download_url": DOWNLOAD})
    yield server.start()
    server.stop()


def test_an_https_feed_with_an_untrusted_certificate_is_refused(https_feed):
    with pytest.raises(UpdateCheckError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
        check(https_feed.url, "0.1.0", timeout=5)
    assert https_feed.requests == []  # the handshake failed: no request was read


def test_an_https_feed_signed_by_a_trusted_certificate_is_read(https_feed, tmp_path, monkeypatch):
    trusted = ssl.create_default_context(cafile=tmp_path / "feed-cert.pem")
    monkeypatch.setattr(updates, "tls_context", lambda: trusted)
    assert check(https_feed.url, "0.1.0").latest == "9.0"


def test_a_feed_larger_than_the_limit_is_refused(feed_server):
    feed_server.serve(raw=b" " * (updates.MAX_FEED_BYTES + 10) + b"{}")
    with pytest.raises(UpdateCheckError, match="larger than"):
        check(feed_server.url, "0.1.0")


def test_an_unreachable_feed_is_reported(feed_server):
    url = feed_server.url
    feed_server.stop()
    with pytest.raises(UpdateCheckError, match="Could not reach"):
        check(url, "0.1.0", timeout=2)


@pytest.mark.parametrize("url", ["http://updates.example.org/feed.json", "ftp://x/feed", "feed"])
def test_a_feed_address_that_is_not_https_is_refused_without_a_request(url, monkeypatch):
    monkeypatch.setattr(updates.urllib.request, "build_opener", lambda *a: pytest.fail("network"))
    with pytest.raises(UpdateCheckError, match="https"):
        check(url, "0.1.0")


def test_update_checks_are_off_by_default():
    assert DEFAULTS.update_feed_url == ""


@pytest.mark.parametrize(
    "url", ["https://example.org/gemma-desk/feed.json", "http://127.0.0.1:9000/feed.json", ""]
)
def test_the_feed_setting_takes_https_or_this_machine(url):
    assert Settings().replace(update_feed_url=url).update_feed_url == url


def test_the_feed_setting_refuses_plain_http_to_another_host():
    with pytest.raises(SettingsError, match="update_feed_url"):
        Settings().replace(update_feed_url="http://updates.example.org/feed.json")
