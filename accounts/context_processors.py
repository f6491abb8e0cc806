"""Template context every page gets (``agent``)."""

from django.conf import settings


def agent(request):
    """Values every page needs: the sandbox banner and the help-pages switch."""
    return {
        "SANDBOX_ENABLED": settings.SANDBOX_ENABLED,
        "HIDE_HELP_PAGES": settings.HIDE_HELP_PAGES,
    }
