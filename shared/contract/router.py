"""Every service serves the event contract: `GET /asyncapi.json` and `GET /asyncapi.yaml`.

They are public, like `/openapi.json`: the contract says what the topics carry, never what is in them. The
document describes this deployment (its topic prefix, partitions and bootstrap servers), so it is built from the
service's own settings and cached per set of options.
"""

from __future__ import annotations

from functools import lru_cache

from fastapi import APIRouter, Request
from fastapi.responses import Response

from shared.contract.asyncapi import ContractOptions, build_document
from shared.contract.render import to_json, to_yaml
from shared.settings import Settings, get_settings

router = APIRouter(tags=["contract"])


@lru_cache(maxsize=8)
def _rendered(options: ContractOptions) -> tuple[bytes, str]:
    document = build_document(options)
    return to_json(document), to_yaml(document)


def _options(request: Request) -> ContractOptions:
    runtime = getattr(request.app.state, "runtime", None)
    settings: Settings = runtime.settings if runtime is not None else get_settings()
    return ContractOptions.from_settings(settings)


@router.get(
    "/asyncapi.json",
    summary="The AsyncAPI 3.0 document of the Kafka topics (JSON).",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
)
async def asyncapi_json(request: Request) -> Response:
    body, _ = _rendered(_options(request))
    return Response(body, media_type="application/json")


@router.get(
    "/asyncapi.yaml",
    summary="The AsyncAPI 3.0 document of the Kafka topics (YAML).",
    response_class=Response,
    responses={200: {"content": {"application/yaml": {}}}},
)
async def asyncapi_yaml(request: Request) -> Response:
    _, text = _rendered(_options(request))
    return Response(text, media_type="application/yaml")
