"""HTML pages (login, consent, error) rendered by Jinja2 with autoescaping on."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.responses import HTMLResponse

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}"
    "label{display:block;margin-top:1rem}input{width:100%;padding:.4rem}"
    "button{margin-top:1.2rem;margin-right:.5rem;padding:.5rem 1.2rem}"
    "button.primary{background:#1a5fb4;border:1px solid #1a5fb4;color:#fff;font-weight:bold}"
    "button.secondary{background:#fff;border:1px solid #888;color:#333}"
    ".error{color:#a00}dt{font-weight:bold;margin-top:.6rem}code{overflow-wrap:anywhere}"
)
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
# RFC 9700 4.16: no framing; the only inline content allowed is the stylesheet above.
CSP = (
    f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def render(template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page from `templates/`; every value is HTML-escaped unless the template says otherwise."""
    html = _env.get_template(template).render(style=Markup(STYLE), **context)  # noqa: S704
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


def error_page(message: str, status_code: int = 400) -> HTMLResponse:
    """An error shown to the user, never redirected (OAuth 2.1 4.1.2.1)."""
    return render("error.html", status_code=status_code, message=message)
