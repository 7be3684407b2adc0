"""A distribution build of Blender, without `requests`."""

from __future__ import annotations

from tests.window.conftest import played

INSTALL = "install it (Debian, Ubuntu: apt install python3-requests) or use Blender from blender.org"


def test_without_requests_the_add_on_enables_and_the_panel_and_every_network_operator_say_what_to_install(window):
    facts = played(window.play("distribution:without_requests"))
    assert facts["enabled"]
    assert any(INSTALL in text for text in facts["panel"]), facts["panel"]
    for operator, said in facts["operators"].items():
        assert INSTALL in said and "“requests”" in said, (operator, said)
