"""tracking stage of denselink."""
