"""The verifiable-history commands of the `ikledger` CLI: keys, checkpoint, prove,
check-proof. Loaded only when one of them runs (see `receiver.cli.LAZY_COMMANDS`).
`verify --since-checkpoint` lives with `verify` in `receiver.cli.log`.
"""

from __future__ import annotations

import sys

import click
import orjson

from .common import CONTEXT, db_option, load_config, opened_store


def configured_signer(config):
    """The signer IKLEDGER_SIGNING_KEY names, None without one; a bad key ends the command."""
    from receiver.checkpoints import SigningKeyError, load_signer

    if not config.signing_key:
        return None
    try:
        return load_signer(config.signing_key)
    except SigningKeyError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings=CONTEXT)
def keys() -> None:
    """Create the Ed25519 key that signs checkpoints."""


@keys.command("create", context_settings=CONTEXT)
@click.option("--origin", required=True, help="The log's name: the checkpoints' origin line.")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="The private key's file, created with mode 0600 (never replaced).",
)
def keys_create(origin: str, out: str) -> None:
    """Write a new private key to OUT (0600) and print its verifier key as the last line."""
    from store.tlog import NoteError, generate_key, write_private_key

    try:
        private, verifier = generate_key(origin)
    except NoteError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        write_private_key(out, private)
    except FileExistsError:
        raise click.ClickException(f"{out} exists: a key file is never replaced") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror}") from None
    click.echo(f"private key written to {out}; set IKLEDGER_SIGNING_KEY={out}", err=True)
    click.echo(verifier)


@click.command(context_settings=CONTEXT)
@db_option
def checkpoint(db: str | None) -> None:
    """Print a fresh checkpoint of the log (signed with IKLEDGER_SIGNING_KEY) and keep it."""
    from receiver.checkpoints import KEY_HELP, fresh_checkpoint

    config = load_config(db=db)
    signer = configured_signer(config)
    with opened_store(config) as store:
        note = fresh_checkpoint(store, signer)
        store.add_checkpoint(note)
    if signer is None:
        click.echo(f"note: {KEY_HELP}", err=True)
    sys.stdout.buffer.write(note)
    sys.stdout.buffer.flush()


@click.command(context_settings=CONTEXT)
@db_option
@click.argument("event_id", required=False)
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.File("rb"),
    help="Prove against this checkpoint [default: a fresh one].",
)
@click.option(
    "--from-size",
    type=click.IntRange(min=0),
    help="Instead of an event: prove the log extends its tree of the first N events.",
)
def prove(db: str | None, event_id: str | None, checkpoint_file, from_size: int | None) -> None:
    """Print the JSON proof that EVENT_ID is in the log (or, --from-size, that it only grew)."""
    from receiver.checkpoints import fresh_checkpoint
    from store.tlog import ProofError
    from store.tlog.proofs import consistency_proof, event_proof

    if (event_id is None) == (from_size is None):
        raise click.UsageError("give either EVENT_ID or --from-size N")
    config = load_config(db=db)
    signer = None if checkpoint_file else configured_signer(config)
    with opened_store(config) as store:
        note = checkpoint_file.read() if checkpoint_file else fresh_checkpoint(store, signer)
        try:
            if event_id is not None:
                proof = event_proof(store, event_id, note)
            else:
                assert from_size is not None  # one of the two, checked above
                proof = consistency_proof(store, from_size, note)
        except (LookupError, ProofError, ValueError) as exc:
            raise click.ClickException(str(exc).strip("'\"")) from None
    click.echo(orjson.dumps(proof, option=orjson.OPT_INDENT_2).decode())


@click.command("check-proof", context_settings=CONTEXT)
@click.argument("proof_file", metavar="PROOF.json", type=click.File("rb"))
@click.option("--key", required=True, metavar="VERIFIER_KEY", help="NAME+ID+DATA, or a file.")
@click.option("--body", type=click.File("rb"), help="Also check these bytes are the event's body.")
def check_proof(proof_file, key: str, body) -> None:
    """Check a proof offline: signature, path to the root and, with --body, the bytes."""
    from store.tlog.proofs import ProofCheckFailed
    from store.tlog.proofs import check_proof as check

    try:
        proof = orjson.loads(proof_file.read())
    except orjson.JSONDecodeError as exc:
        raise click.ClickException(f"FAILED format: the proof is not JSON ({exc})") from None
    try:
        check(proof, verifier_key(key), None if body is None else body.read())
    except ProofCheckFailed as exc:
        raise click.ClickException(f"FAILED {exc}") from None
    what = "consistency" if isinstance(proof, dict) and "old_size" in proof else "inclusion"
    click.echo(f"ok, {what} proof against a checkpoint of {proof['tree_size']} events")


def verifier_key(value: str) -> str:
    """A verifier key given as itself or as a file holding it (its last non-empty line)."""
    import os

    if os.path.isfile(value):
        with open(value, encoding="utf-8") as file:
            lines = [line.strip() for line in file if line.strip()]
        return lines[-1] if lines else ""
    return value
