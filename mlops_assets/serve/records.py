"""ISO 8601 request timestamps -> nanoseconds, shared by the fast path (serve.fast_path)
and the full validator (serve.validation).

Both must read a timestamp the same way (a record's score may not depend on the path that
validated it), so the parsing lives here, below both: neither imports the other for it.
"""

from __future__ import annotations

import datetime as _dt
import re

_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()
# The ISO 8601 forms parsed here (anything else goes to pandas, one value at a time).
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
                  r"(Z|[+-]\d{2}:\d{2})?\Z")


def parse_iso_ns(text: str) -> int | None:
    """Nanoseconds since the epoch (UTC) of `YYYY-MM-DD[T ]HH:MM:SS[.f{1,9}][Z|+HH:MM]`
    (naive = UTC, as pandas `to_datetime(format="ISO8601", utc=True)`); None otherwise."""
    m = _ISO.match(text)
    if m is None:
        return None
    y, mo, d, h, mi, s, frac, tz = m.groups()
    year = int(y)
    if not 1700 <= year <= 2200:  # well inside datetime64[ns]; pandas decides the rest
        return None
    try:
        days = _dt.date(year, int(mo), int(d)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    hh, mm, ss = int(h), int(mi), int(s)
    if hh > 23 or mm > 59 or ss > 59:
        return None
    ns = (((days * 24 + hh) * 60 + mm) * 60 + ss) * 10 ** 9
    if frac:
        ns += int(frac.ljust(9, "0"))
    if tz and tz != "Z":
        oh, om = int(tz[1:3]), int(tz[4:6])
        if oh > 23 or om > 59:
            return None
        off = (oh * 3600 + om * 60) * 10 ** 9
        ns += -off if tz[0] == "+" else off
    return ns
