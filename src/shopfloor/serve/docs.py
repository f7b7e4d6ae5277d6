"""The API's documentation page at /docs, served whole from this machine.

FastAPI's own page loads Swagger UI from a CDN, so on a plant network without internet /docs
was blank. Here the Swagger UI files come from the `fastapi-offline` package (which ships them),
and the page starts them with a script of our own (static/docs.js) instead of an inline one, so
the content security policy (guard.py) need not allow inline scripts.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

router = APIRouter(include_in_schema=False)
ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}
PACKAGE = "fastapi_offline"


@router.get("/docs", response_class=HTMLResponse)
def docs(request: Request) -> HTMLResponse:
    title = escape(f"{request.app.title} {request.app.version} - API")
    if _assets() is None:
        return HTMLResponse(f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title></head><body>"
                            "<h1>API documentation</h1><p>The interactive page needs the <code>fastapi-offline</code> "
                            "package (<code>pip install fastapi-offline</code>). The API's description is at "
                            '<a href="/openapi.json">/openapi.json</a>.</p></body></html>')
    return HTMLResponse(f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="icon" href="/docs/assets/favicon.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi="{escape(request.app.openapi_url or "/openapi.json")}"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script>
</body>
</html>""")


@router.get("/docs/assets/{name}")
def asset(name: str) -> Response:
    """Swagger UI's files; any other name is refused before a path is built."""
    folder = _assets()
    if name not in ASSETS or folder is None:
        raise HTTPException(404, "no such file")
    return Response(folder.joinpath(name).read_bytes(), media_type=ASSETS[name],
                    headers={"Cache-Control": "public, max-age=86400"})


def _assets():
    from importlib.resources import files

    try:
        return files(PACKAGE).joinpath("static")
    except ModuleNotFoundError:
        return None
