"""The Inbeeld contract: event envelope, payload models, domain validation and the sealed
wire format. Pure Python, no I/O; shared by the hub and the connectors."""
