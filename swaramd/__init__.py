"""swaramd: a Raspberry Pi voice-appliance daemon for the swaram realtime service."""

__version__ = "0.1.0"
