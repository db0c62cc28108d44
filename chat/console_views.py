"""The agent console: server-rendered pages; live data comes over /ws/agent/."""

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from accounts.selectors import agent_for_user

from . import frames, services
from .errors import ChatError

# Strings the console's JavaScript shows; translated here and handed to the page as JSON.
# Placeholders are %(name)s style; console.js fills them in.
CONSOLE_STRINGS = {
    "connecting": _("Connecting…"),
    "connected": _("Connected"),
    "reconnecting": _("Reconnecting in %(seconds)s s…"),
    "offline": _("Offline"),
    "session_ended": _("Your session has ended. Please sign in again."),
    "sign_in": _("Sign in"),
    "status_open": _("Open"),
    "status_pending": _("Pending"),
    "status_resolved": _("Resolved"),
    "unassigned": _("Unassigned"),
    "assigned_to": _("Assigned to %(name)s"),
    "no_conversations": _("No conversations yet. New chats appear here as visitors write."),
    "select_conversation": _("Select a conversation on the left."),
    "empty_conversation": _("No messages yet."),
    "typing": _("typing…"),
    "agent_typing": _("%(name)s is typing…"),
    "sending": _("Sending…"),
    "uploading": _("Uploading %(name)s…"),
    "failed": _("Not sent: %(reason)s"),
    "retry": _("Retry"),
    "discard": _("Discard"),
    "delivered": _("Delivered"),
    "read": _("Read"),
    "resolve": _("Resolve"),
    "resolved": _("Resolved"),
    "upload_failed": _("The file could not be uploaded: %(reason)s"),
    "file_too_large": _("The file is too large."),
    "visitor": _("Visitor"),
    "bot": _("Bot"),
    "system": _("System"),
    "new_message": _("New message from %(name)s"),
    "attachment": _("Attachment"),
    "open_full_size": _("Open full size in a new tab"),
    "notifications_on": _("Notifications on"),
    "notifications_blocked": _("Notifications blocked by the browser"),
    "sound_on": _("Sound on"),
    "sound_off": _("Sound off"),
    "today": _("Today"),
    "yesterday": _("Yesterday"),
    "unknown": _("—"),
    "page_title": _("Helpdesk console"),
    "error": _("Error: %(message)s"),
    "suggesting": _("Thinking…"),
    "no_suggestion": _("No suggestion: %(reason)s"),
    "source_kb": _("from the knowledge base, score %(score)s"),
    "source_ai": _("from the AI providers' vote, confidence %(score)s"),
    "search_searching": _("Searching…"),
    "search_none": _("Nothing found for “%(q)s”."),
    "search_count": _("Conversations found: %(count)s"),
    "search_visitor_match": _("Name or email matches"),
    "label_remove": _("Remove label %(name)s"),
    "canned_shared": _("shared"),
    "not_rated": _("Not rated"),
    "rating_stars": _("%(rating)s of 5"),
    "event_rating": _("The visitor rated the conversation %(rating)s of 5"),
    "event_rating_changed": _("The visitor changed their rating to %(rating)s of 5"),
    "event_rating_comment": _("The visitor rated the conversation %(rating)s of 5: “%(comment)s”"),
    "event_blocked": _("%(name)s blocked the visitor"),
    "event_blocked_ip": _("%(name)s blocked the visitor's address %(network)s"),
    "visitor_blocked": _("The visitor is blocked."),
    "visitor_already_blocked": _("The visitor was already blocked."),
    # Routing and the agent's day (presence, queue, status, transfer, notes, timeline).
    "status_snoozed": _("Snoozed"),
    "snoozed_until": _("Snoozed until %(time)s"),
    "snooze_future": _("Choose a time in the future."),
    "in_queue": _("Waiting in the queue"),
    "not_connected": _("Not connected; try again in a moment."),
    "presence_online": _("Online"),
    "presence_away": _("Away"),
    "presence_offline": _("Offline"),
    "presence_disconnected": _("Not connected"),
    "colleagues_online": _("%(count)s online"),
    "no_colleagues": _("No colleagues yet."),
    "queue_title": _("Visitors waiting for an agent: %(count)s"),
    "no_team": _("No team"),
    "transfer_pick": _("Choose an agent or a team…"),
    "transfer_agents": _("Agents"),
    "transfer_teams": _("Teams"),
    "transfer_me": _("%(name)s (you)"),
    "note_private": _("Private note"),
    "seconds": _("%(n)s s"),
    "minutes": _("%(n)s min"),
    "hours": _("%(n)s h"),
    "event_assigned": _("Assigned to %(agent)s"),
    "event_assigned_queue": _("Assigned to %(agent)s from the queue after %(waited)s"),
    "event_assigned_reply": _("%(agent)s took the conversation by replying"),
    "event_assigned_transfer": _("Now assigned to %(agent)s"),
    "event_queued": _("Waiting in the queue"),
    "event_queued_team": _("Waiting in the queue of %(team)s"),
    "event_transferred_agent": _("%(actor)s transferred the conversation to %(agent)s"),
    "event_transferred_team": _("%(actor)s transferred the conversation to the team %(team)s"),
    "event_status": _("%(actor)s set the status to %(status)s"),
    "event_snoozed": _("%(actor)s snoozed the conversation until %(time)s"),
    "event_woke": _("The snooze ended; the conversation is open again"),
    "event_reopened": _("The visitor wrote again; the conversation is open"),
    "event_labels": _("%(actor)s changed the labels: %(changes)s"),
}


def console_config(request: HttpRequest, agent) -> dict:
    """What console.js needs to start: endpoints, limits and its translated strings."""
    workspace = agent.workspace
    return {
        "agent": {"id": agent.pk, "name": agent.display_name},
        # For canned replies' {workspace_name}.
        "workspace": {"id": workspace.pk, "name": workspace.name},
        "ws_path": "/ws/agent/",
        "upload_url": reverse("console:upload"),
        "login_url": reverse("console:login"),
        "csrf_token": get_token(request),
        "language": get_language(),
        "max_text": settings.HELPDESK_MAX_MESSAGE_CHARS,
        "max_upload_bytes": workspace.upload_max_bytes,
        "upload_types": workspace.upload_type_list(),
        "strings": {key: str(value) for key, value in CONSOLE_STRINGS.items()},
    }


class ConsoleLoginView(auth_views.LoginView):
    template_name = "console/login.html"
    redirect_authenticated_user = True


@login_required
def console_index(request: HttpRequest) -> HttpResponse:
    agent = agent_for_user(user=request.user)
    if agent is None:
        return render(request, "console/not_agent.html", status=403)
    return render(
        request,
        "console/index.html",
        {
            "agent": agent,
            "console_config": console_config(request, agent),
            # Agent-assist (the suggest button) unless the workspace's bot mode is off.
            "assist_enabled": agent.workspace.bot_mode != "off",
        },
    )


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
