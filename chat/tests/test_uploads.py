"""Uploads (widget and console), downloads, and who may send an uploaded file.

Rule 3 of the design: uploads are size- and type-checked, stored under random names and
served as attachments, never as active content.
"""

import re
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client

from accounts.tests.factories import AgentFactory, UserFactory, WorkspaceFactory
from chat import services
from chat.errors import ChatError
from chat.models import Attachment, Message
from chat.tests.factories import VisitorFactory
from chat.tests.sockets import agent_socket, receive_until, visitor_socket
from chat.uploads import safe_filename, sniff_content_type

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06" + bytes(40)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(40)
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + bytes(20)
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(24)
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
ZIP = b"PK\x03\x04\x14\x00\x00\x00\x00\x00" + bytes(30)
TEXT = "Order 1042: 2 × Hearth Blend, grind for AeroPress.\n".encode()
HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'
BINARY = bytes(range(256)) * 4  # no known signature, not text

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    # Factories set a password for every agent; the production hasher is slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


UPLOAD_URL = "/widget/uploads/"
ORIGIN = "https://shop.example.com"


@pytest.fixture(autouse=True)
def media(settings, tmp_path) -> Path:
    root = tmp_path / "media"
    settings.MEDIA_ROOT = str(root)
    return root


def stored_files(media: Path) -> list[Path]:
    return [p for p in media.rglob("*") if p.is_file()] if media.exists() else []


@pytest.fixture
def visitor(workspace):
    return VisitorFactory(workspace=workspace)


def widget_post(client, workspace, visitor, upload=None, *, origin=ORIGIN, **overrides):
    data = {
        "key": workspace.widget_key,
        "visitor_id": str(visitor.public_id),
        "visitor_token": services.visitor_token(visitor=visitor),
    }
    if upload is not None:
        data["file"] = upload
    data.update(overrides)
    headers = {"Origin": origin} if origin else {}
    return client.post(UPLOAD_URL, data, headers=headers)


def multipart_post(client, fields: dict[str, str], filename_star: str, content: bytes, **extra):
    """A multipart body built by hand, so the file name reaches the server unaltered."""
    boundary = "----helpdesk-test-boundary"
    parts = []
    for name, value in fields.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        parts.append(f"{head}{value}\r\n".encode())
    parts.append(
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f"filename*=UTF-8''{quote(filename_star, safe='')}\r\n"
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return client.post(
        UPLOAD_URL,
        b"".join(parts),
        content_type=f"multipart/form-data; boundary={boundary}",
        **extra,
    )


# --- widget upload: accepted files ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "content_type", "is_image"),
    [
        ("photo.png", PNG, "image/png", True),
        ("photo.jpg", JPEG, "image/jpeg", True),
        ("anim.gif", GIF, "image/gif", True),
        ("pic.webp", WEBP, "image/webp", True),
        ("invoice.pdf", PDF, "application/pdf", False),
        ("notes.txt", TEXT, "text/plain", False),
        ("bundle.zip", ZIP, "application/zip", False),
    ],
)
def test_good_files_are_accepted_and_stored_under_a_random_name(
    client, workspace, visitor, media, name, content, content_type, is_image
):
    response = widget_post(client, workspace, visitor, SimpleUploadedFile(name, content))

    assert response.status_code == 201, response.content
    data = response.json()["attachment"]
    assert set(data) == {"id", "name", "content_type", "size", "is_image", "url"}
    assert data["name"] == name
    assert data["content_type"] == content_type
    assert data["size"] == len(content)
    assert data["is_image"] is is_image
    assert data["url"] == f"/attachments/{data['id']}/"

    attachment = Attachment.objects.get(public_id=data["id"])
    assert attachment.visitor == visitor and attachment.agent is None
    assert attachment.workspace == workspace
    [path] = stored_files(media)
    assert path.read_bytes() == content
    # Random hex name, no extension, nothing the uploader chose.
    assert re.fullmatch(r"[0-9a-f]{32}", path.name), path.name
    assert path.suffix == ""
    assert Path(name).stem not in str(path.relative_to(media))
    assert path.relative_to(media).parts[:2] == ("attachments", str(workspace.pk))


def test_the_declared_content_type_and_extension_are_ignored(client, workspace, visitor):
    upload = SimpleUploadedFile("report.exe", PDF, content_type="application/x-msdownload")
    response = widget_post(client, workspace, visitor, upload)
    assert response.status_code == 201
    assert response.json()["attachment"]["content_type"] == "application/pdf"


def test_a_file_exactly_at_the_size_limit_is_accepted(client, workspace, visitor):
    workspace.upload_max_bytes = len(PNG)
    workspace.save()
    response = widget_post(client, workspace, visitor, SimpleUploadedFile("a.png", PNG))
    assert response.status_code == 201


# --- widget upload: refused files -------------------------------------------------------------


def assert_refused(response, status: int, code: str, media: Path) -> None:
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert Attachment.objects.count() == 0
    assert stored_files(media) == []


def test_a_file_over_the_workspace_limit_is_refused_and_nothing_is_stored(
    client, workspace, visitor, media
):
    workspace.upload_max_bytes = len(PNG) - 1
    workspace.save()
    response = widget_post(client, workspace, visitor, SimpleUploadedFile("big.png", PNG))
    assert_refused(response, 400, "file_too_large", media)


def test_a_file_larger_than_the_in_memory_threshold_is_checked_too(
    client, workspace, visitor, media, settings
):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024  # streamed to a temporary file
    workspace.upload_max_bytes = 4096
    workspace.save()
    big = PNG + bytes(5000)
    response = widget_post(client, workspace, visitor, SimpleUploadedFile("big.png", big))
    assert_refused(response, 400, "file_too_large", media)


def test_a_type_outside_the_workspace_list_is_refused(client, workspace, visitor, media):
    workspace.upload_allowed_types = "image/png image/jpeg"
    workspace.save()
    response = widget_post(client, workspace, visitor, SimpleUploadedFile("a.pdf", PDF))
    assert_refused(response, 400, "file_type_not_allowed", media)


def test_a_file_of_no_known_type_is_refused(client, workspace, visitor, media):
    response = widget_post(client, workspace, visitor, SimpleUploadedFile("a.png", BINARY))
    assert_refused(response, 400, "file_type_not_allowed", media)


@pytest.mark.parametrize("content", [HTML, SVG], ids=["html", "svg"])
def test_markup_posing_as_png_is_refused_when_text_is_not_allowed(
    client, workspace, visitor, media, content
):
    workspace.upload_allowed_types = "image/png image/jpeg application/pdf"
    workspace.save()
    upload = SimpleUploadedFile("cat.png", content, content_type="image/png")
    response = widget_post(client, workspace, visitor, upload)
    assert_refused(response, 400, "file_type_not_allowed", media)


@pytest.mark.parametrize("content", [HTML, SVG], ids=["html", "svg"])
def test_markup_posing_as_png_is_at_worst_downloaded_as_an_inert_file(
    client, workspace, visitor, content
):
    upload = SimpleUploadedFile("cat.png", content, content_type="image/png")
    response = widget_post(client, workspace, visitor, upload)
    assert response.status_code == 201
    data = response.json()["attachment"]
    assert data["content_type"] == "text/plain"  # never image/png, text/html or svg
    assert data["is_image"] is False

    download = client.get(data["url"])
    assert download.status_code == 200
    assert download["Content-Type"] == "application/octet-stream"
    assert download["Content-Disposition"].startswith("attachment;")
    assert download["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in download["Content-Security-Policy"]
    assert b"".join(download.streaming_content) == content


def test_an_empty_file_is_refused(client, workspace, visitor, media):
    response = widget_post(client, workspace, visitor, SimpleUploadedFile("empty.png", b""))
    assert_refused(response, 400, "empty_file", media)


def test_a_request_without_a_file_is_refused(client, workspace, visitor, media):
    response = widget_post(client, workspace, visitor)
    assert_refused(response, 400, "missing_file", media)


@pytest.mark.parametrize("key", ["", "not-a-key", "x" * 65])
def test_a_wrong_widget_key_is_forbidden(client, workspace, visitor, media, key):
    response = widget_post(client, workspace, visitor, SimpleUploadedFile("a.png", PNG), key=key)
    assert_refused(response, 403, "invalid_key", media)
    assert "Access-Control-Allow-Origin" not in response


@pytest.mark.parametrize(
    "token",
    ["", "forged", "1MjGR1c0DjkZTc17NH5nDwy1agrMBISu-XEZmsW7lYk"],
    ids=["empty", "garbage", "someone-elses"],
)
def test_a_forged_visitor_token_is_forbidden(client, workspace, visitor, media, token):
    upload = SimpleUploadedFile("a.png", PNG)
    response = widget_post(client, workspace, visitor, upload, visitor_token=token)
    assert_refused(response, 403, "invalid_visitor", media)


def test_a_visitor_of_another_workspace_cannot_upload_with_this_key(client, workspace, media):
    stranger = VisitorFactory(workspace=WorkspaceFactory())
    response = widget_post(client, workspace, stranger, SimpleUploadedFile("a.png", PNG))
    assert_refused(response, 403, "invalid_visitor", media)


def test_an_unknown_visitor_id_is_forbidden(client, workspace, visitor, media):
    upload = SimpleUploadedFile("a.png", PNG)
    response = widget_post(client, workspace, visitor, upload, visitor_id=str(uuid.uuid4()))
    assert_refused(response, 403, "invalid_visitor", media)


# --- CORS ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://shop.example.com",
        "null",
        "https://shop.example.com.evil.example",
    ],
)
def test_a_foreign_origin_is_forbidden_without_cors_headers(
    client, workspace, visitor, media, origin
):
    upload = SimpleUploadedFile("a.png", PNG)
    response = widget_post(client, workspace, visitor, upload, origin=origin)
    assert_refused(response, 403, "origin_not_allowed", media)
    assert "Access-Control-Allow-Origin" not in response


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        ("https://shop.example.com", "https://shop.example.com"),
        ("https://SHOP.example.com", "https://shop.example.com"),
        ("http://testserver", "http://testserver"),  # this server's own pages
    ],
)
def test_an_allowed_origin_is_echoed(client, workspace, visitor, sent, echoed):
    upload = SimpleUploadedFile("a.png", PNG)
    response = widget_post(client, workspace, visitor, upload, origin=sent)
    assert response.status_code == 201
    assert response["Access-Control-Allow-Origin"] == echoed
    assert "Origin" in response["Vary"]


def test_errors_for_an_allowed_origin_carry_cors_so_the_widget_can_read_them(
    client, workspace, visitor
):
    response = widget_post(client, workspace, visitor, SimpleUploadedFile("e.png", b""))
    assert response.status_code == 400
    assert response["Access-Control-Allow-Origin"] == ORIGIN


def test_a_request_without_origin_gets_no_cors_header(client, workspace, visitor):
    upload = SimpleUploadedFile("a.png", PNG)
    response = widget_post(client, workspace, visitor, upload, origin=None)
    assert response.status_code == 201
    assert "Access-Control-Allow-Origin" not in response


def test_preflight_names_the_workspace_in_the_query_string(client, workspace):
    url = f"{UPLOAD_URL}?key={workspace.widget_key}"
    allowed = client.options(url, headers={"Origin": ORIGIN})
    assert allowed.status_code == 204
    assert allowed["Access-Control-Allow-Origin"] == ORIGIN
    assert allowed["Access-Control-Allow-Methods"] == "POST"

    foreign = client.options(url, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 204
    assert "Access-Control-Allow-Origin" not in foreign


def test_other_methods_are_not_allowed(client):
    assert client.get(UPLOAD_URL).status_code == 405


# --- file names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("../../etc/passwd.png", "passwd.png"),
        ("..\\..\\windows\\win.png", "win.png"),
        ('"quoted" name.png', "quoted name.png"),
        ("a<b>;c.png", "abc.png"),
        ("tab\there\r\nnew\x00line\x7f.png", "tabherenewline.png"),
        ("&quot;x&quot;.png", "x.png"),
        ("...", "file"),
        ("  .hidden.png. ", "hidden.png"),
    ],
)
def test_file_names_are_cleaned(client, workspace, visitor, media, sent, kept):
    fields = {
        "key": workspace.widget_key,
        "visitor_id": str(visitor.public_id),
        "visitor_token": services.visitor_token(visitor=visitor),
    }
    response = multipart_post(client, fields, sent, PNG)
    assert response.status_code == 201, response.content
    assert response.json()["attachment"]["name"] == kept
    [path] = stored_files(media)
    assert re.fullmatch(r"[0-9a-f]{32}", path.name)

    download = client.get(response.json()["attachment"]["url"] + "?download")
    disposition = download["Content-Disposition"]
    assert "\r" not in disposition and "\n" not in disposition and "/" not in disposition
    assert disposition.count('"') in (0, 2)


@pytest.mark.parametrize(
    ("name", "cleaned"),
    [
        ("C:\\Users\\me\\photo.png", "photo.png"),
        ("/abs/path/x.txt", "x.txt"),
        ('a"b.txt', "ab.txt"),
        ("ok\u202ename.txt", "okname.txt"),  # right-to-left override is not printable
        ("", "file"),
        ("x" * 300 + ".txt", "x" * 200),
        ("résumé 2024.pdf", "résumé 2024.pdf"),
    ],
)
def test_safe_filename(name, cleaned):
    assert safe_filename(name) == cleaned


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (GIF, "image/gif"),
        (WEBP, "image/webp"),
        (PDF, "application/pdf"),
        (ZIP, "application/zip"),
        (TEXT, "text/plain"),
        (("é" * 1100).encode()[:2047], "text/plain"),  # a character cut at the end
        (b"\xff\xfe\x00t\x00e\x00x\x00t", None),
        (BINARY, None),
        (b"", None),
    ],
)
def test_sniff_content_type(head, expected):
    assert sniff_content_type(head[:2048]) == expected


# --- downloads -------------------------------------------------------------------------------


def upload_as(client, workspace, visitor, name, content) -> dict:
    response = widget_post(client, workspace, visitor, SimpleUploadedFile(name, content))
    assert response.status_code == 201, response.content
    return response.json()["attachment"]


def assert_inert_headers(response) -> None:
    assert response["X-Content-Type-Options"] == "nosniff"
    csp = response["Content-Security-Policy"]
    assert "sandbox" in csp and "default-src 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"


def test_images_are_served_inline_with_their_type(client, workspace, visitor):
    data = upload_as(client, workspace, visitor, "shot.png", PNG)
    response = client.get(data["url"])
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == 'inline; filename="shot.png"'
    assert_inert_headers(response)
    assert response["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert b"".join(response.streaming_content) == PNG


def test_images_can_be_forced_to_download(client, workspace, visitor):
    data = upload_as(client, workspace, visitor, "shot.png", PNG)
    response = client.get(data["url"] + "?download")
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == 'attachment; filename="shot.png"'
    assert_inert_headers(response)


@pytest.mark.parametrize(
    ("name", "content"),
    [("invoice.pdf", PDF), ("notes.txt", TEXT), ("bundle.zip", ZIP)],
)
def test_other_files_are_served_as_octet_stream_attachments(
    client, workspace, visitor, name, content
):
    data = upload_as(client, workspace, visitor, name, content)
    response = client.get(data["url"])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == f'attachment; filename="{name}"'
    assert_inert_headers(response)
    assert b"".join(response.streaming_content) == content


def test_non_ascii_names_are_encoded_in_the_disposition(client, workspace, visitor):
    data = upload_as(client, workspace, visitor, "résumé.pdf", PDF)
    response = client.get(data["url"])
    assert "filename*=utf-8''r%C3%A9sum%C3%A9.pdf" in response["Content-Disposition"]


def test_an_unknown_attachment_is_404(client):
    assert client.get(f"/attachments/{uuid.uuid4()}/").status_code == 404
    assert client.get("/attachments/not-a-uuid/").status_code == 404


def test_an_attachment_whose_file_is_gone_is_404(client, workspace, visitor):
    data = upload_as(client, workspace, visitor, "shot.png", PNG)
    Attachment.objects.get(public_id=data["id"]).file.delete(save=False)
    assert client.get(data["url"]).status_code == 404


def test_downloads_are_get_only(client, workspace, visitor):
    data = upload_as(client, workspace, visitor, "shot.png", PNG)
    assert client.post(data["url"]).status_code == 405


# --- who may send an upload --------------------------------------------------------------------


def visitor_upload(workspace, visitor, name="shot.png", content=PNG) -> Attachment:
    return services.attachment_create(
        workspace=workspace, upload=SimpleUploadedFile(name, content), visitor=visitor
    )


def test_the_owner_can_send_their_upload_once(workspace, visitor):
    attachment = visitor_upload(workspace, visitor)
    message, created = services.visitor_message_send(
        visitor=visitor, client_id="m1", text="", attachment_id=str(attachment.public_id)
    )
    assert created and message.attachment == attachment
    assert message.conversation.last_message_preview == "[shot.png]"

    with pytest.raises(ChatError) as exc:
        services.visitor_message_send(
            visitor=visitor, client_id="m2", text="again", attachment_id=str(attachment.public_id)
        )
    assert exc.value.code == "invalid_attachment"
    assert Message.objects.count() == 1
    message.conversation.refresh_from_db()
    assert message.conversation.last_seq == 1

    # A retry of the first send (same client_id) is still fine: idempotent, not a second use.
    again, created = services.visitor_message_send(
        visitor=visitor, client_id="m1", text="", attachment_id=str(attachment.public_id)
    )
    assert not created and again.pk == message.pk


def test_another_visitor_cannot_send_someone_elses_upload(workspace, visitor):
    attachment = visitor_upload(workspace, visitor)
    other = VisitorFactory(workspace=workspace)
    with pytest.raises(ChatError) as exc:
        services.visitor_message_send(
            visitor=other, client_id="m1", text="mine now", attachment_id=str(attachment.public_id)
        )
    assert exc.value.code == "invalid_attachment"
    assert Message.objects.count() == 0
    assert not other.conversations.exists()


def test_agents_cannot_send_a_visitors_upload(workspace, visitor, agent):
    attachment = visitor_upload(workspace, visitor)
    services.visitor_message_send(visitor=visitor, client_id="m1", text="hi")
    conversation = visitor.conversations.get()
    outsider = AgentFactory(workspace=WorkspaceFactory())
    for sender, code in ((agent, "invalid_attachment"), (outsider, "not_found")):
        with pytest.raises(ChatError) as exc:
            services.agent_message_send(
                agent=sender,
                conversation_id=conversation.pk,
                client_id=f"a{sender.pk}",
                text="",
                attachment_id=str(attachment.public_id),
            )
        assert exc.value.code == code
    assert Message.objects.count() == 1
    attachment.refresh_from_db()
    assert not Message.objects.filter(attachment=attachment).exists()


def test_an_agent_of_another_workspace_cannot_send_an_agents_upload(workspace, visitor, agent):
    services.visitor_message_send(visitor=visitor, client_id="m1", text="hi")
    conversation = visitor.conversations.get()
    attachment = services.attachment_create(
        workspace=workspace, upload=SimpleUploadedFile("rates.pdf", PDF), agent=agent
    )
    outsider = AgentFactory(workspace=WorkspaceFactory())
    outsider_conversation = services.visitor_message_send(
        visitor=VisitorFactory(workspace=outsider.workspace), client_id="o1", text="hi"
    )[0].conversation
    with pytest.raises(ChatError) as exc:
        services.agent_message_send(
            agent=outsider,
            conversation_id=outsider_conversation.pk,
            client_id="steal",
            text="",
            attachment_id=str(attachment.public_id),
        )
    assert exc.value.code == "invalid_attachment"

    colleague = AgentFactory(workspace=workspace)
    with pytest.raises(ChatError):
        services.agent_message_send(
            agent=colleague,
            conversation_id=conversation.pk,
            client_id="c1",
            text="",
            attachment_id=str(attachment.public_id),
        )
    message, created = services.agent_message_send(
        agent=agent,
        conversation_id=conversation.pk,
        client_id="a1",
        text="Our rates",
        attachment_id=str(attachment.public_id),
    )
    assert created and message.attachment == attachment


@pytest.mark.parametrize("bad", ["not-a-uuid", 42, str(uuid.uuid4()), {"id": 1}])
def test_a_bogus_attachment_id_is_refused(workspace, visitor, bad):
    with pytest.raises(ChatError) as exc:
        services.visitor_message_send(visitor=visitor, client_id="m1", text="x", attachment_id=bad)
    assert exc.value.code == "invalid_attachment"
    assert Message.objects.count() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("has_conversation", [False, True], ids=["first-message", "later"])
async def test_upload_then_send_over_the_socket(workspace, agent, has_conversation):
    # A visitor's first message opens the conversation (services); later ones and every
    # agent message go through the batched writer: both paths must check ownership.
    comm, welcome = await visitor_socket(workspace)
    other, _ = await visitor_socket(workspace)
    if has_conversation:
        for sock in (comm, other):
            await sock.send_json_to({"type": "message", "client_id": "hi", "text": "hi"})
            await receive_until(sock, "ack")

    @sync_to_async
    def upload() -> dict:
        client = Client()
        response = client.post(
            UPLOAD_URL,
            {
                "key": workspace.widget_key,
                "visitor_id": welcome["visitor_id"],
                "visitor_token": welcome["visitor_token"],
                "file": SimpleUploadedFile("shot.png", PNG),
            },
            headers={"Origin": ORIGIN},
        )
        assert response.status_code == 201, response.content
        return response.json()["attachment"]

    data = await upload()
    await other.send_json_to(
        {"type": "message", "client_id": "steal-1", "attachment_id": data["id"]}
    )
    error = await receive_until(other, "error")
    assert (error["code"], error["ref"]) == ("invalid_attachment", "steal-1")

    await comm.send_json_to({"type": "message", "client_id": "f1", "attachment_id": data["id"]})
    ack = await receive_until(comm, "ack")
    frame = await receive_until(comm, "message")
    while frame["message"]["client_id"] != "f1":
        frame = await receive_until(comm, "message")
    assert frame["message"]["attachment"] == data
    assert frame["message"]["text"] == ""

    await comm.send_json_to({"type": "message", "client_id": "f2", "attachment_id": data["id"]})
    error = await receive_until(comm, "error")
    assert (error["code"], error["ref"]) == ("invalid_attachment", "f2")

    # An agent of the workspace cannot send the visitor's upload either.
    console, _ = await agent_socket(agent.user)
    await console.send_json_to(
        {
            "type": "message",
            "conversation_id": ack["conversation_id"],
            "client_id": "a-steal",
            "attachment_id": data["id"],
        }
    )
    error = await receive_until(console, "error")
    assert (error["code"], error["ref"]) == ("invalid_attachment", "a-steal")
    count = await Message.objects.filter(attachment__public_id=data["id"]).acount()
    assert count == 1
    await console.disconnect()
    await comm.disconnect()
    await other.disconnect()


# --- console upload ----------------------------------------------------------------------------

CONSOLE_URL = "/console/uploads/"


def csrf_client(user) -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    token = _get_new_csrf_string()
    client.cookies["csrftoken"] = token
    return client, token


def test_console_upload_needs_a_login(client, media):
    response = client.post(CONSOLE_URL, {"file": SimpleUploadedFile("a.png", PNG)})
    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/")
    assert stored_files(media) == []


def test_console_upload_needs_an_agent(media):
    client, token = csrf_client(UserFactory())
    response = client.post(
        CONSOLE_URL, {"file": SimpleUploadedFile("a.png", PNG)}, headers={"X-CSRFToken": token}
    )
    assert_refused(response, 403, "not_agent", media)


def test_console_upload_needs_the_csrf_token(agent, media):
    client, _ = csrf_client(agent.user)
    response = client.post(CONSOLE_URL, {"file": SimpleUploadedFile("a.png", PNG)})
    assert response.status_code == 403
    assert Attachment.objects.count() == 0 and stored_files(media) == []
    wrong = client.post(
        CONSOLE_URL,
        {"file": SimpleUploadedFile("a.png", PNG)},
        headers={"X-CSRFToken": _get_new_csrf_string()},
    )
    assert wrong.status_code == 403
    assert Attachment.objects.count() == 0


def test_console_upload_for_an_agent(agent, media):
    client, token = csrf_client(agent.user)
    response = client.post(
        CONSOLE_URL, {"file": SimpleUploadedFile("rates.pdf", PDF)}, headers={"X-CSRFToken": token}
    )
    assert response.status_code == 201, response.content
    data = response.json()["attachment"]
    assert (data["name"], data["content_type"], data["is_image"]) == (
        "rates.pdf",
        "application/pdf",
        False,
    )
    attachment = Attachment.objects.get(public_id=data["id"])
    assert attachment.agent == agent and attachment.visitor is None
    assert attachment.workspace == agent.workspace
    [path] = stored_files(media)
    assert re.fullmatch(r"[0-9a-f]{32}", path.name)


def test_console_upload_applies_the_workspace_limits(agent, media):
    agent.workspace.upload_max_bytes = 10
    agent.workspace.save()
    client, token = csrf_client(agent.user)
    big = client.post(
        CONSOLE_URL, {"file": SimpleUploadedFile("a.png", PNG)}, headers={"X-CSRFToken": token}
    )
    assert_refused(big, 400, "file_too_large", media)
    missing = client.post(CONSOLE_URL, {}, headers={"X-CSRFToken": token})
    assert_refused(missing, 400, "missing_file", media)


def test_console_upload_is_post_only(agent):
    client, _ = csrf_client(agent.user)
    assert client.get(CONSOLE_URL).status_code == 405
