"""`ikledger secret`: a fresh webhook secret for a local receiver and `ikledger trigger`."""

from __future__ import annotations

import base64
import secrets

import click

from .common import CONTEXT

SECRET_BYTES = 24  # random bytes; base64 makes them 32 characters after `whsec_`


def new_secret() -> str:
    """`whsec_` and the base64 of fresh random bytes: ImageKit's form of a webhook secret."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


@click.command("secret", context_settings=CONTEXT)
def secret() -> None:
    """Print a fresh random webhook secret (whsec_…) for a local receiver.

    For trying ikledger without ImageKit: `export IMAGEKIT_WEBHOOK_SECRET=$(ikledger
    secret)`, then `make serve` and `ikledger trigger` sign with it. Against ImageKit
    use the secret of its dashboard instead: ImageKit signs with that one.
    """
    click.echo(new_secret())
