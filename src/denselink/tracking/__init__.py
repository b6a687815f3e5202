"""tracking stage of denselink (trackastra; its data package is loaded without lightning)."""

from denselink.tracking.trackastra_data import install

install()
