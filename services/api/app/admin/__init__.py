"""Administration: the `CurrentAdmin` dependency, the `/admin/users` endpoints, and the ways the first
administrator comes to exist (the `create-admin` CLI and the FIRST_ADMIN_* settings). No default account
is ever created.
"""
