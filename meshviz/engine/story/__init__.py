"""story layer."""
