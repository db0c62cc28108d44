"""The visitor's proof of identity: a signature of its public id, kept by the widget."""

from django.core import signing
from django.utils.crypto import constant_time_compare


def _signer(workspace_id: int) -> signing.Signer:
    return signing.Signer(salt=f"helpdesk.visitor.{workspace_id}")


def visitor_token_for(*, workspace_id: int, public_id: str) -> str:
    return _signer(workspace_id).signature(public_id)


def visitor_token_valid(*, workspace_id: int, public_id: str, token: object) -> bool:
    if not isinstance(token, str) or not token:
        return False
    return constant_time_compare(
        visitor_token_for(workspace_id=workspace_id, public_id=public_id), token
    )
