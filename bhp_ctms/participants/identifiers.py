"""A participant's direct identifiers: NHS numbers, their encryption at rest, and the
keyed digests that find duplicates without storing anything readable.

Pure functions of the values and the deployment's secret key: no database, no
request. Identifiers are never logged, never put in a message, never exported.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Any

from bhp_ctms.encryption import decrypt, derive_key, encrypt

# Each purpose has its own key derived from the secret key: the key that encrypts
# identifiers cannot make matching digests, nor the reverse.
ENCRYPTION_PURPOSE = "participant-identifiers"
MATCHING_PURPOSE = "participant-identifier-matching"

NHS_NUMBER_LENGTH = 10
_WEIGHTS = range(10, 1, -1)  # the first nine digits are weighted 10, 9, ... 2


# -- NHS numbers --------------------------------------------------------------------


def normalise_nhs_number(text: str) -> str:
    """The digits of an NHS number as typed, without the spaces people put in it."""
    return re.sub(r"\s+", "", text)


def nhs_check_digit(first_nine: str) -> int | None:
    """The modulus-11 check digit of an NHS number's first nine digits.

    None when the remainder gives 10: no NHS number is issued with those nine digits.
    """
    total = sum(int(digit) * weight for digit, weight in zip(first_nine, _WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def nhs_number_problem(text: str) -> str | None:
    """Why ``text`` is not a valid NHS number, or None if it is one."""
    digits = normalise_nhs_number(text)
    if not digits.isascii() or not digits.isdigit() or len(digits) != NHS_NUMBER_LENGTH:
        return "NHS number must be 10 digits, like 943 476 5919"
    if nhs_check_digit(digits[:9]) != int(digits[9]):
        return "NHS number: the check digit does not match. Check the number and try again"
    return None


def valid_nhs_number(text: str) -> bool:
    """Ten digits (spaces allowed) whose last is the modulus-11 check digit of the rest."""
    return nhs_number_problem(text) is None


def format_nhs_number(text: str) -> str:
    """An NHS number as people read it: ``943 476 5919``."""
    digits = normalise_nhs_number(text)
    if len(digits) != NHS_NUMBER_LENGTH:
        return text
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


# -- the identifiers ----------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Identifiers:
    """A participant's direct identifiers, each optional."""

    full_name: str | None = None
    date_of_birth: date | None = None
    nhs_number: str | None = None

    def __repr__(self) -> str:
        # Never show the values, whoever prints this (a traceback, a log line).
        held = [
            name for name in ("full_name", "date_of_birth", "nhs_number") if getattr(self, name)
        ]
        return f"Identifiers(<{', '.join(held) or 'none'} held>)"

    __str__ = __repr__

    @property
    def is_empty(self) -> bool:
        return not (self.full_name or self.date_of_birth or self.nhs_number)

    def normalised(self) -> Identifiers:
        """The same identifiers with blanks as None, names trimmed and NHS numbers as digits."""
        name = " ".join((self.full_name or "").split()) or None
        nhs_number = normalise_nhs_number(self.nhs_number or "") or None
        return Identifiers(full_name=name, date_of_birth=self.date_of_birth, nhs_number=nhs_number)


def encrypt_identifiers(secret_key: str, identifiers: Identifiers) -> dict[str, str | None]:
    """The encrypted columns and matching digests of
    :class:`~bhp_ctms.participants.models.ParticipantIdentifiers` for these values."""
    values = identifiers.normalised()

    def sealed(text: str | None) -> str | None:
        return None if text is None else encrypt(secret_key, ENCRYPTION_PURPOSE, text)

    return {
        "full_name_encrypted": sealed(values.full_name),
        "date_of_birth_encrypted": sealed(
            values.date_of_birth.isoformat() if values.date_of_birth else None
        ),
        "nhs_number_encrypted": sealed(values.nhs_number),
        "nhs_number_hmac": nhs_number_digest(secret_key, values.nhs_number)
        if values.nhs_number
        else None,
        "name_dob_hmac": name_dob_digest(secret_key, values.full_name, values.date_of_birth)
        if values.full_name and values.date_of_birth
        else None,
    }


def decrypt_identifiers(secret_key: str, row: Any) -> Identifiers:
    """The identifiers a ``ParticipantIdentifiers`` row holds, decrypted."""

    def opened(ciphertext: str | None) -> str | None:
        return None if ciphertext is None else decrypt(secret_key, ENCRYPTION_PURPOSE, ciphertext)

    born = opened(row.date_of_birth_encrypted)
    return Identifiers(
        full_name=opened(row.full_name_encrypted),
        date_of_birth=date.fromisoformat(born) if born else None,
        nhs_number=opened(row.nhs_number_encrypted),
    )


# -- matching -------------------------------------------------------------------------


def normalise_name(full_name: str) -> str:
    """A name as it is matched: accents, case, punctuation and spacing do not count."""
    decomposed = unicodedata.normalize("NFKD", full_name)
    letters = "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", letters).split())


def _digest(secret_key: str, message: str) -> str:
    key = derive_key(secret_key, MATCHING_PURPOSE)
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def nhs_number_digest(secret_key: str, nhs_number: str) -> str:
    """The keyed HMAC-SHA256 of an NHS number, to find the same number again."""
    return _digest(secret_key, "nhs:" + normalise_nhs_number(nhs_number))


def name_dob_digest(secret_key: str, full_name: str, date_of_birth: date) -> str:
    """The keyed HMAC-SHA256 of a name with a date of birth, to find the same person."""
    return _digest(
        secret_key, f"name-dob:{normalise_name(full_name)}\x1f{date_of_birth.isoformat()}"
    )
