"""Carrier providers: the built-in simulator, Twilio, Kannel (SMS)."""
