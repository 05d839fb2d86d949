"""Images in messages load only from this site or hosts staff allow (CHAT_IMAGE_HOSTS); others become links."""

from __future__ import annotations

from assistant_chat.rendering import image_allowed, render_markdown

HOSTS = frozenset({"images.example.com"})


def test_images_from_this_site_load() -> None:
    html = render_markdown("![chart](/static/chart.png)", image_hosts=frozenset())
    assert '<img src="/static/chart.png" alt="chart">' in html
    assert "<img" in render_markdown("![rel](pictures/a.png)", image_hosts=frozenset())


def test_images_from_other_hosts_become_links_and_never_load() -> None:
    for src in (
        "https://tracker.example/pixel.gif?reader=1",
        "http://192.168.1.1/admin/reboot",
        "//evil.example/x.png",
        "http://images.example.com/a.png",  # allowed host, but not over https
        "https://images.example.com.evil.example/a.png",
    ):
        html = render_markdown(f"![look]({src})", image_hosts=HOSTS)
        assert "<img" not in html, src
        assert "image: look" in html and 'rel="noopener noreferrer nofollow"' in html


def test_an_allowed_host_serves_images_over_https() -> None:
    html = render_markdown("![a](https://images.example.com/a.png)", image_hosts=HOSTS)
    assert '<img src="https://images.example.com/a.png" alt="a">' in html


def test_the_setting_is_the_default(settings) -> None:
    settings.CHAT_IMAGE_HOSTS = ["Images.Example.com"]
    assert "<img" in render_markdown("![a](https://images.example.com/a.png)")
    settings.CHAT_IMAGE_HOSTS = []
    assert "<img" not in render_markdown("![a](https://images.example.com/a.png)")


def test_the_check_itself() -> None:
    assert image_allowed("/a.png", frozenset()) and image_allowed("a.png", frozenset())
    assert not image_allowed(r"\\evil\x.png", frozenset()) and not image_allowed("data:image/png;base64,xx", HOSTS)
    assert not image_allowed("javascript:alert(1)", HOSTS) and not image_allowed("https://[::1", HOSTS)
