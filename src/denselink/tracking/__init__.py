"""tracking stage of denselink (trackastra training, linking and CTC scoring)."""
