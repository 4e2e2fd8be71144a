"""Check digits that tell a real identifier from a look-alike number (cards, IBANs, national ids).

A regex alone flags every 16-digit order number as a card; the check digit turns most of those
false positives away (Luhn accepts one random number in ten, mod-97 one in 97).
"""

from __future__ import annotations

# Length of the IBAN of each country (ISO 13616 registry); an IBAN of another length is not one.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24,
    "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21,
    "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21,
    "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30,
    "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}  # fmt: skip

DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_ok(compact: str) -> bool:
    """``compact``: upper case, no spaces. The country's length, then mod-97 of the rearranged number is 1."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    try:
        number = int("".join(str(int(char, 36)) for char in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def dni_ok(value: str) -> bool:
    """Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter): the letter is number mod 23."""
    value = value.upper()
    body, letter = value[:-1], value[-1]
    if body[0] in "XYZ":
        body = str("XYZ".index(body[0])) + body[1:]
    return body.isdigit() and DNI_LETTERS[int(body) % 23] == letter


def bsn_ok(digits: str) -> bool:
    """Dutch BSN: 9 digits whose weighted sum (9..2, then -1) is a multiple of 11 and not 0."""
    if len(digits) != 9:
        return False
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True)) - int(digits[8])
    return total % 11 == 0 and total != 0


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """US SSN: never area 000, 666 or 900-999, group 00 or serial 0000."""
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"
