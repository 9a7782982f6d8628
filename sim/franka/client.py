"""A PyBullet physics client owned by one object, disconnected exactly once."""
from __future__ import annotations

import pybullet as pb


class OwnsClient:
    """Mixin: `self.client` is a PyBullet client id (or None); `close()` disconnects it."""

    client: int | None = None

    def close(self) -> None:
        if self.client is not None and pb.isConnected(self.client):
            pb.disconnect(self.client)
        self.client = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: pybullet may already be gone
            pass
