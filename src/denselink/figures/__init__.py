"""figures stage of denselink."""
