"""features stage of denselink."""
