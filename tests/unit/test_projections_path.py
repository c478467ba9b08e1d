"""Where a log's read models live by default: never one file for two logs."""

from __future__ import annotations

import pytest

from projections import default_projections_path

ID_A, ID_B = "a" * 32, "b" * 32


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("ikledger.db", "ikledger.projections.db"),
        ("/data/x.db", "/data/x.projections.db"),
        ("logs/x", "logs/x.projections.db"),
        ("sqlite:///data/x.db", "/data/x.projections.db"),
        ("sqlite:////data/x.db", "/data/x.projections.db"),
        ("sqlite://relative/x.db", "relative/x.projections.db"),
    ],
)
def test_sqlite_log_keeps_its_read_models_beside_its_file(location, expected):
    assert default_projections_path(location, ID_A) == expected
    assert default_projections_path(location) == expected


def test_sqlite_urls_of_two_files_never_share_read_models():
    assert default_projections_path("sqlite:///data/one.db") != default_projections_path(
        "sqlite:///data/two.db"
    )
    assert default_projections_path("sqlite:///data/x.db") != "ikledger.projections.db"


def test_postgresql_log_gets_a_file_named_by_its_identity():
    url = "postgresql://user:secret@db.example/ledger"
    assert default_projections_path(url, ID_A) == f"ikledger-{ID_A}.projections.db"
    assert default_projections_path(url, ID_B) != default_projections_path(url, ID_A)
    assert "secret" not in default_projections_path(url, ID_A)


def test_postgresql_log_without_its_identity_is_refused():
    with pytest.raises(ValueError, match="log_id"):
        default_projections_path("postgresql://db.example/ledger")
