"""Test Connection (preferences): the key, the account's balance, the round trip and the proxy in use, or a
sentence for what stands in the way (an invalid key, no credit, no network, a proxy that refuses, a
certificate that is not trusted). Free: it asks only for the account's details."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import bpy

from ... import preferences
from ...client import RunwareClient, Sam3dError
from ...client.http import Transport
from ...translations import rpt_
from .background import BackgroundCall
from .checks import is_blocking, refuse, why_offline
from .job_requests import network
from .outcomes import tell

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems


def check(call: BackgroundCall, key: str, net: dict[str, Any]) -> dict[str, Any]:
    """The worker's part: one free request, timed (no bpy)."""
    transport = Transport(proxy=net["proxy"], ca_bundle=net["ca_bundle"], user_agent=net["user_agent"],
                              api_url=net["api_url"])
    try:
        client = RunwareClient(key, net["api_url"], timeout=net["request_timeout"], guard=call.guard,
                               transport=transport, user_agent=net["user_agent"], max_retries=0)
        started = time.monotonic()
        account = client.account()
        account["seconds"] = time.monotonic() - started
        account["proxy"] = transport.proxy_for(net["api_url"])
        return account
    finally:
        transport.close()


def lines_of(account: dict[str, Any]) -> list[tuple[str, str]]:
    balance = account.get("balance")
    proxy = account.get("proxy") or ""
    shown_proxy = proxy.split("@")[-1] if proxy else rpt_("none")  # never the proxy's password
    lines = [("INFO", rpt_("Connected: the key works ({}).").format(
        account.get("organization") or rpt_("your account")))]
    if balance is not None:
        lines.append(("ERROR", rpt_("Balance: ${:.2f} — no credit left: top it up at runware.ai").format(balance))
                     if balance <= 0 else ("INFO", rpt_("Balance: ${:.2f}").format(balance)))
    lines.append(("INFO", rpt_("Round trip: {:.0f} ms · proxy: {}").format(account["seconds"] * 1000, shown_proxy)))
    return lines


class SAM3D_OT_test_connection(bpy.types.Operator):
    """Check the API key and the network: the account's balance, the round trip and the proxy in use"""

    bl_idname = "sam3d.test_connection"
    bl_label = "Test Connection"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return refuse(cls, why_offline(context))

    def execute(self, context: bpy.types.Context) -> set[OperatorReturnItems]:
        prefs = preferences.get(context)
        key, net = preferences.api_key(prefs), network(context)
        blocking = is_blocking(self, context)
        report = self.report if blocking else tell
        preferences.CONNECTION_REPORT[:] = [("INFO", "Testing…")]

        def done(account: dict[str, Any]) -> None:
            preferences.CONNECTION_REPORT[:] = lines_of(account)
            for level, text in preferences.CONNECTION_REPORT:
                report({"WARNING" if level == "ERROR" else "INFO"}, text)

        def failed(error: Sam3dError) -> None:
            preferences.CONNECTION_REPORT[:] = [("ERROR", str(error))]
            report({"ERROR"}, str(error))

        BackgroundCall("Test Connection", lambda call: check(call, key, net), done, failed,
                       seconds=prefs.request_timeout + 5).start(blocking)
        return {"FINISHED"}


classes = (SAM3D_OT_test_connection,)
