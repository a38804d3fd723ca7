"""Administration: the `/admin/users` endpoints, and the ways the first administrator comes to exist (the
`create-admin` CLI and the FIRST_ADMIN_* settings, through one procedure in `first_admin`). No default
account is ever created. The `CurrentAdmin` guard lives in `app.auth.dependencies`, where `audit` can use it.
"""
