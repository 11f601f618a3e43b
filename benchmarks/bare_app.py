"""The floor of an HTTP round trip: a Starlette app that reads a POST body and answers at once."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def answer(request: Request) -> Response:
    """Read the body, as the API must, and answer with a constant."""
    await request.body()
    return Response(b'{"ok":true}', media_type="application/json")


app = Starlette(routes=[Route("/", answer, methods=["POST"])])
