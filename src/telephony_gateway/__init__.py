"""The carrier gateway: one provider-neutral vocabulary for voice and SMS, and its providers."""
