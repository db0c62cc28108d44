"""The widget's interface strings, translated by Django's i18n and sent in ``welcome``."""

from django.utils import translation
from django.utils.translation import gettext_lazy as _

STRINGS = {
    "title": _("Chat with us"),
    "placeholder": _("Type your message…"),
    "send": _("Send"),
    "attach": _("Attach a file"),
    "connecting": _("Connecting…"),
    "online": _("We are online"),
    "offline": _("We are offline"),
    "reconnecting": _("Reconnecting…"),
    "typing": _("typing…"),
    "read": _("Read"),
    "delivered": _("Delivered"),
    "sending": _("Sending…"),
    "failed": _("Not sent, retrying"),
    "name": _("Your name"),
    "email": _("Your email"),
    "message": _("Your message"),
    "leave_message": _("Leave a message"),
    "leave_sent": _("Thanks! We will get back to you by email."),
    "resolved": _("This conversation was marked as resolved. Write again any time."),
    "upload_failed": _("The file could not be sent"),
    "close": _("Close"),
    "bot": _("Bot"),
    "human": _("Talk to a human"),
    "rate_prompt": _("How would you rate this conversation?"),
    "rate_star": _("%(n)s out of 5"),
    "rate_comment": _("Anything you would like to add? (optional)"),
    "rate_submit": _("Send rating"),
    "rate_thanks": _("Thank you for your feedback!"),
    "department": _("Which department would you like to talk to?"),
    "department_any": _("Choose a department (optional)"),
    "blocked": _("This chat is not available."),
    "queue_position": _("You are number %(n)s in the queue"),
    "chatting_with": _("You are chatting with %(name)s"),
}


def widget_strings(language: str) -> dict[str, str]:
    """All widget strings in ``language`` (a browser tag like zh-CN), English if unknown."""
    code = language.lower()
    if code.startswith("zh"):
        code = "zh-hans"
    elif not code:
        code = "en"
    with translation.override(
        translation.get_supported_language_variant(code) if _supported(code) else "en"
    ):
        return {key: str(value) for key, value in STRINGS.items()}


def _supported(code: str) -> bool:
    try:
        translation.get_supported_language_variant(code)
    except LookupError:
        return False
    return True
