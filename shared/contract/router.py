"""Every service serves the event contract: `GET /asyncapi.json` and `GET /asyncapi.yaml`.

They are public, like `/openapi.json`: the contract says what the topics carry, never what is in them. The
document describes this deployment (its topic prefix, partitions and bootstrap servers), so it is built from the
service's own settings and cached per set of options.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from shared.contract.asyncapi import ContractOptions, build_document
from shared.contract.render import to_json, to_yaml
from shared.settings import Settings
from shared.web.auth import get_auth_settings

router = APIRouter(tags=["contract"])


@lru_cache(maxsize=8)
def _rendered(options: ContractOptions) -> tuple[bytes, str]:
    document = build_document(options)
    return to_json(document), to_yaml(document)


# The app factory points this dependency at the service's own settings; it is not about auth here.
AppSettings = Annotated[Settings, Depends(get_auth_settings)]


@router.get(
    "/asyncapi.json",
    summary="The AsyncAPI 3.0 document of the Kafka topics (JSON).",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
)
async def asyncapi_json(settings: AppSettings) -> Response:
    body, _ = _rendered(ContractOptions.from_settings(settings))
    return Response(body, media_type="application/json")


@router.get(
    "/asyncapi.yaml",
    summary="The AsyncAPI 3.0 document of the Kafka topics (YAML).",
    response_class=Response,
    responses={200: {"content": {"application/yaml": {}}}},
)
async def asyncapi_yaml(settings: AppSettings) -> Response:
    _, text = _rendered(ContractOptions.from_settings(settings))
    return Response(text, media_type="application/yaml")
