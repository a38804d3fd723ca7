"""The audit log: one row per security event, written in the transaction of the event itself.

`service.record()` is what every flow calls; `AuditEvent` names the events. Admins read the log at
`GET /admin/audit`; each user reads their own recent events at `GET /users/me/events`.
"""
