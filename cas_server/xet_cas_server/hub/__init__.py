"""The Hugging Face Hub API over the CAS's store: repositories, branches, commits, trees,
preupload, Xet tokens, the LFS batch endpoint and resolve — what huggingface_hub and
@huggingface/hub call, so that both talk to this server unmodified.

Modules: :mod:`.names` (ids and paths), :mod:`.gitobj` (git-shaped ids), :mod:`.commits`
(the NDJSON commit), :mod:`.db` (tables and transactions), :mod:`.auth` (Hub tokens),
:mod:`.content` (file bytes through the CAS store), :mod:`.service` (the operations), and the
routes (:mod:`.routes_repo`, :mod:`.routes_write`, :mod:`.routes_files`).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from . import routes_files, routes_repo, routes_write
from .service import Hub

#: Registered before the CAS's catch-all ``/api/{rest:path}`` token route.
ROUTES: list[BaseRoute] = [*routes_repo.ROUTES, *routes_write.ROUTES, *routes_files.ROUTES]

__all__ = ["ROUTES", "Hub"]
