"""World-model room."""
