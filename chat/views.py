"""HTTP endpoints of the widget side: demo page, uploads, attachment downloads, health."""

import logging

from django.conf import settings
from django.db import connection
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from accounts.models import Workspace
from accounts.selectors import workspace_get_by_key

from . import blocklist, frames, services
from .errors import ChatError
from .models import Attachment
from .selectors import visitor_get_by_token
from .widget_http import widget_error, widget_json, widget_origin, widget_preflight, widget_refusal

log = logging.getLogger(__name__)


def demo_page(request: HttpRequest) -> HttpResponse:
    """A page that embeds the widget exactly as a customer's site would."""
    workspace = Workspace.objects.order_by("pk").first()
    return render(request, "demo.html", {"workspace": workspace})


@csrf_exempt
@require_http_methods(["POST", "OPTIONS"])
def widget_upload(request: HttpRequest) -> HttpResponse:
    """POST multipart (key, visitor_id, visitor_token, file) -> {"attachment": {...}}.

    The visitor proves who they are with the token from ``welcome``; no cookies are used,
    so the endpoint is CSRF-exempt and answers CORS for the workspace's allowed origins.
    """
    # A CORS preflight has no body, so the key may also come in the query string.
    key = request.POST.get("key") or request.GET.get("key", "")
    workspace = workspace_get_by_key(widget_key=key)
    origin = widget_origin(request, workspace)
    if request.method == "OPTIONS":
        return widget_preflight(origin, "POST")
    refusal = widget_refusal(request, workspace, origin, unknown_key=403)
    if refusal is not None:
        return refusal
    public_id = request.POST.get("visitor_id", "")
    token = request.POST.get("visitor_token", "")
    visitor = visitor_get_by_token(workspace=workspace, public_id=public_id, token=token)
    if visitor is None:
        return widget_error("invalid_visitor", "Unknown visitor.", 403, origin)
    if blocklist.visitor_is_blocked(workspace.pk, visitor.pk, blocklist.request_ip(request)):
        return widget_error("blocked", "You cannot use this chat.", 403, origin)
    upload = request.FILES.get("file")
    if upload is None:
        return widget_error("missing_file", "No file was sent.", 400, origin)
    try:
        attachment = services.attachment_create(workspace=workspace, upload=upload, visitor=visitor)
    except ChatError as exc:
        return widget_error(exc.code, exc.message, 400, origin)
    return widget_json({"attachment": frames.attachment_frame(attachment)}, 201, origin)


@require_GET
def attachment_download(request: HttpRequest, public_id) -> HttpResponse:
    """Serve an upload by its unguessable id, never as active content."""
    attachment = Attachment.objects.filter(public_id=public_id).first()
    if attachment is None:
        raise Http404
    try:
        handle = attachment.file.open("rb")
    except FileNotFoundError:
        raise Http404 from None
    inline = attachment.is_image and request.GET.get("download") is None
    response = FileResponse(
        handle,
        as_attachment=not inline,
        filename=attachment.original_name,
        content_type=attachment.content_type if inline else "application/octet-stream",
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
    response["Cache-Control"] = "private, max-age=86400"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> HttpResponse:
    """Ready when the database answers (and Redis, when configured)."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # pragma: no cover - reported, not raised
        checks["database"] = f"error: {exc.__class__.__name__}"
    if settings.REDIS_URL:
        import redis

        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {exc.__class__.__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JsonResponse(
        {"status": "ok" if ok else "error", "checks": checks}, status=200 if ok else 503
    )
