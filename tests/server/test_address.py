"""One answer to "which URL does this server have?" and "is this loopback?"."""

import pytest

from bento_nb.server.address import connect_host, is_loopback, is_loopback_url, url_for


@pytest.mark.parametrize("host, url", [
    ("127.0.0.1", "http://127.0.0.1:5000"), ("localhost", "http://localhost:5000"),
    ("::1", "http://[::1]:5000"), ("[::1]", "http://[::1]:5000"),
    ("0.0.0.0", "http://127.0.0.1:5000"), ("", "http://127.0.0.1:5000"),
    ("::", "http://127.0.0.1:5000"), ("10.1.2.3", "http://10.1.2.3:5000"),
    ("fe80::1", "http://[fe80::1]:5000"),
])
def test_url_for(host, url):
    assert url_for(host, 5000) == url


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("LOCALHOST", True), ("0.0.0.0", False), ("::", False),
    ("10.0.0.7", False), ("example.com", False), ("", False), (None, False),
    ("127.0.0.1.evil.com", False),
])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_connect_host_for_wildcards():
    assert connect_host("0.0.0.0") == "127.0.0.1"
    assert connect_host("::") == "::1"
    assert connect_host("[::1]") == "::1"


@pytest.mark.parametrize("url, ok", [
    ("http://127.0.0.1:5000", True), ("https://localhost/x", True), ("http://[::1]:8/", True),
    ("javascript:alert(1)", False), ("JAVASCRIPT:alert(1)", False), ("file:///etc/passwd", False),
    ("http://10.0.0.1:5000", False), ("http://127.0.0.1.evil.com/", False),
    ("//127.0.0.1:5000", False), ("http://[::1", False), (None, False), (5000, False),
])
def test_is_loopback_url(url, ok):
    assert is_loopback_url(url) is ok
