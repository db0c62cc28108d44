"""The blocklist: visitors (by id) and addresses (IPv4/IPv6, CIDR) a workspace refuses.

A blocked visitor cannot open a widget socket (refused at ``hello``), post a message (the
store path checks here; the socket's fast path relies on the check at ``hello`` and on the
kill event below), upload a file or leave a message.

:func:`visitor_is_blocked` runs on every connect and post, so each process keeps a
workspace's blocks in memory for :data:`CACHE_SECONDS` (an empty list too: a workspace
with no blocks costs no query). How a new block takes effect everywhere:

* saving or deleting a :class:`~chat.models.BlockEntry` clears this process's copy at once
  (signals below), and other processes reload theirs within :data:`CACHE_SECONDS`, so a
  reconnect or a post is refused within seconds on every process;
* sockets already open are closed at once, on whichever process holds them: the block
  sends a ``visitor.blocked`` channel-layer event after commit, to the visitor's group (a
  visitor block) or to the workspace's visitors group with the network (an address
  block; each socket compares its own address). The widget gets an ``error`` frame with
  code ``blocked`` and the close code :data:`CLOSE_BLOCKED`.
"""

import ipaddress
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import AgentProfile

from .errors import ChatError
from .models import BlockEntry, Conversation, EventKind
from .realtime import broadcast_on_commit, visitor_group, workspace_visitors_group
from .selectors import conversation_get_for_agent
from .timeline import event_record
from .visitor_info import client_ip

CACHE_SECONDS = 5.0
CLOSE_BLOCKED = 4403
SCOPES = ("visitor", "ip")
REASON_MAX = 300

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class _Blocks:
    loaded_at: float
    visitor_ids: frozenset[int]
    networks: tuple[Network, ...]


_cache: dict[int, _Blocks] = {}
_lock = threading.Lock()


def parse_network(value: str) -> Network | None:
    """``203.0.113.7``, ``203.0.113.0/24`` or ``2001:db8::/32`` as a network, else None."""
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return None


def _blocks(workspace_id: int) -> _Blocks:
    now = time.monotonic()
    blocks = _cache.get(workspace_id)
    if blocks is not None and now - blocks.loaded_at < CACHE_SECONDS:
        return blocks
    visitor_ids, networks = set(), []
    for visitor_id, network in BlockEntry.objects.filter(workspace_id=workspace_id).values_list(
        "visitor_id", "ip_network"
    ):
        if visitor_id is not None:
            visitor_ids.add(visitor_id)
        elif network and (parsed := parse_network(network)) is not None:
            networks.append(parsed)
    blocks = _Blocks(now, frozenset(visitor_ids), tuple(networks))
    with _lock:
        _cache[workspace_id] = blocks
    return blocks


def cache_clear(workspace_id: int | None = None) -> None:
    with _lock:
        if workspace_id is None:
            _cache.clear()
        else:
            _cache.pop(workspace_id, None)


@receiver(post_save, sender=BlockEntry)
@receiver(post_delete, sender=BlockEntry)
def _block_changed(sender, instance: BlockEntry, **kwargs) -> None:
    cache_clear(instance.workspace_id)
    # After commit too: a reader between the change and the commit could cache the old set.
    transaction.on_commit(lambda: cache_clear(instance.workspace_id))


def ip_in_networks(ip: str | None, networks) -> bool:
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:203.0.113.7 is 203.0.113.7
    return any(address.version == n.version and address in n for n in networks)


def visitor_is_blocked(workspace_id: int, visitor_id: int | None, ip: str | None) -> bool:
    """Is this visitor (by id) or address blocked in the workspace? Usually no query."""
    blocks = _blocks(workspace_id)
    if visitor_id is not None and visitor_id in blocks.visitor_ids:
        return True
    return bool(blocks.networks) and ip_in_networks(ip, blocks.networks)


def request_ip(request) -> str | None:
    """The client's address of an HTTP request, by the same rule as the sockets'."""
    scope = getattr(request, "scope", None)  # ASGI
    if scope is None:
        headers = []
        if request.META.get("HTTP_X_FORWARDED_FOR"):
            headers.append((b"x-forwarded-for", request.META["HTTP_X_FORWARDED_FOR"].encode()))
        scope = {"headers": headers, "client": [request.META.get("REMOTE_ADDR"), 0]}
    return client_ip(scope)


def block_announce(entry: BlockEntry) -> None:
    """Close the blocked visitor's open sockets, on every process, after commit."""
    if entry.visitor_id is not None:
        broadcast_on_commit(visitor_group(entry.visitor_id), {"type": "visitor.blocked"})
    elif entry.ip_network:
        broadcast_on_commit(
            workspace_visitors_group(entry.workspace_id),
            {"type": "visitor.blocked", "network": entry.ip_network},
        )


def visitor_block(
    *, agent: AgentProfile, conversation_id: Any, scope: Any = "visitor", reason: Any = ""
) -> tuple[BlockEntry, bool]:
    """Block the visitor of a conversation of the agent's workspace, by id or by address.

    ``scope`` "visitor" blocks this visitor; "ip" blocks the address they last came from
    (one address: a /32 or /128). Blocking what is already blocked returns the existing
    entry and records nothing. Returns ``(entry, created)``. Records a ``blocked`` event
    and closes the visitor's sockets.
    """
    if scope not in SCOPES:
        raise ChatError("invalid_scope", "scope is 'visitor' or 'ip'.")
    if reason is None:
        reason = ""
    if not isinstance(reason, str):
        raise ChatError("invalid_reason", "reason must be a string.")
    reason = " ".join(reason.split())
    if len(reason) > REASON_MAX:
        raise ChatError("invalid_reason", f"reason is longer than {REASON_MAX} characters.")
    conversation = conversation_get_for_agent(agent=agent, conversation_id=conversation_id)
    if conversation is None:
        raise ChatError("not_found", "No such conversation in your workspace.")
    visitor = conversation.visitor
    with transaction.atomic():
        Conversation.objects.select_for_update(of=("self",)).filter(pk=conversation.pk).first()
        if scope == "visitor":
            existing = BlockEntry.objects.filter(
                workspace_id=agent.workspace_id, visitor_id=visitor.pk
            ).first()
            fields = {"visitor": visitor}
            data = {"scope": "visitor"}
        else:
            if not visitor.ip_address:
                raise ChatError("no_ip_address", "The visitor's address is not known.")
            network = str(ipaddress.ip_network(visitor.ip_address))
            existing = BlockEntry.objects.filter(
                workspace_id=agent.workspace_id, ip_network=network
            ).first()
            fields = {"ip_network": network}
            data = {"scope": "ip", "ip_network": network}
        if existing is not None:
            return existing, False
        entry = BlockEntry.objects.create(
            workspace_id=agent.workspace_id, reason=reason, created_by=agent, **fields
        )
        event_record(
            conversation=conversation,
            kind=EventKind.BLOCKED,
            actor=agent,
            text=reason,
            data=data | {"block_id": entry.pk},
        )
        block_announce(entry)
    return entry, True
