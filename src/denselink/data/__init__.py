"""data stage of denselink."""
