"""Live fan-out: one bus subscription per process, many WebSocket/SSE clients."""
