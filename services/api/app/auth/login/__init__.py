"""The login pipeline: authentication as a sequence of steps over one `LoginFlow`, ending in an
`Authentication` (who, by which methods, when) that a grant or a browser page turns into a session."""
