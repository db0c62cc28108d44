"""Cross-origin HTTP for the widget: the pages that embed it call these endpoints.

One origin rule for every widget endpoint (the same as the visitor socket's): this
server's own origin, or one the workspace lists. No cookies are involved, so answers
carry CORS headers only for an allowed origin.
"""

from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponse, JsonResponse

from accounts.models import Workspace, normalize_origin


def allowed_origin(workspace: Workspace | None, raw: str | None, host: str) -> str | None:
    """``raw`` normalised when it is this server's own origin (``host``) or one the
    workspace lists; else None. The one rule for the widget's socket and HTTP calls."""
    if not raw or workspace is None:
        return None
    try:
        origin = normalize_origin(raw)
    except ValueError:
        return None
    if (host and urlsplit(origin).netloc == host.lower()) or origin in workspace.origin_list():
        return origin
    return None


def widget_origin(request: HttpRequest, workspace: Workspace | None) -> str | None:
    """The request's Origin when the workspace allows it, else None."""
    return allowed_origin(workspace, request.headers.get("Origin"), request.get_host())


def widget_json(data: dict, status: int, origin: str | None) -> JsonResponse:
    response = JsonResponse(data, status=status, json_dumps_params={"ensure_ascii": False})
    response["Vary"] = "Origin"
    if origin:
        response["Access-Control-Allow-Origin"] = origin
    return response


def widget_error(code: str, message: str, status: int, origin: str | None) -> JsonResponse:
    return widget_json({"error": {"code": code, "message": message}}, status, origin)


def widget_preflight(origin: str | None, method: str) -> HttpResponse:
    response = HttpResponse(status=204)
    response["Vary"] = "Origin"
    if origin:
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Methods"] = method
        response["Access-Control-Max-Age"] = "600"
    return response


def widget_refusal(
    request: HttpRequest, workspace: Workspace | None, origin: str | None, *, unknown_key: int
) -> JsonResponse | None:
    """The error answer for an unknown key or a foreign page, or None when both are fine."""
    if workspace is None:
        return widget_error("invalid_key", "Unknown widget key.", unknown_key, None)
    if request.headers.get("Origin") and origin is None:
        return widget_error("origin_not_allowed", "Origin not allowed.", 403, None)
    return None
