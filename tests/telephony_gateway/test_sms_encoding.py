"""Segment counting as carriers bill it."""

from __future__ import annotations

import pytest

from telephony_gateway.sms_encoding import shape


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("", "GSM-7", 0),
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),  # concatenated: 153 a segment
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),  # the euro sign is an escape: two septets each
        ("€" * 81, "GSM-7", 2),
        ("您" * 70, "UCS-2", 1),
        ("您" * 71, "UCS-2", 2),  # concatenated: 67 a segment
        ("您" * 134, "UCS-2", 2),
        ("您" * 135, "UCS-2", 3),
        ("Pickup at 10:00 ✓", "UCS-2", 1),  # one non-GSM character makes it all UCS-2
        ("📦" * 35, "UCS-2", 1),  # outside the BMP: two code units each
        ("📦" * 36, "UCS-2", 2),
    ],
)
def test_segments(text: str, encoding: str, segments: int) -> None:
    result = shape(text)
    assert (result.encoding, result.segments) == (encoding, segments)


def test_chinese_dispatch_message_is_ucs2_and_counts_characters() -> None:
    body = "您的包裹已揽收，单号 SF123。回复退订停止接收"
    result = shape(body)
    assert result.encoding == "UCS-2" and result.units == len(body) and result.segments == 1
