"""Passwords: the policy a new password must meet (`policy`), and argon2id hashing (`hashing`).

`common-passwords.txt.gz` is Django 5.2.19's `django/contrib/auth/common-passwords.txt.gz`, byte for byte
(19,640 lowercase entries; sha256 3c1baed62596de36860824eb3f436d5932d37ca8b06e59df78f5a44ec175afe4),
BSD-3-Clause, copyright Django Software Foundation and contributors: see `common-passwords.LICENSE`.
"""
