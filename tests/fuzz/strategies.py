"""What hostile visitors, mail clients and providers send: hypothesis strategies."""

from __future__ import annotations

from hypothesis import strategies as st

# Characters that break things: NUL and other C0 controls, CR/LF, DEL, C1 controls, line and
# paragraph separators, bidi overrides, zero-width joiners, a BOM, a lone surrogate's
# neighbours, combining marks and characters outside the BMP.
NASTY_CHARS = (
    "\x00\x01\x07\x08\t\n\x0b\x0c\r\x1b\x7f\x85\xa0\u2028\u2029\u202e\u200b\u200d\ufeff"
    "\u0301\ufffd\U0001f4a9\U0010fffd"
)
HEADER_INJECTIONS = [
    "Ada\r\nBcc: victim@example.net",
    "Ada\nBcc: victim@example.net",
    "Ada\rBcc: victim@example.net",
    "=?utf-8?q?Ada=0D=0ABcc:_victim@example.net?=",
    "Ada\r\n\r\n<script>alert(1)</script>",
    "Ada\u2028Bcc: victim@example.net",
    "Ada\x85Bcc: victim@example.net",
]
MARKUP = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</title><script>alert(1)</script>",
    "javascript:alert(1)",
    "{{ first_name }}",
    "{% debug %}",
    "%%UNSUBSCRIBE_URL%%",
    "%%FIRST_NAME%%",
    "<!--",
    "]]>",
]

_plain_or_nasty = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(NASTY_CHARS), max_size=80)
# Text with at least one of the nasty characters in it, somewhere.
_spiked = st.builds(
    lambda text, char, at: text[:at] + char + text[at:],
    st.text(max_size=40),
    st.sampled_from(NASTY_CHARS),
    st.integers(0, 40),
)
nasty_text = st.one_of(_plain_or_nasty, _spiked)
oversized_text = st.integers(min_value=255, max_value=5000).map(lambda n: "x" * n)
hostile_text = st.one_of(
    nasty_text,
    st.sampled_from(HEADER_INJECTIONS + MARKUP),
    oversized_text,
    st.builds(lambda a, b: a + b, st.sampled_from(MARKUP + HEADER_INJECTIONS), nasty_text),
)

# Address shapes: valid ones, internationalised domains (IDNA 2008 differs from 2003 on ß, ς,
# ZWJ …), non-ASCII local parts, injected headers and plain garbage.
IDN_DOMAINS = ["münchen.example", "faß.example", "ελληνικά.example", "例え.テスト", "xn--mnchen-3ya.example"]
ODD_ADDRESSES = [
    "ada@example.org\r\nBcc: victim@example.net",
    "ada@example.org\nBcc: victim@example.net",
    "ada@example.org,victim@example.net",
    "ada@example.org;victim@example.net",
    '"ada@example.org" <victim@example.net>',
    "Ada <ada@example.org>",
    "ada@example.org\x00victim@example.net",
    "jörg@example.org",
    "用户@例子.广告",
    "ada@[127.0.0.1]",
    "ada@localhost",
    "a" * 65 + "@example.org",
    "ada@" + "d" * 250 + ".org",
    "",
    "@",
    "ada@@example.org",
]
local_parts = st.from_regex(r"\A[a-z0-9][a-z0-9.+_-]{0,20}[a-z0-9]\Z")
addresses = st.one_of(
    st.emails(),
    st.sampled_from(ODD_ADDRESSES),
    st.builds(lambda lp, d: f"{lp}@{d}", local_parts, st.sampled_from(IDN_DOMAINS)),
    st.builds(lambda lp, junk: f"{lp}{junk}@example.org", local_parts, nasty_text),
    nasty_text,
)


# Tokens: a valid one cut short, with characters changed, padded, or replaced outright.
def altered(token: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(min_value=0, max_value=max(len(token) - 1, 0)).map(lambda n: token[:n]),
        st.tuples(st.integers(0, len(token) - 1), st.characters(codec="utf-8")).map(
            lambda t: token[: t[0]] + t[1] + token[t[0] + 1 :]
        ),
        nasty_text.map(lambda extra: token + extra),
        st.just(token.upper()),
        st.just(token[::-1]),
        st.just(token.replace(":", ".", 1)),
        nasty_text,
        oversized_text,
    ).filter(lambda t: t != token)
