"""Imports from Ryu, or from os-ken (its maintained fork) when SAVI_FRAMEWORK=os_ken.

The app only uses names both frameworks have, through this module. Ryu's WSGI layer
imports ``eventlet.wsgi.ALREADY_HANDLED``, which eventlet >= 0.30.3 removed; it was only a
marker object, so it is defined again here, before Ryu is imported (platform notes).
"""

import importlib
import os

import eventlet.wsgi

if not hasattr(eventlet.wsgi, "ALREADY_HANDLED"):
    eventlet.wsgi.ALREADY_HANDLED = object()

FRAMEWORK = os.environ.get("SAVI_FRAMEWORK", "ryu")
if FRAMEWORK not in ("ryu", "os_ken"):
    raise ImportError(f"SAVI_FRAMEWORK must be 'ryu' or 'os_ken', not {FRAMEWORK!r}")


def _mod(name: str):
    return importlib.import_module(f"{FRAMEWORK}.{name}")


def _optional(name: str):
    """A module the framework may lack: os-ken ships no WSGI (REST) layer."""
    try:
        return _mod(name)
    except ModuleNotFoundError:
        return None


wsgi = _optional("app.wsgi")
app_manager = _mod("base.app_manager")
ofp_event = _mod("controller.ofp_event")
handler = _mod("controller.handler")
ofproto_v1_3 = _mod("ofproto.ofproto_v1_3")
ofproto_v1_3_parser = _mod("ofproto.ofproto_v1_3_parser")
hub = _mod("lib.hub")
packet = _mod("lib.packet.packet")
ethernet = _mod("lib.packet.ethernet")
arp = _mod("lib.packet.arp")
ipv6 = _mod("lib.packet.ipv6")
icmpv6 = _mod("lib.packet.icmpv6")

App = getattr(app_manager, "RyuApp", None) or app_manager.OSKenApp
set_ev_cls = handler.set_ev_cls
CONFIG_DISPATCHER = handler.CONFIG_DISPATCHER
MAIN_DISPATCHER = handler.MAIN_DISPATCHER
DEAD_DISPATCHER = handler.DEAD_DISPATCHER
