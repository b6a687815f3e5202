"""maester stage of denselink."""
