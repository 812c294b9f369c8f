"""WebSocket signalling: the wire protocol (parsed and validated in one place) and its server."""
