"""The real WebSocket endpoint and the wire-mode runner.

    app = build_app(profile)                 # Starlette app, route at /ws
    serve(profile, port=8765, announce=show) # uvicorn on the real clock; show(url) once it accepts
                                             # ws://HOST:PORT/ws?client=NAME: as the profile's client
    run = simulate_wire(profile)             # the profile's traffic over loopback sockets
"""

from investigation.wire.app import build_app
from investigation.wire.runner import simulate_wire
from investigation.wire.server import serve

__all__ = ["build_app", "serve", "simulate_wire"]
