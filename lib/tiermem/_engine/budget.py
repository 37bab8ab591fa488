"""The decoded-bytes budget of one batch read (``Policy.mget_max_bytes``): counted before inflating.

A batch read of many keys could otherwise return (and first allocate) gigabytes: each value is
counted at the size its record declares (payload length, or the gzip trailer's ISIZE, which
inflating then verifies) before it is decoded, so the read fails typed before the memory is spent.
"""

from __future__ import annotations

from tiermem._codec import Codec, Record
from tiermem._errors import ResultTooLargeError
from tiermem._types import Value

__all__ = ["DecodeBudget"]


class DecodeBudget:
    """How many decoded bytes one batch read may still return.

    Args:
        limit: the budget in bytes (``Policy.mget_max_bytes`` or a call's ``max_bytes``).
    """

    __slots__ = ("left", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def check(self, nbytes: int) -> None:
        """Refuse to fetch values adding up to ``nbytes`` when they cannot fit (nothing is counted).

        Raises:
            ResultTooLargeError: ``nbytes`` is more than what is left.
        """
        if nbytes > self.left:
            raise ResultTooLargeError(
                f"the values read add up to more than {self.limit} bytes (mget_max_bytes); "
                "ask for fewer keys per call (page through them)",
                limit=self.limit,
            )

    def take(self, nbytes: int) -> None:
        """Count ``nbytes`` about to be decoded (a size inflating will verify).

        Raises:
            ResultTooLargeError: ``nbytes`` is more than what is left; nothing is counted.
        """
        if nbytes > self.left:
            self.check(nbytes)
        self.left -= nbytes

    def decode(self, codec: Codec, record: Record, *, limit: int | None = None) -> Value:
        """Count ``record``'s decoded size, then decode it (``limit``: as in :meth:`Codec.decode`).

        Raises:
            ResultTooLargeError: the value does not fit in what is left; it was not inflated.
            CorruptValueError: the record is damaged (or inflates past ``limit``).
        """
        self.take(record.decoded_size)  # inflating verifies it (the gzip trailer's ISIZE)
        return codec.decode(record, limit=limit)
