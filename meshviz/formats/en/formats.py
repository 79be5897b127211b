"""Dates on meshviz's pages: "4 Dec 2026, 13:22" (Django's English default, "Dec. 4, 2026, 1:22 p.m.", doubled its
full stop at the end of a sentence: "1:22 p.m..")."""

DATE_FORMAT = "j M Y"
DATETIME_FORMAT = "j M Y, H:i"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
TIME_FORMAT = "H:i"
