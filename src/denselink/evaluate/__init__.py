"""evaluate stage of denselink."""
