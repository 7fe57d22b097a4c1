"""Helpers for lilypad-p2p's own tests (and for users testing against it)."""

from lilypad_p2p.testing._real_parts import require_real

__all__ = ["require_real"]
