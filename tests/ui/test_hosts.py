"""Host names the dashboard answers (DNS-rebinding defence), without a server."""
import panel as pn

from otviz.ui.hosts import host_allowed
from otviz.ui.serve import foreign_host, panel_args


def test_only_local_host_names_are_allowed_unless_configured(monkeypatch):
    monkeypatch.delenv("OTVIZ_ALLOWED_HOSTS", raising=False)
    for ok in ("localhost:5006", "127.0.0.1:5108", "[::1]:5006", "LOCALHOST", "127.0.0.1"):
        assert host_allowed(ok), ok
    for bad in ("evil.example.com:5108", "localhost.evil.example.com:5006", "127.0.0.1.nip.io:5006", "", None,
                "10.0.0.5:5006"):
        assert not host_allowed(bad), bad
    monkeypatch.setenv("OTVIZ_ALLOWED_HOSTS", "box.lan:5006, other.lan")
    assert host_allowed("box.lan:5006") and not host_allowed("box.lan:80") and host_allowed("other.lan:1234")


def test_the_app_refuses_a_foreign_host_even_under_plain_panel_serve(monkeypatch):
    monkeypatch.delenv("OTVIZ_ALLOWED_HOSTS", raising=False)
    monkeypatch.setattr(type(pn.state), "headers", property(lambda self: {"Host": "evil.example.com:5006"}))
    assert foreign_host() == "evil.example.com:5006"
    monkeypatch.setattr(type(pn.state), "headers", property(lambda self: {"Host": "localhost:5006"}))
    assert foreign_host() is None


def test_the_launcher_binds_localhost_with_the_host_guard():
    args = panel_args(5006)
    assert args[args.index("--address") + 1] == "127.0.0.1"
    assert args[args.index("--auth-module") + 1].endswith("otviz/ui/hostguard.py")
    assert {"localhost:5006", "127.0.0.1:5006"} <= {args[i + 1] for i, a in enumerate(args) if a == "--allow-websocket-origin"}
