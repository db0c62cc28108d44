"""The widget's optional pre-chat department choice (teams marked ``is_department``).

When a workspace asks for a department, the visitor's ``welcome`` lists its department
teams and the widget sends the chosen id with the first message; the new conversation
gets that team, and routing (chat.routing) sends it to the team.
"""

from typing import Any

from accounts.models import Team, Workspace

from .errors import ChatError


def department_list(*, workspace: Workspace) -> list[dict[str, Any]]:
    """``[{id, name}]`` for the widget, or ``[]`` when the workspace does not ask."""
    if not workspace.ask_department:
        return []
    return [
        {"id": pk, "name": name}
        for pk, name in Team.objects.filter(workspace_id=workspace.pk, is_department=True)
        .order_by("name", "pk")
        .values_list("pk", "name")
    ]


def department_clean(*, workspace_id: int, department_id: Any) -> Team | None:
    """The department team ``department_id`` of the workspace; None for None.

    Anything else (not an integer, another workspace's team, a team that is not a
    department) raises ChatError ``invalid_department``.
    """
    if department_id is None:
        return None
    if not isinstance(department_id, int) or isinstance(department_id, bool):
        raise ChatError("invalid_department", "department must be a department's id.")
    team = Team.objects.filter(
        pk=department_id, workspace_id=workspace_id, is_department=True
    ).first()
    if team is None:
        raise ChatError("invalid_department", "No such department.")
    return team
