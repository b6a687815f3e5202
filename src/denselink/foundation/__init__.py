"""foundation stage of denselink."""
