"""The code the agent hands to websites: the JavaScript the ``.js`` token URLs answer
(which global names are allowed, the token as a safe string literal) and what the
owner's snippets paste into a site (the pinned Instafeed.js, captions as text).

Pure Python with no Django import: ``tokenagent/settings.py`` reads the Instafeed.js
URL from here for the Content-Security-Policy.
"""

import json
import re
from functools import lru_cache

# --- The published Instafeed.js ------------------------------------------------------

# The snippets and the preview page load it from a public CDN; the hash is that of
# node_modules/instafeed.js/dist/instafeed.min.js (npm 2.1.0), which the CDN serves
# byte for byte (tests/accounts/test_views_preview.py checks it).
INSTAFEED_VERSION = "2.1.0"
# The package's folder on jsDelivr: what the preview page's script-src allows.
INSTAFEED_CDN_DIR = f"https://cdn.jsdelivr.net/npm/instafeed.js@{INSTAFEED_VERSION}/"
INSTAFEED_CDN_URL = f"{INSTAFEED_CDN_DIR}dist/instafeed.min.js"
INSTAFEED_INTEGRITY = "sha384-yWT9fA1lUQIwm3PVfaBFR9GXMNR8fmWgIgMMoJiBtYiNLgRqZrXIblhTN6/PE0XJ"

# Instafeed.js options every snippet passes (and the preview page, through the
# script accounts/views/preview.py serves). Its default template puts the raw
# caption into title="..." and the result into innerHTML, so a caption could close
# the attribute and add markup (a <meta http-equiv="refresh">, an <img onerror>).
# The transform escapes every field the template uses; the template names no other
# field. Indented for the snippets.
TEXT_ONLY_OPTIONS = """\
    // Captions are text, not markup: escape every field the template uses.
    transform: function (item) {
      var text = function (s) {
        return String(s || "").replace(/[&<>"']/g, function (c) {
          return "&#" + c.charCodeAt(0) + ";";
        });
      };
      item.caption = text(item.caption);
      item.link = text(item.link);
      item.image = text(item.image);
      return item;
    },
    template: '<a href="{{link}}"><img title="{{caption}}" src="{{image}}" /></a>'"""

# --- The .js token URLs: the global's name ----------------------------------------------

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
MAX_IDENTIFIER_LENGTH = 64
# ECMAScript reserved words (incl. strict mode and the literals), names that
# cannot be assigned, and window properties whose assignment would navigate or
# break the page.
RESERVED = frozenset(
    """
    await break case catch class const continue debugger default delete do else enum
    export extends false finally for function if import in instanceof new null return
    super switch this throw true try typeof var void while with yield
    implements interface let package private protected public static
    arguments eval undefined NaN Infinity
    abstract boolean byte char double final float goto int long native short
    synchronized throws transient volatile
    window self top parent frames opener location document globalThis name length
    closed status origin history navigator console localStorage sessionStorage
    __proto__ constructor prototype hasOwnProperty isPrototypeOf propertyIsEnumerable
    toLocaleString toString valueOf __defineGetter__ __defineSetter__
    __lookupGetter__ __lookupSetter__
    """.split()
)


def js_identifier_problem(name: str) -> str | None:
    """Why ``name`` cannot be the global the snippet sets, or None if it can.

    The message never contains ``name`` itself (it is untrusted input)."""
    if not name:
        return "the name is empty"
    if len(name) > MAX_IDENTIFIER_LENGTH:
        return f"the name is longer than {MAX_IDENTIFIER_LENGTH} characters"
    if not _IDENTIFIER.fullmatch(name):
        return (
            "the name must be a JavaScript identifier: ASCII letters, digits, _ and $, "
            "not starting with a digit"
        )
    if name in RESERVED:
        return "the name is a reserved word or a built-in global"
    return None


@lru_cache(maxsize=4)
def default_js_name_problem(name: str) -> str | None:
    """``js_identifier_problem`` for the ``JS_CONSTANT_NAME`` setting (memoized)."""
    return js_identifier_problem(name)


# --- The .js token URLs: bodies -------------------------------------------------------------

_JS_ESCAPES = {
    ord("<"): "\\u003C",
    ord(">"): "\\u003E",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def js_string(value: str) -> str:
    """``value`` as a JSON string literal that is safe inside a script, an HTML
    ``<script>`` element and any JavaScript parser (no ``</script>``, no line
    separators)."""
    return json.dumps(value).translate(_JS_ESCAPES)


def js_assign(name: str, token: str) -> str:
    # A property assignment, not const/let: including the snippet twice never throws.
    return f'window["{name}"] = {js_string(token)};\n'


def js_unusable(name: str, message: str) -> str:
    """Sets the global to null and tells the developer console why."""
    return f'window["{name}"] = null;\nconsole.error({js_string("tokenagent: " + message)});\n'


def js_refusal(message: str) -> str:
    """A refusal body: harmless JavaScript that only logs why."""
    return f"console.error({js_string('tokenagent: ' + message)});\n"
