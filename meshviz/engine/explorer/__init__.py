"""explorer layer."""
