"""Fixtures and helpers shared by the ``test_cas_http_*`` modules (the CAS HTTP API spoken
directly with httpx).

A test module gets the ``server`` and ``client`` fixtures by importing them::

    from tests.cpython._cas_helpers import client_fixture, server_fixture  # noqa: F401

``server``
    A fresh server (default options) for the test, from ``cas_server_factory``.
``client``
    An ``httpx.Client`` on ``server`` with a write token (:func:`cas_client`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.plugins.cas_server import cas_client

if TYPE_CHECKING:
    from tests.plugins.cas_server import CasServer


@pytest.fixture(name="server")
def server_fixture(cas_server_factory) -> CasServer:
    return cas_server_factory()


@pytest.fixture(name="client")
def client_fixture(server: CasServer) -> Iterator[httpx.Client]:
    with cas_client(server) as c:
        yield c


def upload_xorbs(client: httpx.Client, xorbs: list[Any]) -> None:
    """POST every xorb to the legacy route; each must be accepted."""
    for x in xorbs:
        r = client.post(f"/v1/xorbs/default/{x.hash}", content=x.body)
        assert r.status_code == 200, r.text
