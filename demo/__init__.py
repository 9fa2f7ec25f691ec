"""`inbeeld demo`: the mission's story, played by an in-process hub and five connectors.

It sits above both `hub` and `connectors` (which never import each other)."""
