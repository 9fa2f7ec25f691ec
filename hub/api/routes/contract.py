from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

router = APIRouter(tags=["contract"])


@router.get(
    "/asyncapi.yaml",
    summary="The message contract (AsyncAPI 3)",
    response_class=Response,
    responses={200: {"content": {"application/yaml": {"schema": {"type": "object"}}}}},
)
async def asyncapi() -> Response:
    text = resources.files("schemas").joinpath("asyncapi.yaml").read_text("utf-8")
    return Response(text, media_type="application/yaml")
