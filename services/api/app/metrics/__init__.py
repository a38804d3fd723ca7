"""Prometheus metrics: what pyauth counts (`instruments`), how requests are timed (`middleware`), the
per-process gauges read from the hash pool and the database pool (`gauges`), how one scrape gathers every
uvicorn worker (`exposition`), `GET /metrics` (`endpoints`), and the port it is served on (`listener`)."""
