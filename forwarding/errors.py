"""The one error forwarding's configuration functions raise for a user's mistake."""

from __future__ import annotations


class ForwardingError(ValueError):
    """A bad destination setting, an unknown destination, a bad replay selection.

    Its message is one line fit to show the user and never holds a secret.
    """
