"""The agent console: server-rendered pages; live data comes over /ws/agent/."""

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from accounts.selectors import agent_for_user

from . import frames, services
from .errors import ChatError


class ConsoleLoginView(auth_views.LoginView):
    template_name = "console/login.html"
    redirect_authenticated_user = True


@login_required
def console_index(request: HttpRequest) -> HttpResponse:
    agent = agent_for_user(user=request.user)
    if agent is None:
        return render(request, "console/not_agent.html", status=403)
    return render(request, "console/index.html", {"agent": agent})


@login_required
@require_POST
def console_upload(request: HttpRequest) -> HttpResponse:
    """An agent's upload (multipart ``file``); CSRF-protected like any console form."""
    agent = agent_for_user(user=request.user)
    if agent is None:
        return JsonResponse(
            {"error": {"code": "not_agent", "message": "Not an agent."}}, status=403
        )
    upload = request.FILES.get("file")
    if upload is None:
        return JsonResponse(
            {"error": {"code": "missing_file", "message": "No file was sent."}}, status=400
        )
    try:
        attachment = services.attachment_create(
            workspace=agent.workspace, upload=upload, agent=agent
        )
    except ChatError as exc:
        return JsonResponse({"error": {"code": exc.code, "message": exc.message}}, status=400)
    return JsonResponse({"attachment": frames.attachment_frame(attachment)}, status=201)
