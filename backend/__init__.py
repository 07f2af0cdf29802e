"""The backend: Sanic API, gateway webhooks and reply workers."""
